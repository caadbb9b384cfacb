package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/rwsim"
)

// The snapshot read path spools etcd's database to $TMPDIR. Where there is
// no room for it (refused before the stream is asked for, or a disk that
// fills up while it spools), the backup reads by ranges instead, writes
// the same bytes, says so in its debug log, and leaves nothing behind.

// spaceRead is one in-process backup read with RWSNAP_ETCD_READ=auto on a
// server that looks older than etcd 3.7 (where auto picks the snapshot).
type spaceRead struct {
	bytes []byte
	rev   int64
	path  string
	log   string
}

func readWithLog(t *testing.T, f *fixture, mode string) spaceRead {
	t.Helper()
	t.Setenv(metastore.ReadModeEnv, mode)
	t.Setenv(metastore.RangeModeEnv, "paged")
	var log, out bytes.Buffer
	opts := metasnap.BackupOptions{Etcd: f.cli, Hummock: f.hummock, DataDir: "hummock_001",
		Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	rev, path, err := metasnap.ReadSnapshot(context.Background(), opts, 4343, &out)
	if err != nil {
		t.Fatalf("RWSNAP_ETCD_READ=%s: %v\n%s", mode, err, log.String())
	}
	return spaceRead{out.Bytes(), rev, path, log.String()}
}

// probe makes the snapshot path's free-space pre-check see free bytes (or
// fail with err) until the test ends.
func probe(t *testing.T, free int64, err error) {
	t.Helper()
	was := metastore.FreeSpace
	metastore.FreeSpace = func(string) (int64, error) { return free, err }
	t.Cleanup(func() { metastore.FreeSpace = was })
}

// wantRangeFallback checks that got fell back to ranges for the reason
// named by why, with the bytes and revision of the range read ref.
func wantRangeFallback(t *testing.T, got, ref spaceRead, why ...string) {
	t.Helper()
	if got.path != "range" {
		t.Fatalf("read by %s, want the fallback to ranges:\n%s", got.path, got.log)
	}
	for _, w := range append([]string{"etcd read path: ranges at one revision"}, why...) {
		if !strings.Contains(got.log, w) {
			t.Fatalf("the debug log does not say %q:\n%s", w, got.log)
		}
	}
	if got.rev != ref.rev {
		t.Fatalf("revision %d, the range read's %d: the store changed under the test", got.rev, ref.rev)
	}
	if !bytes.Equal(got.bytes, ref.bytes) {
		t.Fatalf("the fallback wrote %d bytes, the range read %d, and they differ", len(got.bytes), len(ref.bytes))
	}
}

// TestSnapshotPathFreeSpaceProbe drives the pre-check with the free-space
// probe replaced: too little room and a failed probe both read ranges,
// and enough room reads the snapshot (so the probe is what decided).
func TestSnapshotPathFreeSpaceProbe(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 47})
	writeHistory(t, f)
	ref := readWithLog(t, f, "range")
	t.Run("too little room", func(t *testing.T) {
		probe(t, 1<<20, nil)
		got := readWithLog(t, f, "auto")
		wantRangeFallback(t, got, ref, "1 MiB free", "needs", "set TMPDIR to a larger disk", os.TempDir())
	})
	t.Run("probe fails", func(t *testing.T) {
		probe(t, 0, errors.New("statfs broke"))
		wantRangeFallback(t, readWithLog(t, f, "auto"), ref, "statfs broke")
	})
	t.Run("enough room", func(t *testing.T) {
		probe(t, 1<<40, nil)
		got := readWithLog(t, f, "auto")
		if got.path != "snapshot" || !strings.Contains(got.log, "etcd read path: etcd's snapshot stream") {
			t.Fatalf("with room to spool, read by %s:\n%s", got.path, got.log)
		}
		if got.rev != ref.rev || !bytes.Equal(got.bytes, ref.bytes) {
			t.Fatalf("the snapshot read differs from the range read (revisions %d, %d)", got.rev, ref.rev)
		}
	})
}

// On etcd 3.7 auto reads by RangeStream below metastore.SnapshotReadOver
// and through the snapshot stream from it on, with the same bytes.
func TestAutoReadPathBySize(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 48})
	writeHistory(t, f)
	ref := readWithLog(t, f, "range")
	read := func(over int64) spaceRead {
		was := metastore.SnapshotReadOver
		metastore.SnapshotReadOver = over
		defer func() { metastore.SnapshotReadOver = was }()
		t.Setenv(metastore.ReadModeEnv, "auto")
		t.Setenv(metastore.RangeModeEnv, "auto")
		var log, out bytes.Buffer
		opts := metasnap.BackupOptions{Etcd: f.cli, Hummock: f.hummock, DataDir: "hummock_001",
			Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
		rev, path, err := metasnap.ReadSnapshot(context.Background(), opts, 4343, &out)
		if err != nil {
			t.Fatalf("over %d: %v\n%s", over, err, log.String())
		}
		return spaceRead{out.Bytes(), rev, path, log.String()}
	}
	small := read(1 << 50)
	if small.path != "range" || !strings.Contains(small.log, "the server streams ranges (etcd 3.7+)") {
		t.Fatalf("a store below the threshold read by %s:\n%s", small.path, small.log)
	}
	large := read(1)
	if large.path != "snapshot" || !strings.Contains(large.log, "but holds at least") || !strings.Contains(large.log, "etcd read path: etcd's snapshot stream") {
		t.Fatalf("a store past the threshold read by %s:\n%s", large.path, large.log)
	}
	for _, got := range []spaceRead{small, large} {
		if got.rev != ref.rev || !bytes.Equal(got.bytes, ref.bytes) {
			t.Fatalf("%s read differs from the range read (revisions %d, %d)", got.path, got.rev, ref.rev)
		}
	}
}

// mountTmpfs mounts a tmpfs of size bytes for the test (rwsnap's CI runs
// as root, as does the dev container).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)); err != nil {
		t.Fatalf("mount a tmpfs of %d bytes on %s: %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// wantEmpty checks that dir holds no file and no file holds its space (an
// unlinked spool still open would).
func wantEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) > 0 {
		t.Fatalf("%s holds %d entries after the read, e.g. %s", dir, len(ents), ents[0].Name())
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Bfree != st.Blocks {
		t.Fatalf("%s has %d of %d blocks in use after the read: a temporary file is still open", dir, st.Blocks-st.Bfree, st.Blocks)
	}
}

// TestSnapshotPathOnSmallFilesystem points TMPDIR at a real tmpfs smaller
// than etcd's database: the pre-check refuses it, and with the pre-check
// passed (the probe lies, as a disk filled by someone else would) the
// spool hits ENOSPC mid-stream. Both back up by ranges, byte for byte the
// range read of the same revision, and leave the tmpfs empty.
func TestSnapshotPathOnSmallFilesystem(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 48})
	writeHistory(t, f)
	ctx := context.Background()
	for i := range 256 { // ~4 MiB more database, outside the backed-up cfs
		if _, err := f.cli.Put(ctx, fmt.Sprintf("bulk/%04d", i), strings.Repeat(string(rune('a'+i%26)), 16<<10)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := f.cli.Status(ctx, f.cli.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	size := st.DbSize / 4 &^ 4095
	if size < 64<<10 {
		t.Fatalf("etcd's database is only %d bytes", st.DbSize)
	}
	dir := mountTmpfs(t, size)
	ref := readWithLog(t, f, "range")
	t.Setenv("TMPDIR", dir)

	t.Run("pre-check refuses", func(t *testing.T) {
		got := readWithLog(t, f, "auto")
		wantRangeFallback(t, got, ref, fmt.Sprintf("%s has %d MiB free", dir, size>>20), "set TMPDIR to a larger disk")
		wantEmpty(t, dir)
	})
	t.Run("ENOSPC while spooling", func(t *testing.T) {
		probe(t, 1<<40, nil)
		got := readWithLog(t, f, "auto")
		wantRangeFallback(t, got, ref, "etcd snapshot stream failed; reading by ranges instead", "no space left on device", "its disk is full", dir)
		wantEmpty(t, dir)
	})
	t.Run("backup-meta", func(t *testing.T) {
		// The whole command: it succeeds by ranges, says why, and the
		// stored snapshot is etcd at its revision.
		r := mustRun(t, []string{"TMPDIR=" + dir, metastore.ReadModeEnv + "=auto", metastore.RangeModeEnv + "=paged"},
			"meta", "backup-meta", "-o", "json", "--log-level", "debug", "--etcd-endpoints", f.endpoints)
		for _, w := range []string{"etcd read path: ranges at one revision", dir, "set TMPDIR to a larger disk"} {
			if !strings.Contains(r.stderr, w) {
				t.Fatalf("the debug log does not say %q:\n%s", w, r)
			}
		}
		var out struct {
			ID       uint64 `json:"id"`
			Revision int64  `json:"revision"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("%v:\n%s", err, r)
		}
		checkSnapshotMatchesEtcd(t, f, out.ID, out.Revision)
		wantEmpty(t, dir)
	})
}
