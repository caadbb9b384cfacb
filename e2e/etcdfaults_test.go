package e2e

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/internal/testinfra/faultproxy"
	"github.com/rwsnap/rwsnap/internal/testinfra/testminio"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/restore"
	"github.com/rwsnap/rwsnap/rwsim"
)

// newFixtureOn is newFixture on an etcd cluster configured by cfg.
func newFixtureOn(t *testing.T, cfg embedetcd.Config, opts rwsim.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{}
	f.etcd = etcdtest.StartT(t, cfg)
	f.cli = etcdtest.ClientT(t, f.etcd)
	f.endpoints = strings.Join(f.etcd.Endpoints(), ",")
	f.minio = testminio.Start(t)
	f.minio.CreateBucket(t, "hummock001")
	f.bucketURL = f.minio.URL("hummock001")
	hs, err := objstore.Open(ctx, f.bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.Close() })
	f.hummock = hs
	opts.StateStore = "hummock+" + f.bucketURL
	opts.DataDir = "hummock_001"
	if f.sim, err = rwsim.Seed(ctx, f.cli, hs, opts); err != nil {
		t.Fatalf("seed rwsim: %v", err)
	}
	return f
}

// leaderIndex asks every running member who leads.
func leaderIndex(t *testing.T, c *embedetcd.Cluster, cli *clientv3.Client) int {
	t.Helper()
	for i := range c.Members() {
		if !c.MemberRunning(i) {
			continue
		}
		st, err := cli.Status(context.Background(), c.MemberEndpoint(i))
		if err != nil {
			continue
		}
		if st.Header.MemberId == st.Leader {
			return i
		}
	}
	t.Fatal("no etcd leader")
	return -1
}

// TestEtcdMemberDownDuringBackupAndRestore: backups of a 3-member meta
// store whose leader is down (its endpoint listed first), and a restore
// into a 3-member target whose leader is stopped in the middle: the
// restore has written its marker and every batch through the old leader
// and is held (by the fault proxy, on its upload of the replaced
// checkpoint) while the leader stops; it then writes cf/cluster_id and
// removes the marker through the new one. With all endpoints given,
// everything works on the quorum, and the stopped member catches up once
// back.
func TestEtcdMemberDownDuringBackupAndRestore(t *testing.T) {
	f := newFixtureOn(t, embedetcd.Config{Members: 3}, rwsim.Options{Seed: 51})
	leader := leaderIndex(t, f.etcd, f.cli)
	if err := f.etcd.StopMember(leader); err != nil {
		t.Fatal(err)
	}
	eps := []string{f.etcd.MemberEndpoint(leader)}
	for i := range f.etcd.Members() {
		if i != leader {
			eps = append(eps, f.etcd.MemberEndpoint(i))
		}
	}
	f.endpoints = strings.Join(eps, ",")
	backupID(t, f)
	id, rev := backupID(t, f)
	verifyAll(t, f, f.minioLoc())
	want := expectedRestore(t, f.cli, rev, nil)

	p, err := faultproxy.Start(f.minio.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	gate := faultproxy.NewGate()
	defer gate.Release()
	p.Add(faultproxy.Rule{Name: "hold", Method: "PUT", Path: "/replaced-checkpoints/", Action: faultproxy.Hold, Gate: gate})
	b := etcdtest.StartT(t, embedetcd.Config{Members: 3})
	bcli := etcdtest.ClientT(t, b)
	args := []string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(id),
		"--etcd-endpoints", strings.Join(b.Endpoints(), ","),
		"--backup-storage-url", strings.Replace(f.bucketURL, f.minio.Endpoint, p.Addr(), 1), "--backup-storage-directory", "hummock_001/backup",
		"--hummock-storage-url", f.bucketURL}
	done := make(chan result, 1)
	go func() { done <- run(t, nil, args...) }()
	select {
	case <-gate.Arrived():
	case r := <-done:
		t.Fatalf("the restore never reached the held request: %s", r)
	}
	if resp, err := bcli.Get(context.Background(), restore.MarkerKey); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the restore marker is not there mid-restore: %v", err)
	}
	leader = leaderIndex(t, b, bcli)
	stopStart := time.Now()
	if err := b.StopMember(leader); err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(stopStart)
	gate.Release()
	resume := time.Now()
	r := <-done
	if r.code != 0 || !strings.Contains(r.stdout, "restore succeeded") {
		t.Fatalf("restore with the etcd leader m%d stopped mid-run: %s", leader, r)
	}
	t.Logf("restore completed with leader m%d stopped mid-run (stopping it took %s, the restore's rest %s)", leader, stopTook.Round(time.Millisecond), time.Since(resume).Round(time.Millisecond))
	diffKV(t, dumpEtcd(t, bcli), want)
	// The stopped member comes back with everything.
	for i := range b.Members() {
		if !b.MemberRunning(i) {
			if err := b.StartMember(context.Background(), i); err != nil {
				t.Fatal(err)
			}
			mcli, err := clientv3.New(clientv3.Config{Endpoints: []string{b.MemberEndpoint(i)}, DialTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer mcli.Close()
			// A linearizable read through the restarted member waits until
			// it has applied everything committed.
			diffKV(t, dumpEtcd(t, mcli), want)
		}
	}
}

// hookKV runs after() once after the read that pins a backup's revision
// (the cluster id Get that starts metastore.ReadMetadata), while armed.
type hookKV struct {
	clientv3.KV
	mu    sync.Mutex
	armed int // how many reads get the hook
	fired int
	after func()
}

var clusterIDKey = string(metastore.EtcdKey(metastore.CFClusterID, []byte(metastore.ClusterIDKey)))

func (h *hookKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := h.KV.Get(ctx, key, opts...)
	if err == nil && key == clusterIDKey {
		h.mu.Lock()
		fire := h.fired < h.armed
		if fire {
			h.fired++
		}
		h.mu.Unlock()
		if fire {
			h.after()
		}
	}
	return resp, err
}

// compactPast writes one key and compacts etcd to the new revision, so
// every older revision, the pinned one included, is gone.
func compactPast(t *testing.T, cli *clientv3.Client) func() {
	return func() {
		ctx := context.Background()
		resp, err := cli.Put(ctx, "rwsnap-test/compaction-marker", time.Now().String())
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
			t.Error(err)
		}
	}
}

// backupInProcess runs metasnap.Backup on a client whose KV is hooked, and
// returns the result and the log.
func backupInProcess(t *testing.T, f *fixture, h *hookKV) (*metasnap.BackupResult, string, error) {
	t.Helper()
	ctx := context.Background()
	cli := etcdtest.ClientT(t, f.etcd)
	h.KV = cli.KV
	cli.KV = h
	var logs bytes.Buffer
	res, err := metasnap.Backup(ctx, metasnap.BackupOptions{
		Etcd: cli, Hummock: f.hummock, DataDir: "hummock_001", Target: f.minioLoc().st,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	return res, logs.String(), err
}

// TestEtcdCompactionDuringBackup compacts etcd past the backup's pinned
// revision between its first read and the rest: the read fails with
// ErrCompacted, the backup says so and starts over at a new revision, and
// the snapshot is stored. Compacted on every attempt, it gives up with an
// error that names the cause and the remedy.
func TestEtcdCompactionDuringBackup(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 52})
	h := &hookKV{armed: 1, after: compactPast(t, f.cli)}
	res, logs, err := backupInProcess(t, f, h)
	if err != nil {
		t.Fatalf("backup with one compaction mid-read: %v\n%s", err, logs)
	}
	if h.fired != 1 || !strings.Contains(logs, "retrying") || !strings.Contains(logs, "compacted") {
		t.Fatalf("no retry after the compaction (fired %d):\n%s", h.fired, logs)
	}
	t.Logf("retried once, stored snapshot %d at revision %d; log:\n%s", res.Entry.ID, res.Revision, logs)
	verifyAll(t, f, f.minioLoc())

	before := manifestNow(t, f.minioLoc())
	h = &hookKV{armed: 100, after: compactPast(t, f.cli)}
	_, logs, err = backupInProcess(t, f, h)
	if err == nil || !strings.Contains(err.Error(), "no consistent read after 3 attempts") || !strings.Contains(err.Error(), "compacted") ||
		!strings.Contains(err.Error(), "auto-compaction-retention") {
		t.Fatalf("backup compacted on every attempt: %v\n%s", err, logs)
	}
	if h.fired != 3 {
		t.Fatalf("%d attempts, want 3", h.fired)
	}
	t.Logf("gave up after %d attempts: %v", h.fired, err)
	if m := manifestNow(t, f.minioLoc()); m.ManifestID != before.ManifestID {
		t.Fatal("a failed backup changed the manifest")
	}
}

// TestEtcdMemberStoppedMidRead stops the leader of a 3-member meta store
// between the backup's pinned first read and the rest (in process, at that
// exact point): the remaining reads at the pinned revision go to the new
// leader and the snapshot matches etcd at that revision.
func TestEtcdMemberStoppedMidRead(t *testing.T) {
	f := newFixtureOn(t, embedetcd.Config{Members: 3}, rwsim.Options{Seed: 53})
	stopped := -1
	h := &hookKV{armed: 1, after: func() {
		stopped = leaderIndex(t, f.etcd, f.cli)
		if err := f.etcd.StopMember(stopped); err != nil {
			t.Error(err)
		}
	}}
	res, logs, err := backupInProcess(t, f, h)
	if err != nil {
		t.Fatalf("backup with the leader stopped mid-read: %v\n%s", err, logs)
	}
	t.Logf("leader m%d stopped mid-read; snapshot %d at revision %d, %d keys", stopped, res.Entry.ID, res.Revision, res.Keys)
	want := expectedRestore(t, f.cli, res.Revision, nil)
	if len(want) == 0 {
		t.Fatal("nothing expected")
	}
	verifyAll(t, f, f.minioLoc())
}
