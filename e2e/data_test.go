package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
	"github.com/rwsnap/rwsnap/rwsim/frontend"
)

// dataBackupOut is the JSON of backup-meta --with-data / backup-data.
type dataBackupOut struct {
	ID   uint64 `json:"id"`
	Data struct {
		Copied     int `json:"objects_copied"`
		ServerSide int `json:"objects_copied_server_side"`
		Skipped    int `json:"objects_already_there"`
		Snapshots  []struct {
			ID      uint64   `json:"snapshot_id"`
			State   string   `json:"state"`
			Missing []uint64 `json:"missing"`
		} `json:"snapshots"`
	} `json:"data"`
}

func decodeJSON(t *testing.T, r result, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("%v: %s", err, r)
	}
}

// snapshotObjects reads every SST object of the current version, by id.
func snapshotObjects(t *testing.T, f *fixture) map[uint64][]byte {
	t.Helper()
	out := map[uint64][]byte{}
	for _, id := range hummock.ObjectIDs(f.sim.ExpectedVersion()) {
		b, _, err := f.hummock.Get(context.Background(), f.sim.SSTKey(id))
		if err != nil {
			t.Fatal(err)
		}
		out[id] = b
	}
	return out
}

// destroyBucket deletes every object of a bucket and the bucket itself:
// the hummock bucket is lost.
func destroyBucket(t *testing.T, f *fixture, bucket string) {
	t.Helper()
	ctx := context.Background()
	st, err := objstore.Open(ctx, f.minio.URL(bucket))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	objs, err := st.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	if err := st.Delete(ctx, keys...); err != nil {
		t.Fatal(err)
	}
	if _, err := f.minio.Client().DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
}

// TestDataBucketLoss is the disaster the data copy exists for: backups
// with data into another bucket, verify --check-data --read-data, the
// whole hummock bucket deleted, then restore --from-backup-data into a new
// bucket and a fresh etcd: every object byte-identical, the params on the
// new bucket, the checkpoint there. Also: the second backup copies exactly
// the new objects, and deleting a snapshot garbage-collects exactly the
// objects only it referenced.
func TestDataBucketLoss(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 41})
	ctx := context.Background()
	f.minio.CreateBucket(t, "backups")
	backupURL := f.minio.URL("backups")
	loc := []string{"--backup-storage-url", backupURL, "--backup-storage-directory", "rw"}
	backup := func() dataBackupOut {
		t.Helper()
		var out dataBackupOut
		decodeJSON(t, mustRun(t, nil, append(append([]string{"meta", "backup-meta", "--with-data", "-o", "json", "-q"}, loc...), f.etcdArgs()...)...), &out)
		return out
	}
	v1 := hummock.ObjectIDs(f.sim.ExpectedVersion())
	first := backup()
	if first.Data.Copied != len(v1) || first.Data.ServerSide != len(v1) || first.Data.Skipped != 0 {
		t.Fatalf("first backup: copied %d (%d server side), skipped %d; want all %d server side (one MinIO endpoint)", first.Data.Copied, first.Data.ServerSide, first.Data.Skipped, len(v1))
	}
	// New commits: the second backup copies exactly the new objects.
	for range 3 {
		if err := f.sim.Advance(ctx); err != nil {
			t.Fatal(err)
		}
	}
	v2 := hummock.ObjectIDs(f.sim.ExpectedVersion())
	var fresh []uint64
	for _, id := range v2 {
		if !slices.Contains(v1, id) {
			fresh = append(fresh, id)
		}
	}
	if len(fresh) == 0 {
		t.Fatal("rwsim's commits made no new SST objects")
	}
	second := backup()
	if second.Data.Copied != len(fresh) || second.Data.Skipped != len(v2)-len(fresh) {
		t.Fatalf("incremental backup copied %d, skipped %d; want exactly the %d new objects and %d skipped", second.Data.Copied, second.Data.Skipped, len(fresh), len(v2)-len(fresh))
	}
	want := snapshotObjects(t, f)

	list := mustRun(t, nil, append(append([]string{"meta", "list-meta-snapshots"}, loc...), f.etcdArgs()...)...)
	if strings.Count(list.stdout, "complete") != 2 {
		t.Fatalf("list shows the data of both snapshots complete:\n%s", list)
	}
	mustRun(t, nil, append(append([]string{"meta", "verify-meta-snapshot", "--all", "--check-data", "--read-data"}, loc...), f.etcdArgs()...)...)

	// The frontend serves the orders table while its data is in hummock.
	before := frontendRows(t, f.hummock, "hummock_001")
	if len(before) == 0 {
		t.Fatal("no rows before the loss")
	}

	// The hummock bucket is lost entirely.
	destroyBucket(t, f, "hummock001")
	if _, err := queryOrders(t, f.hummock, "hummock_001"); err == nil {
		t.Fatal("the frontend still serves rows after its hummock bucket was deleted")
	}

	f.minio.CreateBucket(t, "hummock003")
	newURL := f.minio.URL("hummock003")
	b := etcdtest.StartT(t, embedetcd.Config{})
	bcli := etcdtest.ClientT(t, b)
	args := append([]string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(second.ID),
		"--etcd-endpoints", strings.Join(b.Endpoints(), ","),
		"--hummock-storage-url", newURL, "--hummock-storage-directory", "hummock_003",
		"--from-backup-data", "--validate-integrity"}, loc...)
	r := mustRun(t, nil, append(args, "--dry-run")...)
	if n := len(dumpEtcd(t, bcli)); n != 0 {
		t.Fatalf("dry run wrote %d keys:\n%s", n, r)
	}
	r = mustRun(t, nil, args...)
	if !strings.Contains(r.stdout, "restore succeeded") || strings.Contains(r.stdout+r.stderr, f.minio.SecretKey) {
		t.Fatalf("restore:\n%s", r)
	}
	hs, err := objstore.Open(ctx, newURL)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	for id, w := range want {
		got, _, err := hs.Get(ctx, hummock.SSTPath("hummock_003", id, true))
		if err != nil || !bytes.Equal(got, w) {
			t.Fatalf("object %d at the new bucket differs from the original (%v)", id, err)
		}
	}
	cpb, _, err := hs.Get(ctx, "hummock_003/checkpoint/0")
	if err != nil {
		t.Fatalf("no checkpoint at the new location: %v", err)
	}
	cp, err := hummock.DecodeCheckpoint(cpb)
	if err != nil || cp.GetVersion().GetId() != f.sim.ExpectedVersion().GetId() {
		t.Fatalf("checkpoint version %d, want %d (%v)", cp.GetVersion().GetId(), f.sim.ExpectedVersion().GetId(), err)
	}
	// The restored cluster's frontend serves the same rows from the new bucket.
	if after := frontendRows(t, hs, "hummock_003"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("rows after the restore %v, before the loss %v", after, before)
	}
	params, err := metastore.ReadSystemParams(ctx, bcli)
	if err != nil {
		t.Fatal(err)
	}
	if params["state_store"] != "hummock+"+newURL || params["data_directory"] != "hummock_003" || params["backup_storage_url"] != backupURL || params["backup_storage_directory"] != "rw" {
		t.Fatalf("restored params point at %q %q, backup %q %q", objstore.RedactText(params["state_store"]), params["data_directory"], objstore.RedactText(params["backup_storage_url"]), params["backup_storage_directory"])
	}

	// GC: deleting the first snapshot removes exactly the objects only it
	// referenced; a dry run shows them first and removes nothing.
	var only1 []uint64
	for _, id := range v1 {
		if !slices.Contains(v2, id) {
			only1 = append(only1, id)
		}
	}
	del := append(append([]string{"meta", "delete-meta-snapshots", fmt.Sprint(first.ID), "-o", "json", "-q", "--mode", "direct"}, loc...), f.etcdArgs()...)
	var dr struct {
		DataGC struct {
			Objects []uint64 `json:"objects"`
			Indexes []uint64 `json:"indexes"`
		} `json:"data_gc"`
	}
	decodeJSON(t, mustRun(t, nil, append(del, "--dry-run")...), &dr)
	if fmt.Sprint(dr.DataGC.Objects) != fmt.Sprint(only1) {
		t.Fatalf("dry-run GC would delete %v, want exactly %v", dr.DataGC.Objects, only1)
	}
	bs, err := objstore.Open(ctx, backupURL)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	dataKey := func(id uint64) string { return hummock.SSTPath("rw/data", id, true) }
	for _, id := range only1 {
		if _, err := bs.Stat(ctx, dataKey(id)); err != nil {
			t.Fatalf("dry run removed object %d: %v", id, err)
		}
	}
	decodeJSON(t, mustRun(t, nil, del...), &dr)
	if fmt.Sprint(dr.DataGC.Objects) != fmt.Sprint(only1) || fmt.Sprint(dr.DataGC.Indexes) != fmt.Sprint([]uint64{first.ID}) {
		t.Fatalf("GC deleted %v and indexes %v, want %v and [%d]", dr.DataGC.Objects, dr.DataGC.Indexes, only1, first.ID)
	}
	for _, id := range v2 {
		if _, err := bs.Stat(ctx, dataKey(id)); err != nil {
			t.Fatalf("GC removed object %d the remaining snapshot references: %v", id, err)
		}
	}
	for _, id := range only1 {
		if _, err := bs.Stat(ctx, dataKey(id)); err == nil {
			t.Fatalf("object %d only the deleted snapshot referenced survived GC", id)
		}
	}
	mustRun(t, nil, append(append([]string{"meta", "verify-meta-snapshot", "--all", "--check-data", "--read-data"}, loc...), "--backup-storage-url", backupURL)...)
}

// TestDataFSAndMinIO: a MinIO hummock location backed up into an fs://
// data copy (streamed, not server side), restored from it into a new
// MinIO bucket, and a data copy on MinIO restored into an fs:// hummock
// location.
func TestDataFSAndMinIO(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 42})
	ctx := context.Background()
	dir := t.TempDir()
	fsData := "fs://" + filepath.Join(dir, "data")
	loc := []string{"--backup-storage-url", "fs://" + filepath.Join(dir, "backups"), "--backup-storage-directory", "rw",
		"--data-storage-url", fsData, "--data-storage-directory", "copy"}
	var out dataBackupOut
	decodeJSON(t, mustRun(t, nil, append(append([]string{"meta", "backup-meta", "--with-data", "-o", "json", "-q", "--data-parallelism", "3"}, loc...), f.etcdArgs()...)...), &out)
	ids := hummock.ObjectIDs(f.sim.ExpectedVersion())
	if out.Data.Copied != len(ids) || out.Data.ServerSide != 0 {
		t.Fatalf("fs data copy: copied %d (%d server side), want %d streamed", out.Data.Copied, out.Data.ServerSide, len(ids))
	}
	// Laid out by RisingWave's rule for fs: no prefixes.
	if _, err := exec.Command("test", "-f", filepath.Join(dir, "data", "copy", fmt.Sprintf("%d.data", ids[0]))).Output(); err != nil {
		t.Fatalf("object %d is not at copy/%d.data in the fs data copy", ids[0], ids[0])
	}
	want := snapshotObjects(t, f)
	destroyBucket(t, f, "hummock001")
	f.minio.CreateBucket(t, "hummock004")
	newURL := f.minio.URL("hummock004")
	b := etcdtest.StartT(t, embedetcd.Config{})
	restoreArgs := append([]string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(out.ID), "--etcd-endpoints", strings.Join(b.Endpoints(), ","),
		"--hummock-storage-url", newURL, "--hummock-storage-directory", "hummock_004", "--from-backup-data", "--validate-integrity"}, loc...)
	mustRun(t, nil, restoreArgs...)
	hs, err := objstore.Open(ctx, newURL)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	for id, w := range want {
		got, _, err := hs.Get(ctx, hummock.SSTPath("hummock_004", id, true))
		if err != nil || !bytes.Equal(got, w) {
			t.Fatalf("object %d at the new bucket: %v", id, err)
		}
	}

	// MinIO data copy -> fs hummock location.
	loc2 := []string{"--backup-storage-url", "fs://" + filepath.Join(dir, "backups2"), "--backup-storage-directory", "rw",
		"--data-storage-url", newURL, "--data-storage-directory", "dr-copy"}
	// The cluster now is the restored one, on hummock004.
	var out2 dataBackupOut
	decodeJSON(t, mustRun(t, nil, append([]string{"meta", "backup-meta", "--with-data", "-o", "json", "-q", "--etcd-endpoints", strings.Join(b.Endpoints(), ",")}, loc2...)...), &out2)
	if out2.Data.Copied != len(ids) || out2.Data.ServerSide != len(ids) {
		t.Fatalf("same-bucket data copy: copied %d (%d server side)", out2.Data.Copied, out2.Data.ServerSide)
	}
	c := etcdtest.StartT(t, embedetcd.Config{})
	fsHummock := "fs://" + filepath.Join(dir, "hummock")
	mustRun(t, nil, append([]string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(out2.ID), "--etcd-endpoints", strings.Join(c.Endpoints(), ","),
		"--hummock-storage-url", fsHummock, "--hummock-storage-directory", "h", "--from-backup-data", "--validate-integrity"}, loc2...)...)
	fs, _ := objstore.Open(ctx, fsHummock)
	for id, w := range want {
		got, _, err := fs.Get(ctx, hummock.SSTPath("h", id, false))
		if err != nil || !bytes.Equal(got, w) {
			t.Fatalf("object %d in the fs hummock location: %v", id, err)
		}
	}
}

// TestDataBadInput: every failure the issue names, each with a clear
// error and nothing claimed or restored.
func TestDataBadInput(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 43})
	ctx := context.Background()
	dir := t.TempDir()
	backupURL := "fs://" + filepath.Join(dir, "backups")
	loc := []string{"--backup-storage-url", backupURL, "--backup-storage-directory", "rw"}
	id, _ := backupIDArgs(t, f, loc)

	// Data location unreachable: clear error, nothing written.
	r := run(t, nil, append(append([]string{"meta", "backup-data", "--all", "--data-storage-url", "minio://a:b@127.0.0.1:1/nobucket"}, loc...), f.etcdArgs()...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Fatalf("unreachable data location:\n%s", r)
	}
	// Unknown snapshot id: nothing copied.
	if r := run(t, nil, append(append([]string{"meta", "backup-data", "999999"}, loc...), f.etcdArgs()...)...); r.code != 1 || !strings.Contains(r.stderr, "999999") {
		t.Fatalf("unknown id:\n%s", r)
	}
	// Usage errors.
	for _, a := range [][]string{{"meta", "backup-data"}, {"meta", "backup-data", "--all", "1"}, {"meta", "backup-data", "--all", "--data-parallelism", "0"}} {
		if r := run(t, nil, append(append(a, loc...), f.etcdArgs()...)...); r.code != 2 {
			t.Fatalf("%v: want exit 2:\n%s", a, r)
		}
	}

	// An object the snapshot references already missing from the hummock
	// location: named, the snapshot partial, exit 1.
	gone := hummock.ObjectIDs(f.sim.ExpectedVersion())[0]
	saved, _, _ := f.hummock.Get(ctx, f.sim.SSTKey(gone))
	if err := f.hummock.Delete(ctx, f.sim.SSTKey(gone)); err != nil {
		t.Fatal(err)
	}
	r = run(t, nil, append(append([]string{"meta", "backup-data", fmt.Sprint(id)}, loc...), f.etcdArgs()...)...)
	if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprint(gone)) || !strings.Contains(r.stderr, "partial") {
		t.Fatalf("missing source object:\n%s", r)
	}
	list := mustRun(t, nil, append(append([]string{"meta", "list-meta-snapshots", "-o", "json"}, loc...), f.etcdArgs()...)...)
	if !strings.Contains(list.stdout, `"data": "partial"`) {
		t.Fatalf("list after a missing object:\n%s", list)
	}
	if r := run(t, nil, append(append([]string{"meta", "verify-meta-snapshot", "--all", "--check-data"}, loc...), f.etcdArgs()...)...); r.code != 1 {
		t.Fatalf("verify of a partial copy:\n%s", r)
	}
	// A restore from a partial copy is refused before anything is written.
	b := etcdtest.StartT(t, embedetcd.Config{})
	bcli := etcdtest.ClientT(t, b)
	restore := append([]string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(id), "--etcd-endpoints", strings.Join(b.Endpoints(), ","),
		"--hummock-storage-url", "fs://" + filepath.Join(dir, "new"), "--hummock-storage-directory", "h", "--from-backup-data"}, loc...)
	if r := run(t, nil, restore...); r.code != 1 || !strings.Contains(r.stderr, "partial") || len(dumpEtcd(t, bcli)) != 0 {
		t.Fatalf("restore from a partial copy:\n%s", r)
	}
	// The object comes back: the rerun completes the copy.
	f.hummock.Put(ctx, f.sim.SSTKey(gone), saved)
	mustRun(t, nil, append(append([]string{"meta", "backup-data", fmt.Sprint(id)}, loc...), f.etcdArgs()...)...)

	// A checksum mismatch in the data copy (same size, one byte changed):
	// verify --read-data names it, restore refuses and restores nothing.
	dataKey := filepath.Join(dir, "backups", "rw", "data", fmt.Sprintf("%d.data", gone))
	corrupt(t, dataKey)
	r = run(t, nil, append(append([]string{"meta", "verify-meta-snapshot", "--all", "--check-data", "--read-data"}, loc...), f.etcdArgs()...)...)
	if r.code != 1 || !strings.Contains(r.stdout, fmt.Sprintf("object %d", gone)) {
		t.Fatalf("read-data on a corrupted copy:\n%s", r)
	}
	r = run(t, nil, restore...)
	if r.code != 1 || !strings.Contains(r.stderr, "checksum mismatch") || !strings.Contains(r.stderr, fmt.Sprint(gone)) || len(dumpEtcd(t, bcli)) != 0 {
		t.Fatalf("restore from a corrupted copy:\n%s", r)
	}
	corrupt(t, dataKey) // flip it back

	// A data copy that belongs to another backup location is refused.
	r = run(t, nil, append([]string{"meta", "backup-data", "--all", "--backup-storage-url", "fs://" + filepath.Join(dir, "other"), "--backup-storage-directory", "rw",
		"--data-storage-url", backupURL, "--data-storage-directory", "rw/data"}, f.etcdArgs()...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "belongs to another") && !strings.Contains(r.stderr, "no manifest") {
		t.Fatalf("shared data location:\n%s", r)
	}
}

func corrupt(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command("sh", "-c", `printf "$(printf '\\%03o' $(( $(od -An -N1 -tu1 "$1") ^ 1 )))" | dd of="$1" bs=1 count=1 conv=notrunc 2>/dev/null`, "sh", path).CombinedOutput()
	if err != nil {
		t.Fatalf("corrupt %s: %v %s", path, err, out)
	}
}

func backupIDArgs(t *testing.T, f *fixture, loc []string) (uint64, int64) {
	t.Helper()
	r := mustRun(t, nil, append(append([]string{"meta", "backup-meta", "-o", "json", "-q"}, loc...), f.etcdArgs()...)...)
	var out struct {
		ID       uint64 `json:"id"`
		Revision int64  `json:"revision"`
	}
	decodeJSON(t, r, &out)
	return out.ID, out.Revision
}

// TestDataCrashAndRerun kills rwsnap with SIGKILL at every step of a data
// backup and of a data restore, then reruns: complete and correct, and
// never a snapshot whose data claims more than the copy holds.
func TestDataCrashAndRerun(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 44})
	ctx := context.Background()
	dir := t.TempDir()
	loc := []string{"--backup-storage-url", "fs://" + filepath.Join(dir, "backups"), "--backup-storage-directory", "rw"}
	n := len(hummock.ObjectIDs(f.sim.ExpectedVersion()))
	points := []string{"datacopy.after-pending", "datacopy.after-object", "datacopy.after-object#" + fmt.Sprint(n/2), "datacopy.before-index",
		"backup.before-upload", "metasnap.after-snapshot-upload", "metasnap.after-manifest-write"}
	st := metasnap.NewStorage(mustOpen(t, "fs://"+filepath.Join(dir, "backups")), "rw")
	for _, p := range points {
		r := run(t, []string{"RWSNAP_CRASH_AT=" + p}, append(append([]string{"meta", "backup-meta", "--with-data", "--data-parallelism", "2"}, loc...), f.etcdArgs()...)...)
		if r.code == 0 {
			t.Fatalf("crash point %s was never reached:\n%s", p, r)
		}
		// Whatever the kill left: no entry in the manifest claims data
		// the copy lacks.
		checkNoOverclaim(t, loc, f)
	}
	// Rerun: backup-data --all completes every snapshot's data.
	mustRun(t, nil, append(append([]string{"meta", "backup-data", "--all"}, loc...), f.etcdArgs()...)...)
	mustRun(t, nil, append(append([]string{"meta", "verify-meta-snapshot", "--all", "--check-data", "--read-data"}, loc...), f.etcdArgs()...)...)
	m, _, err := st.ReadManifest(ctx)
	if err != nil || len(m.SnapshotMetadata) == 0 {
		t.Fatalf("manifest after the crashes: %v", err)
	}
	id := m.SnapshotMetadata[len(m.SnapshotMetadata)-1].ID

	// Restore killed mid-copy, then rerun.
	want := snapshotObjects(t, f)
	destroyBucket(t, f, "hummock001")
	f.minio.CreateBucket(t, "hummock005")
	b := etcdtest.StartT(t, embedetcd.Config{})
	restore := append([]string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(id), "--etcd-endpoints", strings.Join(b.Endpoints(), ","),
		"--hummock-storage-url", f.minio.URL("hummock005"), "--hummock-storage-directory", "h5", "--from-backup-data", "--validate-integrity", "--data-parallelism", "2"}, loc...)
	for _, p := range []string{"datacopy.after-object", "datacopy.after-object#" + fmt.Sprint(n/2)} {
		if r := run(t, []string{"RWSNAP_CRASH_AT=" + p}, restore...); r.code == 0 {
			t.Fatalf("restore crash point %s was never reached:\n%s", p, r)
		}
	}
	r := mustRun(t, nil, restore...)
	if !strings.Contains(r.stdout, "already there") {
		t.Fatalf("the rerun did not continue from the copied objects:\n%s", r)
	}
	hs := mustOpen(t, f.minio.URL("hummock005"))
	for oid, w := range want {
		got, _, err := hs.Get(ctx, hummock.SSTPath("h5", oid, true))
		if err != nil || !bytes.Equal(got, w) {
			t.Fatalf("object %d after the resumed restore: %v", oid, err)
		}
	}
}

func mustOpen(t *testing.T, url string) objstore.Store {
	t.Helper()
	s, err := objstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// checkNoOverclaim: every snapshot list calls complete verifies with
// --read-data.
func checkNoOverclaim(t *testing.T, loc []string, f *fixture) {
	t.Helper()
	var l struct {
		Snapshots []struct {
			ID   uint64 `json:"id"`
			Data string `json:"data"`
		} `json:"snapshots"`
	}
	decodeJSON(t, mustRun(t, nil, append(append([]string{"meta", "list-meta-snapshots", "-o", "json", "-q", "--may-be-new"}, loc...), f.etcdArgs()...)...), &l)
	for _, s := range l.Snapshots {
		if s.Data != "complete" {
			continue
		}
		if r := run(t, nil, append(append([]string{"meta", "verify-meta-snapshot", fmt.Sprint(s.ID), "--check-data", "--read-data"}, loc...), f.etcdArgs()...)...); r.code != 0 {
			t.Fatalf("snapshot %d claims complete data but does not verify:\n%s", s.ID, r)
		}
	}
}

// TestOrphanPruneDuringSlowBackup: prune --orphans with no minimum age
// while a backup's object is uploaded but not yet in the manifest never
// deletes it (the backup's pending marker), and the backup never reports
// success with its object missing.
func TestOrphanPruneDuringSlowBackup(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 45})
	dir := t.TempDir()
	loc := []string{"--backup-storage-url", "fs://" + filepath.Join(dir, "backups"), "--backup-storage-directory", "rw"}
	backupIDArgs(t, f, loc) // the manifest exists
	cmd := exec.Command(rwsnapBin, append(append([]string{"meta", "backup-meta", "-o", "json", "-q"}, loc...), f.etcdArgs()...)...)
	cmd.Env = append(cmd.Environ(), "RWSNAP_PAUSE_AT=metasnap.after-snapshot-upload=8s")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	st := metasnap.NewStorage(mustOpen(t, "fs://"+filepath.Join(dir, "backups")), "rw")
	// Wait until the slow backup's object is uploaded and not in the
	// manifest: an orphan to a cleaner that does not look for markers.
	var inflight uint64
	for deadline := time.Now().Add(time.Minute); inflight == 0; {
		_, orphans, err := st.Orphans(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for id := range orphans {
			inflight = id
		}
		if time.Now().After(deadline) {
			t.Fatal("the backup never uploaded its object")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := mustRun(t, nil, append(append([]string{"meta", "prune", "--keep-last", "10", "--orphans", "--orphans-min-age", "0s", "-o", "json"}, loc...), f.etcdArgs()...)...)
	if strings.Contains(r.stdout, fmt.Sprintf(`"orphans_deleted": [%d`, inflight)) {
		t.Fatalf("prune --orphans deleted the in-flight backup's object %d:\n%s", inflight, r)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the slow backup failed: %v\n%s", err, out.String())
	}
	if _, err := st.Store.Stat(context.Background(), st.SnapshotKey(inflight)); err != nil {
		t.Fatalf("backup %d succeeded but its object is gone: %v", inflight, err)
	}
	mustRun(t, nil, append(append([]string{"meta", "verify-meta-snapshot", "--all"}, loc...), f.etcdArgs()...)...)
}

// TestCopySSTsComparesContent (issue 11 item 3): restore --copy-ssts
// never keeps a same-size object with other bytes as "already there" and
// never overwrites a different object unless told to.
func TestCopySSTsComparesContent(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 46})
	ctx := context.Background()
	id, _ := backupID(t, f)
	f.minio.CreateBucket(t, "hummock006")
	newURL := f.minio.URL("hummock006")
	hs := mustOpen(t, newURL)
	oid := hummock.ObjectIDs(f.sim.ExpectedVersion())[0]
	orig, _, err := f.hummock.Get(ctx, f.sim.SSTKey(oid))
	if err != nil {
		t.Fatal(err)
	}
	other := bytes.Clone(orig)
	other[len(other)-1] ^= 0xff // same size, other bytes
	dstKey := hummock.SSTPath("hummock_006", oid, true)
	if err := hs.Put(ctx, dstKey, other); err != nil {
		t.Fatal(err)
	}
	b := etcdtest.StartT(t, embedetcd.Config{})
	bcli := etcdtest.ClientT(t, b)
	args := []string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(id), "--etcd-endpoints", strings.Join(b.Endpoints(), ","),
		"--backup-storage-url", f.bucketURL, "--backup-storage-directory", "hummock_001/backup",
		"--hummock-storage-url", newURL, "--hummock-storage-directory", "hummock_006",
		"--overwrite-hummock-storage-endpoint", "--overwrite-backup-storage-url", newURL, "--overwrite-backup-storage-directory", "backup_006",
		"--copy-ssts", "--validate-integrity"}
	r := run(t, nil, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "different object") || !strings.Contains(r.stderr, fmt.Sprint(oid)) || len(dumpEtcd(t, bcli)) != 0 {
		t.Fatalf("copy over a different same-size object:\n%s", r)
	}
	if got, _, _ := hs.Get(ctx, dstKey); !bytes.Equal(got, other) {
		t.Fatal("the different object was overwritten without --overwrite-existing-ssts")
	}
	mustRun(t, nil, append(args, "--overwrite-existing-ssts")...)
	if got, _, _ := hs.Get(ctx, dstKey); !bytes.Equal(got, orig) {
		t.Fatal("--overwrite-existing-ssts left the wrong bytes")
	}
}

// queryOrders starts rwsim's frontend on a hummock location with a demo
// table and reads it over pgwire.
func queryOrders(t *testing.T, hs objstore.Store, dataDir string) ([]string, error) {
	t.Helper()
	ctx := context.Background()
	fe, err := frontend.Start(ctx, frontend.Options{Hummock: hs, DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Close()
	if _, err := fe.CreateTable("orders", frontend.Column{Name: "id", Type: frontend.Int8}, frontend.Column{Name: "item", Type: frontend.Varchar}); err != nil {
		t.Fatal(err)
	}
	for i, item := range []string{"apples", "pears", "plums"} {
		if err := fe.Insert("orders", uint64(i+1)<<16, int64(i+1), item); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, fe.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT id, item FROM orders")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id int64
		var item string
		if err := rows.Scan(&id, &item); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprint(id, item))
	}
	return out, rows.Err()
}

func frontendRows(t *testing.T, hs objstore.Store, dataDir string) []string {
	t.Helper()
	rows, err := queryOrders(t, hs, dataDir)
	if err != nil {
		t.Fatalf("frontend on %s %s: %v", hs, dataDir, err)
	}
	return rows
}
