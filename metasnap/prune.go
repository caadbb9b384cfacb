package metasnap

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/rwsnap/rwsnap/hummock"
)

// PrunePolicy says which snapshots to keep, restic-style; a snapshot kept by
// any rule is kept, and the newest is always kept.
type PrunePolicy struct {
	KeepLast    int           // the newest N
	KeepWithin  time.Duration // every snapshot within D of the newest one
	KeepHourly  int           // the newest snapshot of each of the last N hours that have one
	KeepDaily   int
	KeepWeekly  int // ISO weeks
	KeepMonthly int
}

// ErrKeepsNothing means a policy with every rule zero, which would delete
// all snapshots but the newest: refused, as it is almost never meant.
var ErrKeepsNothing = errors.New("every keep rule is zero: that would delete every snapshot but the newest; give at least one --keep-* rule")

// Validate refuses negative counts and an all-zero policy.
func (p PrunePolicy) Validate() error {
	for name, v := range map[string]int{"--keep-last": p.KeepLast, "--keep-hourly": p.KeepHourly, "--keep-daily": p.KeepDaily,
		"--keep-weekly": p.KeepWeekly, "--keep-monthly": p.KeepMonthly} {
		if v < 0 {
			return fmt.Errorf("%s %d: counts cannot be negative", name, v)
		}
	}
	if p.KeepWithin < 0 {
		return fmt.Errorf("--keep-within %s: cannot be negative", p.KeepWithin)
	}
	if p == (PrunePolicy{}) {
		return ErrKeepsNothing
	}
	return nil
}

// PruneDecision is the verdict on one snapshot, with the rules that keep it.
type PruneDecision struct {
	ID      uint64    `json:"id"`
	Time    time.Time `json:"time"`
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons,omitempty"`
}

// SnapshotTime is when a snapshot's data is from: its max committed epoch.
func SnapshotTime(e SnapshotMetadata) time.Time {
	epoch := e.MaxCommittedEpoch
	for _, info := range e.StateTableInfo { // v1.10+ entries without the global epoch
		epoch = max(epoch, info.CommittedEpoch)
	}
	return hummock.EpochTime(epoch)
}

// PlanPrune applies the policy to the manifest's snapshots, newest first.
func PlanPrune(entries []SnapshotMetadata, p PrunePolicy) []PruneDecision {
	ds := make([]PruneDecision, len(entries))
	for i, e := range entries {
		ds[i] = PruneDecision{ID: e.ID, Time: SnapshotTime(e)}
	}
	// Newest first; ids break ties (they grow with time).
	sort.SliceStable(ds, func(i, j int) bool {
		if !ds[i].Time.Equal(ds[j].Time) {
			return ds[i].Time.After(ds[j].Time)
		}
		return ds[i].ID > ds[j].ID
	})
	if len(ds) == 0 {
		return ds
	}
	keep := func(i int, why string) {
		ds[i].Keep = true
		ds[i].Reasons = append(ds[i].Reasons, why)
	}
	keep(0, "newest")
	for i := 0; i < len(ds) && i < p.KeepLast; i++ {
		keep(i, fmt.Sprintf("last %d", p.KeepLast))
	}
	if p.KeepWithin > 0 {
		cutoff := ds[0].Time.Add(-p.KeepWithin)
		for i := range ds {
			if !ds[i].Time.Before(cutoff) {
				keep(i, "within "+p.KeepWithin.String())
			}
		}
	}
	buckets := []struct {
		n    int
		name string
		key  func(time.Time) string
	}{
		{p.KeepHourly, "hourly", func(t time.Time) string { return t.Format("2006-01-02 15h") }},
		{p.KeepDaily, "daily", func(t time.Time) string { return t.Format("2006-01-02") }},
		{p.KeepWeekly, "weekly", func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{p.KeepMonthly, "monthly", func(t time.Time) string { return t.Format("2006-01") }},
	}
	for _, b := range buckets {
		seen := map[string]bool{}
		for i := range ds {
			if len(seen) >= b.n {
				break
			}
			k := b.key(ds[i].Time)
			if !seen[k] { // newest snapshot of its bucket
				seen[k] = true
				keep(i, b.name+" "+k)
			}
		}
	}
	return ds
}

// PruneIDs are the snapshots a plan deletes.
func PruneIDs(ds []PruneDecision) []uint64 {
	var ids []uint64
	for _, d := range ds {
		if !d.Keep {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

// DefaultOrphanMinAge is a second guard beside the pending markers: an
// orphan younger than this is kept even without a marker (a backup by an
// older rwsnap, or by RisingWave itself, writes none), long enough for the
// slowest upload of a large snapshot.
const DefaultOrphanMinAge = 24 * time.Hour

// DeleteOrphans removes snapshot objects no manifest entry names that are
// older than minAge, and returns their ids. RisingWave never removes these
// itself ("TODO #6482: purge stale snapshots").
func DeleteOrphans(ctx context.Context, st *Storage, minAge time.Duration, dryRun bool) ([]uint64, error) {
	_, orphans, err := st.Orphans(ctx)
	if err != nil {
		return nil, err
	}
	// Read after the listing: a backup whose object was listed wrote its
	// marker before uploading, so the marker is seen here.
	markers, err := ListPending(ctx, st.Store, st.Dir)
	if err != nil {
		return nil, err
	}
	inFlight := PendingSnapshots(markers, PendingKindSnapshot, time.Now())
	var ids []uint64
	for id, o := range orphans {
		if inFlight[id] {
			continue
		}
		if time.Since(o.ModTime) >= minAge {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if dryRun || len(ids) == 0 {
		return ids, nil
	}
	// Re-read the manifest: an entry that appeared since must keep its object.
	m, _, err := st.ReadExistingManifest(ctx)
	if err != nil {
		return nil, err
	}
	var del []string
	var done []uint64
	for _, id := range ids {
		if m.Find(id) == nil {
			del = append(del, st.SnapshotKey(id))
			done = append(done, id)
		}
	}
	if err := st.Store.Delete(ctx, del...); err != nil {
		return nil, fmt.Errorf("delete orphan snapshot objects: %w", err)
	}
	return done, nil
}
