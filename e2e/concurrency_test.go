package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rwsnap/rwsnap/rwsim"
)

// backupIDOf parses risectl's success line "backup job succeeded: job N, ...".
func backupIDOf(t *testing.T, r result) uint64 {
	t.Helper()
	rest, ok := strings.CutPrefix(r.stdout, "backup job succeeded: job ")
	if !ok {
		t.Fatalf("no success line: %s", r)
	}
	id, err := strconv.ParseUint(strings.TrimSuffix(strings.Fields(rest)[0], ","), 10, 64)
	if err != nil {
		t.Fatalf("success line: %v: %s", err, r)
	}
	return id
}

// TestConcurrentBackupsLoseNothingFS: 8 backup-meta processes at once
// against one fs:// location; the manifest compare-and-swap works across
// processes there too (directory flock + rename): all succeed with distinct
// ids and every one is in the final manifest.
func TestConcurrentBackupsLoseNothingFS(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 41})
	loc := fsLoc(t)
	results := make([]result, 8)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = run(t, nil, f.cmd(loc, "meta", "backup-meta", "-q")...)
		}()
	}
	wg.Wait()
	ids := map[uint64]bool{}
	for _, r := range results {
		if r.code != 0 {
			t.Fatalf("a concurrent backup failed: %s", r)
		}
		ids[backupIDOf(t, r)] = true
	}
	m := manifestNow(t, loc)
	if len(ids) != 8 || len(m.SnapshotMetadata) != 8 || m.ManifestID != 8 {
		t.Fatalf("ids %v, manifest has %v, manifest_id %d", ids, m.IDs(), m.ManifestID)
	}
	for id := range ids {
		if m.Find(id) == nil {
			t.Errorf("snapshot %d reported stored but not in the manifest", id)
		}
	}
	if rep := verifyAll(t, f, loc); len(rep.Orphans) != 0 {
		t.Fatalf("orphans %v", rep.Orphans)
	}
}

// TestDeleteConcurrentWithBackups runs 6 backup-meta and 3
// delete-meta-snapshots processes at once (each delete removes 2 of 6
// older snapshots), on MinIO and on fs://: every new snapshot is listed,
// every deleted one is gone (entry and object), the untouched ones stay.
func TestDeleteConcurrentWithBackups(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 42})
	for _, loc := range []backupLoc{f.minioLoc(), fsLoc(t)} {
		t.Run(loc.name, func(t *testing.T) {
			backup := f.cmd(loc, "meta", "backup-meta", "-q")
			for range 8 {
				mustRun(t, nil, backup...)
			}
			old := manifestNow(t, loc).IDs()
			doomed, kept := old[:6], old[6:]
			var wg sync.WaitGroup
			backups := make([]result, 6)
			deletes := make([]result, 3)
			for i := range backups {
				wg.Add(1)
				go func() {
					defer wg.Done()
					backups[i] = run(t, nil, backup...)
				}()
			}
			for i := range deletes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					deletes[i] = run(t, nil, f.cmd(loc, "meta", "delete-meta-snapshots", fmt.Sprint(doomed[2*i]), fmt.Sprint(doomed[2*i+1]))...)
				}()
			}
			wg.Wait()
			var fresh []uint64
			for _, r := range backups {
				if r.code != 0 {
					t.Fatalf("a backup concurrent with deletes failed: %s", r)
				}
				fresh = append(fresh, backupIDOf(t, r))
			}
			for _, r := range deletes {
				if r.code != 0 {
					t.Fatalf("a delete concurrent with backups failed: %s", r)
				}
			}
			m := manifestNow(t, loc)
			want := append(slices.Clone(kept), fresh...)
			slices.Sort(want)
			got := slices.Sorted(slices.Values(m.IDs()))
			if !slices.Equal(got, want) {
				t.Fatalf("manifest lists %v, want kept %v + new %v (deleted %v)", got, kept, fresh, doomed)
			}
			objs, err := loc.st.SnapshotObjects(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range doomed {
				if _, ok := objs[id]; ok {
					t.Errorf("deleted snapshot %d still has its object", id)
				}
			}
			if rep := verifyAll(t, f, loc); len(rep.Orphans) != 0 {
				t.Fatalf("orphans %v", rep.Orphans)
			}
			t.Logf("%s: manifest_id %d after 8 + 6 backups and 3 deletes", loc.name, m.ManifestID)
		})
	}
}
