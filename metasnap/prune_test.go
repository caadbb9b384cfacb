package metasnap

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/objstore"
)

// timeline builds manifest entries at the given UTC times, ids 1..n.
func timeline(times ...string) []SnapshotMetadata {
	out := make([]SnapshotMetadata, len(times))
	for i, s := range times {
		t, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			panic(err)
		}
		out[i] = SnapshotMetadata{ID: uint64(i + 1), MaxCommittedEpoch: hummock.TimeEpoch(t)}
	}
	return out
}

func kept(ds []PruneDecision) string {
	var ids []uint64
	for _, d := range ds {
		if d.Keep {
			ids = append(ids, d.ID)
		}
	}
	return fmt.Sprint(ids)
}

func TestPlanPrune(t *testing.T) {
	// Ids 1..9, oldest first (2026-11-02 is a Monday; ISO week 45).
	tl := timeline(
		"2026-10-20 09:00", // 1  week 43, October
		"2026-10-31 23:00", // 2  week 44, October
		"2026-11-02 08:00", // 3  week 45
		"2026-11-08 22:00", // 4  week 45 (Sunday)
		"2026-11-09 10:00", // 5  week 46
		"2026-11-09 10:30", // 6  week 46, same hour as 5
		"2026-11-09 11:00", // 7
		"2026-11-10 06:00", // 8
		"2026-11-10 06:20", // 9  newest
	)
	tests := []struct {
		name string
		p    PrunePolicy
		want string // kept ids, newest first, worked out by hand
	}{
		{"keep last 3", PrunePolicy{KeepLast: 3}, "[9 8 7]"},
		{"keep last more than there are", PrunePolicy{KeepLast: 20}, "[9 8 7 6 5 4 3 2 1]"},
		{"within 24h of the newest", PrunePolicy{KeepWithin: 24 * time.Hour}, "[9 8 7 6 5]"},
		{"within 20h20m: 2026-11-09 10:00 is exactly on the edge", PrunePolicy{KeepWithin: 20*time.Hour + 20*time.Minute}, "[9 8 7 6 5]"},
		{"hourly 3: newest of 06h (9), 11h (7), 10h (6)", PrunePolicy{KeepHourly: 3}, "[9 7 6]"},
		{"daily 2: 11-10 (9), 11-09 (7)", PrunePolicy{KeepDaily: 2}, "[9 7]"},
		{"weekly 3: W46 (9), W45 (4), W44 (2)", PrunePolicy{KeepWeekly: 3}, "[9 4 2]"},
		{"monthly 2: November (9), October (2)", PrunePolicy{KeepMonthly: 2}, "[9 2]"},
		{"rules combine", PrunePolicy{KeepLast: 1, KeepDaily: 2, KeepMonthly: 2}, "[9 7 2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Validate(); err != nil {
				t.Fatal(err)
			}
			ds := PlanPrune(tl, tt.p)
			if got := kept(ds); got != tt.want {
				t.Fatalf("kept %s, want %s", got, tt.want)
			}
			for _, d := range ds {
				if d.Keep != (len(d.Reasons) > 0) {
					t.Fatalf("snapshot %d: keep=%v reasons=%v", d.ID, d.Keep, d.Reasons)
				}
			}
		})
	}
	// The newest is kept whatever the policy, and says why.
	ds := PlanPrune(tl, PrunePolicy{KeepMonthly: 1})
	if ds[0].ID != 9 || ds[0].Reasons[0] != "newest" || len(PruneIDs(ds)) != 8 {
		t.Fatalf("%+v", ds[0])
	}
	if len(PlanPrune(nil, PrunePolicy{KeepLast: 1})) != 0 {
		t.Fatal("empty manifest")
	}
}

func TestPrunePolicyValidate(t *testing.T) {
	for _, p := range []PrunePolicy{{}, {KeepLast: -1}, {KeepDaily: -2, KeepLast: 3}, {KeepWithin: -time.Hour}} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := (PrunePolicy{}).Validate(); err != ErrKeepsNothing {
		t.Errorf("all zero: %v", err)
	}
}

func TestDeleteOrphans(t *testing.T) {
	ctx := context.Background()
	st := NewStorage(objstore.NewMemory(), "backup")
	if _, err := st.Create(ctx, encodedSnapshot(1), entry(1)); err != nil {
		t.Fatal(err)
	}
	st.Store.Put(ctx, "backup/7.snapshot", encodedSnapshot(7))
	st.Store.Put(ctx, "backup/notes.txt", []byte("not a snapshot"))
	// A fresh orphan may be a backup still running: kept.
	if ids, err := DeleteOrphans(ctx, st, time.Hour, false); err != nil || len(ids) != 0 {
		t.Fatalf("young orphan: %v %v", ids, err)
	}
	if ids, err := DeleteOrphans(ctx, st, 0, true); err != nil || fmt.Sprint(ids) != "[7]" {
		t.Fatalf("dry run: %v %v", ids, err)
	}
	if _, _, err := st.Store.Get(ctx, "backup/7.snapshot"); err != nil {
		t.Fatal("dry run deleted")
	}
	if ids, err := DeleteOrphans(ctx, st, 0, false); err != nil || fmt.Sprint(ids) != "[7]" {
		t.Fatalf("delete: %v %v", ids, err)
	}
	objs, _ := st.Store.List(ctx, "backup/")
	if len(objs) != 3 { // manifest, 1.snapshot, notes.txt
		t.Fatalf("left %v", objs)
	}
}
