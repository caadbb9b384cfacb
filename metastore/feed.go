package metastore

import (
	"context"
	"sync"

	"github.com/rwsnap/rwsnap/internal/progress"
)

// A Feed reads column families of one Source ahead of a consumer that takes
// them in order (a backup writes its lists one after the other). Without
// it every list's stream starts only when the previous one is written, so
// the etcd server sits idle during each list's start and its writes, and
// only one server core ever works. Memory stays bounded: every list holds
// at most feedDepth batches, and lists other than the one being consumed
// share a budget of FeedBudget bytes (the consumed one is exempt, so the
// consumer can never wait on memory held by lists behind it).
type Feed struct {
	ctx    context.Context
	cancel context.CancelFunc
	lists  []*feedList
	wg     sync.WaitGroup
	// bar counts what the consumer took, not what was read ahead.
	bar *progress.Bar

	mu     sync.Mutex
	cond   *sync.Cond
	budget int64
	used   int64 // bytes buffered by lists other than the head
	peak   int64 // the most used ever held (tests)
	head   int   // the list being consumed
}

type feedList struct {
	batches chan feedBatch
	err     error // set before batches is closed
}

type feedBatch struct {
	vals  [][]byte
	bytes int64 // of the values
	size  int64 // of keys and values, for progress
	// charged says the bytes count against the shared budget.
	charged bool
}

const (
	// FeedBudget bounds the bytes read ahead for lists not yet consumed.
	FeedBudget = 16 << 20
	// feedParallel bounds the lists streaming at once.
	feedParallel = 4
	// feedDepth bounds the batches a list holds; feedBatchBytes and
	// feedBatchVals close a batch.
	feedDepth      = 4
	feedBatchBytes = 1 << 20
	feedBatchVals  = 4096
)

// NewFeed starts reading the values under each prefix from src, in key
// order, counts[i] of them (a list counted empty is not read). Take them
// with Each(0), Each(1), ... in that order, then Close.
func NewFeed(ctx context.Context, src Source, prefixes []string, counts []int, bar *progress.Bar) *Feed {
	return newFeed(ctx, src, prefixes, counts, bar, FeedBudget)
}

func newFeed(ctx context.Context, src Source, prefixes []string, counts []int, bar *progress.Bar, budget int64) *Feed {
	ctx, cancel := context.WithCancel(ctx)
	f := &Feed{ctx: ctx, cancel: cancel, lists: make([]*feedList, len(prefixes)), budget: budget, bar: bar}
	f.cond = sync.NewCond(&f.mu)
	for i := range f.lists {
		f.lists[i] = &feedList{batches: make(chan feedBatch, feedDepth)}
	}
	// Wake budget waiters when the feed is cancelled.
	stop := context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	_, copies := src.(*rangeSource)
	copies = !copies // etcd's responses are not reused: their values may be kept
	f.wg.Add(1)
	go func() {
		// Lists start in order, so the slots are held by the lists the
		// consumer reaches first.
		defer f.wg.Done()
		sem := make(chan struct{}, feedParallel)
		var wg sync.WaitGroup
		for i, p := range prefixes {
			l := f.lists[i]
			if counts[i] == 0 {
				close(l.batches)
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				l.err = ctx.Err()
				close(l.batches)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				l.err = f.read(ctx, src, i, p, copies)
				close(l.batches)
			}()
		}
		wg.Wait()
		stop()
	}()
	return f
}

// read streams one list into its batches.
func (f *Feed) read(ctx context.Context, src Source, i int, prefix string, copies bool) error {
	l := f.lists[i]
	var b feedBatch
	send := func() error {
		if len(b.vals) == 0 {
			return nil
		}
		if err := f.charge(i, &b); err != nil {
			return err
		}
		select {
		case l.batches <- b:
		case <-ctx.Done():
			f.release(b)
			return ctx.Err()
		}
		b = feedBatch{}
		return nil
	}
	err := src.Range(ctx, prefix, nil, func(k, v []byte) error {
		if copies {
			v = append([]byte(nil), v...)
		}
		b.vals = append(b.vals, v)
		b.bytes += int64(len(v))
		b.size += int64(len(k) + len(v))
		if b.bytes >= feedBatchBytes || len(b.vals) >= feedBatchVals {
			return send()
		}
		return nil
	})
	if err == nil {
		err = send()
	}
	return err
}

// charge waits until list i may hold b: at once when it is the list being
// consumed, else when the shared budget has room (or nothing is held).
func (f *Feed) charge(i int, b *feedBatch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if err := f.ctx.Err(); err != nil {
			return err
		}
		if i <= f.head {
			return nil
		}
		if f.used == 0 || f.used+b.bytes <= f.budget {
			f.used += b.bytes
			f.peak = max(f.peak, f.used)
			b.charged = true
			return nil
		}
		f.cond.Wait()
	}
}

func (f *Feed) release(b feedBatch) {
	if !b.charged {
		return
	}
	f.mu.Lock()
	f.used -= b.bytes
	f.cond.Broadcast()
	f.mu.Unlock()
}

// Each calls yield for every value of list i, in key order; lists must be
// taken in order. A value is valid only during its call.
func (f *Feed) Each(i int, yield func(v []byte) error) error {
	f.mu.Lock()
	f.head = i
	f.cond.Broadcast()
	f.mu.Unlock()
	l := f.lists[i]
	for b := range l.batches {
		f.release(b)
		for _, v := range b.vals {
			if err := yield(v); err != nil {
				return err
			}
		}
		f.bar.Add(int64(len(b.vals)), b.size)
	}
	return l.err
}

// Close stops the reads still running and waits for them.
func (f *Feed) Close() {
	f.cancel()
	for _, l := range f.lists {
		for range l.batches {
		}
	}
	f.wg.Wait()
}
