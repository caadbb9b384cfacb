package restore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/metastore"
)

// readBack reads the restore's writes back while later ones go on, so the
// read-back at the end (verifyKeys, a second pass over the whole keyspace)
// is not needed when it proves the target exact. Why it is enough:
//
//   - etcd gives every transaction that changes its store (a put, a delete,
//     a lease expiry deleting a key) exactly one new revision, and the
//     answer to a write transaction carries it. Owner records the revision
//     of the claim (Rc) and of every transaction of ours that succeeded. If
//     they are exactly Rc, Rc+1, ..., Re, every change in (Rc, Re] is ours:
//     nobody else wrote, deleted or let a lease expire. A write of ours whose
//     answer was lost (a retried transaction) leaves a gap too, so it also
//     falls back to the full read-back.
//   - The writes are cut into windows: runs of KVs in strictly increasing
//     key order, at most windowKeys keys and windowBytes bytes, each a
//     whole number of batches. A window is read (its range [first key,
//     last key]) once every batch in it is acknowledged, at a revision at
//     least that of its last transaction, and must hold exactly its keys
//     with their values (length and xxhash64 of the snapshot's bytes as
//     read for the write) besides the marker and the owner. Window ranges
//     are pairwise disjoint (checked), and every key is in one window, so
//     no later write of ours touches a window once read: with no foreign
//     change up to Re, each window holds at Re what it held when read.
//   - So at Re the store holds every plan key with its value, the marker
//     and the owner (both there since Rc), and a count of the whole
//     keyspace at Re equal to the plan's keys plus those two says there is
//     nothing else.
//
// Any doubt (a gap, a read past Re, a mismatch, an error) proves nothing:
// the full read-back runs, and says what is wrong.
type readBack struct {
	ctx    context.Context
	cancel context.CancelFunc
	cli    *clientv3.Client
	own    *Owner
	plan   *Plan
	slots  chan struct{} // windows being filled or waiting, bounded: memory
	ready  chan *window
	wg     sync.WaitGroup
	done   bool

	mu     sync.Mutex
	spans  [][2]string // each window's first and last key
	keys   int         // plan keys read back
	maxRev int64       // the highest revision read at
	why    string      // the first reason this proves nothing
	half   bool
}

// readBack's windows: at most this many are held (want lists of up to
// windowKeys keys each), read by so many readers while the writes go on.
const (
	readBackWindows = 16
	readBackReaders = 2
)

// window is a run of written KVs read back as one range.
type window struct {
	want   []keySum // in strictly increasing key order
	bytes  int
	gate   *gate
	minRev int64 // the revision its read must be at, at least
	slot   bool  // holds one of readBack.slots
}

// fits says whether kv can join w: in key order, within the bounds.
func (w *window) fits(kv KV) bool {
	return len(w.want) < windowKeys && w.bytes < windowBytes && kv.Key > w.want[len(w.want)-1].key
}

// gate opens its windows for reading once every batch sent under it is
// acknowledged: one window's, or (a group streamed out of key order) every
// batch of the group for the windows cut from its index.
type gate struct {
	rb      *readBack
	pending atomic.Int64 // batches not acknowledged, plus one until closed
	rev     atomic.Int64 // the highest revision of its transactions
	wins    []*window
}

func newReadBack(ctx context.Context, cli *clientv3.Client, own *Owner, plan *Plan) *readBack {
	ctx, cancel := context.WithCancel(ctx)
	rb := &readBack{ctx: ctx, cancel: cancel, cli: cli, own: own, plan: plan,
		slots: make(chan struct{}, readBackWindows), ready: make(chan *window, readBackWindows)}
	for range readBackReaders {
		rb.wg.Add(1)
		go func() {
			defer rb.wg.Done()
			for w := range rb.ready {
				rb.read(w)
				if w.slot {
					<-rb.slots
				}
			}
		}()
	}
	return rb
}

func (rb *readBack) newGate() *gate {
	g := &gate{rb: rb}
	g.pending.Store(1)
	return g
}

// newWindow opens a window for KVs to come, waiting while too many are
// held.
func (rb *readBack) newWindow(ctx context.Context) (*window, error) {
	select {
	case rb.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w := &window{slot: true, gate: rb.newGate()}
	w.gate.wins = []*window{w}
	return w, nil
}

// indexWindows cuts a group's sorted index into windows under g.
func (rb *readBack) indexWindows(g *gate, index []keySum) {
	for len(index) > 0 {
		n, size := 0, 0
		for n < len(index) && n < windowKeys && size < windowBytes {
			size += len(index[n].key) + index[n].n
			n++
		}
		g.wins = append(g.wins, &window{want: index[:n:n], bytes: size, gate: g})
		index = index[n:]
	}
}

func (g *gate) ack(ctx context.Context, rev int64) {
	for cur := g.rev.Load(); rev > cur && !g.rev.CompareAndSwap(cur, rev); cur = g.rev.Load() {
	}
	g.close(ctx)
}

// close gives up the gate's own token: no more batches go under it.
func (g *gate) close(ctx context.Context) {
	if g.pending.Add(-1) != 0 {
		return
	}
	for _, w := range g.wins {
		w.minRev = g.rev.Load()
		select {
		case g.rb.ready <- w:
		case <-ctx.Done():
			return
		case <-g.rb.ctx.Done():
			return
		}
	}
}

// fail records why the read-back proves nothing (the first reason).
func (rb *readBack) fail(why string) {
	rb.mu.Lock()
	if rb.why == "" {
		rb.why = why
	}
	rb.mu.Unlock()
}

// read reads one window back and compares it with what was written.
func (rb *readBack) read(w *window) {
	rb.mu.Lock()
	failed := rb.why != ""
	rb.mu.Unlock()
	if failed || len(w.want) == 0 {
		return
	}
	r := metastore.NewReader(rb.cli, 0)
	first, last := w.want[0].key, w.want[len(w.want)-1].key
	i := 0
	err := r.RangeWindow(rb.ctx, first, last+"\x00", len(w.want)+16, func(k, v []byte) error {
		if string(k) == MarkerKey || string(k) == OwnerKey {
			return nil
		}
		if i == len(w.want) || w.want[i].key != string(k) {
			return fmt.Errorf("key %q is not the next one written", k)
		}
		if ks := w.want[i]; ks.n != len(v) || ks.sum != xxhash.Sum64(v) {
			return fmt.Errorf("key %q holds other bytes than written", k)
		}
		i++
		return nil
	})
	switch {
	case err != nil:
		rb.fail(err.Error())
		return
	case i != len(w.want):
		rb.fail(fmt.Sprintf("%d of %d keys of the window from %q read back", i, len(w.want), first))
		return
	case r.Revision() < w.minRev:
		rb.fail(fmt.Sprintf("read at revision %d, before the window's last write (%d)", r.Revision(), w.minRev))
		return
	}
	rb.mu.Lock()
	rb.spans = append(rb.spans, [2]string{first, last})
	rb.keys += len(w.want)
	rb.maxRev = max(rb.maxRev, r.Revision())
	hit := !rb.half && rb.keys >= rb.plan.Keys()/2
	rb.half = rb.half || hit
	rb.mu.Unlock()
	if hit {
		faultpoint.Hit("restore.during-readback")
	}
}

// stop ends the readers (idempotent).
func (rb *readBack) stop() {
	if rb.done {
		return
	}
	rb.done = true
	rb.cancel()
	close(rb.ready)
	rb.wg.Wait()
}

// prove waits for every window (the writes are all acknowledged) and says
// why the target is not proven exact, or "" when it is (see readBack).
func (rb *readBack) prove(ctx context.Context) string {
	if rb.done {
		return "stopped"
	}
	rb.done = true
	close(rb.ready)
	rb.wg.Wait()
	rb.cancel()
	if rb.why != "" {
		return rb.why
	}
	if rb.keys != rb.plan.Keys() {
		return fmt.Sprintf("%d of the plan's %d keys read back", rb.keys, rb.plan.Keys())
	}
	slices.SortFunc(rb.spans, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	for i := 1; i < len(rb.spans); i++ {
		if rb.spans[i][0] <= rb.spans[i-1][1] {
			return fmt.Sprintf("windows from %q and %q overlap", rb.spans[i-1][0], rb.spans[i][0])
		}
	}
	revs := rb.own.writes()
	if len(revs) == 0 {
		return "no revision of the claim"
	}
	for i := 1; i < len(revs); i++ {
		if revs[i] != revs[i-1]+1 {
			return fmt.Sprintf("revisions %d to %d are not this restore's writes", revs[i-1]+1, revs[i]-1)
		}
	}
	end := revs[len(revs)-1]
	if rb.maxRev > end {
		return fmt.Sprintf("read at revision %d, after this restore's last write (%d)", rb.maxRev, end)
	}
	n, err := metastore.NewReader(rb.cli, end).CountAll(ctx)
	if err != nil {
		return err.Error()
	}
	if want := rb.plan.Keys() + 2; n != want { // the marker and the owner
		return fmt.Sprintf("%d keys at revision %d, want %d", n, end, want)
	}
	return ""
}
