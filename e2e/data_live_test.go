package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/rwsim"
)

// listData is each snapshot's data state as list-meta-snapshots -o json
// reports it.
func listData(t *testing.T, f *fixture) map[uint64]string {
	t.Helper()
	var out struct {
		Path      string `json:"path"`
		Snapshots []struct {
			ID   uint64 `json:"id"`
			Data string `json:"data"`
		} `json:"snapshots"`
	}
	r := mustRun(t, nil, append([]string{"meta", "list-meta-snapshots", "-o", "json"}, f.etcdArgs()...)...)
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r)
	}
	states := map[uint64]string{}
	for _, s := range out.Snapshots {
		states[s.ID] = s.Data
	}
	return states
}

// TestDataThroughMetaNode: with a live meta node the snapshot is the meta
// node's (its SSTs pinned by the cluster), the data is copied right after
// it, and the snapshot says "partial" until the copy is complete: a
// backup killed mid-copy leaves a partial snapshot, never a complete one,
// and backup-data finishes it.
func TestDataThroughMetaNode(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 47})
	n := startMeta(t, f, 10, true)

	// Killed after the second object copied: the meta node's snapshot
	// exists, its data copy is partial.
	r := run(t, []string{"RWSNAP_CRASH_AT=datacopy.after-object#2"}, append([]string{"meta", "backup-meta", "--with-data", "--data-parallelism", "1"}, f.etcdArgs()...)...)
	if r.code == 0 {
		t.Fatalf("the crash point was never reached:\n%s", r)
	}
	ids := n.Manifest().IDs()
	if len(ids) != 1 {
		t.Fatalf("the meta node lists %v after the killed backup, want its one snapshot", ids)
	}
	id := ids[0]
	if got := listData(t, f)[id]; got != "partial" {
		t.Fatalf("snapshot %d's data after a kill mid-copy is %q, want partial", id, got)
	}
	if v := run(t, nil, append([]string{"meta", "verify-meta-snapshot", strconv.FormatUint(id, 10), "--check-data"}, f.etcdArgs()...)...); v.code != 1 {
		t.Fatalf("verify --check-data of a partial copy: exit %d, want 1\n%s", v.code, v)
	} else if !strings.Contains(v.stderr, "the data copy of snapshot "+strconv.FormatUint(id, 10)) {
		t.Fatalf("verify's error does not name the partial data copy:\n%s", v)
	}

	// The rerun continues: backup-data completes it, and it verifies byte by byte.
	mustRun(t, nil, append([]string{"meta", "backup-data", strconv.FormatUint(id, 10)}, f.etcdArgs()...)...)
	if got := listData(t, f)[id]; got != "complete" {
		t.Fatalf("snapshot %d's data after backup-data is %q, want complete", id, got)
	}
	mustRun(t, nil, append([]string{"meta", "verify-meta-snapshot", strconv.FormatUint(id, 10), "--check-data", "--read-data"}, f.etcdArgs()...)...)

	// An uninterrupted backup through the meta node ends complete, and
	// says it went through the meta node.
	out := jsonOut(t, mustRun(t, nil, append([]string{"meta", "backup-meta", "--with-data", "-o", "json", "-q"}, f.etcdArgs()...)...))
	if out["path"] != "meta" {
		t.Fatalf("backup-meta --with-data did not go through the live meta node: %v", out)
	}
	second := uint64(out["id"].(float64))
	if n.Manifest().Find(second) == nil {
		t.Fatalf("the meta node's cache lacks snapshot %d", second)
	}
	if got := listData(t, f)[second]; got != "complete" {
		t.Fatalf("snapshot %d's data is %q, want complete", second, got)
	}
}

// TestScheduleWithDataMetrics: the daemon protects what it takes, and its
// /metrics say so (objects and bytes copied, protected bytes, last success).
func TestScheduleWithDataMetrics(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 48})
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rwsnapBin, append([]string{"schedule", "--every", "1s", "--max-jobs", "2", "--with-data",
		"--metrics-addr", addr, "--retry-backoff", "100ms"}, f.etcdArgs()...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	want := len(hummock.ObjectIDs(f.sim.ExpectedVersion()))
	deadline := time.Now().Add(time.Minute)
	for scrape(addr, "rwsnap_data_objects_copied_total") < float64(want) || scrape(addr, "rwsnap_data_last_success_timestamp_seconds") <= 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no data copy in the metrics within a minute (objects %v of %d):\n%s", scrape(addr, "rwsnap_data_objects_copied_total"), want, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b := scrape(addr, "rwsnap_data_bytes_copied_total"); b <= 0 {
		t.Errorf("rwsnap_data_bytes_copied_total %v", b)
	}
	if b := scrape(addr, "rwsnap_data_protected_bytes"); b <= 0 {
		t.Errorf("rwsnap_data_protected_bytes %v", b)
	}
	if v := scrape(addr, "rwsnap_data_failures_total"); v > 0 {
		t.Errorf("rwsnap_data_failures_total %v:\n%s", v, out.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("schedule exited with %v:\n%s", err, out.String())
	}
	states := listData(t, f)
	// --max-jobs counts ticks: a tick that found the previous job still
	// running (a loaded machine) is skipped, and says so.
	taken := 2 - strings.Count(out.String(), "skipping a scheduled backup")
	if len(states) != taken || taken < 1 {
		t.Fatalf("the daemon left %d snapshots, want %d: %v\n%s", len(states), taken, states, out.String())
	}
	for id, s := range states {
		if s != "complete" {
			t.Errorf("snapshot %d's data is %q, want complete", id, s)
		}
	}
}
