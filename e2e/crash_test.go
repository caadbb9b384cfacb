package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/internal/testinfra/faultproxy"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
)

// backupLoc is a backup location as the CLI names it (args) and as the test
// reads it directly (st).
type backupLoc struct {
	name string
	args []string
	st   *metasnap.Storage
}

// minioLoc is the cluster's own backup location (from its params).
func (f *fixture) minioLoc() backupLoc {
	return backupLoc{name: "minio", st: metasnap.NewStorage(f.hummock, "hummock_001/backup")}
}

// fsLoc is a backup location in a fresh local directory.
func fsLoc(t *testing.T) backupLoc {
	t.Helper()
	url := "fs://" + t.TempDir()
	st, err := objstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return backupLoc{name: "fs", args: []string{"--backup-storage-url", url, "--backup-storage-directory", "backup"}, st: metasnap.NewStorage(st, "backup")}
}

func (f *fixture) cmd(loc backupLoc, args ...string) []string {
	return append(append(args, f.etcdArgs()...), loc.args...)
}

// manifestNow reads the manifest directly; a torn manifest fails the test.
func manifestNow(t *testing.T, loc backupLoc) *metasnap.Manifest {
	t.Helper()
	m, _, err := loc.st.ReadManifest(context.Background())
	if err != nil {
		t.Fatalf("manifest of %s: %v", loc.name, err)
	}
	return m
}

// verifyAll runs verify-meta-snapshot --all, which must pass for every
// listed snapshot, and returns its report.
func verifyAll(t *testing.T, f *fixture, loc backupLoc) *metasnap.VerifyReport {
	t.Helper()
	r := run(t, nil, f.cmd(loc, "meta", "verify-meta-snapshot", "--all", "--may-be-new", "-o", "json", "-q")...)
	var rep metasnap.VerifyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("verify output: %v\n%s", err, r)
	}
	if r.code != 0 || !rep.OK() {
		t.Fatalf("verify --all failed:\n%s", r)
	}
	m := manifestNow(t, loc)
	var got []uint64
	for _, s := range rep.Snapshots {
		got = append(got, s.ID)
	}
	if !slices.Equal(got, m.IDs()) {
		t.Fatalf("verify checked %v, the manifest lists %v", got, m.IDs())
	}
	return &rep
}

func wasKilled(t *testing.T, point string, r result) {
	t.Helper()
	if r.code != -1 && r.code != 137 {
		t.Fatalf("not killed at %s (is the point reached?): %s", point, r)
	}
}

// added returns the ids in b and not in a.
func added(a, b []uint64) []uint64 {
	var out []uint64
	for _, id := range b {
		if !slices.Contains(a, id) {
			out = append(out, id)
		}
	}
	return out
}

// crashCase is one crash point and the state it must leave.
type crashCase struct {
	point     string
	newState  bool // the manifest is the new one (else the old one)
	newOrphan bool // verify reports one more orphan object
}

// checkAfterCrash compares the storage after a killed run with before.
func checkAfterCrash(t *testing.T, f *fixture, loc backupLoc, c crashCase, before *metasnap.Manifest, orphansBefore []uint64) *metasnap.Manifest {
	t.Helper()
	after := manifestNow(t, loc)
	switch {
	case !c.newState && (after.ManifestID != before.ManifestID || !slices.Equal(after.IDs(), before.IDs())):
		t.Fatalf("killed at %s: manifest %d %v, want the old one %d %v", c.point, after.ManifestID, after.IDs(), before.ManifestID, before.IDs())
	case c.newState && after.ManifestID != before.ManifestID+1:
		t.Fatalf("killed at %s: manifest_id %d, want the new manifest %d", c.point, after.ManifestID, before.ManifestID+1)
	}
	rep := verifyAll(t, f, loc)
	want := len(orphansBefore)
	if c.newOrphan {
		want++
	}
	if len(rep.Orphans) != want {
		t.Fatalf("killed at %s: orphans %v, had %v, want %d", c.point, rep.Orphans, orphansBefore, want)
	}
	return after
}

// TestBackupKilledAtEveryStep kills backup-meta (SIGKILL) at each crash
// point, on MinIO and on a local directory: the manifest is always the old
// or the new one, every listed snapshot verifies, a snapshot object
// written before the kill is reported as an orphan, and a rerun succeeds;
// on both etcd read paths, leaving no temporary file.
func TestBackupKilledAtEveryStep(t *testing.T) {
	forEachReadPath(t, func(t *testing.T) {
		f := newFixture(t, rwsim.Options{Seed: 21})
		cases := []crashCase{
			{point: "backup.after-id"},
			{point: "backup.before-upload"},
			{point: "metasnap.after-snapshot-upload", newOrphan: true},
			{point: "metasnap.before-manifest-write", newOrphan: true},
			{point: "metasnap.after-manifest-write", newState: true},
		}
		if os.Getenv(metastore.ReadModeEnv) == "snapshot" {
			// Killed with etcd's snapshot spooled and not yet indexed.
			cases = append(cases, crashCase{point: "etcdsnap.spooled"})
		}
		for _, loc := range []backupLoc{f.minioLoc(), fsLoc(t)} {
			t.Run(loc.name, func(t *testing.T) {
				backup := f.cmd(loc, "meta", "backup-meta", "-q")
				mustRun(t, nil, backup...)
				for _, c := range cases {
					before := manifestNow(t, loc)
					orphans := verifyAll(t, f, loc).Orphans
					tmp := t.TempDir()
					wasKilled(t, c.point, run(t, []string{faultpoint.Env + "=" + c.point, "TMPDIR=" + tmp}, backup...))
					// The snapshot read's spool and index are unlinked
					// as they are created: a kill leaves no file behind.
					if left, err := os.ReadDir(tmp); err != nil || len(left) > 0 {
						t.Fatalf("killed at %s: left %v in TMPDIR (%v)", c.point, left, err)
					}
					after := checkAfterCrash(t, f, loc, c, before, orphans)
					mustRun(t, nil, backup...)
					rerun := manifestNow(t, loc)
					if n := len(added(after.IDs(), rerun.IDs())); n != 1 || after.ManifestID+1 != rerun.ManifestID {
						t.Fatalf("rerun after a kill at %s: manifest %v -> %v", c.point, after.IDs(), rerun.IDs())
					}
				}
				final := verifyAll(t, f, loc)
				t.Logf("%s: %d snapshots verified, orphans %v", loc.name, len(final.Snapshots), final.Orphans)
			})
		}
	})
}

// TestDeleteKilledAtEveryStep kills delete-meta-snapshots at each crash
// point: killed before the manifest write, nothing changed and the rerun
// deletes; killed after it, the snapshot is gone from the manifest, its
// object is an orphan verify reports, and the rerun says the id is gone.
func TestDeleteKilledAtEveryStep(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 22})
	cases := []crashCase{
		{point: "metasnap.before-manifest-write"},
		{point: "metasnap.after-manifest-write", newState: true, newOrphan: true},
		{point: "metasnap.delete.after-manifest", newState: true, newOrphan: true},
	}
	for _, loc := range []backupLoc{f.minioLoc(), fsLoc(t)} {
		t.Run(loc.name, func(t *testing.T) {
			backup := f.cmd(loc, "meta", "backup-meta", "-q")
			mustRun(t, nil, backup...) // one snapshot that stays throughout
			for _, c := range cases {
				mustRun(t, nil, backup...)
				before := manifestNow(t, loc)
				victim := before.IDs()[len(before.IDs())-1]
				orphans := verifyAll(t, f, loc).Orphans
				del := f.cmd(loc, "meta", "delete-meta-snapshots", fmt.Sprint(victim))
				wasKilled(t, c.point, run(t, []string{faultpoint.Env + "=" + c.point}, del...))
				after := checkAfterCrash(t, f, loc, c, before, orphans)
				if c.newState {
					if after.Find(victim) != nil {
						t.Fatalf("killed at %s: %d still listed", c.point, victim)
					}
					// Deleted stays deleted; the rerun changes nothing.
					expectFailure(t, 1, []string{fmt.Sprintf("%d not in the manifest", victim), "nothing deleted"}, "", nil, del...)
					continue
				}
				mustRun(t, nil, del...)
				if m := manifestNow(t, loc); m.Find(victim) != nil || len(m.SnapshotMetadata) != len(before.SnapshotMetadata)-1 {
					t.Fatalf("rerun of the delete: %v", m.IDs())
				}
				if rep := verifyAll(t, f, loc); len(rep.Orphans) != len(orphans) {
					t.Fatalf("rerun of the delete left orphans %v", rep.Orphans)
				}
			}
		})
	}
}

// TestManifestRetryKilled: the manifest write lands but its answer is lost
// (the proxy resets the connection); the SDK's retry of the conditional
// PUT fails its precondition, so rwsnap re-reads to retry, and is killed
// right there. The manifest is the new one, nothing is orphaned, and a
// rerun works.
func TestManifestRetryKilled(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 23})
	p, err := faultproxy.Start(f.minio.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	loc := f.minioLoc()
	loc.args = []string{"--backup-storage-url", strings.Replace(f.bucketURL, f.minio.Endpoint, p.Addr(), 1), "--backup-storage-directory", "hummock_001/backup"}
	backup := f.cmd(loc, "meta", "backup-meta", "-q")
	mustRun(t, nil, backup...)
	before := manifestNow(t, loc)
	p.Add(faultproxy.Rule{Name: "lost answer", Method: "PUT", Path: "/manifest.json", Action: faultproxy.DropResponse})
	c := crashCase{point: "metasnap.manifest-retry", newState: true}
	wasKilled(t, c.point, run(t, []string{faultpoint.Env + "=" + c.point}, backup...))
	if p.Hits("lost answer") != 1 {
		t.Fatalf("faults: %v", p.Faults())
	}
	after := checkAfterCrash(t, f, loc, c, before, nil)
	mustRun(t, nil, backup...)
	if m := manifestNow(t, loc); len(m.SnapshotMetadata) != len(after.SnapshotMetadata)+1 {
		t.Fatalf("rerun: %v -> %v", after.IDs(), m.IDs())
	}
}

// TestManifestWriteCutOnFS: on fs:// the manifest is written to a .part
// file and renamed over manifest.json. A write cut off midway (here: the
// file size limit, RLIMIT_FSIZE, makes the write fail partway) leaves the
// old manifest; so does a torn .part file left by a kill during the write.
// Readers and later writers ignore the .part file.
func TestManifestWriteCutOnFS(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		// util-linux is Essential in Debian; never skip the check silently.
		t.Fatalf("prlimit (Debian package util-linux) is needed: %v", err)
	}
	f := newFixture(t, rwsim.Options{Seed: 24})
	loc := fsLoc(t)
	backup := f.cmd(loc, "meta", "backup-meta", "-q")
	for range 3 {
		mustRun(t, nil, backup...)
	}
	before := manifestNow(t, loc)
	dir := filepath.Join(strings.TrimPrefix(loc.args[1], "fs://"), "backup")
	manifestFile := filepath.Join(dir, "manifest.json")
	old, err := os.ReadFile(manifestFile)
	if err != nil {
		t.Fatal(err)
	}
	// The delete writes only the manifest; let a third of it reach the disk.
	del := f.cmd(loc, "meta", "delete-meta-snapshots", fmt.Sprint(before.IDs()[0]))
	limit := fmt.Sprintf("--fsize=%d", len(old)/3)
	r := runCmd(t, nil, prlimit, append([]string{limit, rwsnapBin}, del...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "file too large") {
		t.Fatalf("delete with the manifest write cut off: %s", r)
	}
	if b, _ := os.ReadFile(manifestFile); string(b) != string(old) {
		t.Fatal("a cut-off manifest write changed manifest.json")
	}
	verifyAll(t, f, loc)

	// What a kill during the write leaves: a torn temp file beside the
	// manifest (the fs store's ".manifest.json.*.part" pattern).
	torn := filepath.Join(dir, ".manifest.json.4242.part")
	if err := os.WriteFile(torn, old[:len(old)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if m := manifestNow(t, loc); m.ManifestID != before.ManifestID {
		t.Fatalf("manifest_id %d with a torn .part beside it, want %d", m.ManifestID, before.ManifestID)
	}
	if rep := verifyAll(t, f, loc); len(rep.Orphans) != 0 {
		t.Fatalf("the .part file shows as an orphan: %v", rep.Orphans)
	}
	list := mustRun(t, nil, f.cmd(loc, "meta", "list-meta-snapshots")...)
	if !strings.Contains(list.stdout, fmt.Sprintf("%d snapshots, manifest_id %d", len(before.SnapshotMetadata), before.ManifestID)) {
		t.Fatalf("list with a torn .part:\n%s", list)
	}
	mustRun(t, nil, del...)
	mustRun(t, nil, backup...)
	m := manifestNow(t, loc)
	if m.ManifestID != before.ManifestID+2 || m.Find(before.IDs()[0]) != nil || len(m.SnapshotMetadata) != len(before.SnapshotMetadata) {
		t.Fatalf("after a delete and a backup: manifest_id %d, ids %v", m.ManifestID, m.IDs())
	}
	verifyAll(t, f, loc)
}

// runCmd is run for another program (a wrapper such as prlimit).
func runCmd(t *testing.T, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run %s %v: %v", name, args, err)
	}
	return r
}

// TestBackupKilledBetweenReadAttempts: a gap in the delta log makes the
// read inconsistent, so backup-meta retries it; killed between the two
// attempts, nothing is stored. With the delta back, a rerun succeeds.
func TestBackupKilledBetweenReadAttempts(t *testing.T) {
	forEachReadPath(t, func(t *testing.T) {
		f := newFixture(t, rwsim.Options{Seed: 25})
		ctx := context.Background()
		loc := f.minioLoc()
		backup := f.cmd(loc, "meta", "backup-meta", "-q")
		mustRun(t, nil, backup...)
		key := string(metastore.EtcdKey(metastore.CFHummockDelta, metastore.U64Key(f.sim.ExpectedVersion().GetId()-1)))
		resp, err := f.cli.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("delta %s: %v", key, err)
		}
		if _, err := f.cli.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		before := manifestNow(t, loc)
		c := crashCase{point: "backup.read-retry"}
		wasKilled(t, c.point, run(t, []string{faultpoint.Env + "=" + c.point}, backup...))
		after := checkAfterCrash(t, f, loc, c, before, nil)
		if _, err := f.cli.Put(ctx, key, string(resp.Kvs[0].Value)); err != nil {
			t.Fatal(err)
		}
		mustRun(t, nil, backup...)
		if m := manifestNow(t, loc); len(m.SnapshotMetadata) != len(after.SnapshotMetadata)+1 {
			t.Fatalf("rerun: %v -> %v", after.IDs(), m.IDs())
		}
	})
}
