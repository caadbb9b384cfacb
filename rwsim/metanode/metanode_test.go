package metanode_test

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metaclient/backuppb"
	"github.com/rwsnap/rwsnap/metaclient/memberpb"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
	"github.com/rwsnap/rwsnap/rwsim/metanode"
	"github.com/rwsnap/rwsnap/rwversion"
)

type env struct {
	cli     *clientv3.Client
	hummock objstore.Store
	backup  *metasnap.Storage
}

func setup(t *testing.T, mode ...rwversion.Version) *env {
	t.Helper()
	ctx := context.Background()
	cli := etcdtest.ClientT(t, etcdtest.StartT(t, embedetcd.Config{}))
	dir := t.TempDir()
	hs, err := objstore.Open(ctx, "fs://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.Close() })
	o := rwsim.Options{StateStore: "hummock+fs://" + dir, Seed: 11, Tables: 4, FragmentSize: 256}
	if len(mode) > 0 {
		o.RWVersion = mode[0]
	}
	if _, err := rwsim.Seed(ctx, cli, hs, o); err != nil {
		t.Fatal(err)
	}
	return &env{cli: cli, hummock: hs, backup: metasnap.NewStorage(hs, "hummock_001/backup")}
}

func (e *env) start(t *testing.T, mut func(*metanode.Config)) *metanode.Node {
	t.Helper()
	cfg := metanode.Config{Etcd: e.cli, Hummock: e.hummock, DataDir: "hummock_001", Backup: e.backup, LeaseTTL: 5}
	if mut != nil {
		mut(&cfg)
	}
	n, err := metanode.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func waitLeader(t *testing.T, n *metanode.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
}

func generator(t *testing.T, cli *clientv3.Client) uint64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), string(metastore.EtcdKey(metastore.CFDefault, []byte(metastore.BackupIDGeneratorKey))))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("backup id generator: %v %v", resp, err)
	}
	return binary.BigEndian.Uint64(resp.Kvs[0].Value)
}

func storedIDs(t *testing.T, st *metasnap.Storage) []uint64 {
	t.Helper()
	m, _, err := st.ReadManifest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m.IDs()
}

// TestHazards: the simulated meta node preallocates ids, caches the
// manifest (overwriting what others wrote), runs one job at a time and
// forgets all but its latest job.
func TestHazards(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	before := generator(t, e.cli)
	n := e.start(t, nil)
	waitLeader(t, n)
	if got := generator(t, e.cli); got != before+1000 {
		t.Fatalf("generator after election = %d, want %d (block of 1000 from %d)", got, before+1000, before)
	}
	l, err := metastore.FindLeader(ctx, e.cli)
	if err != nil || l == nil || l.Addr != n.Addr() {
		t.Fatalf("FindLeader = %+v, %v; want %s", l, err, n.Addr())
	}
	id1, err := n.Backup(ctx, "first")
	if err != nil {
		t.Fatal(err)
	}
	if id1 != before {
		t.Fatalf("first job id %d, want %d (the block's first id)", id1, before)
	}
	// Someone writes the manifest behind the node's back.
	m, _, err := e.backup.ReadManifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	outsider := m.SnapshotMetadata[0]
	outsider.ID = 999999
	if _, err := e.backup.UpdateManifest(ctx, func(m *metasnap.Manifest, _ bool) error {
		m.SnapshotMetadata = append(m.SnapshotMetadata, outsider)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	id2, err := n.Backup(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := storedIDs(t, e.backup); len(got) != 2 || got[0] != id1 || got[1] != id2 {
		t.Fatalf("stored ids %v, want the cached [%d %d] (the outsider's entry overwritten)", got, id1, id2)
	}

	n.SetJobDelay(500 * time.Millisecond)
	id3, err := n.StartBackup("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.StartBackup(""); err == nil || !strings.Contains(err.Error(), "concurrent backup job is not supported: existent job") {
		t.Fatalf("second job while one runs: %v", err)
	}
	conn, err := grpc.NewClient(n.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bc := backuppb.NewBackupServiceClient(conn)
	if err := n.WaitJob(ctx, id3); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[uint64]backuppb.BackupJobStatus{id1: backuppb.BackupJobStatus_NOT_FOUND, id3: backuppb.BackupJobStatus_SUCCEEDED} {
		st, err := bc.GetBackupJobStatus(ctx, &backuppb.GetBackupJobStatusRequest{JobId: id})
		if err != nil || st.GetJobStatus() != want {
			t.Fatalf("status of job %d = %v, %v; want %v", id, st, err, want)
		}
	}
	n.SetJobDelay(0)
	n.FailNextJob("simulated upload failure")
	id4, err := n.StartBackup("")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.WaitJob(ctx, id4); err == nil || !strings.Contains(err.Error(), "failed backup job") {
		t.Fatalf("failing job: %v", err)
	}
	// Delete through gRPC ignores unknown ids and rewrites the cache.
	if _, err := bc.DeleteMetaSnapshot(ctx, &backuppb.DeleteMetaSnapshotRequest{SnapshotIds: []uint64{id1, 424242}}); err != nil {
		t.Fatal(err)
	}
	if got := storedIDs(t, e.backup); len(got) != 2 || got[0] != id2 || got[1] != id3 {
		t.Fatalf("after delete: stored ids %v, want [%d %d]", got, id2, id3)
	}
	pm, err := bc.GetMetaSnapshotManifest(ctx, &backuppb.GetMetaSnapshotManifestRequest{})
	if err != nil || len(pm.GetManifest().GetSnapshotMetadata()) != 2 {
		t.Fatalf("manifest over gRPC: %v %v", pm, err)
	}
}

// TestFollower: a second node serves only MetaMemberService until the
// leader goes, then takes over and loads the manifest as stored then.
func TestFollower(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	a := e.start(t, nil)
	waitLeader(t, a)
	idA, err := a.Backup(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	b := e.start(t, nil)
	conn, err := grpc.NewClient(b.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var members *memberpb.MembersResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		members, err = memberpb.NewMetaMemberServiceClient(conn).Members(ctx, &memberpb.MembersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(members.GetMembers()) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(members.GetMembers()) != 2 || !members.GetMembers()[0].GetIsLeader() || members.GetMembers()[1].GetIsLeader() {
		t.Fatalf("members = %v, want the first node leading and the second following", members)
	}
	_, err = backuppb.NewBackupServiceClient(conn).BackupMeta(ctx, &backuppb.BackupMetaRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("BackupMeta on a follower: %v, want Unimplemented", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, b)
	if m := b.Manifest(); len(m.SnapshotMetadata) != 1 || m.SnapshotMetadata[0].ID != idA {
		t.Fatalf("new leader's manifest %v, want snapshot %d", m.IDs(), idA)
	}
	idB, err := b.Backup(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if idB <= idA+999 {
		t.Fatalf("new leader's id %d should come from a later block than %d", idB, idA)
	}
}

// TestKillLeavesLease: a crashed node's key stays until its lease expires.
func TestKillLeavesLease(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	n := e.start(t, func(c *metanode.Config) { c.LeaseTTL = 2 })
	waitLeader(t, n)
	n.Kill()
	if l, err := metastore.FindLeader(ctx, e.cli); err != nil || l == nil {
		t.Fatalf("right after a crash the lease is still live: %+v %v", l, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := metastore.FindLeader(ctx, e.cli)
		if err != nil {
			t.Fatal(err)
		}
		if l == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease of the crashed node still live after 10s: %+v", l)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOldReleases: a meta node of v1.2 or v1.5 behaves as those releases
// do (proto/backup_service.proto, backup_manager.rs and lib.rs at v1.2.0,
// v1.5.4, v1.10.2): v1.5 drops remarks, its own and, on every manifest
// rewrite, other entries'; v1.2 also has no format_version and reports a
// failed job as NOT_FOUND without a message; v1.10 records RW_VERSION.
func TestOldReleases(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		release                        string
		remarks, format, failed, rwver bool
	}{
		{"1.2.0", false, false, false, false},
		{"1.5.4", false, true, true, false},
		{"1.7.0", true, true, true, false},
		{"1.10.2", true, true, true, true},
	} {
		t.Run(tc.release, func(t *testing.T) {
			line, err := rwversion.Parse(tc.release)
			if err != nil {
				t.Fatal(err)
			}
			e := setup(t, line)
			// An entry with remarks another writer put there first.
			seeded := `{"manifest_id":1,"snapshot_metadata":[{"id":900,"hummock_version_id":1,"ssts":[],"max_committed_epoch":1,"safe_epoch":0,"format_version":1,"remarks":"theirs","x":1}]}`
			if err := e.hummock.Put(ctx, e.backup.ManifestKey(), []byte(seeded)); err != nil {
				t.Fatal(err)
			}
			n := e.start(t, func(c *metanode.Config) { c.RWVersion = tc.release })
			waitLeader(t, n)
			conn, err := grpc.NewClient(n.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			bc := backuppb.NewBackupServiceClient(conn)
			r := "mine"
			resp, err := bc.BackupMeta(ctx, &backuppb.BackupMetaRequest{Remarks: &r})
			if err != nil {
				t.Fatal(err)
			}
			if err := n.WaitJob(ctx, resp.GetJobId()); err != nil {
				t.Fatal(err)
			}
			raw, _, err := e.hummock.Get(ctx, e.backup.ManifestKey())
			if err != nil {
				t.Fatal(err)
			}
			doc := string(raw)
			for key, want := range map[string]bool{`"remarks"`: tc.remarks, `"format_version"`: tc.format, `"rw_version":"` + tc.release + `"`: tc.rwver, `"state_table_info"`: tc.rwver, `"x":1`: false} {
				if strings.Contains(doc, key) != want {
					t.Errorf("manifest has %s: %v, want %v\n%s", key, !want, want, doc)
				}
			}
			if strings.Contains(doc, `"mine"`) != tc.remarks || strings.Contains(doc, `"theirs"`) != tc.remarks {
				t.Errorf("remarks kept %v, want %v:\n%s", !tc.remarks, tc.remarks, doc)
			}
			pm, err := bc.GetMetaSnapshotManifest(ctx, &backuppb.GetMetaSnapshotManifestRequest{})
			if err != nil {
				t.Fatal(err)
			}
			last := pm.GetManifest().GetSnapshotMetadata()[1]
			if (last.FormatVersion != nil) != tc.format || (last.Remarks != nil) != tc.remarks || (last.GetRwVersion() == tc.release) != tc.rwver {
				t.Errorf("GetMetaSnapshotManifest entry %v", last)
			}

			n.FailNextJob("object store unavailable")
			resp, err = bc.BackupMeta(ctx, &backuppb.BackupMetaRequest{})
			if err != nil {
				t.Fatal(err)
			}
			_ = n.WaitJob(ctx, resp.GetJobId())
			st, err := bc.GetBackupJobStatus(ctx, &backuppb.GetBackupJobStatusRequest{JobId: resp.GetJobId()})
			if err != nil {
				t.Fatal(err)
			}
			want := backuppb.BackupJobStatus_FAILED
			if !tc.failed {
				want = backuppb.BackupJobStatus_NOT_FOUND
			}
			if st.GetJobStatus() != want || (st.GetMessage() == "") == tc.failed {
				t.Errorf("failed job: status %v message %q, want %v", st.GetJobStatus(), st.GetMessage(), want)
			}
		})
	}
}
