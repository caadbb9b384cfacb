package rwsim

import (
	"context"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// group runs functions with bounded parallelism and keeps the first error
// (golang.org/x/sync/errgroup is not a direct dependency of the module).
type group struct {
	wg     sync.WaitGroup
	sem    chan struct{}
	mu     sync.Mutex
	err    error
	parent context.Context
	ctx    context.Context
	stop   context.CancelFunc
}

func newGroup(ctx context.Context, limit int) *group {
	gctx, cancel := context.WithCancel(ctx)
	return &group{sem: make(chan struct{}, max(limit, 1)), parent: ctx, ctx: gctx, stop: cancel}
}

func (g *group) Go(f func(ctx context.Context) error) {
	g.wg.Add(1)
	g.sem <- struct{}{}
	go func() {
		defer func() { <-g.sem; g.wg.Done() }()
		if g.ctx.Err() != nil {
			return
		}
		if err := f(g.ctx); err != nil {
			g.mu.Lock()
			if g.err == nil {
				g.err = err
				g.stop()
			}
			g.mu.Unlock()
		}
	}()
}

func (g *group) Wait() error {
	g.wg.Wait()
	g.stop()
	if g.err == nil && g.parent.Err() != nil {
		// Cancelled from outside: some work may have been skipped.
		return g.parent.Err()
	}
	return g.err
}

// kv is one etcd write, or a delete when del is set.
type kv struct {
	key string
	val []byte
	del bool
}

// etcd's default limits (embed.DefaultMaxTxnOps = 128, max request 1.5 MiB),
// which RisingWave's etcd deployments keep too. Batches stay under both.
const (
	maxTxnOps   = 128
	maxTxnBytes = 1 << 20
)

// batches splits kvs into transactions within etcd's limits; a single value
// larger than maxTxnBytes gets a transaction of its own.
func batches(kvs []kv) [][]kv {
	var out [][]kv
	var cur []kv
	size := 0
	for _, e := range kvs {
		n := len(e.key) + len(e.val) + 16
		if len(cur) > 0 && (len(cur) == maxTxnOps || size+n > maxTxnBytes) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, e)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func ops(b []kv) []clientv3.Op {
	o := make([]clientv3.Op, len(b))
	for i, e := range b {
		if e.del {
			o[i] = clientv3.OpDelete(e.key)
		} else {
			o[i] = clientv3.OpPut(e.key, string(e.val))
		}
	}
	return o
}

// writeAtomic commits kvs in ONE transaction, as meta commits a version
// delta together with the stats and catalog rows it changes. The caller
// keeps it within etcd's limits.
func writeAtomic(ctx context.Context, cli *clientv3.Client, kvs []kv) error {
	if len(kvs) == 0 {
		return nil
	}
	if _, err := cli.Txn(ctx).Then(ops(kvs)...).Commit(); err != nil {
		return fmt.Errorf("rwsim: etcd txn of %d ops: %w", len(kvs), err)
	}
	return nil
}

// writeBatched writes kvs in batches, several in flight, for the bulk of a
// seeded meta store (up to millions of keys for benchmarks).
func writeBatched(ctx context.Context, cli *clientv3.Client, kvs []kv, parallel int) error {
	g := newGroup(ctx, parallel)
	for _, b := range batches(kvs) {
		g.Go(func(ctx context.Context) error { return writeAtomic(ctx, cli, b) })
	}
	return g.Wait()
}

// streamWriter writes kvs produced on the fly, so padding keys never all
// sit in memory.
type streamWriter struct {
	cli  *clientv3.Client
	g    *group
	cur  []kv
	size int
}

func newStreamWriter(ctx context.Context, cli *clientv3.Client, parallel int) *streamWriter {
	return &streamWriter{cli: cli, g: newGroup(ctx, parallel)}
}

func (w *streamWriter) add(e kv) {
	n := len(e.key) + len(e.val) + 16
	if len(w.cur) > 0 && (len(w.cur) == maxTxnOps || w.size+n > maxTxnBytes) {
		w.flush()
	}
	w.cur = append(w.cur, e)
	w.size += n
}

func (w *streamWriter) flush() {
	if len(w.cur) == 0 {
		return
	}
	b := w.cur
	w.cur, w.size = nil, 0
	w.g.Go(func(ctx context.Context) error { return writeAtomic(ctx, w.cli, b) })
}

func (w *streamWriter) wait() error {
	w.flush()
	return w.g.Wait()
}
