package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/rwsim"
)

// readPaths are backup-meta's two ways of reading etcd (RWSNAP_ETCD_READ).
var readPaths = []string{"snapshot", "range"}

// forEachReadPath runs fn once per read path, as a subtest with
// RWSNAP_ETCD_READ set (rwsnap processes inherit it).
func forEachReadPath(t *testing.T, fn func(t *testing.T)) {
	for _, p := range readPaths {
		t.Run("read="+p, func(t *testing.T) {
			t.Setenv(metastore.ReadModeEnv, p)
			fn(t)
		})
	}
}

// writeHistory gives the store every kind of history etcd keeps:
// overwritten keys, deleted and re-created keys, multi-op transactions,
// a physical compaction, and tombstones written after it.
func writeHistory(t *testing.T, f *fixture) {
	t.Helper()
	ctx := context.Background()
	key := func(i int) string {
		return string(metastore.EtcdKey(metastore.CFTable, metastore.U32Key(uint32(90000+i))))
	}
	do := func(ops ...clientv3.Op) {
		if _, err := f.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		do(clientv3.OpPut(key(i), fmt.Sprintf("v1-%d", i)))
	}
	for i := range 100 {
		do(clientv3.OpPut(key(i), fmt.Sprintf("v2-%d", i)))
	}
	for i := 100; i < 150; i++ {
		do(clientv3.OpDelete(key(i)))
	}
	for i := 120; i < 130; i++ {
		do(clientv3.OpPut(key(i), fmt.Sprintf("v3-%d", i)))
	}
	do(clientv3.OpPut(key(200), "txn"), clientv3.OpDelete(key(1)), clientv3.OpPut(key(201), "txn"), clientv3.OpPut(key(5), "txn overwrite"))
	if err := f.sim.Advance(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := f.cli.Get(ctx, key(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	do(clientv3.OpDelete(key(3)))
	do(clientv3.OpPut(key(4), "after compaction"))
	do(clientv3.OpDelete(key(121)), clientv3.OpPut(key(122), "v4"))
	if err := f.sim.Advance(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestReadPathsWriteIdenticalBytes: the snapshot read (etcd's bbolt
// stream) and the range read give the same snapshot bytes for the same
// revision of a store with history, and that snapshot is etcd at it.
func TestReadPathsWriteIdenticalBytes(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 31})
	writeHistory(t, f)
	opts := metasnap.BackupOptions{Etcd: f.cli, Hummock: f.hummock, DataDir: "hummock_001"}
	var out [2]bytes.Buffer
	var revs [2]int64
	for i, p := range readPaths {
		t.Setenv(metastore.ReadModeEnv, p)
		rev, path, err := metasnap.ReadSnapshot(context.Background(), opts, 4242, &out[i])
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if path != p {
			t.Fatalf("RWSNAP_ETCD_READ=%s read by %s", p, path)
		}
		revs[i] = rev
	}
	if revs[0] != revs[1] {
		t.Fatalf("revisions %v: the store changed under the test", revs)
	}
	if !bytes.Equal(out[0].Bytes(), out[1].Bytes()) {
		t.Fatalf("snapshot path wrote %d bytes, range path %d, and they differ", out[0].Len(), out[1].Len())
	}
	snap := decodeIndependently(t, out[0].Bytes())
	keys, values := etcdValues(t, f.cli, "default/", revs[0])
	if !equalLists(snap.keys, keys) || !equalLists(snap.values, values) {
		t.Fatal("default cf differs from etcd")
	}
	_, tables := etcdValues(t, f.cli, metastore.Prefix(metastore.CFTable), revs[0])
	var got [][]byte
	for _, l := range snap.lists {
		for _, m := range l {
			if bytes.HasPrefix(m, []byte("v")) || bytes.HasPrefix(m, []byte("txn")) || bytes.HasPrefix(m, []byte("after")) {
				got = append(got, m)
			}
		}
	}
	var want [][]byte
	for _, v := range tables {
		if bytes.HasPrefix(v, []byte("v")) || bytes.HasPrefix(v, []byte("txn")) || bytes.HasPrefix(v, []byte("after")) {
			want = append(want, v)
		}
	}
	if !equalLists(got, want) || len(want) != 200-50+10+2-1-1-1 {
		t.Fatalf("the history's rows: %d in the snapshot, %d in etcd", len(got), len(want))
	}
}

// TestBackupWithoutRootRoleReadsRanges: etcd refuses its snapshot to a
// user without the root role; backup-meta then reads by ranges and says so
// in its debug log. The server is made to look older than 3.7
// (RWSNAP_ETCD_RANGE=paged: no RangeStream), where auto picks the snapshot.
func TestBackupWithoutRootRoleReadsRanges(t *testing.T) {
	const pw = "etcdPW-Rt7Lq2"
	f := newFixtureOn(t, embedetcd.Config{Auth: true, RootPassword: pw}, rwsim.Options{Seed: 43})
	ctx := context.Background()
	for _, step := range []func() error{
		func() error { _, err := f.cli.RoleAdd(ctx, "rw"); return err },
		func() error {
			_, err := f.cli.RoleGrantPermission(ctx, "rw", "\x00", "\x00", clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := f.cli.UserAdd(ctx, "backup", "backupPW-9x"); return err },
		func() error { _, err := f.cli.UserGrantRole(ctx, "backup", "rw"); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct{ user, want string }{
		{"backup:backupPW-9x", "etcd read path: ranges at one revision"},
		{"root:" + pw, "etcd read path: etcd's snapshot stream"},
	} {
		r := mustRun(t, []string{metastore.ReadModeEnv + "=auto", metastore.RangeModeEnv + "=paged"}, "meta", "backup-meta", "-o", "json", "--log-level", "debug",
			"--etcd-endpoints", f.endpoints, "--user", tt.user)
		if !strings.Contains(r.stderr, tt.want) {
			t.Fatalf("%s: the debug log does not say %q:\n%s", strings.Split(tt.user, ":")[0], tt.want, r)
		}
		if tt.user != "root:"+pw && !strings.Contains(r.stderr, "root role") {
			t.Fatalf("the fallback does not say why:\n%s", r)
		}
	}
}

// TestSnapshotReadFromEachMember: on a 3-member cluster, a backup whose
// snapshot comes from any member (a follower included) is etcd at the
// revision it reports, never older than the backup's own id allocation.
func TestSnapshotReadFromEachMember(t *testing.T) {
	f := newFixtureOn(t, embedetcd.Config{Members: 3}, rwsim.Options{Seed: 44})
	t.Setenv(metastore.ReadModeEnv, "snapshot")
	for i := range f.etcd.Members() {
		r := mustRun(t, nil, "meta", "backup-meta", "-o", "json", "-q", "--etcd-endpoints", f.etcd.MemberEndpoint(i))
		var out struct {
			ID       uint64 `json:"id"`
			Revision int64  `json:"revision"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatal(err)
		}
		checkSnapshotMatchesEtcd(t, f, out.ID, out.Revision)
		// The id generator in the snapshot is past the snapshot's own id.
		snap := decodeIndependently(t, getObject(t, f, fmt.Sprintf("hummock_001/backup/%d.snapshot", out.ID)))
		found := false
		for j, k := range snap.keys {
			if string(k) == metastore.BackupIDGeneratorKey {
				found = true
				if next := binary.BigEndian.Uint64(snap.values[j]); next <= out.ID {
					t.Fatalf("member %d: the snapshot's backup id generator is %d, not past its own id %d", i, next, out.ID)
				}
			}
		}
		if !found {
			t.Fatalf("member %d: no backup id generator in the snapshot", i)
		}
	}
}
