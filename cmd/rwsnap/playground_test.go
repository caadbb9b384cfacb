package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
}
