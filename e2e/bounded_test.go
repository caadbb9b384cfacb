package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/rwsim"
)

// sparse makes path a sparse file of size bytes: it costs no disk.
func sparse(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// expectFailureOut is expectFailure for commands that report the problem
// on stdout (verify's table) or stderr.
func expectFailureOut(t *testing.T, want []string, args ...string) {
	t.Helper()
	r := run(t, nil, args...)
	if r.code != 1 {
		t.Fatalf("rwsnap %s: want exit 1: %s", strings.Join(args, " "), r)
	}
	for _, w := range want {
		if !strings.Contains(r.stdout+r.stderr, w) {
			t.Errorf("rwsnap %s: output lacks %q:\n%s", strings.Join(args, " "), w, r)
		}
	}
}

// TestHugeObjectsRefusedBeforeRead: a 64 GiB sparse <id>.snapshot (listed
// in the manifest) and a 64 GiB sparse manifest.json on fs:// are refused
// by their size, before one byte is read, with an error naming the object,
// its size and the flag; nothing is written and memory stays small (the
// old code died of "runtime: out of memory").
func TestHugeObjectsRefusedBeforeRead(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 71})
	loc := fsLoc(t)
	mustRun(t, nil, f.cmd(loc, "meta", "backup-meta", "-q")...)
	m := manifestNow(t, loc)
	id := m.IDs()[0]
	root := strings.TrimPrefix(loc.args[1], "fs://")
	snapPath := filepath.Join(root, "backup", fmt.Sprintf("%d.snapshot", id))
	sparse(t, snapPath, 64<<30)

	want := []string{fmt.Sprintf("%d.snapshot", id), "64 GiB", "8 GiB limit", "--max-snapshot-size"}
	expectFailureOut(t, want, append([]string{"meta", "verify-meta-snapshot", fmt.Sprint(id)}, loc.args...)...)
	b := etcdtest.StartT(t, embedetcd.Config{})
	expectFailure(t, 1, want, "", nil, append([]string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(id),
		"--etcd-endpoints", strings.Join(b.Endpoints(), ","), "--hummock-storage-url", f.bucketURL}, loc.args...)...)
	if n := len(dumpEtcd(t, etcdtest.ClientT(t, b))); n != 0 {
		t.Fatalf("a refused restore wrote %d keys", n)
	}
	other := fsLoc(t)
	expectFailure(t, 1, want, "", nil, append(append([]string{"meta", "copy-meta-snapshots", "--to-url", other.args[1], "--to-directory", "backup"}, loc.args...), fmt.Sprint(id))...)

	// A lower limit refuses a legitimate one the same way.
	if err := os.Remove(snapPath); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, f.cmd(loc, "meta", "backup-meta", "-q")...)
	id2 := manifestNow(t, loc).IDs()[1]
	expectFailureOut(t, []string{"--max-snapshot-size", "1 KiB limit"},
		append([]string{"meta", "verify-meta-snapshot", "--max-snapshot-size", "1KiB", fmt.Sprint(id2)}, loc.args...)...)

	sparse(t, filepath.Join(root, "backup", "manifest.json"), 64<<30)
	wantM := []string{"manifest.json", "64 GiB", "1 GiB limit", "--max-manifest-size"}
	expectFailure(t, 1, wantM, "", nil, append([]string{"meta", "list-meta-snapshots"}, loc.args...)...)
	expectFailure(t, 1, wantM, "", nil, f.cmd(loc, "meta", "backup-meta", "-q")...)
}

// TestLargeSnapshotStreamsThroughMinIO: a snapshot larger than one S3
// multipart part (8 MiB) is written as a multipart upload, verified and
// copied by streaming, and restores exactly; a random object of that size
// planted as a snapshot is refused under --max-snapshot-size before it is
// read.
func TestLargeSnapshotStreamsThroughMinIO(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 72, Tables: 140, FragmentSize: 100 << 10})
	id, rev := backupID(t, f)
	st := f.minioLoc().st
	info, err := st.Store.Stat(context.Background(), st.SnapshotKey(id))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size < 9<<20 {
		t.Fatalf("snapshot is %d bytes: the test needs more than one 8 MiB part", info.Size)
	}
	if !strings.Contains(info.ETag, "-") {
		t.Fatalf("snapshot ETag %q: not a multipart upload", info.ETag)
	}
	mustRun(t, nil, "meta", "verify-meta-snapshot", fmt.Sprint(id), "--backup-storage-url", f.bucketURL, "--backup-storage-directory", "hummock_001/backup")
	to := fsLoc(t)
	mustRun(t, nil, append([]string{"meta", "copy-meta-snapshots", "--backup-storage-url", f.bucketURL, "--backup-storage-directory", "hummock_001/backup",
		"--to-url", to.args[1], "--to-directory", "backup"}, fmt.Sprint(id))...)
	h, err := to.st.Scan(context.Background(), id)
	if err != nil || h.Size != info.Size {
		t.Fatalf("copied snapshot: %v", err)
	}
	b := etcdtest.StartT(t, embedetcd.Config{})
	mustRun(t, nil, "meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(id), "--etcd-endpoints", strings.Join(b.Endpoints(), ","),
		"--backup-storage-url", f.bucketURL, "--backup-storage-directory", "hummock_001/backup", "--hummock-storage-url", f.bucketURL)
	diffKV(t, dumpEtcd(t, etcdtest.ClientT(t, b)), expectedRestore(t, f.cli, rev, nil))

	junk := make([]byte, 10<<20)
	rand.Read(junk)
	bad := metasnap.NewStorage(st.Store, "junk")
	if err := bad.Store.Put(context.Background(), bad.SnapshotKey(id), junk); err != nil {
		t.Fatal(err)
	}
	m := manifestNow(t, f.minioLoc())
	enc, err := metasnap.EncodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Store.Put(context.Background(), bad.ManifestKey(), enc); err != nil {
		t.Fatal(err)
	}
	expectFailureOut(t, []string{fmt.Sprintf("%d.snapshot", id), "10 MiB", "--max-snapshot-size"},
		"meta", "verify-meta-snapshot", "--max-snapshot-size", "4MiB", fmt.Sprint(id), "--backup-storage-url", f.bucketURL, "--backup-storage-directory", "junk")
	// Within the limit, the random bytes fail their checksum.
	expectFailureOut(t, []string{"checksum mismatch"},
		"meta", "verify-meta-snapshot", fmt.Sprint(id), "--backup-storage-url", f.bucketURL, "--backup-storage-directory", "junk")
}
