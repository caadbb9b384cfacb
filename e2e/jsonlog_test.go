package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/rwsim"
)

// jsonRecords parses every stderr line of r as one JSON log record and
// fails the test on a line that is not one.
func jsonRecords(t *testing.T, what string, r result) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i, line := range strings.Split(strings.TrimRight(r.stderr, "\n"), "\n") {
		if line == "" && r.stderr == "" {
			break
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] == nil || rec["level"] == nil {
			t.Errorf("%s: stderr line %d under --log-format json is not a JSON log record: %q", what, i+1, line)
			continue
		}
		out = append(out, rec)
	}
	return out
}

// TestRestoreUnderJSONLogs: with -o json and --log-format json, every line
// a restore writes on stderr is a JSON record: the plan is one record with
// its fields (the secret in a moved cluster's URLs redacted), then one
// saying it writes, -q included (the plan is shown before the first write
// whatever the level, as in text). stdout is the result.
func TestRestoreUnderJSONLogs(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 68})
	id, _ := backupID(t, f)
	f.minio.CreateBucket(t, "hummock002")
	newURL := f.minio.URL("hummock002")
	for _, quiet := range []bool{false, true} {
		t.Run(fmt.Sprintf("quiet=%v", quiet), func(t *testing.T) {
			b := etcdtest.StartT(t, embedetcd.Config{})
			args := append(f.restoreArgs(id, strings.Join(b.Endpoints(), ",")), "-o", "json", "--log-format", "json",
				"--overwrite-hummock-storage-endpoint", "--overwrite-backup-storage-url", newURL, "--overwrite-backup-storage-directory", "backup_002")
			if quiet {
				args = append(args, "-q")
			}
			r := mustRun(t, nil, args...)
			if strings.Contains(r.stdout+r.stderr, f.minio.SecretKey) {
				t.Fatalf("the secret key is in the output:\n%s", r)
			}
			var res map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("stdout is not the JSON result: %v\n%s", err, r)
			}
			recs := jsonRecords(t, "restore-meta", r)
			var plan map[string]any
			planAt, writeAt := -1, -1
			for i, rec := range recs {
				switch rec["msg"] {
				case "restore plan":
					plan, planAt = rec, i
				case "every check passed: writing":
					writeAt = i
				}
			}
			if plan == nil || writeAt < planAt {
				t.Fatalf("no plan record before the one saying it writes:\n%s", r)
			}
			if plan["snapshot_id"] != float64(id) || plan["keys"] != res["keys"] || plan["keys"].(float64) <= 0 || plan["bytes"] != res["bytes"] {
				t.Errorf("the plan record's snapshot, keys and bytes (%v %v %v) are not the result's (%v %v %v)",
					plan["snapshot_id"], plan["keys"], plan["bytes"], res["snapshot_id"], res["keys"], res["bytes"])
			}
			groups, _ := plan["groups"].([]any)
			total := 0.0
			for _, g := range groups {
				total += g.(map[string]any)["keys"].(float64)
			}
			if len(groups) == 0 || total != plan["keys"] {
				t.Errorf("the plan's groups %v do not add up to its %v keys", plan["groups"], plan["keys"])
			}
			params, _ := plan["param_changes"].([]any)
			found := false
			for _, p := range params {
				pc := p.(map[string]any)
				if pc["name"] == "backup_storage_url" {
					found = true
					if after, _ := pc["after"].(string); !strings.Contains(after, "hummock002") || !strings.Contains(after, f.minio.AccessKey) {
						t.Errorf("backup_storage_url's new value, redacted, is %q", after)
					}
				}
			}
			if !found {
				t.Errorf("the plan record has no backup_storage_url change: %v", plan["param_changes"])
			}
			if s, _ := plan["hummock_checkpoint"].(string); !strings.Contains(s, "checkpoint") {
				t.Errorf("the plan record's hummock checkpoint is %q", s)
			}
		})
	}
}

// TestSecondSignalUnderJSONLogs: a command stopped at once by a second
// Ctrl-C (its graceful stop held up) says so as a JSON record carrying
// the exit code, under JSON logs; in text, as the line it always was.
func TestSecondSignalUnderJSONLogs(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 70})
	for _, logFormat := range []string{"json", "text"} {
		t.Run(logFormat, func(t *testing.T) {
			// Held right after its id is allocated, where the first signal's
			// cancellation is not seen for a while.
			cmd := exec.Command(rwsnapBin, append([]string{"meta", "backup-meta", "--log-format", logFormat}, f.etcdArgs()...)...)
			cmd.Env = append(os.Environ(), faultpoint.PauseEnv+"=backup.after-id=1m")
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			var lines []string
			br := bufio.NewReader(stderr)
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("stderr ended before the id was allocated (%v):\n%s", err, strings.Join(lines, ""))
				}
				lines = append(lines, l)
				if strings.Contains(l, "allocated snapshot id") {
					break
				}
			}
			// Two signals sent at once may arrive as one (a pending signal
			// is not queued twice): Ctrl-C until it is gone, as a person
			// does.
			restc := make(chan []byte)
			go func() {
				b, _ := io.ReadAll(br)
				restc <- b
			}()
			var rest []byte
		signals:
			for {
				cmd.Process.Signal(os.Interrupt)
				select {
				case rest = <-restc:
					break signals
				case <-time.After(100 * time.Millisecond):
				}
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 {
				t.Fatalf("after two Ctrl-C: %v, want exit 130", err)
			}
			r := result{stderr: strings.Join(lines, "") + string(rest), code: 130}
			if logFormat == "text" {
				if !strings.HasSuffix(r.stderr, "rwsnap: second signal: stopping now\n") {
					t.Fatalf("text stderr:\n%s", r.stderr)
				}
				return
			}
			recs := jsonRecords(t, "backup-meta stopped by two signals", r)
			if last := recs[len(recs)-1]; last["msg"] != "second signal: stopping now" || last["exit_code"] != float64(130) {
				t.Fatalf("the last record is %v", last)
			}
		})
	}
}
