package metastore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/internal/progress"
)

// memSource is an in-memory Source whose Range hands out one reused buffer,
// as the snapshot source does, so a feed that kept it would see it change.
type memSource struct {
	lists  map[string][][]byte
	failAt map[string]int // prefix -> fail after this many values
}

var errMemFail = errors.New("mem source failed")

func (s *memSource) Revision() int64 { return 1 }
func (s *memSource) Path() string    { return "mem" }
func (s *memSource) Close() error    { return nil }
func (s *memSource) Get(context.Context, string) ([]byte, bool, error) {
	return nil, false, nil
}
func (s *memSource) Count(_ context.Context, prefix string) (int, error) {
	return len(s.lists[prefix]), nil
}

func (s *memSource) Range(ctx context.Context, prefix string, _ *progress.Bar, fn func(k, v []byte) error) error {
	var buf []byte
	for i, v := range s.lists[prefix] {
		if n, ok := s.failAt[prefix]; ok && i == n {
			return errMemFail
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		buf = append(buf[:0], v...)
		if err := fn([]byte(prefix), buf); err != nil {
			return err
		}
	}
	return nil
}

func memLists(n, vals, size int) (*memSource, []string, []int) {
	src := &memSource{lists: map[string][][]byte{}, failAt: map[string]int{}}
	var prefixes []string
	var counts []int
	for i := range n {
		p := fmt.Sprintf("cf/l%02d/", i)
		for j := range vals {
			v := []byte(fmt.Sprintf("%s%06d-", p, j))
			v = append(v, strings.Repeat("x", max(0, size-len(v)))...)
			src.lists[p] = append(src.lists[p], v)
		}
		prefixes = append(prefixes, p)
		counts = append(counts, vals)
	}
	return src, prefixes, counts
}

func TestFeedDeliversEachListInOrder(t *testing.T) {
	for _, tc := range []struct {
		name        string
		lists, vals int
		size        int
		budget      int64
		empty       []int // lists counted empty: not read
	}{
		{"small lists", 14, 7, 40, FeedBudget, nil},
		{"empty lists skipped", 6, 50, 40, FeedBudget, []int{0, 2, 5}},
		{"values larger than the budget", 5, 20, 64 << 10, 100 << 10, nil},
		{"many batches per list, tight budget", 6, 3000, 1 << 10, 2 << 20, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, prefixes, counts := memLists(tc.lists, tc.vals, tc.size)
			for _, i := range tc.empty {
				counts[i] = 0
				src.failAt[prefixes[i]] = 0 // reading it would fail
			}
			f := newFeed(context.Background(), src, prefixes, counts, nil, tc.budget)
			defer f.Close()
			for i, p := range prefixes {
				var got int
				err := f.Each(i, func(v []byte) error {
					if want := src.lists[p][got]; string(v) != string(want) {
						return fmt.Errorf("list %d value %d = %.20q, want %.20q", i, got, v, want)
					}
					got++
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if got != counts[i] {
					t.Fatalf("list %d: %d values, want %d", i, got, counts[i])
				}
			}
			f.mu.Lock()
			peak := f.peak
			f.mu.Unlock()
			// One batch may exceed the budget only when nothing else is held.
			if limit := max(tc.budget, int64(feedBatchBytes+tc.size)); peak > limit {
				t.Fatalf("read ahead %d bytes, budget %d", peak, tc.budget)
			}
		})
	}
}

func TestFeedErrors(t *testing.T) {
	src, prefixes, counts := memLists(4, 100, 40)
	src.failAt[prefixes[2]] = 30
	f := newFeed(context.Background(), src, prefixes, counts, nil, FeedBudget)
	defer f.Close()
	for i := range 2 {
		if err := f.Each(i, func([]byte) error { return nil }); err != nil {
			t.Fatalf("list %d: %v", i, err)
		}
	}
	if err := f.Each(2, func([]byte) error { return nil }); !errors.Is(err, errMemFail) {
		t.Fatalf("list 2: err = %v, want the source's error", err)
	}

	// The consumer's own error comes back as is.
	stop := errors.New("writer failed")
	g := newFeed(context.Background(), src, prefixes, counts, nil, FeedBudget)
	if err := g.Each(0, func([]byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("err = %v, want the consumer's", err)
	}
	// Closing with lists unread stops their reads and returns.
	g.Close()
}

func TestFeedCloseUnread(t *testing.T) {
	// Lists far larger than the budget, none consumed: Close must not hang
	// on readers blocked on the budget or on a full list.
	src, prefixes, counts := memLists(8, 5000, 1<<10)
	f := newFeed(context.Background(), src, prefixes, counts, nil, 1<<20)
	f.Close()
	for i, l := range f.lists {
		if _, open := <-l.batches; open {
			t.Fatalf("list %d still delivers after Close", i)
		}
	}
}
