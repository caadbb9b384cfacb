package metaclient_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metaclient"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
	"github.com/rwsnap/rwsnap/rwsim/metanode"
)

func TestParseAddr(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:5690":    "127.0.0.1:5690",
		"127.0.0.1:5690":           "127.0.0.1:5690",
		"http://meta-0.meta:5690/": "meta-0.meta:5690",
		"meta":                     "meta:5690",
		" http://[::1]:15690 ":     "[::1]:15690",
	} {
		got, err := metaclient.ParseAddr(in)
		if err != nil || got != want {
			t.Errorf("ParseAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "https://127.0.0.1:5690", "http://u:p@host:1", "http://host:1/path", ":5690"} {
		if got, err := metaclient.ParseAddr(in); err == nil {
			t.Errorf("ParseAddr(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseAddrs(t *testing.T) {
	got, err := metaclient.ParseAddrs("http://a:1,b:2, http://c")
	if err != nil || strings.Join(got, " ") != "a:1 b:2 c:5690" {
		t.Errorf("list: %v %v", got, err)
	}
	got, err = metaclient.ParseAddrs("load-balance+http://lb:5690")
	if err != nil || len(got) != 1 || got[0] != "lb:5690" {
		t.Errorf("load balance: %v %v", got, err)
	}
	for _, in := range []string{"load-balance+http://a:1,http://b:2", "a:1,,b:2"} {
		if got, err := metaclient.ParseAddrs(in); err == nil {
			t.Errorf("ParseAddrs(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]metaclient.Mode{"": metaclient.ModeAuto, "auto": metaclient.ModeAuto, "Direct": metaclient.ModeDirect, "meta": metaclient.ModeMeta} {
		if got, err := metaclient.ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := metaclient.ParseMode("risectl"); !errors.Is(err, metaclient.ErrUsage) {
		t.Errorf("ParseMode(risectl) = %v, want a usage error", err)
	}
}

type env struct {
	cli     *clientv3.Client
	hummock objstore.Store
	backup  *metasnap.Storage
	loc     metasnap.Locations
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	cli := etcdtest.ClientT(t, etcdtest.StartT(t, embedetcd.Config{}))
	dir := t.TempDir()
	hs, err := objstore.Open(ctx, "fs://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.Close() })
	if _, err := rwsim.Seed(ctx, cli, hs, rwsim.Options{StateStore: "hummock+fs://" + dir, Seed: 5, Tables: 4, FragmentSize: 256}); err != nil {
		t.Fatal(err)
	}
	params, err := metastore.ReadSystemParams(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := metasnap.ResolveLocations(params, metasnap.Overrides{})
	if err != nil || !loc.OwnLocation {
		t.Fatalf("locations %+v %v", loc, err)
	}
	return &env{cli: cli, hummock: hs, backup: metasnap.NewStorage(hs, loc.BackupDir), loc: loc}
}

func (e *env) node(t *testing.T, wait bool) *metanode.Node {
	t.Helper()
	n, err := metanode.Start(context.Background(), metanode.Config{Etcd: e.cli, Hummock: e.hummock, DataDir: e.loc.DataDir, Backup: e.backup, LeaseTTL: 5})
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

func (e *env) direct() *metasnap.Direct {
	return &metasnap.Direct{Opts: metasnap.BackupOptions{Etcd: e.cli, Hummock: e.hummock, DataDir: e.loc.DataDir, Target: e.backup, OwnLocation: e.loc.OwnLocation}}
}

// fakeLeader campaigns for addr (where nothing answers) and keeps it
// leading until the test ends.
func fakeLeader(t *testing.T, cli *clientv3.Client, addr string) {
	t.Helper()
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	if err := concurrency.NewElection(sess, metanode.ElectionKey).Campaign(context.Background(), addr); err != nil {
		t.Fatal(err)
	}
}

// closedAddr is a loopback address where nothing listens.
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

func TestDial(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	leader := e.node(t, true)
	follower := e.node(t, false)

	c, err := metaclient.Dial(ctx, metaclient.DialOptions{Addr: leader.URL()})
	if err != nil || c.Addr() != leader.URL() {
		t.Fatalf("dial the leader: %v, %v", c, err)
	}
	c.Close()
	// Give the follower's campaign time to register its key.
	time.Sleep(200 * time.Millisecond)
	c, err = metaclient.Dial(ctx, metaclient.DialOptions{Addr: follower.Addr()})
	if err != nil || c.Addr() != leader.URL() {
		t.Fatalf("dial a follower: got %v, %v; want to follow to %s", c, err, leader.URL())
	}
	c.Close()

	closed := closedAddr(t)
	_, err = metaclient.Dial(ctx, metaclient.DialOptions{Addr: closed, Source: "RW_META_ADDR", Timeout: 2 * time.Second})
	if !errors.Is(err, metaclient.ErrUnreachable) || !strings.Contains(err.Error(), "tried http://"+closed) || !strings.Contains(err.Error(), "RW_META_ADDR") {
		t.Fatalf("unreachable: %v", err)
	}
	// An address list (risectl's MetaAddressStrategy::List): the first
	// that answers is used, and it leads to the leader.
	c, err = metaclient.Dial(ctx, metaclient.DialOptions{Addr: "http://" + closed + "," + follower.URL()})
	if err != nil || c.Addr() != leader.URL() {
		t.Fatalf("dial a list: got %v, %v; want %s", c, err, leader.URL())
	}
	c.Close()
	closed2 := closedAddr(t)
	_, err = metaclient.Dial(ctx, metaclient.DialOptions{Addr: closed + "," + closed2, Timeout: 2 * time.Second})
	if !errors.Is(err, metaclient.ErrUnreachable) || !strings.Contains(err.Error(), "tried http://"+closed+", http://"+closed2) {
		t.Fatalf("unreachable list: %v", err)
	}

	// A gRPC server that is not a meta node.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()
	_, err = metaclient.Dial(ctx, metaclient.DialOptions{Addr: lis.Addr().String()})
	if !errors.Is(err, metaclient.ErrNotMetaNode) || !strings.Contains(err.Error(), "is this RisingWave v1.x") {
		t.Fatalf("not a meta node: %v", err)
	}
}

// TestDialFollowerOfUnreachableLeader: a follower whose leader does not
// answer is explained, not used.
func TestDialFollowerOfUnreachableLeader(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	ghost := closedAddr(t)
	fakeLeader(t, e.cli, ghost)
	follower := e.node(t, false)
	_, err := metaclient.Dial(ctx, metaclient.DialOptions{Addr: follower.URL(), Timeout: 2 * time.Second})
	if !errors.Is(err, metaclient.ErrFollower) || !strings.Contains(err.Error(), ghost) || !strings.Contains(err.Error(), "RW_META_ADDR") {
		t.Fatalf("follower of an unreachable leader: %v", err)
	}
}

func TestOperator(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	n := e.node(t, true)
	c, err := metaclient.Dial(ctx, metaclient.DialOptions{Addr: n.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	op := &metaclient.Operator{Client: c, Storage: e.backup, Poll: 50 * time.Millisecond}
	n.SetJobDelay(200 * time.Millisecond)
	res, err := op.Backup(ctx, "through the meta")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entry.SSTs) == 0 || res.Bytes == 0 || res.Entry.Remarks == nil || *res.Entry.Remarks != "through the meta" {
		t.Fatalf("result lacks what the stored manifest adds: %+v", res.Entry)
	}
	own, err := n.Backup(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := op.Manifest(ctx)
	if err != nil || len(m.SnapshotMetadata) != 2 {
		t.Fatalf("manifest %v %v", m, err)
	}
	if _, err := op.Delete(ctx, []uint64{own, 77777}); !errors.Is(err, metasnap.ErrSnapshotNotFound) {
		t.Fatalf("delete with an unknown id: %v", err)
	}
	if m := n.Manifest(); len(m.SnapshotMetadata) != 2 {
		t.Fatalf("a refused delete changed the meta's manifest: %v", m.IDs())
	}
	m, err = op.Delete(ctx, []uint64{own})
	if err != nil || len(m.SnapshotMetadata) != 1 || m.SnapshotMetadata[0].ID != res.Entry.ID {
		t.Fatalf("after delete: %v %v", m, err)
	}

	n.FailNextJob("simulated object store outage")
	_, err = op.Backup(ctx, "")
	if !errors.Is(err, metaclient.ErrJobFailed) || !strings.Contains(err.Error(), "simulated object store outage") {
		t.Fatalf("failed job: %v", err)
	}

	n.SetJobDelay(2 * time.Second)
	running, err := n.StartBackup("")
	if err != nil {
		t.Fatal(err)
	}
	_, err = op.Backup(ctx, "")
	if !errors.Is(err, metaclient.ErrConcurrentJob) || !strings.Contains(err.Error(), "concurrent backup job is not supported") {
		t.Fatalf("concurrent job: %v", err)
	}
	if err := n.WaitJob(ctx, running); err != nil {
		t.Fatal(err)
	}
}

func TestChoose(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	choose := func(mode metaclient.Mode, use metaclient.Use, force bool, loc metasnap.Locations) (*metaclient.Choice, error) {
		d := e.direct()
		d.Opts.OwnLocation = loc.OwnLocation
		if loc.BackupURL != e.loc.BackupURL {
			st, err := objstore.Open(ctx, loc.BackupURL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			d.Opts.Target = metasnap.NewStorage(st, loc.BackupDir)
		}
		c, err := metaclient.Choose(ctx, metaclient.ChooseOptions{Mode: mode, Etcd: e.cli, Locations: loc, Direct: d, Force: force, Use: use, DialTimeout: 2 * time.Second})
		if c != nil {
			t.Cleanup(func() { c.Close() })
		}
		return c, err
	}
	// Another location: what it is decides, not the OwnLocation hint.
	other := e.loc
	other.BackupURL, other.OwnLocation = "fs://"+t.TempDir(), true

	// No leader: auto is direct.
	if c, err := choose(metaclient.ModeAuto, metaclient.UseBackup, false, e.loc); err != nil || c.Path != "direct" {
		t.Fatalf("auto without a leader: %+v %v", c, err)
	}
	n := e.node(t, true)
	for _, tc := range []struct {
		name  string
		mode  metaclient.Mode
		use   metaclient.Use
		force bool
		loc   metasnap.Locations
		path  string
		err   error
	}{
		{"auto own", metaclient.ModeAuto, metaclient.UseBackup, false, e.loc, "meta", nil},
		{"auto read", metaclient.ModeAuto, metaclient.UseRead, false, e.loc, "meta", nil},
		{"auto other location", metaclient.ModeAuto, metaclient.UseBackup, false, other, "direct", nil},
		{"auto force", metaclient.ModeAuto, metaclient.UseWrite, true, e.loc, "direct", nil},
		{"direct write", metaclient.ModeDirect, metaclient.UseWrite, false, e.loc, "", metasnap.ErrLiveLeader},
		{"direct read", metaclient.ModeDirect, metaclient.UseRead, false, e.loc, "direct", nil},
		{"direct force", metaclient.ModeDirect, metaclient.UseBackup, true, e.loc, "direct", nil},
		{"meta other location", metaclient.ModeMeta, metaclient.UseWrite, false, other, "", metaclient.ErrUsage},
		{"meta own", metaclient.ModeMeta, metaclient.UseWrite, false, e.loc, "meta", nil},
	} {
		c, err := choose(tc.mode, tc.use, tc.force, tc.loc)
		switch {
		case tc.err != nil && !errors.Is(err, tc.err):
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.err)
		case tc.err == nil && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err == nil && c.Path != tc.path:
			t.Errorf("%s: path %s (%s), want %s", tc.name, c.Path, c.Reason, tc.path)
		case tc.path == "meta" && !strings.Contains(c.Operator.Path(), n.URL()):
			t.Errorf("%s: operator %s, want the node at %s", tc.name, c.Operator.Path(), n.URL())
		}
	}
	// The meta node gone but its lease still live (crash): writes refuse
	// and say what was tried, reads fall back to storage.
	n.Kill()
	_, err := choose(metaclient.ModeAuto, metaclient.UseBackup, false, e.loc)
	if !errors.Is(err, metasnap.ErrLiveLeader) || !errors.Is(err, metaclient.ErrUnreachable) || !strings.Contains(err.Error(), "tried "+n.URL()) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("auto with an unreachable live leader: %v", err)
	}
	if c, err := choose(metaclient.ModeAuto, metaclient.UseRead, false, e.loc); err != nil || c.Path != "direct" {
		t.Fatalf("read with an unreachable live leader: %+v %v", c, err)
	}
}
