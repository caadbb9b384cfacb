package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/rwsim"
	"github.com/rwsnap/rwsnap/rwsim/metanode"
	"github.com/rwsnap/rwsnap/rwversion"
)

// startMetaRelease starts a leading simulated meta node of a release.
func startMetaRelease(t *testing.T, f *fixture, release string) *metanode.Node {
	t.Helper()
	n, err := metanode.Start(context.Background(), metanode.Config{
		Etcd: f.cli, Hummock: f.hummock, DataDir: "hummock_001", Backup: f.backupStorage(), LeaseTTL: 10, RWVersion: release,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return n
}

// state is everything a refused command must leave as it was: etcd and
// the backup location's manifest.
func (f *fixture) state(t *testing.T) (map[string]string, []byte) {
	t.Helper()
	b, _, err := f.hummock.Get(context.Background(), f.backupStorage().ManifestKey())
	if err != nil {
		t.Fatal(err)
	}
	return dumpEtcd(t, f.cli), b
}

// TestRWVersionContradictionEveryPath: a --rw-version the cluster
// contradicts is refused (exit 2, saying what the store looks like) before
// any path is chosen and before anything is written: through a live meta
// node, in dry runs, on every command that takes the flag, and with no
// etcd at all, where the meta node's own rw_version entries are the
// evidence. Before, only a direct real backup checked it.
func TestRWVersionContradictionEveryPath(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 41, RWVersion: rwversion.V1_10})
	n := startMetaRelease(t, f, "1.10.2")
	// The meta node writes one entry with rw_version 1.10.2.
	id := jobID(t, mustRun(t, nil, append([]string{"meta", "backup-meta"}, f.etcdArgs()...)...))
	if e := n.Manifest().Find(id); e == nil || e.RWVersion == nil || *e.RWVersion != "1.10.2" {
		t.Fatalf("the meta node's entry: %+v", e)
	}
	etcdBefore, manifestBefore := f.state(t)
	ids := strconv.FormatUint(id, 10)
	dir := t.TempDir()
	loc := []string{"--backup-storage-url", f.bucketURL, "--backup-storage-directory", liveBackupDir}
	cmds := [][]string{
		{"meta", "backup-meta"}, // auto: the meta node path
		{"meta", "backup-meta", "--mode", "meta"},
		{"meta", "backup-meta", "--dry-run"},
		{"meta", "backup-meta", "--mode", "direct", "--force", "--dry-run"},
		{"meta", "backup-meta", "--backup-storage-url", "fs://" + dir, "--backup-storage-directory", "b"}, // direct, another location
		{"meta", "backup-meta", "--backup-storage-url", "fs://" + dir, "--backup-storage-directory", "b", "--dry-run"},
		{"meta", "delete-meta-snapshots", "--snapshot-ids", ids},
		{"meta", "delete-meta-snapshots", "--snapshot-ids", ids, "--dry-run"},
		{"meta", "list-meta-snapshots"},
		{"meta", "verify-meta-snapshot", "--all"},
		{"meta", "prune", "--keep-last", "1"},
		{"meta", "copy-meta-snapshots", "--all", "--to-url", "fs://" + dir, "--to-directory", "copy"},
		{"meta", "backup-data", "--all", "--data-storage-url", "fs://" + dir + "/data"},
		{"meta", "inspect", ids},
		{"meta", "report", "--html", filepath.Join(dir, "r.html")},
		{"schedule", "--once", "--every", "1h"},
	}
	for _, args := range cmds {
		for _, v := range []string{"1.9", "v1.9.2", "2.0.7"} {
			r := run(t, nil, append(append(args, "--rw-version", v), f.etcdArgs()...)...)
			if r.code != 2 || !strings.Contains(r.stderr, "contradicts the meta store") || !strings.Contains(r.stderr, "looks like v1.10") || !strings.Contains(r.stderr, "state_table_info") {
				t.Errorf("%v --rw-version %s: %s", args, v, r)
			}
		}
	}
	// An exact release older than the one the meta node recorded.
	r := run(t, nil, append([]string{"meta", "backup-meta", "--rw-version", "1.10.1"}, f.etcdArgs()...)...)
	if r.code != 2 || !strings.Contains(r.stderr, `written by RisingWave 1.10.2`) || !strings.Contains(r.stderr, "not downgraded") {
		t.Errorf("--rw-version 1.10.1 after 1.10.2: %s", r)
	}
	// No etcd: only the meta node's word (GetMetaSnapshotManifest's
	// rw_version) tells the release.
	for _, args := range [][]string{
		append([]string{"meta", "list-meta-snapshots", "--mode", "meta", "--meta-addr", n.URL(), "--rw-version", "1.9"}, loc...),
		append([]string{"meta", "delete-meta-snapshots", "--mode", "meta", "--meta-addr", n.URL(), "--snapshot-ids", ids, "--rw-version", "1.9"}, loc...),
	} {
		r := run(t, nil, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "contradicts the meta store") || !strings.Contains(r.stderr, `rw_version "1.10.2"`) {
			t.Errorf("%v: %s", args[:2], r)
		}
	}
	etcdAfter, manifestAfter := f.state(t)
	if !maps.Equal(etcdBefore, etcdAfter) {
		t.Errorf("refused commands changed etcd")
	}
	if !bytes.Equal(manifestBefore, manifestAfter) || len(n.Manifest().SnapshotMetadata) != 1 {
		t.Errorf("refused commands changed the manifest:\n%s\n%s", manifestBefore, manifestAfter)
	}
	for _, p := range []string{"b", "copy", "data", "r.html"} {
		if _, err := f.hummock.Stat(context.Background(), p); err == nil {
			t.Errorf("%s written", p)
		}
	}
	// The right release is accepted on both paths.
	mustRun(t, nil, append([]string{"meta", "backup-meta", "--rw-version", "1.10.2"}, f.etcdArgs()...)...)
	mustRun(t, nil, append([]string{"meta", "list-meta-snapshots", "--mode", "meta", "--meta-addr", n.URL(), "--rw-version", "1.10"}, loc...)...)
}

// TestNewEntryShape: rwsnap's direct backups write the entry as the
// cluster's release does (lib.rs per tag): v1.10+ with rw_version (the
// exact --rw-version, or null when only the line is known), v1.0-v1.9
// without state_table_info or rw_version, v1.0-v1.5 without remarks.
func TestNewEntryShape(t *testing.T) {
	for _, tc := range []struct {
		mode   rwversion.Version
		pin    string
		want   []string
		absent []string
	}{
		{rwversion.V1_10, "1.10.2", []string{`"state_table_info":{"`, `"rw_version":"1.10.2"}`}, nil},
		{rwversion.V1_10, "1.10", []string{`"state_table_info":{"`, `"rw_version":null}`}, nil},
		{rwversion.V1_10, "", []string{`"rw_version":null}`}, nil},
		{rwversion.V2_0, "v2.0.3", []string{`"rw_version":"2.0.3"}`}, nil},
		{rwversion.V1_7, "1.7.4", []string{`"format_version":1,"remarks":"r"}`}, []string{"state_table_info", "rw_version"}},
		{rwversion.V1_7, "", []string{`"format_version":1,"remarks":"r"}`}, []string{"state_table_info", "rw_version"}},
		{rwversion.Version{Major: 1, Minor: 3}, "1.3.0", []string{`"safe_epoch":`}, []string{"format_version", "remarks", "state_table_info", "rw_version"}},
	} {
		t.Run(fmt.Sprintf("%s-%s", tc.mode, tc.pin), func(t *testing.T) {
			seedMode := tc.mode
			if !seedMode.AtLeast(rwversion.V1_7) {
				seedMode = rwversion.V1_7 // v1.7's layout stands for v1.0-v1.8
			}
			f := newFixture(t, rwsim.Options{Seed: 42, RWVersion: seedMode})
			dir := t.TempDir()
			args := append([]string{"meta", "backup-meta", "--backup-storage-url", "fs://" + dir, "--backup-storage-directory", "b"}, f.etcdArgs()...)
			if tc.pin != "" {
				args = append(args, "--rw-version", tc.pin)
			}
			if tc.mode.AtLeast(rwversion.V1_6) {
				args = append(args, "--remarks", "r")
			}
			mustRun(t, nil, args...)
			raw, err := os.ReadFile(filepath.Join(dir, "b", "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			b := string(raw)
			for _, w := range tc.want {
				if !strings.Contains(b, w) {
					t.Errorf("manifest lacks %s:\n%s", w, b)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(b, `"`+a+`"`) {
					t.Errorf("manifest has %s:\n%s", a, b)
				}
			}
			var m struct {
				Snapshots []map[string]json.RawMessage `json:"snapshot_metadata"`
			}
			if err := json.Unmarshal([]byte(b), &m); err != nil || len(m.Snapshots) != 1 {
				t.Fatalf("%v: %s", err, b)
			}
		})
	}
}

// TestOldMetaNodes: rwsnap against a v1.5 meta node (no remarks) and a
// v1.2 one (no FAILED status): the user is told that the remarks were not
// stored, --remarks with --rw-version 1.5 is refused before anything is
// written, and a failed v1.2 job (NOT_FOUND, no message) is reported as
// not stored, with why.
func TestOldMetaNodes(t *testing.T) {
	t.Run("v1.5", func(t *testing.T) {
		f := newFixture(t, rwsim.Options{Seed: 43, RWVersion: rwversion.Version{Major: 1, Minor: 5}})
		n := startMetaRelease(t, f, "1.5.4")
		r := mustRun(t, nil, append([]string{"meta", "backup-meta", "--remarks", "before upgrade"}, f.etcdArgs()...)...)
		id := jobID(t, r)
		if !strings.Contains(r.stdout, "warning: ") || !strings.Contains(r.stdout, `without the remarks "before upgrade"`) || !strings.Contains(r.stdout, "v1.6") {
			t.Errorf("no warning that the remarks were dropped:\n%s", r)
		}
		if e := n.Manifest().Find(id); e == nil || e.Remarks != nil {
			t.Fatalf("entry %+v", e)
		}
		out := jsonOut(t, mustRun(t, nil, append([]string{"meta", "backup-meta", "--remarks", "again", "-o", "json"}, f.etcdArgs()...)...))
		if w, _ := out["warnings"].([]any); len(w) != 1 || !strings.Contains(w[0].(string), `"again"`) {
			t.Errorf("JSON warnings: %v", out["warnings"])
		}
		etcdBefore, manifestBefore := f.state(t)
		for _, args := range [][]string{
			{"meta", "backup-meta", "--remarks", "x", "--rw-version", "1.5"},
			{"meta", "backup-meta", "--remarks", "x", "--rw-version", "1.5.4", "--dry-run"},
			{"schedule", "--once", "--every", "1h", "--remarks", "x", "--rw-version", "1.5"},
		} {
			r := run(t, nil, append(args, f.etcdArgs()...)...)
			if r.code != 2 || !strings.Contains(r.stderr, "stores no remarks") || !strings.Contains(r.stderr, "v1.6") {
				t.Errorf("%v: %s", args, r)
			}
		}
		etcdAfter, manifestAfter := f.state(t)
		if !maps.Equal(etcdBefore, etcdAfter) || !bytes.Equal(manifestBefore, manifestAfter) {
			t.Error("a refused --remarks changed etcd or the manifest")
		}
		mustRun(t, nil, append([]string{"meta", "backup-meta", "--rw-version", "1.5.4"}, f.etcdArgs()...)...)
	})
	t.Run("v1.2", func(t *testing.T) {
		f := newFixture(t, rwsim.Options{Seed: 44, RWVersion: rwversion.Version{Major: 1, Minor: 2}})
		n := startMetaRelease(t, f, "1.2.0")
		id := jobID(t, mustRun(t, nil, append([]string{"meta", "backup-meta"}, f.etcdArgs()...)...))
		n.FailNextJob("object store error: connection reset")
		r := run(t, nil, append([]string{"meta", "backup-meta"}, f.etcdArgs()...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "backup job status not found") || !strings.Contains(r.stderr, "no FAILED status") || !strings.Contains(r.stderr, "was not stored") {
			t.Errorf("failed job on v1.2: %s", r)
		}
		wantIDs(t, "after the failed job", f.storedIDs(t), id)
		// Entries as v1.2 writes them: no format_version, no remarks.
		_, b := f.state(t)
		if strings.Contains(string(b), "format_version") || strings.Contains(string(b), "remarks") {
			t.Errorf("v1.2 manifest: %s", b)
		}
		mustRun(t, nil, append([]string{"meta", "verify-meta-snapshot", "--all"}, f.etcdArgs()...)...)
	})
}

// TestDryRunReadsAsBackup: a direct backup-meta --dry-run reads the meta
// store as the backup would, so a layout that matches no release is
// refused there too, naming what was found, with nothing written (before,
// the dry run passed and only the real run refused).
func TestDryRunReadsAsBackup(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, rwsim.Options{Seed: 45, RWVersion: rwversion.V1_10})
	// One of v2.0's three params, without the others.
	if _, err := f.cli.Put(ctx, string(metastore.EtcdKey(metastore.CFSystemParams, []byte("license_key"))), "x"); err != nil {
		t.Fatal(err)
	}
	before := dumpEtcd(t, f.cli)
	for _, args := range [][]string{{"meta", "backup-meta", "--dry-run"}, {"meta", "backup-meta"}} {
		r := run(t, nil, append(args, f.etcdArgs()...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "matches no RisingWave release") || !strings.Contains(r.stderr, "license_key") {
			t.Errorf("%v: %s", args, r)
		}
	}
	after := dumpEtcd(t, f.cli)
	delete(before, string(metastore.EtcdKey(metastore.CFDefault, []byte(metastore.BackupIDGeneratorKey))))
	delete(after, string(metastore.EtcdKey(metastore.CFDefault, []byte(metastore.BackupIDGeneratorKey))))
	if !maps.Equal(before, after) {
		t.Error("refused backups changed etcd beyond the id generator")
	}
	if _, _, err := f.hummock.Get(ctx, f.backupStorage().ManifestKey()); err == nil {
		t.Error("a manifest was written")
	}
}
