package objstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/objstore/objstoretest"
)

// TestMain doubles as the worker of TestFSCrossProcessCAS.
func TestMain(m *testing.M) {
	if dir := os.Getenv("RWSNAP_FS_CAS_WORKER"); dir != "" {
		n, _ := strconv.Atoi(os.Getenv("RWSNAP_FS_CAS_N"))
		if err := casWorker(dir, n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func openFS(t *testing.T, dir string) objstore.Store {
	t.Helper()
	s, err := objstore.Open(context.Background(), "fs://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestFSConformance(t *testing.T) {
	objstoretest.RunConformance(t, func(t *testing.T) objstore.Store {
		// A root that does not exist yet: the first write creates it.
		return openFS(t, filepath.Join(t.TempDir(), "root"))
	})
}

func casWorker(dir string, n int) error {
	ctx := context.Background()
	s, err := objstore.Open(ctx, "fs://"+dir)
	if err != nil {
		return err
	}
	for range n {
		if err := objstoretest.Increment(ctx, s, "backup/counter"); err != nil {
			return err
		}
	}
	return nil
}

// TestFSCrossProcessCAS: compare-and-swap must hold between processes, not
// only goroutines: 4 processes x 3 goroutines increment one counter.
func TestFSCrossProcessCAS(t *testing.T) {
	dir := t.TempDir()
	s := openFS(t, dir)
	ctx := context.Background()
	if _, err := s.PutIf(ctx, "backup/counter", []byte("0"), ""); err != nil {
		t.Fatal(err)
	}
	const procs, each = 4, 40
	var cmds []*exec.Cmd
	for range procs {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "RWSNAP_FS_CAS_WORKER="+dir, "RWSNAP_FS_CAS_N="+strconv.Itoa(each))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	// This process joins in too.
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- casWorker(dir, each) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("worker process: %v", err)
		}
	}
	got, _, err := s.Get(ctx, "backup/counter")
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa((procs + 3) * each); string(got) != want {
		t.Fatalf("counter = %s, want %s: an update was lost", got, want)
	}
}

// Same-size overwrites in quick succession must still get distinct tags:
// mtime alone comes from a coarse kernel clock.
func TestFSRapidSameSizeOverwrite(t *testing.T) {
	s := openFS(t, t.TempDir())
	ctx := context.Background()
	seen := map[string]bool{}
	for i := range 300 {
		data := []byte(fmt.Sprintf("%04d", i))
		if err := s.Put(ctx, "k", data); err != nil {
			t.Fatal(err)
		}
		_, info, err := s.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if seen[info.ETag] {
			t.Fatalf("write %d reused ETag %q", i, info.ETag)
		}
		seen[info.ETag] = true
	}
	// And a stale tag from one write ago never matches.
	_, old, _ := s.Get(ctx, "k")
	if err := s.Put(ctx, "k", []byte("zzzz")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutIf(ctx, "k", []byte("yyyy"), old.ETag); !errors.Is(err, objstore.ErrPreconditionFailed) {
		t.Fatalf("PutIf with a stale tag: %v", err)
	}
}

func TestFSHidesOwnFiles(t *testing.T) {
	dir := t.TempDir()
	s := openFS(t, dir)
	ctx := context.Background()
	if err := s.Put(ctx, "backup/manifest.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	// Leftovers of a crashed writer.
	for _, name := range []string{"backup/.manifest.json.123.part", "backup/.rwsnap.lock", "backup/x.lock"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range got {
		keys = append(keys, o.Key)
	}
	if want := []string{"backup/manifest.json"}; !slices.Equal(keys, want) {
		t.Fatalf("List = %q, want %q", keys, want)
	}
	// Prefixes cannot climb out of the root.
	for _, prefix := range []string{"../", "backup/../", "/backup/", "backup//"} {
		if got, err := s.List(ctx, prefix); err != nil || len(got) != 0 {
			t.Errorf("List(%q) = %v, %v; want nothing", prefix, got, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "backup"))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".part") && e.Name() != ".manifest.json.123.part" {
			t.Errorf("write left a temp file %s", e.Name())
		}
	}
}

func TestFSRejectsBadKeys(t *testing.T) {
	s := openFS(t, t.TempDir())
	ctx := context.Background()
	for _, key := range []string{"", "/abs", "a//b", "a/../b", "./a", "a/", "x.part", "d/y.lock"} {
		if err := s.Put(ctx, key, []byte("x")); err == nil {
			t.Errorf("Put(%q) succeeded", key)
		}
	}
}

func TestFSRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := context.Background()
	s, err := objstore.Open(ctx, "fs://data/backups")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "backup/1.snapshot", []byte("snap")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "data", "backups", "backup", "1.snapshot"))
	if err != nil || string(b) != "snap" {
		t.Fatalf("file = %q, %v", b, err)
	}
}

// Each version's mtime (part of its tag) is strictly after the one it
// replaces, even when the clock says otherwise (a step back, or a coarse
// filesystem clock): emulated by dating the current file an hour ahead.
func TestFSMtimeStrictlyIncreases(t *testing.T) {
	dir := t.TempDir()
	s := openFS(t, dir)
	ctx := context.Background()
	if err := s.Put(ctx, "m", []byte("aaaa")); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "m"), future, future); err != nil {
		t.Fatal(err)
	}
	before, err := s.Stat(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	tag, err := s.PutIf(ctx, "m", []byte("bbbb"), before.ETag)
	if err != nil {
		t.Fatal(err)
	}
	after, err := s.Stat(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime.After(before.ModTime) || after.ETag == before.ETag || after.ETag != tag {
		t.Fatalf("before %+v, after %+v (PutIf tag %q): want a strictly newer mtime and a new tag", before, after, tag)
	}
}

// TestFSObjectMode: objects are 0640 (owner rw, group r), not CreateTemp's
// 0600, for every way of writing one.
func TestFSObjectMode(t *testing.T) {
	dir := t.TempDir()
	s, err := objstore.Open(context.Background(), "fs://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Put(ctx, "a/plain", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutIf(ctx, "a/cas", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	if err := objstore.PutChunks(ctx, s, "a/chunks", [][]byte{[]byte("x"), []byte("y")}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a/plain", "a/cas", "a/chunks"} {
		fi, err := os.Stat(filepath.Join(dir, k))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != objstore.ObjectMode {
			t.Errorf("%s: mode %04o, want %04o", k, fi.Mode().Perm(), objstore.ObjectMode)
		}
	}
}
