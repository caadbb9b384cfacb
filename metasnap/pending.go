package metasnap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rwsnap/rwsnap/objstore"
)

// Pending markers make a backup in flight visible to every cleaner, in the
// spirit of restic's locks: a backup writes one under <dir>/pending/ before
// its first upload and removes it after its manifest commit; orphan cleanup
// and data GC never delete what a fresh marker names. A running backup
// rewrites its marker every PendingRefresh; a marker not rewritten for
// PendingStale belongs to a process that died (restic uses the same 30
// minutes) and protects nothing.
const (
	PendingRefresh = time.Minute
	PendingStale   = 30 * time.Minute
)

// PendingMarker is the body of a pending marker.
type PendingMarker struct {
	// Kind is "snapshot" (the <id>.snapshot objects of IDs) or "data" (the
	// SST objects Objects in a data copy, for snapshots IDs).
	Kind    string    `json:"kind"`
	IDs     []uint64  `json:"snapshot_ids"`
	Objects []uint64  `json:"objects,omitempty"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Key and ModTime are filled by ListPending.
	Key     string    `json:"-"`
	ModTime time.Time `json:"-"`
}

// Fresh says whether the marker still protects what it names.
func (p PendingMarker) Fresh(now time.Time) bool { return now.Sub(p.ModTime) < PendingStale }

// ErrPendingLost means a backup's pending marker may have gone stale for
// the cleaners while the backup ran (its process paused, or the marker's
// rewrites failed for too long): a cleaner may have removed what it
// protected, so nothing may be committed on its strength.
var ErrPendingLost = errors.New("the backup's pending marker was not kept fresh")

// Pending is a marker this process holds; Release removes it.
type Pending struct {
	store objstore.Store
	key   string
	body  []byte
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup

	// now is the clock (tests replace it). lastOK is when the marker was
	// last written; maxGap the longest time between two writes so far: a
	// gap the cleaners saw as stale is not undone by a later rewrite.
	now    func() time.Time
	mu     sync.Mutex
	lastOK time.Time
	maxGap time.Duration
}

func pendingPrefix(dir string) string {
	if dir = strings.Trim(dir, "/"); dir == "" {
		return "pending/"
	}
	return dir + "/pending/"
}

// WritePending writes a marker under <dir>/pending/ and keeps it fresh
// until Release. Nothing may be uploaded before it returns.
func WritePending(ctx context.Context, store objstore.Store, dir string, m PendingMarker) (*Pending, error) {
	var tok [8]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	m.Host, _ = os.Hostname()
	m.PID = os.Getpid()
	m.Started = time.Now().UTC()
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	p := &Pending{store: store, key: pendingPrefix(dir) + m.Kind + "-" + hex.EncodeToString(tok[:]) + ".json", body: body, stop: make(chan struct{}), now: time.Now}
	if err := store.Put(ctx, p.key, body); err != nil {
		return nil, fmt.Errorf("write pending marker %s in %s (it tells cleaners a backup is in flight; nothing was uploaded): %w", p.key, store, err)
	}
	p.lastOK = p.now()
	p.wg.Add(1)
	go p.refresh(context.WithoutCancel(ctx))
	return p, nil
}

func (p *Pending) refresh(ctx context.Context) {
	defer p.wg.Done()
	t := time.NewTicker(PendingRefresh)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			// A failed refresh is retried on the next tick; the marker
			// stays fresh for PendingStale, and Held tells the backup
			// before it commits if it did not.
			p.refreshOnce(ctx)
		}
	}
}

func (p *Pending) refreshOnce(ctx context.Context) {
	if err := p.store.Put(ctx, p.key, p.body); err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	if g := gap(p.lastOK, t); g > p.maxGap {
		p.maxGap = g
	}
	p.lastOK = t
}

// gap is the time from a to b by the wall clock and by the monotonic one,
// whichever is longer: a suspended machine's monotonic clock may stand
// still while the cleaners' clocks (and the marker's age) move on.
func gap(a, b time.Time) time.Duration {
	return max(b.Sub(a), b.Round(0).Sub(a.Round(0)))
}

// Held says whether the marker has protected what it names without a
// break since it was written: no gap between two of its writes, nor since
// the last one, reached half of PendingStale (half, for the clocks of the
// cleaners and of the store, which date the marker, to differ). A backup
// calls it right before it commits (a manifest entry, an index that says
// complete); after ErrPendingLost it must commit nothing, since a cleaner
// may have removed what it uploaded, and a rerun copies it again.
func (p *Pending) Held() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	g := max(p.maxGap, gap(p.lastOK, p.now()))
	if g >= PendingStale/2 {
		return fmt.Errorf("%w: %s went %s without being rewritten (the process was paused or %s failed to answer), and cleaners take a marker %s old for a dead backup's; nothing was committed, run the backup again", ErrPendingLost, p.key, g.Round(time.Second), p.store, PendingStale)
	}
	return nil
}

// Release stops refreshing and removes the marker. Call it only once what
// the marker protects is safe without it (after the manifest commit).
func (p *Pending) Release(ctx context.Context) error {
	if p == nil {
		return nil
	}
	var err error
	p.once.Do(func() {
		close(p.stop)
		p.wg.Wait()
		err = p.store.Delete(context.WithoutCancel(ctx), p.key)
	})
	return err
}

// Key is the marker's object key.
func (p *Pending) Key() string { return p.key }

// ListPending returns every pending marker under <dir>/pending/, fresh or
// stale. A marker that cannot be parsed is returned with no ids and an
// error: a cleaner must then stop rather than guess.
func ListPending(ctx context.Context, store objstore.Store, dir string) ([]PendingMarker, error) {
	objs, err := store.List(ctx, pendingPrefix(dir))
	if err != nil {
		return nil, fmt.Errorf("list pending markers in %s: %w", store, err)
	}
	out := make([]PendingMarker, 0, len(objs))
	for _, o := range objs {
		b, _, err := store.Get(ctx, o.Key)
		if err != nil {
			if errors.Is(err, objstore.ErrNotFound) { // released meanwhile
				continue
			}
			return nil, fmt.Errorf("read pending marker %s: %w", o.Key, err)
		}
		var m PendingMarker
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("pending marker %s in %s is not readable (%v): remove it by hand only if no backup is running", o.Key, store, err)
		}
		m.Key, m.ModTime = o.Key, o.ModTime
		out = append(out, m)
	}
	return out, nil
}

// PendingSnapshots is the set of snapshot ids fresh markers of kind name.
func PendingSnapshots(markers []PendingMarker, kind string, now time.Time) map[uint64]bool {
	out := map[uint64]bool{}
	for _, m := range markers {
		if m.Kind == kind && m.Fresh(now) {
			for _, id := range m.IDs {
				out[id] = true
			}
		}
	}
	return out
}

// Kinds of pending markers.
const (
	PendingKindSnapshot = "snapshot"
	PendingKindData     = "data"
)
