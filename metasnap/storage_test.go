package metasnap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/rwsnap/rwsnap/objstore"
)

func entry(id uint64) SnapshotMetadata {
	return SnapshotMetadata{ID: id, HummockVersionID: id * 10, SSTs: []uint64{id}, MaxCommittedEpoch: id << 16, FormatVersion: 1}
}

func encodedSnapshot(id uint64) []byte {
	s := goldenSnapshot()
	s.ID = id
	return s.Encode()
}

func TestCreateListDelete(t *testing.T) {
	ctx := context.Background()
	st := NewStorage(objstore.NewMemory(), "backup")
	m, etag, err := st.ReadManifest(ctx)
	if err != nil || etag != "" || len(m.SnapshotMetadata) != 0 || m.ManifestID != 0 {
		t.Fatalf("missing manifest must read as empty: %+v %q %v", m, etag, err)
	}
	for id := uint64(1); id <= 3; id++ {
		if _, err := st.Create(ctx, encodedSnapshot(id), entry(id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Create(ctx, encodedSnapshot(2), entry(2)); err == nil {
		t.Fatal("duplicate id accepted")
	}
	m, _, _ = st.ReadManifest(ctx)
	if m.ManifestID != 3 || fmt.Sprint(m.IDs()) != "[1 2 3]" {
		t.Fatalf("manifest %d %v", m.ManifestID, m.IDs())
	}
	if _, _, err := st.Store.Get(ctx, "backup/2.snapshot"); err != nil {
		t.Fatalf("object name: %v", err)
	}
	// Unknown id: nothing changes.
	_, err = st.Delete(ctx, []uint64{2, 9})
	if !errors.Is(err, ErrSnapshotNotFound) || !strings.Contains(err.Error(), "9 not in the manifest") {
		t.Fatalf("err = %v", err)
	}
	if m2, _, _ := st.ReadManifest(ctx); m2.ManifestID != 3 || len(m2.SnapshotMetadata) != 3 {
		t.Fatal("a failed delete changed the manifest")
	}
	m, err = st.Delete(ctx, []uint64{2})
	if err != nil {
		t.Fatal(err)
	}
	if m.ManifestID != 4 || fmt.Sprint(m.IDs()) != "[1 3]" {
		t.Fatalf("after delete %d %v", m.ManifestID, m.IDs())
	}
	if _, _, err := st.Store.Get(ctx, "backup/2.snapshot"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("object left behind: %v", err)
	}
	snap, _, err := st.Load(ctx, 3)
	if err != nil || snap.ID != 3 {
		t.Fatalf("load: %v", err)
	}
}

func TestConcurrentCreatesLoseNothing(t *testing.T) {
	ctx := context.Background()
	st := NewStorage(objstore.NewMemory(), "backup")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for id := uint64(1); id <= 16; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.Create(ctx, encodedSnapshot(id), entry(id))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	m, _, _ := st.ReadManifest(ctx)
	if len(m.SnapshotMetadata) != 16 || m.ManifestID != 16 {
		t.Fatalf("%d entries, manifest_id %d", len(m.SnapshotMetadata), m.ManifestID)
	}
}

func TestVerifyFindsDamageAndOrphans(t *testing.T) {
	ctx := context.Background()
	st := NewStorage(objstore.NewMemory(), "backup")
	for id := uint64(1); id <= 3; id++ {
		if _, err := st.Create(ctx, encodedSnapshot(id), entry(id)); err != nil {
			t.Fatal(err)
		}
	}
	// Snapshot 2 corrupted, snapshot 3's object lost, an orphan 7.
	b, _, _ := st.Store.Get(ctx, "backup/2.snapshot")
	b[len(b)/2] ^= 1
	st.Store.Put(ctx, "backup/2.snapshot", b)
	st.Store.Delete(ctx, "backup/3.snapshot")
	st.Store.Put(ctx, "backup/7.snapshot", encodedSnapshot(7))
	rep, err := Verify(ctx, st, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Snapshots) != 3 || fmt.Sprint(rep.Orphans) != "[7]" {
		t.Fatalf("report %+v", rep)
	}
	got := map[uint64]string{}
	for _, s := range rep.Snapshots {
		got[s.ID] = strings.Join(s.Problems, ";")
	}
	// The golden snapshot's version (id 5, no SSTs) disagrees with entry(1).
	if !strings.Contains(got[1], "hummock version id 5, manifest says 10") {
		t.Errorf("1: %s", got[1])
	}
	if !strings.Contains(got[2], "checksum mismatch") {
		t.Errorf("2: %s", got[2])
	}
	if !strings.Contains(got[3], "missing") {
		t.Errorf("3: %s", got[3])
	}
	if _, err := Verify(ctx, st, VerifyOptions{IDs: []uint64{42}}); !errors.Is(err, ErrSnapshotNotFound) {
		t.Errorf("unknown id: %v", err)
	}
}

// Six backups racing into a location of 99 snapshots: RisingWave's rule
// (refuse when more than 100 exist) admits two, so the manifest ends at
// exactly 101, the others fail with ErrTooManySnapshots and leave no
// object behind.
func TestConcurrentCreatesRespectTheCap(t *testing.T) {
	ctx := context.Background()
	st := NewStorage(objstore.NewMemory(), "backup")
	seed := &Manifest{}
	for id := uint64(1); id <= 99; id++ {
		seed.SnapshotMetadata = append(seed.SnapshotMetadata, entry(id))
	}
	b, err := EncodeManifest(seed)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Store.Put(ctx, st.ManifestKey(), b); err != nil {
		t.Fatal(err)
	}
	// All six pass the early check before any of them commits.
	var ready, wg sync.WaitGroup
	ready.Add(6)
	errs := make(chan error, 6)
	for id := uint64(1000); id < 1006; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			ready.Wait()
			_, err := st.Create(ctx, encodedSnapshot(id), entry(id))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	refused := 0
	for err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, ErrTooManySnapshots):
			refused++
		default:
			t.Fatal(err)
		}
	}
	m, _, err := st.ReadManifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.SnapshotMetadata); n != MaxSnapshots+1 || refused != 4 {
		t.Fatalf("%d snapshots after six concurrent backups at 99 (%d refused); want %d (RisingWave's > %d rule) and 4 refused", n, refused, MaxSnapshots+1, MaxSnapshots)
	}
	_, orphans, err := st.Orphans(ctx)
	if err != nil || len(orphans) != 0 {
		t.Fatalf("refused backups left objects: %v %v", orphans, err)
	}
	// At 101 a forced backup still goes in.
	if _, err := st.CreateStream(ctx, entry(2000), CreateOptions{Force: true}, func(w io.Writer) error {
		_, err := w.Write(encodedSnapshot(2000))
		return err
	}); err != nil {
		t.Fatalf("forced backup past the cap: %v", err)
	}
}

// TestNoManifestSuggestsDirectories: a location without manifest.json
// names the nearby directories that have one (risectl's default "backup"
// against a cluster that uses hummock_001/backup).
func TestNoManifestSuggestsDirectories(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	real := NewStorage(store, "hummock_001/backup")
	real.MayBeNew = true
	if _, err := real.UpdateManifest(ctx, func(m *Manifest, _ bool) error {
		m.SnapshotMetadata = append(m.SnapshotMetadata, entry(7))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, _, err := NewStorage(store, "backup").ReadExistingManifest(ctx)
	if !errors.Is(err, ErrNoManifest) || !strings.Contains(err.Error(), `A manifest.json exists in directory "hummock_001/backup" of the same storage: pass --backup-storage-directory hummock_001/backup`) {
		t.Fatalf("no manifest in backup/: %v", err)
	}
	_, _, err = NewStorage(objstore.NewMemory(), "backup").ReadExistingManifest(ctx)
	if !errors.Is(err, ErrNoManifest) || strings.Contains(err.Error(), "exists in directory") {
		t.Fatalf("an empty store suggests nothing: %v", err)
	}
}
