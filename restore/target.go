package restore

import (
	"context"
	"errors"
	"sync"

	"github.com/cespare/xxhash/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/metastore"
)

// The checks of the target (CheckTarget) and the read-back (VerifyTarget)
// compare what etcd holds with the plan, key by key, at one revision. The
// keyspace is cut into windows by the plan's own keys, walked in etcd key
// order: window i is [its first key, the next window's first key), the
// first one from the start of the keyspace, the last one to its end, so
// every key etcd holds falls in exactly one, expected or not. A window
// holds at most windowKeys keys and windowBytes bytes of the plan, so each
// read of one is bounded by what the plan says is there (RangeWindow pages
// any surplus): one range over the whole keyspace let etcd's stream grow
// its chunks over a million small catalog rows and then send the large
// table-fragment values in one chunk of hundreds of MiB (restore's peak
// RSS grew with the store). Windows are read windowReaders at a time, at
// the revision of the first read, and compared in key order.
const (
	windowKeys    = 8192
	windowBytes   = 2 << 20
	windowReaders = 4
)

// scanWindow is a key range of the target and the plan's keys in it.
type scanWindow struct {
	lo, end string // end "\x00": to the end of the keyspace
	want    []keySum
	got     []kvPair
	err     error
	done    chan struct{}
}

type kvPair struct{ k, v []byte }

// scanTarget reads the whole target etcd at one revision and calls visit
// for every key it holds, in key order, with how it matches the plan
// (matchEqual, matchDiffers or matchAbsent). It returns the number of keys
// etcd holds at that revision; when that is 0 the plan is not walked.
func scanTarget(ctx context.Context, cli *clientv3.Client, plan *Plan, visit func(k, v []byte, match int) error) (int, error) {
	r := metastore.NewReader(cli, 0)
	total, err := r.CountAll(ctx)
	if err != nil || total == 0 {
		return total, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	order := make(chan *scanWindow, windowReaders)
	jobs := make(chan *scanWindow, windowReaders)
	var walkErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(order)
		defer close(jobs)
		emit := func(w *scanWindow) bool {
			w.done = make(chan struct{})
			select {
			case order <- w:
			case <-ctx.Done():
				return false
			}
			jobs <- w // never blocks for long: a reader frees a slot for every window in order
			return true
		}
		w := &scanWindow{lo: "\x00"}
		size := 0
		walkErr = plan.sorted(func(ks keySum) bool {
			if len(w.want) >= windowKeys || size >= windowBytes {
				w.end = ks.key
				if !emit(w) {
					return false
				}
				w, size = &scanWindow{lo: ks.key}, 0
			}
			w.want = append(w.want, ks)
			size += len(ks.key) + ks.n
			return true
		})
		if walkErr == nil {
			w.end = "\x00"
			emit(w)
		}
	}()
	for range windowReaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range jobs {
				// A page of the window's keys and a few more (the marker,
				// the owner, keys not the plan's: paged on).
				w.err = r.RangeWindow(ctx, w.lo, w.end, len(w.want)+16, func(k, v []byte) error {
					w.got = append(w.got, kvPair{k, v})
					return nil
				})
				close(w.done)
			}
		}()
	}
	err = func() error {
		for w := range order {
			select {
			case <-w.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if w.err != nil {
				return w.err
			}
			i := 0
			for _, kv := range w.got {
				for i < len(w.want) && w.want[i].key < string(kv.k) {
					i++
				}
				m := matchAbsent
				if i < len(w.want) && w.want[i].key == string(kv.k) {
					m = matchEqual
					if w.want[i].n != len(kv.v) || w.want[i].sum != xxhash.Sum64(kv.v) {
						m = matchDiffers
					}
				}
				if err := visit(kv.k, kv.v, m); err != nil {
					return err
				}
			}
			w.got, w.want = nil, nil
		}
		return nil
	}()
	cancel()
	for range order { // let the walk end
	}
	wg.Wait()
	if err == nil || errors.Is(err, context.Canceled) && walkErr != nil {
		err = walkErr
	}
	return total, err
}
