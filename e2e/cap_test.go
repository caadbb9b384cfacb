package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/rwsim"
)

// TestConcurrentBackupsAtTheCap: six backup-meta processes at once into a
// location already holding 99 snapshots, on MinIO and on fs://. RisingWave
// refuses a backup when more than 100 snapshots exist (backup_manager.rs),
// so exactly two get in (ending at 101), the other four exit 1 naming the
// cap, and no refused backup leaves an object behind.
func TestConcurrentBackupsAtTheCap(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 43})
	for _, loc := range []backupLoc{f.minioLoc(), fsLoc(t)} {
		t.Run(loc.name, func(t *testing.T) {
			ctx := context.Background()
			seed := &metasnap.Manifest{ManifestID: 7}
			for id := uint64(1); id <= 99; id++ {
				seed.SnapshotMetadata = append(seed.SnapshotMetadata, metasnap.SnapshotMetadata{ID: id, HummockVersionID: id, FormatVersion: 1})
			}
			b, err := metasnap.EncodeManifest(seed)
			if err != nil {
				t.Fatal(err)
			}
			if err := loc.st.Store.Put(ctx, loc.st.ManifestKey(), b); err != nil {
				t.Fatal(err)
			}
			results := make([]result, 6)
			var wg sync.WaitGroup
			for i := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = run(t, nil, f.cmd(loc, "meta", "backup-meta", "-q", "--mode", "direct")...)
				}()
			}
			wg.Wait()
			ok, refused := 0, 0
			for _, r := range results {
				switch {
				case r.code == 0:
					ok++
				case r.code == 1 && strings.Contains(r.stderr, "too many existent meta snapshots") && strings.Contains(r.stderr, "more than 100"):
					refused++
				default:
					t.Errorf("unexpected result: %s", r)
				}
			}
			m := manifestNow(t, loc)
			if len(m.SnapshotMetadata) != metasnap.MaxSnapshots+1 || ok != 2 || refused != 4 {
				t.Fatalf("after six concurrent backups at 99: %d snapshots, %d succeeded, %d refused; want 101, 2, 4", len(m.SnapshotMetadata), ok, refused)
			}
			_, orphans, err := loc.st.Orphans(ctx)
			if err != nil || len(orphans) != 0 {
				t.Fatalf("refused backups left objects %v (%v)", orphans, err)
			}
		})
	}
}
