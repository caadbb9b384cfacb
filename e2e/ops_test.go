package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/rwsim"
)

// TestCopyMinioToFSAndBack copies every snapshot MinIO -> fs -> another
// MinIO directory: byte-identical objects, a rerun copies nothing.
func TestCopyMinioToFSAndBack(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 21})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		backupID(t, f)
		if err := f.sim.Advance(ctx); err != nil {
			t.Fatal(err)
		}
	}
	fsURL := "fs://" + t.TempDir()
	type copyOut struct {
		Copied  []uint64 `json:"copied"`
		Present []uint64 `json:"already_present"`
	}
	cp := func(args ...string) copyOut {
		r := mustRun(t, nil, append(append([]string{"meta", "copy-meta-snapshots", "--all", "-o", "json"}, args...), f.etcdArgs()...)...)
		var out copyOut
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("%v\n%s", err, r)
		}
		return out
	}
	if out := cp("--to-url", fsURL, "--to-directory", "dr"); len(out.Copied) != 3 {
		t.Fatalf("first copy: %+v", out)
	}
	if out := cp("--to-url", fsURL, "--to-directory", "dr"); len(out.Copied) != 0 || len(out.Present) != 3 {
		t.Fatalf("rerun copied again: %+v", out)
	}
	// And back into MinIO, from the fs copy, without the cluster.
	mustRun(t, nil, "meta", "copy-meta-snapshots", "--all", "--backup-storage-url", fsURL, "--backup-storage-directory", "dr",
		"--to-url", f.bucketURL, "--to-directory", "roundtrip")
	src := metasnap.NewStorage(f.hummock, "hummock_001/backup")
	back := metasnap.NewStorage(f.hummock, "roundtrip")
	sm, _, _ := src.ReadManifest(ctx)
	bm, _, _ := back.ReadManifest(ctx)
	if fmt.Sprint(sm.IDs()) != fmt.Sprint(bm.IDs()) {
		t.Fatalf("manifests differ: %v vs %v", sm.IDs(), bm.IDs())
	}
	for _, id := range sm.IDs() {
		a, _, _ := f.hummock.Get(ctx, src.SnapshotKey(id))
		b, _, _ := f.hummock.Get(ctx, back.SnapshotKey(id))
		if !bytes.Equal(a, b) {
			t.Fatalf("snapshot %d not byte-identical after the round trip", id)
		}
	}
	r := mustRun(t, nil, "meta", "verify-meta-snapshot", "--all", "--backup-storage-url", f.bucketURL, "--backup-storage-directory", "roundtrip")
	if strings.Count(r.stdout, " ok ") != 3 {
		t.Fatalf("verify of the copy:\n%s", r)
	}
	expectFailure(t, 2, []string{"is the source location"}, f.minio.SecretKey, nil,
		append([]string{"meta", "copy-meta-snapshots", "--all", "--to-url", f.bucketURL, "--to-directory", "hummock_001/backup/"}, f.etcdArgs()...)...)
}

// TestPruneOnMinio leaves exactly the kept snapshots and a valid manifest.
func TestPruneOnMinio(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 22})
	ctx := context.Background()
	var ids []uint64
	for i := 0; i < 5; i++ {
		id, _ := backupID(t, f)
		ids = append(ids, id)
		if err := f.sim.Advance(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// An orphan left by an interrupted backup.
	st := metasnap.NewStorage(f.hummock, "hummock_001/backup")
	b, _, _ := f.hummock.Get(ctx, st.SnapshotKey(ids[0]))
	if err := f.hummock.Put(ctx, st.SnapshotKey(99999), b); err != nil {
		t.Fatal(err)
	}
	expectFailure(t, 2, []string{"every keep rule is zero"}, "", nil, append([]string{"meta", "prune"}, f.etcdArgs()...)...)
	expectFailure(t, 2, []string{"cannot be negative"}, "", nil, append([]string{"meta", "prune", "--keep-last", "-1"}, f.etcdArgs()...)...)
	r := mustRun(t, nil, append([]string{"meta", "prune", "--keep-last", "2", "--dry-run"}, f.etcdArgs()...)...)
	if !strings.Contains(r.stdout, "3 of 5 snapshots would be deleted") {
		t.Fatalf("dry run:\n%s", r)
	}
	if m, _, _ := st.ReadManifest(ctx); len(m.SnapshotMetadata) != 5 {
		t.Fatal("dry run deleted")
	}
	mustRun(t, nil, append([]string{"meta", "prune", "--keep-last", "2", "--orphans", "--orphans-min-age", "0s"}, f.etcdArgs()...)...)
	m, _, err := st.ReadManifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(m.IDs()) != fmt.Sprint(ids[3:]) {
		t.Fatalf("kept %v, want %v", m.IDs(), ids[3:])
	}
	objs, err := f.hummock.List(ctx, "hummock_001/backup/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, strings.TrimPrefix(o.Key, "hummock_001/backup/"))
	}
	want := fmt.Sprintf("[%d.snapshot %d.snapshot manifest.json]", ids[3], ids[4])
	if fmt.Sprint(names) != want {
		t.Fatalf("objects left: %v, want %s", names, want)
	}
	mustRun(t, nil, append([]string{"meta", "verify-meta-snapshot", "--all", "--check-ssts"}, f.etcdArgs()...)...)
}
