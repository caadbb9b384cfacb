package datacopy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

func sst(id uint64) []byte { return bytes.Repeat([]byte(fmt.Sprintf("sst-%d;", id)), int(id%7)+3) }

type fixture struct {
	hs     objstore.Store
	backup *metasnap.Storage
	data   *Location
}

func newFixture(t *testing.T, ids ...uint64) *fixture {
	t.Helper()
	f := &fixture{hs: objstore.NewMemory(), backup: metasnap.NewStorage(objstore.NewMemory(), "backup")}
	f.data = NewLocation(f.backup.Store, "backup/data")
	for _, id := range ids {
		f.putSST(t, id)
	}
	return f
}

func (f *fixture) putSST(t *testing.T, id uint64) {
	t.Helper()
	if err := f.hs.Put(context.Background(), hummock.SSTPath("hummock_001", id, false), sst(id)); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) addEntry(t *testing.T, id uint64, ssts ...uint64) metasnap.SnapshotMetadata {
	t.Helper()
	e := metasnap.SnapshotMetadata{ID: id, SSTs: ssts}
	if _, err := f.backup.UpdateManifest(context.Background(), func(m *metasnap.Manifest, _ bool) error {
		m.SnapshotMetadata = append(m.SnapshotMetadata, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (f *fixture) opts() BackupOptions {
	return BackupOptions{Source: f.hs, SourceDir: "hummock_001", Data: f.data,
		Owner: Owner{ClusterID: "c1", Backup: BackupIdentity("memory", "backup")}}
}

func TestBackupIncrementalVerifyGCRestore(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 1, 2, 3, 4, 5)
	e1 := f.addEntry(t, 101, 1, 2, 3)
	r, err := Backup(ctx, f.opts(), []metasnap.SnapshotMetadata{e1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Copied != 3 || r.Skipped != 0 {
		t.Fatalf("first backup copied %d skipped %d, want 3 and 0", r.Copied, r.Skipped)
	}
	e2 := f.addEntry(t, 102, 2, 3, 4, 5)
	r, err = Backup(ctx, f.opts(), []metasnap.SnapshotMetadata{e2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Copied != 2 || r.Skipped != 2 {
		t.Fatalf("incremental backup copied %d skipped %d, want exactly the 2 new objects", r.Copied, r.Skipped)
	}
	m, _, _ := f.backup.ReadManifest(ctx)
	states, err := f.data.States(ctx, m)
	if err != nil || states[101] != StateComplete || states[102] != StateComplete {
		t.Fatalf("states %v, %v", states, err)
	}
	checks, err := Verify(ctx, f.data, m.SnapshotMetadata, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if !c.OK {
			t.Fatalf("verify %d: %v", c.ID, c.Problems)
		}
	}

	// Corrupt one byte of object 4 (same size): read-data must see it.
	b, _, _ := f.data.Store.Get(ctx, f.data.ObjectKey(4))
	b[0] ^= 1
	f.data.Store.Put(ctx, f.data.ObjectKey(4), b)
	checks, _ = Verify(ctx, f.data, []metasnap.SnapshotMetadata{e2}, true)
	if checks[0].OK {
		t.Fatal("read-data verify passed a corrupted object")
	}
	// Restore refuses the corrupted copy and leaves no bad object behind.
	dst := objstore.NewMemory()
	_, err = Restore(ctx, RestoreOptions{Data: f.data, Entry: e2, ClusterID: "c1", Dest: dst, DestDir: "new"})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("restore of a corrupted copy: %v, want ErrChecksum", err)
	}
	if _, err := dst.Stat(ctx, hummock.SSTPath("new", 4, false)); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("the corrupted object was left at the destination: %v", err)
	}
	b[0] ^= 1
	f.data.Store.Put(ctx, f.data.ObjectKey(4), b)

	// Restore into a new location, byte-identical.
	rr, err := Restore(ctx, RestoreOptions{Data: f.data, Entry: e2, ClusterID: "c1", Dest: dst, DestDir: "new"})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Objects != 4 {
		t.Fatalf("restored %d objects", rr.Objects)
	}
	for _, id := range e2.SSTs {
		got, _, err := dst.Get(ctx, hummock.SSTPath("new", id, false))
		if err != nil || !bytes.Equal(got, sst(id)) {
			t.Fatalf("object %d at the new location: %v", id, err)
		}
	}
	if err := ValidateAt(ctx, f.data, e2, dst, "new", false); err != nil {
		t.Fatal(err)
	}
	// A different object under a referenced id is refused.
	dst.Put(ctx, hummock.SSTPath("new", 5, false), []byte("other"))
	if _, err := Restore(ctx, RestoreOptions{Data: f.data, Entry: e2, ClusterID: "c1", Dest: dst, DestDir: "new"}); !errors.Is(err, ErrDifferentObject) {
		t.Fatalf("restore over a different object: %v", err)
	}
	// Another cluster's copy is refused.
	if _, err := Restore(ctx, RestoreOptions{Data: f.data, Entry: e2, ClusterID: "c2", Dest: objstore.NewMemory(), DestDir: "new"}); !errors.Is(err, ErrOtherOwner) {
		t.Fatalf("restore from another cluster's copy: %v", err)
	}

	// GC after deleting 101 removes exactly object 1, the only one only it
	// referenced, and its index.
	if _, err := f.backup.Delete(ctx, []uint64{101}); err != nil {
		t.Fatal(err)
	}
	g, err := GC(ctx, f.data, f.backup, true, nil, nil)
	if err != nil || fmt.Sprint(g.Objects) != "[1]" || fmt.Sprint(g.Indexes) != "[101]" {
		t.Fatalf("dry-run GC %+v %v", g, err)
	}
	if _, err := f.data.Store.Stat(ctx, f.data.ObjectKey(1)); err != nil {
		t.Fatal("dry run deleted")
	}
	g, err = GC(ctx, f.data, f.backup, false, nil, nil)
	if err != nil || fmt.Sprint(g.Objects) != "[1]" || g.Kept != 4 {
		t.Fatalf("GC %+v %v", g, err)
	}
	if _, err := f.data.Store.Stat(ctx, f.data.ObjectKey(1)); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatal("object 1 survived GC")
	}
	for _, id := range e2.SSTs {
		if _, err := f.data.Store.Stat(ctx, f.data.ObjectKey(id)); err != nil {
			t.Fatalf("GC removed object %d of a remaining snapshot", id)
		}
	}
}

func TestMissingSourceObjectIsPartial(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 1, 2)
	e := f.addEntry(t, 7, 1, 2, 3)
	_, err := Backup(ctx, f.opts(), []metasnap.SnapshotMetadata{e})
	if !errors.Is(err, ErrMissingObjects) {
		t.Fatalf("err %v, want ErrMissingObjects", err)
	}
	x, err := f.data.ReadIndex(ctx, 7)
	if err != nil || StateFor(e, x) != StatePartial || fmt.Sprint(x.Missing) != "[3]" {
		t.Fatalf("index %+v %v", x, err)
	}
	// The object reappears (e.g. the right location): the rerun completes.
	f.putSST(t, 3)
	r, err := Backup(ctx, f.opts(), []metasnap.SnapshotMetadata{e})
	if err != nil || r.Copied != 1 {
		t.Fatalf("rerun %+v %v", r, err)
	}
	x, _ = f.data.ReadIndex(ctx, 7)
	if StateFor(e, x) != StateComplete {
		t.Fatalf("state %s", StateFor(e, x))
	}
}

func TestOwnerRefusesAnotherBackupLocation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 1)
	e := f.addEntry(t, 1, 1)
	if _, err := Backup(ctx, f.opts(), []metasnap.SnapshotMetadata{e}); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Owner{{ClusterID: "c2", Backup: BackupIdentity("memory", "backup")}, {ClusterID: "c1", Backup: BackupIdentity("memory", "other")}} {
		opts := f.opts()
		opts.Owner = o
		if _, err := Backup(ctx, opts, []metasnap.SnapshotMetadata{e}); !errors.Is(err, ErrOtherOwner) {
			t.Fatalf("owner %+v: %v, want ErrOtherOwner", o, err)
		}
	}
	if a, b := BackupIdentity("minio://a:secret@h:9000/b", "d/"), BackupIdentity("minio://x:y@h:9000/b/", "/d"); a != b {
		t.Fatalf("identity depends on credentials: %q vs %q", a, b)
	}
}

// A GC during a backup in flight keeps everything the backup references:
// its pending marker is written before its first copy.
func TestGCKeepsInFlightBackup(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 1, 2)
	f.addEntry(t, 1, 1)
	// Object 2 is in the copy (an earlier, deleted snapshot's) and a new
	// backup in flight references it.
	f.data.Store.Put(ctx, f.data.ObjectKey(2), sst(2))
	p, err := metasnap.WritePending(ctx, f.data.Store, f.data.metaDir(), metasnap.PendingMarker{Kind: metasnap.PendingKindData, IDs: []uint64{2}, Objects: []uint64{2}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := GC(ctx, f.data, f.backup, false, nil, nil)
	if err != nil || len(g.Objects) != 0 {
		t.Fatalf("GC deleted %v (%v) during a backup in flight", g.Objects, err)
	}
	p.Release(ctx)
	g, err = GC(ctx, f.data, f.backup, false, nil, nil)
	if err != nil || fmt.Sprint(g.Objects) != "[2]" {
		t.Fatalf("GC after the backup ended: %+v %v", g, err)
	}
	// A GC holding its lock makes a backup wait; a stale lock does not.
	lock, err := f.data.lockGC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.data.lockGC(ctx); !errors.Is(err, ErrGCRunning) {
		t.Fatalf("second GC: %v", err)
	}
	old := gcWait
	gcWait = 50 * time.Millisecond
	defer func() { gcWait = old }()
	if err := f.data.waitForGC(ctx, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("backup did not wait for a running GC")
	}
	lock.release(ctx)
	if err := f.data.waitForGC(ctx, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
}

// A v2.0 cluster started on fs:// (use_new_object_prefix_strategy true)
// keeps its SSTs under crc32 prefix directories: backup-data reads them
// there, and a restore writes them where that cluster will look.
func TestV20PrefixStrategyOnFS(t *testing.T) {
	ctx := context.Background()
	hs, err := objstore.Open(ctx, "fs://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	ids := []uint64{1, 2, 300, 4097}
	for _, id := range ids {
		if err := hs.Put(ctx, hummock.SSTPath("hummock_001", id, true), sst(id)); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{hs: hs, backup: metasnap.NewStorage(objstore.NewMemory(), "backup")}
	f.data = NewLocation(f.backup.Store, "backup/data")
	e := f.addEntry(t, 1001, ids...)

	// The v1.x rule (no prefixes on fs) finds none of them.
	r, err := Backup(ctx, f.opts(), []metasnap.SnapshotMetadata{e})
	if err == nil && r.Snapshots[0].State == StateComplete {
		t.Fatal("backup with the v1.x layout claimed a complete copy of prefixed objects")
	}
	o := f.opts()
	o.SourceNewPrefixStrategy = true
	r, err = Backup(ctx, o, []metasnap.SnapshotMetadata{e})
	if err != nil || r.Snapshots[0].State != StateComplete {
		t.Fatalf("backup with the v2.0 layout: %+v, %v", r, err)
	}

	dst, err := objstore.Open(ctx, "fs://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := Restore(ctx, RestoreOptions{Data: f.data, Entry: e, ClusterID: "c1", Dest: dst, DestDir: "new", NewPrefixStrategy: true}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		got, _, err := dst.Get(ctx, hummock.SSTPath("new", id, true))
		if err != nil || !bytes.Equal(got, sst(id)) {
			t.Fatalf("object %d not at its prefixed path: %v", id, err)
		}
	}
	if err := ValidateAt(ctx, f.data, e, dst, "new", true); err != nil {
		t.Fatal(err)
	}
	if err := ValidateAt(ctx, f.data, e, dst, "new", false); err == nil {
		t.Fatal("validation with the v1.x layout passed on a prefixed location")
	}
}
