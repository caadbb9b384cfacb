package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
)

// backupID runs backup-meta and returns the snapshot id and etcd revision.
func backupID(t *testing.T, f *fixture) (uint64, int64) {
	t.Helper()
	r := mustRun(t, nil, append([]string{"meta", "backup-meta", "-o", "json", "-q"}, f.etcdArgs()...)...)
	var out struct {
		ID       uint64 `json:"id"`
		Revision int64  `json:"revision"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r)
	}
	return out.ID, out.Revision
}

// snapshotCFs are what a v1.x restore writes; everything else in the
// source etcd (deltas, workers, pinned versions, compaction status,
// election keys) is left out.
var snapshotCFs = []string{"default/", "cf/hummock_7/", "cf/hummock_6/", "cf/table_fragments/", "cf/user_info/",
	"cf/catalog_database/", "cf/catalog_schema/", "cf/catalog_table/", "cf/catalog_index/", "cf/catalog_sink/",
	"cf/catalog_source/", "cf/catalog_view/", "cf/catalog_function/", "cf/catalog_connection/", "cf/catalog_subscription/",
	"cf/system_params/"}

// expectedRestore is what RisingWave's restore would write for a snapshot
// taken at revision rev of the source: computed from the source etcd.
func expectedRestore(t *testing.T, src *clientv3.Client, rev int64, params map[string]string) map[string]string {
	t.Helper()
	want := map[string]string{}
	for _, cf := range snapshotCFs {
		resp, err := src.Get(context.Background(), cf, clientv3.WithPrefix(), clientv3.WithRev(rev))
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range resp.Kvs {
			want[string(kv.Key)] = string(kv.Value)
		}
	}
	resp, err := src.Get(context.Background(), "cf/cluster_id", clientv3.WithRev(rev))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("cluster id: %v", err)
	}
	want["cf/cluster_id"] = string(resp.Kvs[0].Value)
	for k, v := range params {
		want["cf/system_params/"+k] = v
	}
	return want
}

func dumpEtcd(t *testing.T, cli *clientv3.Client) map[string]string {
	t.Helper()
	resp, err := cli.Get(context.Background(), "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}

func diffKV(t *testing.T, got, want map[string]string) {
	t.Helper()
	var problems []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			problems = append(problems, fmt.Sprintf("missing %q", k))
		} else if g != v {
			problems = append(problems, fmt.Sprintf("%q: %d bytes, want %d", k, len(g), len(v)))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			problems = append(problems, fmt.Sprintf("unexpected %q", k))
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("... %d more", len(problems)-10))
		}
		t.Fatalf("restored etcd differs from what RisingWave's restore writes:\n%s", strings.Join(problems, "\n"))
	}
}

// TestRestoreToNewLocation: backup from etcd A, restore into a fresh etcd B
// with the cluster moved to a new bucket, copying the SSTs there.
func TestRestoreToNewLocation(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 11})
	id, rev := backupID(t, f)
	f.minio.CreateBucket(t, "hummock002")
	newURL := f.minio.URL("hummock002")
	b := etcdtest.StartT(t, embedetcd.Config{})
	bcli := etcdtest.ClientT(t, b)
	args := []string{"meta", "restore-meta", "--meta-store-type", "etcd", "--meta-snapshot-id", fmt.Sprint(id),
		"--etcd-endpoints", strings.Join(b.Endpoints(), ","),
		"--backup-storage-url", f.bucketURL, "--backup-storage-directory", "hummock_001/backup",
		"--hummock-storage-url", newURL, "--hummock-storage-directory", "hummock_002",
		"--overwrite-hummock-storage-endpoint", "--overwrite-backup-storage-url", newURL, "--overwrite-backup-storage-directory", "backup_002",
		"--copy-ssts", "--validate-integrity"}
	// A dry run checks everything and writes nothing.
	r := mustRun(t, nil, append(args, "--dry-run")...)
	if !strings.Contains(r.stdout, "nothing was written") || !strings.Contains(r.stdout, "param state_store") || strings.Contains(r.stdout, f.minio.SecretKey) {
		t.Fatalf("dry run:\n%s", r)
	}
	if n := len(dumpEtcd(t, bcli)); n != 0 {
		t.Fatalf("dry run wrote %d keys", n)
	}
	r = mustRun(t, nil, args...)
	if !strings.Contains(r.stdout, "restore succeeded") {
		t.Fatalf("restore:\n%s", r)
	}
	diffKV(t, dumpEtcd(t, bcli), expectedRestore(t, f.cli, rev, map[string]string{
		"state_store": "hummock+" + newURL, "data_directory": "hummock_002",
		"backup_storage_url": newURL, "backup_storage_directory": "backup_002"}))
	hs, err := objstore.Open(context.Background(), newURL)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	cpb, _, err := hs.Get(context.Background(), "hummock_002/checkpoint/0")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := hummock.DecodeCheckpoint(cpb)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(cp.GetVersion(), f.sim.ExpectedVersion()) || len(cp.GetStaleObjects()) != 0 {
		t.Fatalf("checkpoint at the new location holds version %d, want rwsim's %d", cp.GetVersion().GetId(), f.sim.ExpectedVersion().GetId())
	}
	// Every pinned SST is at the new location now, byte for byte.
	for _, oid := range hummock.ObjectIDs(cp.GetVersion()) {
		src, _, err := f.hummock.Get(context.Background(), hummock.SSTPath("hummock_001", oid, true))
		if err != nil {
			t.Fatal(err)
		}
		dst, _, err := hs.Get(context.Background(), hummock.SSTPath("hummock_002", oid, true))
		if err != nil || !bytes.Equal(src, dst) {
			t.Fatalf("SST %d at the new location: %v", oid, err)
		}
	}
	// Running it again is refused: the target is no longer empty.
	r = run(t, nil, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("second restore:\n%s", r)
	}
}

// TestRestoreInPlaceThreeMembers restores into a 3-member etcd cluster at
// the snapshot's own hummock location (the upstream test's invocation).
func TestRestoreInPlaceThreeMembers(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 12})
	id, rev := backupID(t, f)
	b := etcdtest.StartT(t, embedetcd.Config{Members: 3})
	bcli := etcdtest.ClientT(t, b)
	mustRun(t, nil, "meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(id),
		"--etcd-endpoints", strings.Join(b.Endpoints(), ","),
		"--backup-storage-url", f.bucketURL, "--backup-storage-directory", "hummock_001/backup",
		"--hummock-storage-url", f.bucketURL)
	diffKV(t, dumpEtcd(t, bcli), expectedRestore(t, f.cli, rev, nil))
	// The replaced checkpoint (the live cluster's newer one) was kept.
	objs, err := f.hummock.List(context.Background(), "hummock_001/backup/replaced-checkpoints/")
	if err != nil || len(objs) != 1 {
		t.Fatalf("saved checkpoints: %v %v", objs, err)
	}
}

func TestRestoreWithEtcdAuth(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 13})
	id, rev := backupID(t, f)
	b := etcdtest.StartT(t, embedetcd.Config{Auth: true, RootPassword: "s3cret-root-pw"})
	args := []string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(id),
		"--etcd-endpoints", strings.Join(b.Endpoints(), ","), "--etcd-auth", "--etcd-username", "root",
		"--backup-storage-url", f.bucketURL, "--backup-storage-directory", "hummock_001/backup",
		"--hummock-storage-url", f.bucketURL}
	expectFailure(t, 1, []string{"wrong user name or password"}, "wrong-pw-123", []string{"RWSNAP_ETCD_PASSWORD=wrong-pw-123"}, args...)
	mustRun(t, []string{"RWSNAP_ETCD_PASSWORD=s3cret-root-pw"}, args...)
	bcli := etcdtest.ClientT(t, b)
	got := dumpEtcd(t, bcli)
	diffKV(t, got, expectedRestore(t, f.cli, rev, nil))
}

// TestRestoreKilledAndRerun kills the restore process (SIGKILL) at each
// crash point, then reruns it: the result is identical to an uninterrupted
// restore.
func TestRestoreKilledAndRerun(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 14})
	id, rev := backupID(t, f)
	want := expectedRestore(t, f.cli, rev, nil)
	for _, point := range []string{"restore.after-marker", "restore.after-batch#1", "restore.after-batch#3", "restore.before-checkpoint", "restore.after-checkpoint", "restore.before-readback", "restore.during-readback", "restore.before-marker-removal"} {
		t.Run(point, func(t *testing.T) {
			b := etcdtest.StartT(t, embedetcd.Config{})
			bcli := etcdtest.ClientT(t, b)
			args := []string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(id),
				"--etcd-endpoints", strings.Join(b.Endpoints(), ","),
				"--backup-storage-url", f.bucketURL, "--backup-storage-directory", "hummock_001/backup",
				"--hummock-storage-url", f.bucketURL}
			r := run(t, []string{faultpoint.Env + "=" + point}, args...)
			if r.code != -1 && r.code != 137 {
				t.Fatalf("the process was not killed at %s: %s", point, r)
			}
			if len(dumpEtcd(t, bcli)) == 0 {
				t.Fatalf("killed at %s before writing anything: the crash point is not reached", point)
			}
			r = mustRun(t, nil, args...)
			if !strings.Contains(r.stderr, "completing an interrupted restore") {
				t.Errorf("rerun did not say it resumed:\n%s", r)
			}
			diffKV(t, dumpEtcd(t, bcli), want)
		})
	}
}

func TestRestoreBadInput(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 15})
	ctx := context.Background()
	id, _ := backupID(t, f)
	id2, _ := backupID(t, f)
	empty := etcdtest.StartT(t, embedetcd.Config{})
	emptyEP := strings.Join(empty.Endpoints(), ",")
	used := etcdtest.StartT(t, embedetcd.Config{})
	ucli := etcdtest.ClientT(t, used)
	if _, err := ucli.Put(ctx, "cf/catalog_table/x", "y"); err != nil {
		t.Fatal(err)
	}
	live := etcdtest.StartT(t, embedetcd.Config{})
	lcli := etcdtest.ClientT(t, live)
	resign, err := f.sim.Campaign(ctx, lcli, "127.0.0.1:5690", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer resign()
	// Corrupt the newer snapshot's object.
	key := fmt.Sprintf("hummock_001/backup/%d.snapshot", id2)
	b, _, _ := f.hummock.Get(ctx, key)
	b[len(b)/2] ^= 0xff
	if err := f.hummock.Put(ctx, key, b); err != nil {
		t.Fatal(err)
	}
	base := func(ep string, snap uint64, extra ...string) []string {
		return append([]string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(snap), "--etcd-endpoints", ep,
			"--backup-storage-url", f.bucketURL, "--backup-storage-directory", "hummock_001/backup", "--hummock-storage-url", f.bucketURL}, extra...)
	}
	tests := []struct {
		name string
		code int
		want []string
		args []string
	}{
		{"unknown id", 1, []string{"snapshot id 999 not found", fmt.Sprint(id)}, base(emptyEP, 999)},
		{"corrupted snapshot", 1, []string{fmt.Sprintf("snapshot %d", id2), "checksum mismatch"}, base(emptyEP, id2)},
		{"corrupted newest blocks older", 1, []string{"newest snapshot", "checksum mismatch"}, base(emptyEP, id)},
		{"missing flags", 2, []string{"missing required flags: --meta-snapshot-id, --backup-storage-url, --hummock-storage-url, --etcd-endpoints"}, []string{"meta", "restore-meta"}},
		{"partial overwrite", 2, []string{"must be set together"}, base(emptyEP, id, "--overwrite-hummock-storage-endpoint")},
		{"unsupported store type", 2, []string{"--meta-store-type sql is not supported"}, base(emptyEP, id, "--meta-store-type", "sql")},
		{"unreachable storage", 1, []string{"127.0.0.1:1"}, []string{"meta", "restore-meta", "--meta-snapshot-id", "1", "--etcd-endpoints", emptyEP,
			"--backup-storage-url", "minio://a:b@127.0.0.1:1/x", "--hummock-storage-url", f.bucketURL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectFailure(t, tt.code, tt.want, f.minio.SecretKey, nil, tt.args...)
		})
	}
	// Without the corrupted newest snapshot, the older one restores; the
	// remaining refusals come from the target and the location.
	mustRun(t, nil, "meta", "delete-meta-snapshots", fmt.Sprint(id2), "--etcd-endpoints", f.endpoints)
	for _, tt := range []struct {
		name string
		want []string
		args []string
	}{
		{"unreachable etcd", []string{"127.0.0.1:1", "does not answer"}, base("127.0.0.1:1", id)},
		{"non-empty target", []string{"not empty", `"cf/catalog_table/"`}, base(strings.Join(used.Endpoints(), ","), id)},
		{"live leader", []string{"meta node (127.0.0.1:5690) is live"}, base(strings.Join(live.Endpoints(), ","), id)},
		{"hummock mismatch", []string{"storage_directory mismatch", `"hummock_001"`, `"dummy_dir"`}, base(emptyEP, id, "--hummock-storage-directory", "dummy_dir")},
		{"integrity", []string{"integrity validation failed", "referenced objects not found"}, base(emptyEP, id, "--hummock-storage-directory", "dummy_dir", "--validate-integrity",
			"--overwrite-hummock-storage-endpoint", "--overwrite-backup-storage-url", f.bucketURL, "--overwrite-backup-storage-directory", "b", "--dry-run")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			expectFailure(t, 1, tt.want, f.minio.SecretKey, nil, tt.args...)
		})
	}
	if n := len(dumpEtcd(t, etcdtest.ClientT(t, empty))); n != 0 {
		t.Fatalf("failed restores wrote %d keys into the empty target", n)
	}
}
