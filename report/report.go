// Package report shows a backup location at a glance: its snapshots on a
// time axis with the time-travel window each serves, size and SST count
// over time, whether the SSTs each snapshot pins are still there (and
// copied, where a data copy exists: package datacopy's indexes), which snapshots the retention rules
// would keep, and its problems (orphan objects, entries that do not
// verify, the snapshot cap). It renders one self-contained HTML page
// (WriteHTML) that needs no network: no scripts, fonts or images from
// anywhere, a Content-Security-Policy that forbids loading any.
package report

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rwsnap/rwsnap/datacopy"
	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

// Options say what else Build looks at.
type Options struct {
	// Policy is the retention rules whose verdict the page shows; zero: none.
	Policy metasnap.PrunePolicy
	// Hummock and DataDir locate the cluster's SSTs, to tell whether each
	// snapshot's pinned SSTs still exist; nil: not known.
	Hummock objstore.Store
	DataDir string
	// Data is the SST copy of the location (rwsnap meta backup-data); nil:
	// the default, <backup dir>/data in the backup location.
	Data *datacopy.Location
	// Cache keeps verification results between builds (schedule rebuilds
	// the page after every job; snapshot objects never change).
	Cache *Cache
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Report is what the page shows.
type Report struct {
	Location    string
	GeneratedAt time.Time
	ManifestID  uint64
	Snapshots   []Snapshot // oldest first
	Orphans     []Orphan
	Problems    []string
	Policy      string // the retention rules in words, "" if none
	Cap         int    // RisingWave refuses a new backup when more than this many exist
	// SSTsKnown says whether hummock storage was checked; DataCopy
	// whether any snapshot's SSTs are copied (datacopy indexes).
	SSTsKnown, DataCopy bool
	DataLocation        string
}

// Snapshot is one manifest entry as the page shows it.
type Snapshot struct {
	ID               uint64
	Time             time.Time // max committed epoch
	WindowFrom       time.Time // safe epoch; zero: from the cluster's start
	WindowTo         time.Time
	Bytes            int64
	SSTs             int
	FormatVersion    uint32
	RWVersion        string
	Remarks          string
	Verified         bool
	VerifyProblems   []string
	SSTsPresent      int    // of SSTs, in hummock storage (when SSTsKnown)
	DataState        string // datacopy.StateComplete, StatePartial or StateNone
	Keep             bool
	KeepReasons      []string
	RetentionApplies bool
}

// Protection is the data-protection state in words.
func (s Snapshot) Protection(r *Report) string {
	var parts []string
	if r.SSTsKnown {
		if s.SSTsPresent == s.SSTs {
			parts = append(parts, fmt.Sprintf("all %d pinned SSTs in hummock storage", s.SSTs))
		} else {
			parts = append(parts, fmt.Sprintf("%d of %d pinned SSTs MISSING from hummock storage", s.SSTs-s.SSTsPresent, s.SSTs))
		}
	}
	if r.DataCopy {
		switch s.DataState {
		case datacopy.StateComplete:
			parts = append(parts, "SSTs copied and verified (self-contained)")
		case datacopy.StatePartial:
			parts = append(parts, "SST copy PARTIAL")
		default:
			parts = append(parts, "no SST copy")
		}
	}
	if len(parts) == 0 {
		return "not known (give the hummock storage to check the pinned SSTs)"
	}
	return strings.Join(parts, "; ")
}

// Healthy says whether the snapshot verified and its SSTs are known present.
func (s Snapshot) Healthy(r *Report) bool {
	return s.Verified && (!r.SSTsKnown || s.SSTsPresent == s.SSTs)
}

// Orphan is a snapshot object no manifest entry names.
type Orphan struct {
	ID    uint64
	Key   string
	Bytes int64
}

// Cache remembers verification results by snapshot id and object size.
type Cache struct {
	mu sync.Mutex
	m  map[uint64]cached
}

type cached struct {
	size  int64
	check metasnap.SnapshotCheck
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{m: map[uint64]cached{}} }

// Build reads the location: manifest, snapshot objects (each verified
// once: checksum, decode, version against the entry), and, when given,
// hummock storage and the location's SST copy.
func Build(ctx context.Context, st *metasnap.Storage, opts Options) (*Report, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	m, _, err := st.ReadExistingManifest(ctx)
	if err != nil {
		return nil, err
	}
	objs, err := st.SnapshotObjects(ctx)
	if err != nil {
		return nil, err
	}
	r := &Report{Location: st.String(), GeneratedAt: now().UTC(), ManifestID: m.ManifestID, Cap: metasnap.MaxSnapshots,
		Snapshots: []Snapshot{}, Orphans: []Orphan{}, Problems: []string{}}

	// Verify what the cache does not know.
	checks := map[uint64]metasnap.SnapshotCheck{}
	var todo []uint64
	for _, e := range m.SnapshotMetadata {
		if c, ok := opts.Cache.get(e.ID, objs[e.ID].Size); ok {
			checks[e.ID] = c
		} else {
			todo = append(todo, e.ID)
		}
	}
	if len(todo) > 0 {
		rep, err := metasnap.Verify(ctx, st, metasnap.VerifyOptions{IDs: todo})
		if err != nil {
			return nil, err
		}
		for _, c := range rep.Snapshots {
			checks[c.ID] = c
			opts.Cache.put(c.ID, objs[c.ID].Size, c)
		}
	}

	present, err := sstSet(ctx, opts.Hummock, opts.DataDir)
	if err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("could not list hummock storage to check the pinned SSTs: %v", err))
	}
	r.SSTsKnown = present != nil
	data := opts.Data
	if data == nil {
		data = datacopy.NewLocation(st.Store, st.Dir+"/"+datacopy.DefaultSubdir)
	}
	r.DataLocation = data.String()
	states, err := data.States(ctx, m)
	if err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("could not read the SST copy's indexes at %s: %v", data, err))
	}
	for _, s := range states {
		if s != datacopy.StateNone {
			r.DataCopy = true
		}
	}

	var decisions map[uint64]metasnap.PruneDecision
	if opts.Policy != (metasnap.PrunePolicy{}) {
		r.Policy = policyText(opts.Policy)
		decisions = map[uint64]metasnap.PruneDecision{}
		for _, d := range metasnap.PlanPrune(m.SnapshotMetadata, opts.Policy) {
			decisions[d.ID] = d
		}
	}
	for _, e := range m.SnapshotMetadata {
		s := Snapshot{ID: e.ID, SSTs: len(uniq(e.SSTs)), FormatVersion: e.FormatVersion, Bytes: objs[e.ID].Size}
		s.Time = metasnap.SnapshotTime(e).UTC()
		s.WindowTo = s.Time
		from := e.SafeEpoch
		for _, info := range e.StateTableInfo { // v1.10: the window every table serves
			if info.SafeEpoch > from {
				from = info.SafeEpoch
			}
		}
		if from != 0 {
			s.WindowFrom = hummock.EpochTime(from).UTC()
		}
		if e.RWVersion != nil {
			s.RWVersion = *e.RWVersion
		}
		if e.Remarks != nil {
			s.Remarks = objstore.RedactText(*e.Remarks)
		}
		c := checks[e.ID]
		s.Verified, s.VerifyProblems = c.OK, c.Problems
		if c.Bytes > 0 {
			s.Bytes = int64(c.Bytes)
		}
		for _, id := range uniq(e.SSTs) {
			if present[id] {
				s.SSTsPresent++
			}
		}
		s.DataState = states[e.ID]
		if s.DataState == "" {
			s.DataState = datacopy.StateNone
		}
		if d, ok := decisions[e.ID]; ok {
			s.RetentionApplies, s.Keep, s.KeepReasons = true, d.Keep, d.Reasons
		}
		if !s.Verified {
			r.Problems = append(r.Problems, fmt.Sprintf("snapshot %d cannot be verified: %s", e.ID, objstore.RedactText(strings.Join(s.VerifyProblems, "; "))))
		}
		if r.DataCopy && s.DataState == datacopy.StatePartial {
			r.Problems = append(r.Problems, fmt.Sprintf("snapshot %d: its SST copy is partial (`rwsnap meta backup-data` completes it)", e.ID))
		}
		if r.SSTsKnown && s.SSTsPresent < s.SSTs {
			r.Problems = append(r.Problems, fmt.Sprintf("snapshot %d: %d of %d pinned SST objects are missing from hummock storage; restoring it would lose data", e.ID, s.SSTs-s.SSTsPresent, s.SSTs))
		}
		r.Snapshots = append(r.Snapshots, s)
	}
	slices.SortStableFunc(r.Snapshots, func(a, b Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return int(a.ID) - int(b.ID)
	})
	for id, o := range objs {
		if m.Find(id) == nil {
			r.Orphans = append(r.Orphans, Orphan{ID: id, Key: o.Key, Bytes: o.Size})
		}
	}
	slices.SortFunc(r.Orphans, func(a, b Orphan) int { return int(a.ID) - int(b.ID) })
	if len(r.Orphans) > 0 {
		var ids []uint64
		for _, o := range r.Orphans {
			ids = append(ids, o.ID)
		}
		r.Problems = append(r.Problems, fmt.Sprintf("%d orphan snapshot objects (%s) that no manifest entry names, left by interrupted backups or deletes; RisingWave never sees them; `rwsnap meta prune --orphans` removes them",
			len(r.Orphans), metasnap.FormatIDs(ids)))
	}
	switch n := len(m.SnapshotMetadata); {
	case n > metasnap.MaxSnapshots:
		r.Problems = append(r.Problems, fmt.Sprintf("%d snapshots: past RisingWave's cap, the meta node refuses new backups (more than %d exist); prune some", n, metasnap.MaxSnapshots))
	case n >= metasnap.WarnSnapshots:
		r.Problems = append(r.Problems, fmt.Sprintf("%d snapshots: near RisingWave's cap (a new backup is refused when more than %d exist); prune some", n, metasnap.MaxSnapshots))
	}
	if len(m.SnapshotMetadata) == 0 {
		r.Problems = append(r.Problems, "no snapshots: nothing to restore from")
	}
	return r, nil
}

func uniq(ids []uint64) []uint64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// sstSet lists the SST objects under dir; nil when store is nil.
func sstSet(ctx context.Context, store objstore.Store, dir string) (map[uint64]bool, error) {
	if store == nil {
		return nil, nil
	}
	objs, err := store.List(ctx, strings.Trim(dir, "/")+"/")
	if errors.Is(err, objstore.ErrNotFound) {
		return map[uint64]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", store, err)
	}
	out := make(map[uint64]bool, len(objs))
	for _, o := range objs {
		if id, ok := hummock.ParseSSTObjectID(o.Key); ok {
			out[id] = true
		}
	}
	return out, nil
}

func policyText(p metasnap.PrunePolicy) string {
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("--%s %d", what, n))
		}
	}
	add(p.KeepLast, "keep-last")
	if p.KeepWithin > 0 {
		parts = append(parts, "--keep-within "+p.KeepWithin.String())
	}
	add(p.KeepHourly, "keep-hourly")
	add(p.KeepDaily, "keep-daily")
	add(p.KeepWeekly, "keep-weekly")
	add(p.KeepMonthly, "keep-monthly")
	return strings.Join(parts, " ")
}

func (c *Cache) get(id uint64, size int64) (metasnap.SnapshotCheck, bool) {
	if c == nil {
		return metasnap.SnapshotCheck{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	return e.check, ok && e.size == size && size > 0
}

func (c *Cache) put(id uint64, size int64, check metasnap.SnapshotCheck) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[id] = cached{size: size, check: check}
}
