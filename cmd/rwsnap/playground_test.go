package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPlayground is `make demo` as a smoke test: the whole walk-through
// must succeed and show each step's result.
func TestPlayground(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"rwsnap", "playground", "--dir", t.TempDir()}, &out, &errb)
	if code != 0 {
		t.Fatalf("playground exited %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{
		"backup job succeeded: job 1001",
		"3 snapshots, manifest_id 3",
		"1003  ok",
		"orders_then",
		"delete meta snapshots succeeded: [1001]",
		"restore succeeded: snapshot 1003",
		"2 snapshots, manifest_id 4",
		"data of snapshot 1003: complete",
		"restore succeeded: snapshot 1003",
		"data: ",
		"hummock_001 -> hummock_003",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("playground output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out.String())
	}
}

// TestPlaygroundV20: the walk-through on a simulated v2.0 cluster (secrets
// in the snapshot, v2.0's params).
func TestPlaygroundV20(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"rwsnap", "playground", "--dir", t.TempDir(), "--rw-version", "2.0"}, &out, &errb)
	if code != 0 {
		t.Fatalf("playground exited %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"simulated RisingWave v2.0 cluster", "restore succeeded: snapshot 1003"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("playground output lacks %q\n%s", want, out.String())
		}
	}
	code = run(context.Background(), []string{"rwsnap", "playground", "--rw-version", "1.8"}, &out, &errb)
	if code != 2 {
		t.Errorf("--rw-version 1.8: exit %d", code)
	}
	// An old line's meta node, named by its exact release.
	out.Reset()
	code = run(context.Background(), []string{"rwsnap", "playground", "--dir", t.TempDir(), "--rw-version", "1.2.0"}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "simulated RisingWave v1.2 cluster") || !strings.Contains(out.String(), "restore succeeded") {
		t.Errorf("--rw-version 1.2.0: exit %d\n%s", code, out.String())
	}
}

// syncBuffer is a bytes.Buffer safe to read while the playground writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPlaygroundCleansUpAndReruns: without --keep nothing it made is left;
// the same --dir works again (after a --keep run too); --keep prints every
// endpoint and an env line that works as printed.
func TestPlaygroundCleansUpAndReruns(t *testing.T) {
	dir := t.TempDir()
	mine := filepath.Join(dir, "mine.txt") // not the playground's: stays
	os.WriteFile(mine, []byte("x"), 0o600)

	// --keep: runs until cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"rwsnap", "playground", "--dir", dir, "--keep"}, &out, &errb) }()
	var env string
	for env == "" {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("playground --keep exited %d early\n%s\n%s", code, out.String(), errb.String())
		case <-time.After(100 * time.Millisecond):
		}
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, "export ") {
				env = strings.TrimPrefix(l, "export ")
			}
		}
	}
	for _, want := range []string{"etcd (meta store):", "meta node:", "frontend (pgwire):", "backup location:", "hummock (state store):"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--keep output lacks %q", want)
		}
	}
	// The env line, as a shell reads it: bash parses it and prints each
	// variable.
	vars := map[string]string{}
	sh, err := exec.Command("bash", "--norc", "-c", "export "+env+"; env").Output()
	if err != nil {
		t.Fatalf("bash cannot read the env line %q: %v", env, err)
	}
	for _, kv := range strings.Split(string(sh), "\n") {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	for _, k := range []string{"RWSNAP_ETCD_ENDPOINTS", "RW_META_ADDR", "RWSNAP_PG_URL"} {
		if vars[k] == "" {
			t.Fatalf("env line %q lacks %s", env, k)
		}
		t.Setenv(k, vars[k])
	}
	var lo, le bytes.Buffer
	if code := run(context.Background(), []string{"rwsnap", "meta", "backup-meta"}, &lo, &le); code != 0 || !strings.Contains(lo.String(), "through the meta node") {
		t.Errorf("backup-meta with the printed env: exit %d\n%s%s", code, lo.String(), le.String())
	}
	lo.Reset()
	if code := run(context.Background(), []string{"rwsnap", "timetravel", "list"}, &lo, &le); code != 0 {
		t.Errorf("timetravel list with the printed env: exit %d\n%s%s", code, lo.String(), le.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("--keep stopped with %d", code)
	}
	for _, k := range []string{"RWSNAP_ETCD_ENDPOINTS", "RW_META_ADDR", "RWSNAP_PG_URL"} {
		os.Unsetenv(k)
	}

	// Again in the same --dir, without --keep: it works, then cleans up.
	var o2, e2 bytes.Buffer
	if code := run(context.Background(), []string{"rwsnap", "playground", "--dir", dir}, &o2, &e2); code != 0 {
		t.Fatalf("rerun in the same --dir exited %d\n%s\n%s", code, o2.String(), e2.String())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "mine.txt" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("left in --dir after the run: %v", names)
	}
}
