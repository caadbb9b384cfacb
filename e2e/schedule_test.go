package e2e

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/rwsim"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrape reads one metric from /metrics; -1 if unavailable.
func scrape(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// TestScheduleTakesAndPrunes runs the daemon against real etcd and MinIO,
// scrapes its metrics over HTTP while it works, and checks retention.
func TestScheduleTakesAndPrunes(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 31})
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rwsnapBin, append([]string{"schedule", "--every", "1s", "--max-jobs", "4", "--keep-last", "2",
		"--metrics-addr", addr, "--retry-backoff", "100ms"}, f.etcdArgs()...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Metrics change while it runs.
	deadline := time.Now().Add(time.Minute)
	for scrape(addr, "rwsnap_backup_success_total") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no second success in a minute:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ts := scrape(addr, "rwsnap_backup_last_success_timestamp_seconds"); ts < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success timestamp %v", ts)
	}
	if b := scrape(addr, "rwsnap_backup_bytes"); b < 1000 {
		t.Errorf("rwsnap_backup_bytes %v", b)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("schedule exited with %v:\n%s", err, out.String())
	}
	m, _, err := metasnap.NewStorage(f.hummock, "hummock_001/backup").ReadManifest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.SnapshotMetadata) != 2 {
		t.Fatalf("retention --keep-last 2 left %d snapshots:\n%s", len(m.SnapshotMetadata), out.String())
	}
	mustRun(t, nil, append([]string{"meta", "verify-meta-snapshot", "--all"}, f.etcdArgs()...)...)
}

// TestScheduleSIGTERMMidJob stops the daemon while a job is held between
// reading etcd and uploading: it finishes the job (or, past --stop-timeout,
// abandons it) and the manifest stays valid either way.
func TestScheduleSIGTERMMidJob(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 32})
	for _, tc := range []struct {
		name        string
		stopTimeout string
		wantStored  int
	}{
		{"job finishes", "1m", 1},
		{"job abandoned", "50ms", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := metasnap.NewStorage(f.hummock, "hummock_001/backup")
			before, _, _ := st.ReadManifest(context.Background())
			cmd := exec.Command(rwsnapBin, append([]string{"schedule", "--every", "1h", "--stop-timeout", tc.stopTimeout}, f.etcdArgs()...)...)
			cmd.Env = append(os.Environ(), faultpoint.PauseEnv+"=backup.before-upload=2s")
			pr, pw := io.Pipe()
			cmd.Stdout, cmd.Stderr = pw, pw
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Wait until the job has its snapshot id: it is then mid-job.
			var log bytes.Buffer
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "allocated snapshot id") {
					break
				}
			}
			go io.Copy(&log, pr)
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			pw.Close()
			// A stop by SIGTERM exits 143 (128+15) once the job is settled,
			// as every rwsnap command does; anything else is a failure.
			if code := cmd.ProcessState.ExitCode(); code != 143 {
				t.Fatalf("exit %d (%v), want 143 after SIGTERM\n%s", code, err, log.String())
			}
			after, _, err := st.ReadManifest(context.Background())
			if err != nil {
				t.Fatalf("manifest unreadable after SIGTERM: %v", err)
			}
			if got := len(after.SnapshotMetadata) - len(before.SnapshotMetadata); got != tc.wantStored {
				t.Fatalf("%d snapshots stored, want %d\n%s", got, tc.wantStored, log.String())
			}
			if len(after.SnapshotMetadata) > 0 {
				mustRun(t, nil, append([]string{"meta", "verify-meta-snapshot", "--all"}, f.etcdArgs()...)...)
			}
		})
	}
}
