package e2e

import (
	"context"
	"encoding/json"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/rwsim"
	"github.com/rwsnap/rwsnap/rwsim/metanode"
)

// Live-cluster tests: rwsnap against rwsim/metanode, a simulated v1.x
// meta node serving BackupService over real gRPC, leading through etcd's
// election API, and writing the same MinIO backup location.

const liveBackupDir = "hummock_001/backup"

func (f *fixture) backupStorage() *metasnap.Storage {
	return metasnap.NewStorage(f.hummock, liveBackupDir)
}

// startMeta starts a simulated meta node; wait says whether to wait until
// it leads (a second node stays a follower).
func startMeta(t *testing.T, f *fixture, ttl int, wait bool) *metanode.Node {
	t.Helper()
	n, err := metanode.Start(context.Background(), metanode.Config{
		Etcd: f.cli, Hummock: f.hummock, DataDir: "hummock_001", Backup: f.backupStorage(), LeaseTTL: ttl,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if wait {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.WaitLeader(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (f *fixture) storedIDs(t *testing.T) []uint64 {
	t.Helper()
	m, _, err := f.backupStorage().ReadManifest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m.IDs()
}

var succeededLine = regexp.MustCompile(`^backup job succeeded: job (\d+), `)

// jobID parses the id from the first stdout line, as upstream scripts do.
func jobID(t *testing.T, r result) uint64 {
	t.Helper()
	first, _, _ := strings.Cut(r.stdout, "\n")
	m := succeededLine.FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("first stdout line is not risectl's success line: %q\n%s", first, r)
	}
	id, _ := strconv.ParseUint(m[1], 10, 64)
	return id
}

func jsonOut(t *testing.T, r result) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, r)
	}
	return out
}

func wantIDs(t *testing.T, what string, got []uint64, want ...uint64) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: ids %v, want %v", what, got, want)
	}
}

// TestLiveBackupThroughMeta: with a meta node live, backup-meta (auto) asks
// it, the meta node's own next backup keeps rwsnap's entry, direct mode is
// refused, and list/delete go through it too, so its cache follows.
func TestLiveBackupThroughMeta(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, rwsim.Options{Seed: 21})
	n := startMeta(t, f, 10, true)
	n.SetJobDelay(1500 * time.Millisecond) // long enough to see risectl's progress line

	r := mustRun(t, nil, append([]string{"meta", "backup-meta", "--remarks", "via meta"}, f.etcdArgs()...)...)
	id := jobID(t, r)
	for _, w := range []string{"working through the meta node", "backup job is still running: job " + strconv.FormatUint(id, 10)} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r)
		}
	}
	if !strings.Contains(r.stdout, "through the meta node at "+n.URL()) {
		t.Errorf("stdout does not say the meta node took the backup:\n%s", r)
	}
	if m := n.Manifest(); m.Find(id) == nil || *m.Find(id).Remarks != "via meta" {
		t.Fatalf("the meta node's cache lacks snapshot %d: %v", id, m.IDs())
	}
	n.SetJobDelay(0)
	own, err := n.Backup(ctx, "the meta node's own")
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "after the meta node's own backup", f.storedIDs(t), id, own)

	expectFailure(t, 1, []string{"--mode direct", "meta leader is live", n.Addr(), "--mode auto", "--force"}, f.minio.SecretKey, nil,
		append([]string{"meta", "backup-meta", "--mode", "direct"}, f.etcdArgs()...)...)
	expectFailure(t, 1, []string{"--mode direct", "meta leader is live"}, f.minio.SecretKey, nil,
		append([]string{"meta", "delete-meta-snapshots", "--mode", "direct", strconv.FormatUint(own, 10)}, f.etcdArgs()...)...)
	wantIDs(t, "after refused direct writes", f.storedIDs(t), id, own)

	r = mustRun(t, nil, append([]string{"meta", "list-meta-snapshots", "-o", "json"}, f.etcdArgs()...)...)
	var list struct {
		Path             string `json:"path"`
		SnapshotMetadata []struct {
			ID   uint64   `json:"id"`
			SSTs []uint64 `json:"ssts"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	if list.Path != "meta" || len(list.SnapshotMetadata) != 2 || len(list.SnapshotMetadata[0].SSTs) == 0 {
		t.Fatalf("list through the meta node: %+v\n%s", list, r)
	}

	out := jsonOut(t, mustRun(t, nil, append([]string{"meta", "backup-meta", "-o", "json"}, f.etcdArgs()...)...))
	if out["path"] != "meta" || !strings.Contains(out["via"].(string), n.URL()) {
		t.Fatalf("JSON does not name the meta path: %v", out)
	}
	jid := uint64(out["id"].(float64))

	r = mustRun(t, nil, append([]string{"meta", "delete-meta-snapshots", strconv.FormatUint(id, 10)}, f.etcdArgs()...)...)
	if !strings.HasPrefix(r.stdout, "delete meta snapshots succeeded: ["+strconv.FormatUint(id, 10)+"]") {
		t.Fatalf("delete output:\n%s", r)
	}
	if n.Manifest().Find(id) != nil {
		t.Fatalf("the meta node's cache still lists deleted snapshot %d", id)
	}
	own2, err := n.Backup(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "the meta node's backup after a delete", f.storedIDs(t), own, jid, own2)
	expectFailure(t, 1, []string{"4242 not in the manifest of the meta node", "nothing deleted"}, f.minio.SecretKey, nil,
		append([]string{"meta", "delete-meta-snapshots", "4242", strconv.FormatUint(own, 10)}, f.etcdArgs()...)...)
	wantIDs(t, "after a refused delete", f.storedIDs(t), own, jid, own2)
}

// TestLiveMetaStopped: once the meta node is gone (lease revoked), auto
// goes direct; a meta node started later loads rwsnap's snapshots and
// allocates ids above them.
func TestLiveMetaStopped(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, rwsim.Options{Seed: 22})
	n := startMeta(t, f, 10, true)
	id1 := jobID(t, mustRun(t, nil, append([]string{"meta", "backup-meta"}, f.etcdArgs()...)...))
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, nil, append([]string{"meta", "backup-meta", "-o", "json"}, f.etcdArgs()...)...)
	out := jsonOut(t, r)
	if out["path"] != "direct" || !strings.Contains(r.stderr, "no live meta leader") {
		t.Fatalf("with the meta node stopped, auto should go direct:\n%s", r)
	}
	id2 := uint64(out["id"].(float64))
	wantIDs(t, "stored", f.storedIDs(t), id1, id2)

	n2 := startMeta(t, f, 10, true)
	wantIDs(t, "restarted meta node's cache", n2.Manifest().IDs(), id1, id2)
	own, err := n2.Backup(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if own <= id2 {
		t.Fatalf("restarted meta node's id %d is not above rwsnap's %d", own, id2)
	}
	wantIDs(t, "after the restarted meta node's backup", f.storedIDs(t), id1, id2, own)
}

// TestLiveLeaderDetection: a crashed meta node's lease is live until its
// TTL runs out: meanwhile rwsnap refuses (the meta node it must use does
// not answer) and says what it tried; after expiry it goes direct.
func TestLiveLeaderDetection(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, rwsim.Options{Seed: 23})
	const ttl = 5
	n := startMeta(t, f, ttl, true)
	l, err := metastore.FindLeader(ctx, f.cli)
	if err != nil || l == nil || l.Addr != n.Addr() || l.TTL > ttl {
		t.Fatalf("live leader not detected: %+v %v", l, err)
	}
	n.Kill()
	killed := time.Now()
	expectFailure(t, 1, []string{"meta leader is live", "tried " + n.URL(), "RW_META_ADDR", "--force"}, f.minio.SecretKey, nil,
		append([]string{"meta", "backup-meta"}, f.etcdArgs()...)...)
	if time.Since(killed) >= ttl*time.Second {
		t.Fatalf("the refusal took longer than the lease TTL; the check above proved nothing")
	}
	for {
		l, err := metastore.FindLeader(ctx, f.cli)
		if err != nil {
			t.Fatal(err)
		}
		if l == nil {
			break
		}
		if time.Since(killed) > (ttl+3)*time.Second {
			t.Fatalf("expired lease still detected as live %s after the crash: %+v", time.Since(killed), l)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := jsonOut(t, mustRun(t, nil, append([]string{"meta", "backup-meta", "-o", "json"}, f.etcdArgs()...)...))
	if out["path"] != "direct" {
		t.Fatalf("after the lease expired auto should go direct: %v", out)
	}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestLiveBadInput: unreachable or wrong meta addresses, a follower, a
// failed job and a busy meta node all end in messages that say what to do.
func TestLiveBadInput(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, rwsim.Options{Seed: 24})
	backup := func(extra ...string) []string {
		return append(append([]string{"meta", "backup-meta"}, f.etcdArgs()...), extra...)
	}
	closed := closedAddr(t)
	expectFailure(t, 1, []string{"tried http://" + closed, "--meta-addr", "RW_META_ADDR"}, f.minio.SecretKey, nil,
		backup("--mode", "meta", "--meta-addr", closed)...)
	expectFailure(t, 1, []string{"tried http://" + closed, "RW_META_ADDR"}, f.minio.SecretKey, []string{"RW_META_ADDR=http://" + closed},
		backup("--mode", "meta")...)
	expectFailure(t, 2, []string{"--mode", "auto, direct or meta"}, "", nil, backup("--mode", "risectl")...)
	expectFailure(t, 2, []string{"--mode meta", "own backup location"}, f.minio.SecretKey, nil,
		backup("--mode", "meta", "--backup-storage-url", "fs://"+t.TempDir(), "--backup-storage-directory", "x")...)

	// A gRPC server that is no meta node.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()
	expectFailure(t, 1, []string{"is this RisingWave v1.x"}, f.minio.SecretKey, nil,
		backup("--mode", "meta", "--meta-addr", "http://"+lis.Addr().String())...)

	a := startMeta(t, f, 10, true)
	b := startMeta(t, f, 10, false)
	time.Sleep(300 * time.Millisecond) // b's campaign key in place
	r := mustRun(t, nil, backup("--meta-addr", b.URL())...)
	jobID(t, r)
	if !strings.Contains(r.stderr, "following") || !strings.Contains(r.stdout, "through the meta node at "+a.URL()) {
		t.Fatalf("a follower's address should lead to the leader %s:\n%s", a.URL(), r)
	}

	a.FailNextJob("simulated: object store unavailable")
	expectFailure(t, 1, []string{"backup job failed: job", "failed backup job", "simulated: object store unavailable"}, f.minio.SecretKey, nil, backup()...)

	a.SetJobDelay(3 * time.Second)
	running, err := a.StartBackup("")
	if err != nil {
		t.Fatal(err)
	}
	expectFailure(t, 1, []string{"concurrent backup job is not supported: existent job " + strconv.FormatUint(running, 10), "one backup job at a time"}, f.minio.SecretKey, nil, backup()...)
	if err := a.WaitJob(ctx, running); err != nil {
		t.Fatal(err)
	}

	// A follower whose leader does not answer is explained.
	a.Close()
	b.Close()
	ghost := closedAddr(t)
	resign, err := f.sim.Campaign(ctx, f.cli, ghost, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer resign()
	c := startMeta(t, f, 10, false)
	time.Sleep(300 * time.Millisecond)
	expectFailure(t, 1, []string{"is a follower", ghost, "RW_META_ADDR"}, f.minio.SecretKey, nil, backup("--meta-addr", c.URL())...)
}
