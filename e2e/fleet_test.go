package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/rwsim"
)

// blackhole accepts connections and never answers: a hanging etcd.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// fleetConfig writes a config file with clusters a and b (real etcd and
// MinIO each) and c, whose etcd hangs.
func fleetConfig(t *testing.T, a, b *fixture, hanging string, mode os.FileMode) string {
	t.Helper()
	cfg := fmt.Sprintf(`clusters:
  a:
    etcd: {endpoints: [%s]}
    repository: a-backups
    schedule: {every: 1h, keep: {last: 5}, remarks: fleet a}
  b:
    etcd: {endpoints: [%s]}
    schedule: {every: 1h, keep: {last: 5}, retries: 0}
  c:
    etcd: {endpoints: [%s]}
    schedule: {every: 1h, retries: 0}
repositories:
  a-backups: {url: %q, directory: hummock_001/backup}
`, a.endpoints, b.endpoints, hanging, a.bucketURL)
	p := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(p, []byte(cfg), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
	return p
}

// TestFleetSchedule: one daemon runs several clusters' jobs from a config
// file, each with its own retention and a cluster label on its metrics;
// a cluster whose etcd hangs blocks no other.
func TestFleetSchedule(t *testing.T) {
	a := newFixture(t, rwsim.Options{Seed: 51})
	b := newFixture(t, rwsim.Options{Seed: 52})
	hang := blackhole(t)

	// The repository URL holds MinIO credentials: only a private file
	// may hold them inline.
	public := fleetConfig(t, a, b, hang, 0o644)
	expectFailure(t, 2, []string{"repositories.a-backups has credentials inline", "chmod 600"}, a.minio.SecretKey, nil,
		"schedule", "--config", public, "--once")

	cfg := fleetConfig(t, a, b, hang, 0o600)
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rwsnapBin, "schedule", "--config", cfg, "--metrics-addr", addr, "-q")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Both healthy clusters finish their first run while c still hangs
	// (its dial waits on a connection that never answers).
	rd := bufio.NewReader(stdout)
	seen := map[string]bool{}
	for !seen["a"] || !seen["b"] {
		line, err := rd.ReadString('\n')
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("result lines ended (%v); seen %v; stderr:\n%s", err, seen, errb.String())
		}
		for _, n := range []string{"a", "b"} {
			if strings.HasPrefix(line, "cluster "+n+": run 1: backup job succeeded: snapshot ") {
				seen[n] = true
			}
		}
		if strings.HasPrefix(line, "cluster c: ") {
			t.Errorf("the hanging cluster reported a run: %q", line)
		}
	}
	for _, n := range []string{"a", "b"} {
		if v := scrape(addr, fmt.Sprintf(`rwsnap_backup_success_total{cluster=%q}`, n)); v != 1 {
			t.Errorf("cluster %s: success metric %v", n, v)
		}
	}
	if v := scrape(addr, `rwsnap_backup_success_total{cluster="c"}`); v != 0 {
		t.Errorf("cluster c: success metric %v", v)
	}
	// Each cluster's snapshot went to its own location, with its remarks.
	if m := manifestNow(t, a.minioLoc()); len(m.SnapshotMetadata) != 1 || *m.SnapshotMetadata[0].Remarks != "fleet a" {
		t.Errorf("cluster a's location: %+v", m.SnapshotMetadata)
	}
	if m := manifestNow(t, b.minioLoc()); len(m.SnapshotMetadata) != 1 {
		t.Errorf("cluster b's location: %+v", m.SnapshotMetadata)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Errorf("SIGTERM: %v\n%s", err, errb.String())
	}
	if strings.Contains(errb.String(), a.minio.SecretKey) {
		t.Errorf("secret in the log:\n%s", errb.String())
	}
}
