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
// consumer can never wait on memory held by lists behind it). From etcd
// the budget counts whole responses, not the values taken from them: a
// value is a slice of its response, which stays in memory until its last
// value is consumed, and etcd sends responses of up to twice its
// --max-request-bytes (RangeStream chunks, etcd 3.7 server/etcdserver/
// v3_server.go adjustChunkLimit), 20 MiB at a 10 MiB limit. Counting values
// let four lists hold 39 MiB of such responses for 16 MiB of values.
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
	// largest is the cost of the largest response from etcd so far, in any
	// list: what the next one may bring.
	largest int64
}

type feedList struct {
	batches chan feedBatch
	err     error // set before batches is closed
	// reserved is the part of the budget set aside for the response the
	// list is receiving (under Feed.mu).
	reserved int64
}

type feedBatch struct {
	vals  [][]byte
	bytes int64 // of the values
	size  int64 // of keys and values, for progress
	// charged says the bytes count against the shared budget.
	charged bool
	// release is the cost of responses whose values all came before the
	// end of this batch: charged when received, freed once it is consumed.
	release int64
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
	// etcd's responses are not reused, so their values may be kept.
	_, copies := src.(*rangeSource)
	copies = !copies
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

// read streams one list into its batches. From etcd, whose responses the
// values are slices of, the responses are what is charged (listPacer);
// from other sources, the copied values.
func (f *Feed) read(ctx context.Context, src Source, i int, prefix string, copies bool) error {
	l := f.lists[i]
	var b feedBatch
	send := func() error {
		if len(b.vals) == 0 {
			f.free(b.release)
			b.release = 0
			return nil
		}
		if copies {
			if err := f.charge(i, &b); err != nil {
				return err
			}
		}
		select {
		case l.batches <- b:
		case <-ctx.Done():
			return ctx.Err() // read releases b
		}
		b = feedBatch{}
		return nil
	}
	fn := func(k, v []byte) error {
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
	}
	var err error
	if rs, ok := src.(*rangeSource); ok {
		p := &listPacer{f: f, i: i, b: &b}
		r := NewReader(rs.cli, rs.rev)
		r.pace = p
		err = r.Range(ctx, prefix, fn)
		b.release += p.open // the last response's values are all in b
	} else {
		err = src.Range(ctx, prefix, nil, fn)
	}
	if err == nil {
		err = send()
	}
	if err != nil {
		f.release(b)
	}
	return err
}

// listPacer charges list i's responses from etcd to the feed's budget.
type listPacer struct {
	f    *Feed
	i    int
	b    *feedBatch // the batch being filled
	open int64      // the cost of the response whose values are being taken
}

// wait holds the next request back until the budget has room for a
// response as large as the largest so far (or nothing is held), unless
// the list is the one being consumed; that room is set aside until got.
// Before any response the whole budget is set aside, so lists that know
// nothing yet ask one at a time (a first page of 512 large values can be
// larger than the budget).
func (p *listPacer) wait(ctx context.Context) error {
	f, l := p.f, p.f.lists[p.i]
	var stop func() bool
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if err := f.ctx.Err(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.i <= f.head {
			return nil
		}
		res := f.largest
		if res == 0 {
			res = f.budget
		}
		if f.used == 0 || f.used+res <= f.budget {
			l.reserved = res
			f.hold(res)
			return nil
		}
		if stop == nil {
			// The stream's own context ends apart from the feed's.
			stop = context.AfterFunc(ctx, func() {
				f.mu.Lock()
				f.cond.Broadcast()
				f.mu.Unlock()
			})
			defer stop()
		}
		f.cond.Wait()
	}
}

// got charges a received response in place of what wait set aside.
func (p *listPacer) got(cost int64) {
	f, l := p.f, p.f.lists[p.i]
	f.mu.Lock()
	defer f.mu.Unlock()
	f.largest = max(f.largest, cost)
	f.hold(cost - l.reserved)
	l.reserved = 0
	if cost == 0 {
		f.cond.Broadcast()
	}
}

// begin moves the previous response's cost to the batch being filled:
// its values end before the batch does.
func (p *listPacer) begin(cost int64) {
	p.b.release += p.open
	p.open = cost
}

// hold adds n (which may be negative) to the bytes held; f.mu is held.
func (f *Feed) hold(n int64) {
	f.used += n
	f.peak = max(f.peak, f.used)
	if n < 0 {
		f.cond.Broadcast()
	}
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
			f.hold(b.bytes)
			b.charged = true
			return nil
		}
		f.cond.Wait()
	}
}

// release frees what a consumed (or dropped) batch held.
func (f *Feed) release(b feedBatch) {
	n := b.release
	if b.charged {
		n += b.bytes
	}
	f.free(n)
}

func (f *Feed) free(n int64) {
	if n == 0 {
		return
	}
	f.mu.Lock()
	f.hold(-n)
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
		for _, v := range b.vals {
			if err := yield(v); err != nil {
				f.release(b)
				return err
			}
		}
		f.release(b)
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
