package restore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/internal/progress"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
)

// Apply writes the plan under own's claim (see Claim): every model in
// batched transactions conditional on the claim, the hummock checkpoint,
// then cf/cluster_id. Each step is idempotent, so a rerun after a crash at
// any point completes. The caller reads back, then own.Finish removes the
// marker; verified says the read-back of etcd is already done: the writes
// were read back while later ones went on, and nobody else wrote (see
// readBack).
// A checkpoint already at the hummock location is copied into the backup
// location before it is replaced (its key is returned).
func Apply(ctx context.Context, cli *clientv3.Client, own *Owner, hs objstore.Store, backup *metasnap.Storage, plan *Plan, log *slog.Logger) (written int, replaced string, verified bool, err error) {
	bar := progress.New("restore", int64(plan.Keys()), "keys")
	defer bar.Finish()
	rb := newReadBack(ctx, cli, own, plan)
	defer rb.stop()
	w := newWriter(ctx, cli, own, bar, rb)
	defer func() {
		n, werr := w.close()
		written = n
		if err == nil && werr != nil {
			err = werr
		}
	}()
	// One pipeline through every group: no drain at a group boundary.
	var last *Group
	for i := range plan.Groups {
		g := &plan.Groups[i]
		if g.Kind == "cluster_id" {
			last = g
			continue
		}
		if err := w.group(g); err != nil {
			return 0, "", false, err
		}
	}
	if err := w.drain(); err != nil {
		return 0, "", false, err
	}
	log.Debug("restored every model", "keys", plan.Keys()-last.N)
	faultpoint.Hit("restore.before-checkpoint")
	// The object store cannot make the upload conditional on the claim:
	// check it just before.
	if err := own.Check(ctx); err != nil {
		return 0, "", false, err
	}
	replaced, err = writeCheckpoint(ctx, hs, backup, plan, log)
	if err != nil {
		return 0, "", false, err
	}
	faultpoint.Hit("restore.after-checkpoint")
	// The cluster id goes last: its write, or its failure, decides.
	if err = w.group(last); err == nil {
		err = w.drain()
	}
	if err != nil {
		return 0, replaced, false, err
	}
	faultpoint.Hit("restore.before-readback")
	if why := rb.prove(ctx); why != "" {
		log.Debug("the read-back during the writes proves nothing; reading everything back", "why", why)
		return 0, replaced, false, nil
	}
	return 0, replaced, true, nil
}

// putBatched writes one group and waits for it (tests).
func putBatched(ctx context.Context, cli *clientv3.Client, own *Owner, g *Group, bar *progress.Bar) (int, error) {
	w := newWriter(ctx, cli, own, bar, nil)
	err := w.group(g)
	n, werr := w.close()
	if err == nil {
		err = werr
	}
	return n, err
}

// writer streams KVs into transactions within the server's limits
// (txnLimits: operations and bytes; a larger single value goes alone),
// txnParallelism at a time: etcd pipelines concurrent transactions through
// raft, so this beats one-at-a-time. The batches are cut while a group is
// read, so the first write goes out at once and memory holds only the
// batches in flight. One pipeline serves every group: the next group's
// batches go out while the last ones of the previous are in flight. Order
// does not matter: a restore is complete only when cf/cluster_id, written
// after all groups are acknowledged (drain), is there.
type writer struct {
	ctx    context.Context
	cancel context.CancelFunc
	cli    *clientv3.Client
	own    *Owner
	lim    *txnLimits
	bar    *progress.Bar
	rb     *readBack // nil: no read-back during the writes
	work   chan *batch
	wg     sync.WaitGroup // workers
	sent   sync.WaitGroup // batches sent, not yet done

	mu      sync.Mutex
	written int
	first   error

	// the batch being filled; each batch owns one buffer holding its
	// values: a streamed value is only valid during the callback.
	cur   *batch
	arena []byte
	win   *window // the window being filled (readBack)
}

type batch struct {
	kind string
	kvs  []KV
	size int
	gate *gate // opened once every batch under it is acknowledged
}

func newWriter(ctx context.Context, cli *clientv3.Client, own *Owner, bar *progress.Bar, rb *readBack) *writer {
	ctx, cancel := context.WithCancel(ctx)
	w := &writer{ctx: ctx, cancel: cancel, cli: cli, own: own, lim: limitsOf(cli), bar: bar, rb: rb, work: make(chan *batch, txnParallelism)}
	for range txnParallelism {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for b := range w.work {
				rev, err := putTxn(w.ctx, w.cli, w.own, b.kvs, w.lim, w.bar)
				w.mu.Lock()
				if err != nil && w.first == nil {
					w.first = fmt.Errorf("write %s: %w (the restore is resumable: run the same command again)", b.kind, err)
					w.cancel()
				} else if err == nil {
					w.written += len(b.kvs)
				}
				w.mu.Unlock()
				if err == nil && b.gate != nil {
					b.gate.ack(w.ctx, rev)
				}
				w.sent.Done()
			}
		}()
	}
	return w
}

// group sends every KV of g; with a read-back, the KVs go in key order
// where the group allows (then windows are cut as they go).
func (w *writer) group(g *Group) error {
	if g.N == 0 {
		return nil
	}
	add := w.add
	switch {
	case w.rb == nil:
		add = func(kv KV) error { return w.put(kv, nil) }
	case g.each == nil:
		// In memory: sent in key order (a copy; the plan keeps its order).
		kvs := slices.Clone(g.KVs)
		slices.SortStableFunc(kvs, func(a, b KV) int { return strings.Compare(a.Key, b.Key) })
		for _, kv := range kvs {
			if err := add(kv); err != nil {
				return err
			}
		}
		return w.endWindow()
	case g.index != nil:
		// Streamed out of key order: its windows come from the group's
		// index and open once the whole group is acknowledged.
		if err := w.endWindow(); err != nil {
			return err
		}
		gt := w.rb.newGate()
		if err := w.stream(g, func(kv KV) error { return w.put(kv, gt) }); err != nil {
			return err
		}
		if err := w.send(); err != nil {
			return err
		}
		w.rb.indexWindows(gt, g.index)
		gt.close(w.ctx)
		return nil
	}
	if err := w.stream(g, add); err != nil {
		return err
	}
	return w.endWindow()
}

// stream sends a streamed group, checking on the way that it is still
// the list the plan was built from (its digest hash): the snapshot object
// was verified once, and is read again here.
func (w *writer) stream(g *Group, add func(KV) error) error {
	if g.each == nil {
		for _, kv := range g.KVs {
			if err := add(kv); err != nil {
				return err
			}
		}
		return nil
	}
	gh := xxhash.New()
	var lb [8]byte
	err := g.each(func(kv KV) error {
		binary.LittleEndian.PutUint32(lb[:4], uint32(len(kv.Key)))
		binary.LittleEndian.PutUint32(lb[4:], uint32(len(kv.Value)))
		gh.Write(lb[:])
		gh.WriteString(kv.Key)
		gh.Write(kv.Value)
		return add(kv)
	})
	if err != nil {
		return w.failed(err)
	}
	if gh.Sum64() != g.sum {
		return fmt.Errorf("%s: the snapshot changed since it was verified (its list no longer matches the plan); nothing more was written: run the command again", g.Kind)
	}
	return nil
}

// add sends kv in the current window (readBack), opening a new one when
// it is full or kv does not follow its last key.
func (w *writer) add(kv KV) error {
	if w.win != nil && !w.win.fits(kv) {
		if err := w.endWindow(); err != nil {
			return err
		}
	}
	if w.win == nil {
		var err error
		if w.win, err = w.rb.newWindow(w.ctx); err != nil {
			return w.failed(err)
		}
	}
	w.win.want = append(w.win.want, keySum{key: kv.Key, sum: xxhash.Sum64(kv.Value), n: len(kv.Value)})
	w.win.bytes += len(kv.Key) + len(kv.Value)
	return w.put(kv, w.win.gate)
}

// endWindow sends the current window's last batch and lets it open.
func (w *writer) endWindow() error {
	if w.win == nil {
		return nil
	}
	if err := w.send(); err != nil {
		return err
	}
	w.win.gate.close(w.ctx)
	w.win = nil
	return nil
}

// put adds kv to the current batch (under gate), sending the batch first
// when kv would not fit in it.
func (w *writer) put(kv KV, gt *gate) error {
	sz := len(kv.Key) + len(kv.Value)
	if b := w.cur; b != nil && (b.gate != gt || len(b.kvs) >= w.lim.maxOps() || len(b.kvs) > 0 && b.size+sz > w.lim.maxBytes()) {
		if err := w.send(); err != nil {
			return err
		}
	}
	if w.cur == nil {
		w.cur = &batch{gate: gt}
	}
	// Buffers grow with what the batch holds (a batch of 128 small rows
	// needs ~40 KiB, not its 1 MiB limit): a fixed 1 MiB per batch made
	// gigabytes of garbage at 1M keys, and the heap's peak (RSS) grew with
	// the store.
	if cap(w.arena)-len(w.arena) < len(kv.Value) {
		w.arena = make([]byte, 0, max(64<<10, len(kv.Value))) // the old one stays with its KVs
	}
	off := len(w.arena)
	w.arena = append(w.arena, kv.Value...)
	w.cur.kvs = append(w.cur.kvs, KV{Key: kv.Key, Value: w.arena[off:len(w.arena):len(w.arena)]})
	w.cur.size += sz
	return nil
}

// send hands the current batch to a worker.
func (w *writer) send() error {
	b := w.cur
	if b == nil || len(b.kvs) == 0 {
		return nil
	}
	w.cur = nil
	if b.gate != nil {
		b.gate.pending.Add(1)
	}
	w.sent.Add(1)
	select {
	case w.work <- b:
		return nil
	case <-w.ctx.Done():
		w.sent.Done()
		return w.failed(w.ctx.Err())
	}
}

// drain sends what is buffered and waits until every batch is done.
func (w *writer) drain() error {
	err := w.endWindow()
	if err == nil {
		err = w.send()
	}
	w.sent.Wait()
	return w.failed(err)
}

// failed prefers the first write error over the error seen by the
// caller (a cancellation it caused, most likely).
func (w *writer) failed(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.first != nil {
		return w.first
	}
	if err != nil {
		return err
	}
	return w.ctx.Err()
}

// close drains, stops the workers and returns the keys written.
func (w *writer) close() (int, error) {
	err := w.drain()
	close(w.work)
	w.wg.Wait()
	w.cancel()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written, err
}

// txnLimits are the largest transaction a client's server is taken to
// accept: firstTxnOps operations and maxTxnBytes bytes until it refuses
// one, then etcd's default of 128 operations, then half of what it refused
// each time (bytes likewise), so a server with any --max-txn-ops or
// --max-request-bytes is written at the most it takes, learnt once per
// client.
type txnLimits struct{ ops, bytes atomic.Int64 }

var serverTxnLimits sync.Map // *clientv3.Client -> *txnLimits

func limitsOf(cli *clientv3.Client) *txnLimits {
	if l, ok := serverTxnLimits.Load(cli); ok {
		return l.(*txnLimits)
	}
	l := &txnLimits{}
	l.ops.Store(firstTxnOps)
	l.bytes.Store(maxTxnBytes)
	v, _ := serverTxnLimits.LoadOrStore(cli, l)
	return v.(*txnLimits)
}

func (l *txnLimits) maxOps() int   { return int(l.ops.Load()) }
func (l *txnLimits) maxBytes() int { return int(l.bytes.Load()) }

// putTxn writes one batch, conditional on own's claim, in as many
// transactions as the server's limits need. Puts are idempotent, so a
// transaction that failed on a transient etcd error (leader change,
// timeout, member down) is retried a few times before the restore gives
// up, and one refused as too large is sent again split.
func putTxn(ctx context.Context, cli *clientv3.Client, own *Owner, kvs []KV, lim *txnLimits, bar *progress.Bar) (int64, error) {
	if len(kvs) == 0 {
		return 0, nil
	}
	if n := fitting(kvs, lim); n < len(kvs) {
		var top int64
		for len(kvs) > 0 {
			rev, err := putTxn(ctx, cli, own, kvs[:n], lim, bar)
			if err != nil {
				return 0, err
			}
			top = max(top, rev)
			kvs = kvs[n:]
			n = fitting(kvs, lim)
		}
		return top, nil
	}
	size := 0
	for _, kv := range kvs {
		size += len(kv.Key) + len(kv.Value)
	}
	at := func(i int) (string, []byte) { return kvs[i].Key, kvs[i].Value }
	cmp := own.Cmp()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(time.Duration(attempt*attempt) * 200 * time.Millisecond):
			}
		}
		var rev int64
		var held bool
		if rev, held, err = metastore.PutIf(ctx, cli, cmp, len(kvs), at); err == nil {
			if !held {
				return 0, own.lost()
			}
			own.wrote(rev)
			bar.Add(int64(len(kvs)), int64(size))
			faultpoint.Hit("restore.after-batch")
			return rev, nil
		}
		switch {
		case errors.Is(err, rpctypes.ErrTooManyOps) && len(kvs) > 1:
			// Refused whole: nothing of it was written.
			lowerOps(lim, len(kvs))
			return putTxn(ctx, cli, own, kvs, lim, bar)
		case tooLarge(err) && len(kvs) > 1:
			lowerBytes(lim, size)
			return putTxn(ctx, cli, own, kvs, lim, bar)
		case tooLarge(err):
			return 0, fmt.Errorf("etcd refused a %d-byte transaction (key %q): raise --max-request-bytes on the target etcd to what the source etcd had: %w", size, kvs[0].Key, err)
		}
		if !transient(err) {
			break
		}
	}
	return 0, err
}

// fitting is how many of kvs (at least one) fit in one transaction.
func fitting(kvs []KV, lim *txnLimits) int {
	ops, limit := lim.maxOps(), lim.maxBytes()
	size := 0
	for i, kv := range kvs {
		size += len(kv.Key) + len(kv.Value)
		if i == ops || i > 0 && size > limit {
			return i
		}
	}
	return len(kvs)
}

func lowerOps(lim *txnLimits, refused int) {
	next := int64(refused / 2)
	if refused > maxTxnOps {
		next = maxTxnOps // etcd's default, then halves
	}
	lowerTo(&lim.ops, next)
}

func lowerBytes(lim *txnLimits, refused int) { lowerTo(&lim.bytes, int64(refused/2)) }

func lowerTo(v *atomic.Int64, next int64) {
	next = max(next, 1)
	for {
		cur := v.Load()
		if cur <= next || v.CompareAndSwap(cur, next) {
			return
		}
	}
}

// tooLarge says whether etcd (or the client's own send limit) refused a
// request for its size.
func tooLarge(err error) bool {
	return errors.Is(err, rpctypes.ErrRequestTooLarge) || strings.Contains(err.Error(), "request is too large") ||
		status.Code(err) == codes.ResourceExhausted && strings.Contains(err.Error(), "larger than max")
}

// transient says whether an etcd error may go away by itself.
func transient(err error) bool {
	switch {
	case errors.Is(err, rpctypes.ErrTimeout), errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail),
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost), errors.Is(err, rpctypes.ErrLeaderChanged),
		errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrTooManyRequests):
		return true
	}
	code := status.Code(err)
	return code == codes.Unavailable || code == codes.DeadlineExceeded
}

// writeCheckpoint uploads HummockVersionCheckpoint{version} (no stale
// objects: full GC clears them, as in RisingWave) to DIR/checkpoint/0.
func writeCheckpoint(ctx context.Context, hs objstore.Store, backup *metasnap.Storage, plan *Plan, log *slog.Logger) (string, error) {
	cp, err := hummock.EncodeCheckpoint(plan.Version)
	if err != nil {
		return "", err
	}
	key := plan.CheckpointKey()
	old, _, err := hs.Get(ctx, key)
	switch {
	case errors.Is(err, objstore.ErrNotFound):
	case err != nil:
		return "", fmt.Errorf("read existing checkpoint %s: %w", key, err)
	case bytes.Equal(old, cp):
		return "", nil // a rerun: already written
	default:
		// Never lose what was there: keep it beside the snapshots.
		saved := backup.Dir + "/replaced-checkpoints/" + time.Now().UTC().Format("20060102T150405.000Z") + "-" + strings.ReplaceAll(strings.Trim(plan.HummockDir, "/"), "/", "_")
		if err := backup.Store.Put(ctx, saved, old); err != nil {
			return "", fmt.Errorf("save the existing checkpoint %s before replacing it: %w", key, err)
		}
		log.Warn("replacing an existing hummock checkpoint; the old one is saved", "checkpoint", key, "saved_to", saved)
		if err := hs.Put(ctx, key, cp); err != nil {
			return saved, fmt.Errorf("write hummock checkpoint %s: %w", key, err)
		}
		return saved, nil
	}
	if err := hs.Put(ctx, key, cp); err != nil {
		return "", fmt.Errorf("write hummock checkpoint %s: %w", key, err)
	}
	return "", nil
}

// VerifyTarget reads everything back: etcd must hold exactly the plan's
// keys and values (unless etcdVerified: Apply proved it while writing), and
// the checkpoint must decode to the snapshot's version.
func VerifyTarget(ctx context.Context, cli *clientv3.Client, hs objstore.Store, plan *Plan, etcdVerified bool) error {
	if !etcdVerified {
		if err := verifyKeys(ctx, cli, plan); err != nil {
			return err
		}
	}
	b, _, err := hs.Get(ctx, plan.CheckpointKey())
	if err != nil {
		return fmt.Errorf("read-back of checkpoint %s: %w", plan.CheckpointKey(), err)
	}
	cp, err := hummock.DecodeCheckpoint(b)
	if err != nil {
		return fmt.Errorf("read-back of checkpoint %s: %w", plan.CheckpointKey(), err)
	}
	if cp.GetVersion().GetId() != plan.HummockVersionID || len(cp.GetStaleObjects()) != 0 {
		return fmt.Errorf("read-back: checkpoint %s holds version %d, want %d", plan.CheckpointKey(), cp.GetVersion().GetId(), plan.HummockVersionID)
	}
	return nil
}

// verifyKeys is the read-back of etcd: exactly the plan's keys and values.
func verifyKeys(ctx context.Context, cli *clientv3.Client, plan *Plan) error {
	found := 0
	_, err := scanTarget(ctx, cli, plan, func(k, v []byte, match int) error {
		if key := string(k); key == MarkerKey || key == OwnerKey {
			return nil // removed once this read-back passes
		}
		if found == plan.Keys()/2 {
			faultpoint.Hit("restore.during-readback")
		}
		switch match {
		case matchAbsent:
			return fmt.Errorf("unexpected key %q in the target etcd", k)
		case matchDiffers:
			return fmt.Errorf("key %q holds %d bytes that differ from the snapshot's", k, len(v))
		}
		found++
		return nil
	})
	if err != nil {
		return fmt.Errorf("read-back: %w", err)
	}
	if found != plan.Keys() {
		return fmt.Errorf("read-back: the target etcd holds %d of the %d restored keys", found, plan.Keys())
	}
	return nil
}
