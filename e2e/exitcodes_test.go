package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/rwsim"
)

// TestSignalExitCodes: a daemon stopped by SIGTERM exits 143 and by Ctrl-C
// (SIGINT) 130, after its graceful stop, as shells and Kubernetes expect.
func TestSignalExitCodes(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 31})
	for _, tt := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGTERM, 143}, {syscall.SIGINT, 130}} {
		cmd := exec.Command(rwsnapBin, append([]string{"schedule", "--every", "1h", "-q"}, f.etcdArgs()...)...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errb strings.Builder
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The first run's result line says the daemon is in its wait.
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "run 1: backup job succeeded: snapshot ") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("first result line %q (%v); stderr:\n%s", line, err, errb.String())
		}
		cmd.Process.Signal(tt.sig)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err = <-done:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			t.Fatalf("%v: the daemon did not stop", tt.sig)
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tt.code {
			t.Errorf("%v: %v, want exit %d; stderr:\n%s", tt.sig, err, tt.code, errb.String())
		}
	}
}

// TestScheduleOnceResultLine: --once prints what it did on stdout, as a
// line for people or a JSON object with -o json.
func TestScheduleOnceResultLine(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 32})
	r := mustRun(t, nil, append([]string{"schedule", "--once", "--keep-last", "1", "-q"}, f.etcdArgs()...)...)
	if !strings.HasPrefix(r.stdout, "run 1: backup job succeeded: snapshot ") || !strings.Contains(r.stdout, "1 snapshots kept, 0 pruned") {
		t.Fatalf("--once result line: %s", r)
	}
	r = mustRun(t, nil, append([]string{"schedule", "--once", "--keep-last", "1", "-q", "-o", "json"}, f.etcdArgs()...)...)
	var out struct {
		OK         bool   `json:"ok"`
		SnapshotID uint64 `json:"snapshot_id"`
		Pruned     int    `json:"pruned"`
		Snapshots  int    `json:"snapshots"`
		Error      string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || !out.OK || out.SnapshotID == 0 || out.Pruned != 1 || out.Snapshots != 1 {
		t.Fatalf("--once -o json: %+v %v\n%s", out, err, r)
	}
	// A failing run says so on stdout too, and exits 1.
	r = run(t, nil, "schedule", "--once", "--retries", "0", "-q", "--etcd-endpoints", f.endpoints, "--hummock-storage-url", "fs:///nonexistent-rwsnap")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "run 1 failed after 1 attempt(s): ") {
		t.Fatalf("failing --once: %s", r)
	}
}

// TestPruneDryRunWithoutMetaNode: a live leader lease whose meta node does
// not answer. A dry run only reads, so like list it falls back to reading
// the location directly; a real prune still refuses.
func TestPruneDryRunWithoutMetaNode(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 33})
	for range 3 {
		mustRun(t, nil, append([]string{"meta", "backup-meta", "-q"}, f.etcdArgs()...)...)
	}
	resign, err := f.sim.Campaign(context.Background(), f.cli, closedLoopback(t), 30)
	if err != nil {
		t.Fatal(err)
	}
	defer resign()
	r := mustRun(t, nil, append([]string{"meta", "prune", "--keep-last", "1", "--dry-run"}, f.etcdArgs()...)...)
	if !strings.Contains(r.stdout, "dry run: 2 of 3 snapshots would be deleted") {
		t.Fatalf("prune --dry-run without a reachable meta node:\n%s", r)
	}
	if r := run(t, nil, append([]string{"meta", "prune", "--keep-last", "1"}, f.etcdArgs()...)...); r.code == 0 {
		t.Fatalf("a real prune went ahead without the live meta node:\n%s", r)
	}
	if m := manifestNow(t, f.minioLoc()); len(m.SnapshotMetadata) != 3 {
		t.Fatalf("%d snapshots left", len(m.SnapshotMetadata))
	}
}
