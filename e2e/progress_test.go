package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/internal/testinfra/pty"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/rwsim"
)

// runOnTerminal runs rwsnap with its stderr on a pseudo-terminal, as a
// person at a terminal does, and returns what the terminal received
// (stdout is a pipe, as in `rwsnap ... -o json > result.json`).
func runOnTerminal(t *testing.T, env []string, args ...string) (r result, term string) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rwsnapBin, args...)
	cmd.Env = append(cmd.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(master) // EIO once the process is gone
		got <- b
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	r.stdout = out.String()
	term = string(<-got)
	r.stderr = term
	return r, term
}

// progressLine is one drawn state of a bar with a known total.
var progressLine = regexp.MustCompile(`^(\w[\w ]*): (\d+)/(\d+) (\w+) \((\d+)%\)(, [\d.]+ [KMG]?i?B)?, \d+ \w+/s(, ETA \S+)?$`)

type drawn struct {
	done, total, pct int
	eta              bool
}

// bars returns the states of bar label drawn on the terminal, in order.
func bars(t *testing.T, term, label string) []drawn {
	t.Helper()
	var out []drawn
	for _, l := range strings.FieldsFunc(strings.ReplaceAll(term, "\x1b[K", ""), func(r rune) bool { return r == '\r' || r == '\n' }) {
		m := progressLine.FindStringSubmatch(l)
		if m == nil || m[1] != label {
			continue
		}
		n := func(s string) int { v, _ := strconv.Atoi(s); return v }
		out = append(out, drawn{n(m[2]), n(m[3]), n(m[5]), m[7] != ""})
	}
	return out
}

// checkBar: the bar was drawn while the work ran (a state short of the
// total) and at its end; every state is within the total, never goes back,
// shows its percentage and, short of the total, an ETA; the last is the
// total, which is what the command reports it did.
func checkBar(t *testing.T, term, label string, want int) {
	t.Helper()
	ds := bars(t, term, label)
	if len(ds) < 2 {
		t.Fatalf("%q drawn %d times on the terminal, want during and at the end:\n%q", label, len(ds), term)
	}
	for i, d := range ds {
		if d.total != want || d.done > d.total || d.pct != d.done*100/d.total || (i > 0 && d.done < ds[i-1].done) || d.eta != (d.done < d.total) {
			t.Errorf("%s: drawn state %d of %d is %+v (total %d):\n%q", label, i, len(ds), d, want, term)
		}
	}
	if ds[0].done >= want {
		t.Errorf("%s: first drawn at %d of %d: never while working", label, ds[0].done, want)
	}
	if last := ds[len(ds)-1]; last.done != want {
		t.Errorf("%s: last drawn at %d, the command did %d", label, last.done, want)
	}
}

// checkRecordsOwnLines: every log record begins a line of the terminal,
// never after a bar drawn on it.
func checkRecordsOwnLines(t *testing.T, term string) {
	t.Helper()
	for _, l := range strings.Split(term, "\n") {
		if i := strings.Index(l, "time="); i > 0 && !strings.HasSuffix(l[:i], "\r\x1b[K") {
			t.Errorf("a log record shares a line with a bar: %q", l)
		}
	}
}

// TestProgressOnTerminal: backup-meta (both etcd read paths) and
// restore-meta draw their progress on a terminal, correct while the keys
// stream and at the end; nothing is drawn with -q, with JSON logs (stderr
// holds JSON records only), or when stderr is not a terminal.
func TestProgressOnTerminal(t *testing.T) {
	// Enough keys for several pages, chunks and batches.
	f := newFixture(t, rwsim.Options{Seed: 69, ExtraKeys: 6000})
	var id uint64
	forEachReadPath(t, func(t *testing.T) {
		// Held before the table list: the bar is drawn (at most 5 times a
		// second) as that list streams in, short of the total.
		hold := faultpoint.PauseEnv + "=backup.list." + metastore.CFTable + "=300ms"
		r, term := runOnTerminal(t, []string{metastore.RangeModeEnv + "=paged", hold}, append([]string{"meta", "backup-meta", "-o", "json"}, f.etcdArgs()...)...)
		if r.code != 0 {
			t.Fatalf("backup-meta: %s", r)
		}
		var out struct {
			ID   uint64 `json:"id"`
			Keys int    `json:"keys"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Keys < 6000 {
			t.Fatalf("backup result %+v (%v):\n%s", out, err, r)
		}
		checkBar(t, term, "backup", out.Keys)
		checkRecordsOwnLines(t, term)
		id = out.ID
	})
	if id == 0 {
		t.Fatal("no backup")
	}

	b := etcdtest.StartT(t, embedetcd.Config{})
	// Each batch held after it is written: later batches are drawn.
	r, term := runOnTerminal(t, []string{faultpoint.PauseEnv + "=restore.after-batch=250ms"}, append(f.restoreArgs(id, strings.Join(b.Endpoints(), ",")), "-o", "json")...)
	if r.code != 0 {
		t.Fatalf("restore-meta: %s", r)
	}
	var res struct {
		Keys int `json:"keys"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Keys < 6000 {
		t.Fatalf("restore result %+v (%v):\n%s", res, err, r)
	}
	checkBar(t, term, "restore", res.Keys)
	checkRecordsOwnLines(t, term)

	backup := append([]string{"meta", "backup-meta", "-o", "json"}, f.etcdArgs()...)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"quiet", append(slices.Clone(backup), "-q")},
		{"json logs", append(slices.Clone(backup), "--log-format", "json")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, term := runOnTerminal(t, nil, tc.args...)
			if r.code != 0 {
				t.Fatalf("%s", r)
			}
			if strings.ContainsAny(term, "\x1b") || len(bars(t, term, "backup")) > 0 || len(bars(t, term, "read etcd")) > 0 {
				t.Fatalf("progress drawn:\n%q", term)
			}
			if tc.name == "json logs" {
				r.stderr = strings.ReplaceAll(term, "\r\n", "\n") // the terminal's own line ends
				jsonRecords(t, tc.name, r)
			}
		})
	}
	t.Run("stderr not a terminal", func(t *testing.T) {
		r := mustRun(t, nil, backup...)
		if strings.ContainsAny(r.stderr, "\r\x1b") {
			t.Fatalf("progress drawn into a pipe:\n%q", r.stderr)
		}
	})
}
