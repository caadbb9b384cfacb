// Package chaos runs a campaign against the rwsnap binary: random sequences
// of concurrent backup, delete, prune, copy, verify and restore on fs:// and
// on MinIO behind the fault proxy, with random kill -9 (at named crash
// points and at random moments), S3 faults and etcd leader changes on
// 3-member embedded etcd clusters. After every step it checks the
// invariants: every manifest entry verifies, no snapshot whose command
// exited 0 is missing, no object an entry references is missing, no
// manifest is ever torn (also polled during each step), and a restored etcd
// equals exactly one snapshot.
//
// `make test` runs a short fixed-seed campaign; `make chaos` a long one:
//
//	go test ./e2e/chaos -run TestChaos -v -args -chaos.seed=42 -chaos.steps=300 -chaos.duration=20m
package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/internal/testinfra/faultproxy"
	"github.com/rwsnap/rwsnap/internal/testinfra/testminio"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/restore"
	"github.com/rwsnap/rwsnap/rwsim"
)

var (
	seedFlag     = flag.Int64("chaos.seed", 1, "random seed of the campaign (the same seed replays the same sequence of steps and faults; timing still varies)")
	stepsFlag    = flag.Int("chaos.steps", 20, "number of steps")
	durationFlag = flag.Duration("chaos.duration", 60*time.Second, "stop starting steps after this long")
	binFlag      = flag.String("chaos.bin", "", "run this rwsnap binary (e.g. a release, or an older build to compare) instead of building ../../cmd/rwsnap")
)

var rwsnapBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "rwsnap-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rwsnapBin = filepath.Join(dir, "rwsnap")
	if *binFlag != "" {
		rwsnapBin = *binFlag
	} else {
		build := exec.Command("go", "build", "-o", rwsnapBin, "../../cmd/rwsnap")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build rwsnap:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Crash points per command (internal/faultpoint), hit by RWSNAP_CRASH_AT.
var crashPoints = map[string][]string{
	"backup":  {"backup.after-id", "backup.before-upload", "metasnap.after-snapshot-upload", "metasnap.before-manifest-write", "metasnap.after-manifest-write"},
	"delete":  {"metasnap.before-manifest-write", "metasnap.after-manifest-write", "metasnap.delete.after-manifest"},
	"prune":   {"metasnap.before-manifest-write", "metasnap.after-manifest-write", "metasnap.delete.after-manifest"},
	"copy":    {"metasnap.after-snapshot-upload", "metasnap.before-manifest-write", "metasnap.after-manifest-write"},
	"orphans": {},
	"verify":  {},
	"restore": {"restore.before-claim", "restore.after-marker", "restore.after-batch#1", "restore.after-batch#2", "restore.before-checkpoint", "restore.after-checkpoint", "restore.before-readback", "restore.during-readback", "restore.before-marker-removal"},
}

// loc is a backup location: its CLI flags (through the fault proxy for
// MinIO), its fault-free flags and storage for the checks, and what must
// be there.
type loc struct {
	name       string
	args       []string
	directArgs []string
	direct     *metasnap.Storage
	must       map[uint64]bool // ids whose backup or copy exited 0, not since targeted by a delete or prune
	manifestID uint64
}

type opStats struct{ ok, failed, killed int }

type campaign struct {
	t          *testing.T
	rng        *rand.Rand
	src, dst   *embedetcd.Cluster
	srcCli     *clientv3.Client
	dstCli     *clientv3.Client
	srcEPs     string
	dstEPs     string
	minio      *testminio.Server
	proxy      *faultproxy.Proxy
	sim        *rwsim.Cluster
	restoreURL string
	restoreHS  objstore.Store
	locs       []*loc // fs, minio
	copyDst    *loc
	revs       map[uint64]int64 // snapshot id -> source etcd revision (backups that exited 0)

	mu         sync.Mutex
	ops        map[string]*opStats
	steps      int
	crashKills int
	timedKills int
	leaderMove int
	memberStop int
	checks     int
	polls      int
	restoresEq int
	violations []string
}

func (c *campaign) violation(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := fmt.Sprintf("step %d: ", c.steps) + fmt.Sprintf(format, args...)
	c.violations = append(c.violations, v)
	c.t.Log("VIOLATION " + v)
}

type outcome struct {
	code           int
	stdout, stderr string
	killed         bool
}

func (o outcome) String() string {
	return fmt.Sprintf("exit %d (killed %v)\nstdout: %s\nstderr: %s", o.code, o.killed, o.stdout, o.stderr)
}

// run runs rwsnap; crash names a crash point, killAfter > 0 sends SIGKILL
// from outside after that long.
func (c *campaign) run(op, crash string, killAfter time.Duration, args ...string) outcome {
	return c.runEnv(op, nil, crash, killAfter, args...)
}

func (c *campaign) runEnv(op string, env []string, crash string, killAfter time.Duration, args ...string) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rwsnapBin, args...)
	cmd.Env = append(os.Environ(), env...)
	if crash != "" {
		cmd.Env = append(cmd.Env, faultpoint.Env+"="+crash)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start rwsnap: %v", err)
	}
	if killAfter > 0 {
		timer := time.AfterFunc(killAfter, func() { _ = cmd.Process.Kill() })
		defer timer.Stop()
	}
	err := cmd.Wait()
	o := outcome{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		c.violation("%s hung for 3 minutes: %s %v", op, strings.Join(args, " "), o)
		o.code = -1
	case err == nil:
	case errors.As(err, &ee):
		o.code = ee.ExitCode()
		o.killed = o.code == -1
	default:
		c.t.Fatalf("run rwsnap: %v", err)
	}
	if o.code != 0 {
		last := strings.TrimSpace(o.stderr)
		if i := strings.LastIndex(last, "\n"); i >= 0 {
			last = last[i+1:]
		}
		c.t.Logf("step %d: %s exit %d (killed %v, crash point %q, kill after %s): %s", c.steps, op, o.code, o.killed, crash, killAfter, objstore.RedactText(last))
	}
	c.mu.Lock()
	st := c.ops[op]
	if st == nil {
		st = &opStats{}
		c.ops[op] = st
	}
	switch {
	case o.killed:
		st.killed++
		if crash != "" {
			c.crashKills++
		} else {
			c.timedKills++
		}
	case o.code == 0:
		st.ok++
	default:
		st.failed++
	}
	c.mu.Unlock()
	return o
}

// faults picks the kill of one command: a crash point, a SIGKILL at a
// random moment, or none.
func (c *campaign) faults(op string) (string, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.rng.Intn(100)
	switch pts := crashPoints[op]; {
	case r < 25 && len(pts) > 0:
		return pts[c.rng.Intn(len(pts))], 0
	case r < 40:
		return "", time.Duration(50+c.rng.Intn(400)) * time.Millisecond
	}
	return "", 0
}

func (c *campaign) intn(n int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rng.Intn(n)
}

func TestChaos(t *testing.T) {
	ctx := context.Background()
	c := &campaign{t: t, rng: rand.New(rand.NewSource(*seedFlag)), ops: map[string]*opStats{}, revs: map[uint64]int64{}}
	c.src = etcdtest.StartT(t, embedetcd.Config{Members: 3})
	c.srcCli = etcdtest.ClientT(t, c.src)
	c.srcEPs = strings.Join(c.src.Endpoints(), ",")
	c.dst = etcdtest.StartT(t, embedetcd.Config{Members: 3})
	c.dstCli = etcdtest.ClientT(t, c.dst)
	c.dstEPs = strings.Join(c.dst.Endpoints(), ",")
	c.minio = testminio.Start(t)
	for _, b := range []string{"hummock001", "chaos", "restored"} {
		c.minio.CreateBucket(t, b)
	}
	hs, err := objstore.Open(ctx, c.minio.URL("hummock001"))
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	c.sim, err = rwsim.Seed(ctx, c.srcCli, hs, rwsim.Options{Seed: *seedFlag, StateStore: "hummock+" + c.minio.URL("hummock001"), Tables: 4, FragmentSize: 2048})
	if err != nil {
		t.Fatal(err)
	}
	c.restoreURL = c.minio.URL("restored")
	if c.restoreHS, err = objstore.Open(ctx, c.restoreURL); err != nil {
		t.Fatal(err)
	}
	defer c.restoreHS.Close()
	c.proxy, err = faultproxy.Start(c.minio.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer c.proxy.Close()
	newLoc := func(name, url, proxied string) *loc {
		st, err := objstore.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return &loc{name: name, must: map[uint64]bool{}, direct: metasnap.NewStorage(st, "backup"),
			args:       []string{"--backup-storage-url", proxied, "--backup-storage-directory", "backup"},
			directArgs: []string{"--backup-storage-url", url, "--backup-storage-directory", "backup"}}
	}
	fsURL := "fs://" + t.TempDir()
	c.locs = []*loc{newLoc("fs", fsURL, fsURL), newLoc("minio", c.minio.URL("chaos"), strings.Replace(c.minio.URL("chaos"), c.minio.Endpoint, c.proxy.Addr(), 1))}
	copyURL := "fs://" + t.TempDir()
	c.copyDst = newLoc("copy-target", copyURL, copyURL)

	// Every location starts with a snapshot, fault-free.
	for _, l := range c.locs {
		c.backup(l, "", 0)
		if len(l.must) != 1 {
			t.Fatalf("the first backup into %s failed", l.name)
		}
	}
	c.copy(c.locs[0], "", 0)
	c.check("setup")

	start := time.Now()
	for c.steps = 1; c.steps <= *stepsFlag && time.Since(start) < *durationFlag; c.steps++ {
		if err := c.sim.Advance(ctx); err != nil {
			t.Fatal(err)
		}
		c.step(ctx)
	}
	c.steps--
	c.report(time.Since(start))
	if len(c.violations) > 0 {
		t.Errorf("%d invariant violations (seed %d):\n%s", len(c.violations), *seedFlag, strings.Join(c.violations, "\n"))
	}
}

// step runs one random step: a restore (alone, so the newest snapshot it
// reads is known) or one to three concurrent commands, under random
// faults, then checks every invariant.
func (c *campaign) step(ctx context.Context) {
	restart := c.leaderFaults(ctx)
	c.s3Faults()
	stop := c.pollManifests()
	what := ""
	if c.intn(100) < 20 {
		what = "restore"
		c.restoreStep(ctx)
	} else {
		n := 1 + c.intn(3)
		var wg sync.WaitGroup
		var names []string
		for range n {
			l := c.locs[c.intn(len(c.locs))]
			op := c.pickOp(l)
			names = append(names, op+"@"+l.name)
			crash, kill := c.faults(op)
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch op {
				case "backup":
					c.backup(l, crash, kill)
				case "delete":
					c.delete(l, crash, kill)
				case "prune":
					c.prune(l, crash, kill)
				case "copy":
					c.copy(l, crash, kill)
				case "orphans":
					// With no minimum age, only the pending markers of
					// running backups keep their objects from being taken
					// for orphans.
					c.run("orphans", crash, kill, c.cmd(l.args, "meta", "prune", "--keep-last", "1000", "--orphans", "--orphans-min-age", "0s", "-q")...)
				case "verify":
					c.run("verify", crash, kill, c.cmd(l.args, "meta", "verify-meta-snapshot", "--all", "-o", "json", "-q")...)
				}
			}()
		}
		wg.Wait()
		what = strings.Join(names, " ")
	}
	stop()
	c.proxy.Clear()
	restart()
	c.check(what)
}

func (c *campaign) pickOp(l *loc) string {
	m, _, err := l.direct.ReadManifest(context.Background())
	if err == nil && len(m.SnapshotMetadata) > 30 {
		return "prune"
	}
	switch r := c.intn(10); {
	case r < 4:
		return "backup"
	case r < 6:
		return "delete"
	case r < 7:
		return "prune"
	case r < 8:
		return "copy"
	case r < 9:
		return "orphans"
	default:
		return "verify"
	}
}

func (c *campaign) cmd(locArgs []string, args ...string) []string {
	return append(append(args, "--etcd-endpoints", c.srcEPs), locArgs...)
}

func (c *campaign) backup(l *loc, crash string, kill time.Duration) {
	o := c.run("backup", crash, kill, c.cmd(l.args, "meta", "backup-meta", "-o", "json", "-q")...)
	if o.code != 0 {
		return
	}
	var out struct {
		ID       uint64 `json:"id"`
		Revision int64  `json:"revision"`
	}
	if err := json.Unmarshal([]byte(o.stdout), &out); err != nil || out.ID == 0 {
		c.violation("backup-meta exited 0 without its JSON result: %v\n%s", err, o)
		return
	}
	c.mu.Lock()
	c.revs[out.ID] = out.Revision
	l.must[out.ID] = true
	c.mu.Unlock()
}

// forget marks ids a delete or prune may have removed (whatever its exit).
func (c *campaign) forget(l *loc, ids ...uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		delete(l.must, id)
	}
}

func (c *campaign) delete(l *loc, crash string, kill time.Duration) {
	m, _, err := l.direct.ReadManifest(context.Background())
	if err != nil || len(m.SnapshotMetadata) < 2 {
		return
	}
	ids := m.IDs()
	id := ids[c.intn(len(ids))]
	c.forget(l, id)
	c.run("delete", crash, kill, c.cmd(l.args, "meta", "delete-meta-snapshots", fmt.Sprint(id), "-q")...)
}

func (c *campaign) prune(l *loc, crash string, kill time.Duration) {
	m, _, err := l.direct.ReadManifest(context.Background())
	if err != nil {
		return
	}
	// The newest three (and any concurrent backup, newer still) are kept;
	// any other may go.
	ids := m.IDs()
	slices.Sort(ids)
	if len(ids) > 3 {
		c.forget(l, ids[:len(ids)-3]...)
	}
	o := c.run("prune", crash, kill, c.cmd(l.args, "meta", "prune", "--keep-last", "3", "-o", "json", "-q")...)
	if o.code != 0 {
		return
	}
	var out struct {
		Deleted []uint64 `json:"deleted"`
	}
	if err := json.Unmarshal([]byte(o.stdout), &out); err != nil {
		c.violation("prune exited 0 without its JSON result: %v\n%s", err, o)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range out.Deleted {
		if l.must[id] {
			c.violation("prune --keep-last 3 deleted snapshot %d, one of the newest three when it started", id)
		}
	}
}

func (c *campaign) copy(l *loc, crash string, kill time.Duration) {
	o := c.run("copy", crash, kill, c.cmd(l.args, "meta", "copy-meta-snapshots", "--all", "--to-url", c.copyDst.directArgs[1], "--to-directory", "backup", "-o", "json", "-q")...)
	if o.code != 0 {
		return
	}
	var out metasnap.CopyResult
	if err := json.Unmarshal([]byte(o.stdout), &out); err != nil {
		c.violation("copy exited 0 without its JSON result: %v\n%s", err, o)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range append(out.Copied, out.Present...) {
		c.copyDst.must[id] = true
	}
}

// s3Faults arms the fault proxy in front of the MinIO location for a step.
func (c *campaign) s3Faults() {
	rules := []faultproxy.Rule{
		{Name: "503", Action: faultproxy.Status, Times: 2},
		{Name: "500 on PUT", Method: "PUT", Action: faultproxy.Status, Code: 500},
		{Name: "reset", Action: faultproxy.Reset},
		{Name: "lost manifest answer", Method: "PUT", Path: "manifest.json", Action: faultproxy.DropResponse},
		{Name: "lost snapshot answer", Method: "PUT", Path: ".snapshot", Action: faultproxy.DropResponse},
		{Name: "truncated GET", Method: "GET", Action: faultproxy.Truncate},
		{Name: "short snapshot", Method: "GET", Path: ".snapshot", Action: faultproxy.ShortBody},
		{Name: "delay", Action: faultproxy.Delay, Delay: 300 * time.Millisecond, Times: 3},
	}
	for range c.intn(3) {
		r := rules[c.intn(len(rules))]
		r.Skip = c.intn(4)
		c.proxy.Add(r)
	}
}

// leaderFaults moves the leader of the source or target etcd, or stops
// it for the step; the returned func restarts a stopped member.
func (c *campaign) leaderFaults(ctx context.Context) func() {
	r := c.intn(100)
	cl, cli := c.src, c.srcCli
	if c.intn(2) == 0 {
		cl, cli = c.dst, c.dstCli
	}
	switch {
	case r < 25:
		if err := moveLeader(ctx, cl, cli); err != nil {
			c.t.Logf("move leader: %v", err)
			return func() {}
		}
		c.leaderMove++
	case r < 35:
		i, err := leaderIndex(ctx, cl, cli)
		if err != nil {
			c.t.Logf("find leader: %v", err)
			return func() {}
		}
		if err := cl.StopMember(i); err != nil {
			c.t.Fatalf("stop etcd member %d: %v", i, err)
		}
		c.memberStop++
		return func() {
			if err := cl.StartMember(ctx, i); err != nil {
				c.t.Fatalf("restart etcd member %d: %v", i, err)
			}
		}
	}
	return func() {}
}

func leaderIndex(ctx context.Context, cl *embedetcd.Cluster, cli *clientv3.Client) (int, error) {
	for i := range cl.Members() {
		if !cl.MemberRunning(i) {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := cli.Status(sctx, cl.MemberEndpoint(i))
		cancel()
		if err == nil && st.Header.MemberId == st.Leader {
			return i, nil
		}
	}
	return -1, errors.New("no etcd leader")
}

// moveLeader hands leadership to another member (etcd's MoveLeader, sent
// to the leader).
func moveLeader(ctx context.Context, cl *embedetcd.Cluster, cli *clientv3.Client) error {
	li, err := leaderIndex(ctx, cl, cli)
	if err != nil {
		return err
	}
	var to uint64
	for i := range cl.Members() {
		if i == li || !cl.MemberRunning(i) {
			continue
		}
		st, err := cli.Status(ctx, cl.MemberEndpoint(i))
		if err == nil {
			to = st.Header.MemberId
			break
		}
	}
	if to == 0 {
		return errors.New("no follower to move the leader to")
	}
	lc, err := clientv3.New(clientv3.Config{Endpoints: []string{cl.MemberEndpoint(li)}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer lc.Close()
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = lc.MoveLeader(mctx, to)
	return err
}

// pollManifests reads every manifest over and over while a step runs: a
// reader must never see a torn one.
func (c *campaign) pollManifests() func() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, l := range append(slices.Clone(c.locs), c.copyDst) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, _, err := l.direct.ReadManifest(ctx); err != nil && ctx.Err() == nil {
					c.violation("a reader saw a bad manifest of %s during the step: %v", l.name, err)
					return
				}
				c.mu.Lock()
				c.polls++
				c.mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// check verifies every invariant on every location, fault-free.
func (c *campaign) check(what string) {
	ctx := context.Background()
	for _, l := range append(slices.Clone(c.locs), c.copyDst) {
		c.checks++
		m, _, err := l.direct.ReadManifest(ctx)
		if err != nil {
			c.violation("after %s: the manifest of %s is unreadable (torn?): %v", what, l.name, err)
			continue
		}
		if m.ManifestID < l.manifestID {
			c.violation("after %s: manifest_id of %s went back from %d to %d", what, l.name, l.manifestID, m.ManifestID)
		}
		l.manifestID = m.ManifestID
		for id := range l.must {
			if m.Find(id) == nil {
				c.violation("after %s: snapshot %d, whose command exited 0, is missing from %s (it lists %v)", what, id, l.name, m.IDs())
			}
		}
		for _, e := range m.SnapshotMetadata {
			if _, err := l.direct.Store.Stat(ctx, l.direct.SnapshotKey(e.ID)); err != nil {
				c.violation("after %s: the object of snapshot %d is missing from %s: %v", what, e.ID, l.name, err)
			}
		}
		if len(m.SnapshotMetadata) == 0 {
			continue
		}
		o := c.run("check-verify", "", 0, c.cmd(l.directArgs, "meta", "verify-meta-snapshot", "--all", "-o", "json", "-q")...)
		var rep metasnap.VerifyReport
		if err := json.Unmarshal([]byte(o.stdout), &rep); o.code != 0 || err != nil || !rep.OK() || len(rep.Snapshots) != len(m.SnapshotMetadata) {
			c.violation("after %s: verify --all of %s: %s", what, l.name, o)
		}
	}
}

// restoreStep restores one or two (racing) snapshots into the target etcd
// under faults, completes whatever was interrupted by rerunning the
// restore its marker names, and checks that the target equals exactly the
// snapshot that won.
func (c *campaign) restoreStep(ctx context.Context) {
	l := c.locs[c.intn(len(c.locs))]
	m, _, err := l.direct.ReadManifest(ctx)
	if err != nil {
		return // check reports it
	}
	var cands []uint64
	for _, e := range m.SnapshotMetadata {
		if _, ok := c.revs[e.ID]; ok {
			cands = append(cands, e.ID)
		}
	}
	if len(cands) == 0 {
		return
	}
	dir := fmt.Sprintf("hummock_r%d", c.steps)
	args := func(id uint64, locArgs []string) []string {
		return append([]string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(id), "--etcd-endpoints", c.dstEPs,
			"--hummock-storage-url", c.restoreURL, "--hummock-storage-directory", dir,
			"--overwrite-hummock-storage-endpoint", "--overwrite-backup-storage-url", c.restoreURL, "--overwrite-backup-storage-directory", "backup_r", "-q"}, locArgs...)
	}
	racers := []uint64{cands[c.intn(len(cands))]}
	if c.intn(3) == 0 {
		racers = append(racers, cands[c.intn(len(cands))])
	}
	// Racers are held just before their claim, so that both have passed
	// the emptiness check when they race for the marker.
	var hold []string
	if len(racers) == 2 {
		hold = []string{faultpoint.PauseEnv + "=restore.before-claim=300ms"}
	}
	res := make([]outcome, len(racers))
	var wg sync.WaitGroup
	for i, id := range racers {
		crash, kill := c.faults("restore")
		if kill > 0 && hold != nil {
			kill += 300 * time.Millisecond
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = c.runEnv("restore", hold, crash, kill, args(id, l.args)...)
		}()
	}
	wg.Wait()
	winners := 0
	var done uint64
	for i, r := range res {
		if r.code == 0 {
			winners++
			done = racers[i]
		} else if !r.killed && len(racers) == 2 && r.code != 1 {
			c.violation("a losing restore exited %d, not 1: %s", r.code, r)
		}
	}
	if winners > 1 {
		c.violation("two racing restores (snapshots %v) both exited 0", racers)
	}
	c.proxy.Clear()
	// Complete an interrupted restore: rerun what its marker names.
	for try := 0; try < 4; try++ {
		resp, err := c.dstCli.Get(ctx, restore.MarkerKey)
		if err != nil {
			c.t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			break
		}
		var mk struct {
			SnapshotID uint64 `json:"snapshot_id"`
		}
		_ = json.Unmarshal(resp.Kvs[0].Value, &mk)
		if o := c.run("restore-rerun", "", 0, args(mk.SnapshotID, l.directArgs)...); o.code == 0 {
			done = mk.SnapshotID
			winners++
		} else if try == 3 {
			c.violation("the rerun of an interrupted restore of snapshot %d failed 4 times: %s", mk.SnapshotID, o)
		}
	}
	got := dump(ctx, c.t, c.dstCli)
	switch {
	case len(got) == 0 && winners == 0:
		// Every racer stopped before its claim: nothing was written.
	case done == 0:
		// Killed after the marker's removal: complete, with no exit 0.
		matched := false
		for _, id := range racers {
			if diff := diffKV(got, c.expected(ctx, l, m, id, dir)); diff == "" {
				matched, done = true, id
			}
		}
		if !matched {
			c.violation("the target holds %d keys, equal to none of the snapshots %v", len(got), racers)
		}
	default:
		if diff := diffKV(got, c.expected(ctx, l, m, done, dir)); diff != "" {
			c.violation("the target after restoring snapshot %d differs from it:\n%s", done, diff)
		}
	}
	if done != 0 {
		c.mu.Lock()
		c.restoresEq++
		c.mu.Unlock()
		b, _, err := c.restoreHS.Get(ctx, hummock.CheckpointPath(dir))
		if err != nil {
			c.violation("restore of snapshot %d: no checkpoint at %s: %v", done, dir, err)
		} else if cp, err := hummock.DecodeCheckpoint(b); err != nil || cp.GetVersion().GetId() != m.Find(done).HummockVersionID {
			c.violation("restore of snapshot %d: checkpoint %s holds version %d, want %d (%v)", done, dir, cp.GetVersion().GetId(), m.Find(done).HummockVersionID, err)
		}
	}
	// Wipe the target for the next restore.
	if _, err := c.dstCli.Delete(ctx, "\x00", clientv3.WithFromKey()); err != nil {
		c.t.Fatal(err)
	}
}

// snapshotCFs are what a v1.x restore writes (besides cf/cluster_id).
var snapshotCFs = []string{"default/", "cf/hummock_7/", "cf/hummock_6/", "cf/table_fragments/", "cf/user_info/",
	"cf/catalog_database/", "cf/catalog_schema/", "cf/catalog_table/", "cf/catalog_index/", "cf/catalog_sink/",
	"cf/catalog_source/", "cf/catalog_view/", "cf/catalog_function/", "cf/catalog_connection/", "cf/catalog_subscription/",
	"cf/system_params/"}

// expected is what RisingWave's restore of snapshot id writes, from the
// source etcd at the snapshot's revision, with default/ (the id
// generators) from the newest snapshot of the manifest, and the params the
// overwrite flags set.
func (c *campaign) expected(ctx context.Context, l *loc, m *metasnap.Manifest, id uint64, dir string) map[string]string {
	want := map[string]string{}
	read := func(rev int64, prefix string) {
		resp, err := c.srcCli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
		if err != nil {
			c.t.Fatal(err)
		}
		for _, kv := range resp.Kvs {
			want[string(kv.Key)] = string(kv.Value)
		}
	}
	rev := c.revs[id]
	for _, cf := range snapshotCFs[1:] {
		read(rev, cf)
	}
	resp, err := c.srcCli.Get(ctx, "cf/cluster_id", clientv3.WithRev(rev))
	if err != nil || len(resp.Kvs) != 1 {
		c.t.Fatalf("cluster id: %v", err)
	}
	want["cf/cluster_id"] = string(resp.Kvs[0].Value)
	newest := slices.Max(m.IDs())
	if r, ok := c.revs[newest]; ok {
		read(r, "default/")
	} else {
		// A backup killed after its manifest write: no revision known;
		// its default cf is in its (verified) object.
		s, _, err := l.direct.Load(ctx, newest)
		if err != nil {
			c.t.Fatalf("newest snapshot %d: %v", newest, err)
		}
		for _, kv := range s.Metadata.DefaultCF {
			want[string(metastore.EtcdKey(metastore.CFDefault, kv.Key))] = string(kv.Value)
		}
	}
	for k, v := range map[string]string{"state_store": "hummock+" + c.restoreURL, "data_directory": dir,
		"backup_storage_url": c.restoreURL, "backup_storage_directory": "backup_r"} {
		want["cf/system_params/"+k] = v
	}
	return want
}

func dump(ctx context.Context, t *testing.T, cli *clientv3.Client) map[string]string {
	resp, err := cli.Get(ctx, "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}

func diffKV(got, want map[string]string) string {
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
	if len(problems) > 8 {
		problems = append(problems[:8], fmt.Sprintf("... %d more", len(problems)-8))
	}
	return strings.Join(problems, "\n")
}

// report prints the campaign's figures.
func (c *campaign) report(took time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos campaign: seed %d, %d steps in %s\n", *seedFlag, c.steps, took.Round(time.Second))
	names := make([]string, 0, len(c.ops))
	for n := range c.ops {
		names = append(names, n)
	}
	sort.Strings(names)
	total := 0
	for _, n := range names {
		s := c.ops[n]
		total += s.ok + s.failed + s.killed
		fmt.Fprintf(&b, "  %-14s ok %4d  failed %4d  killed %4d\n", n, s.ok, s.failed, s.killed)
	}
	s3 := len(c.proxy.Faults())
	fmt.Fprintf(&b, "  commands run: %d\n", total)
	fmt.Fprintf(&b, "  faults injected: %d (kill -9 at a crash point %d, kill -9 at a random moment %d, S3 faults %d, etcd leader moves %d, etcd leaders stopped %d)\n",
		c.crashKills+c.timedKills+s3+c.leaderMove+c.memberStop, c.crashKills, c.timedKills, s3, c.leaderMove, c.memberStop)
	fmt.Fprintf(&b, "  invariant checks: %d location checks after steps, %d manifest reads during steps, %d restored targets compared\n", c.checks, c.polls, c.restoresEq)
	fmt.Fprintf(&b, "  violations: %d\n", len(c.violations))
	c.t.Log(b.String())
	fmt.Print(b.String())
}
