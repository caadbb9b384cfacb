package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRWVersionRefusedEverywhere: a --rw-version that names no release
// that ran on etcd is refused (exit 2, listing what is accepted) on every
// command that takes it, from the flag, RWSNAP_RW_VERSION and the config
// file, before anything is read or written.
func TestRWVersionRefusedEverywhere(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(dir, "backup", "manifest.json")
	if err := os.MkdirAll(filepath.Dir(manifest), 0o755); err != nil {
		t.Fatal(err)
	}
	orig := []byte(`{"manifest_id":3,"snapshot_metadata":[]}`)
	if err := os.WriteFile(manifest, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	loc := []string{"--backup-storage-url", "fs://" + dir, "--backup-storage-directory", "backup"}
	etcd := []string{"--etcd-endpoints", "127.0.0.1:1"}
	cmds := [][]string{
		with([]string{"meta", "backup-meta", "--dry-run"}, append(etcd, loc...)...),
		with([]string{"meta", "backup-meta"}, append(etcd, loc...)...),
		with([]string{"meta", "list-meta-snapshots"}, loc...),
		with([]string{"meta", "verify-meta-snapshot", "--all"}, loc...),
		with([]string{"meta", "delete-meta-snapshots", "--snapshot-ids", "1"}, loc...),
		with([]string{"meta", "prune", "--keep-last", "1"}, loc...),
		with([]string{"meta", "restore-meta", "--meta-snapshot-id", "1", "--meta-store-type", "etcd", "--hummock-storage-url", "fs://" + dir}, append(etcd, loc...)...),
		with([]string{"meta", "copy-meta-snapshots", "--all", "--to-url", "fs://" + dir, "--to-directory", "other"}, loc...),
		with([]string{"meta", "backup-data", "--all", "--data-storage-url", "fs://" + dir + "/d"}, loc...),
		with([]string{"meta", "inspect", "1"}, loc...),
		with([]string{"meta", "diff", "1", "2"}, loc...),
		with([]string{"meta", "report", "--html", filepath.Join(dir, "r.html")}, loc...),
		with([]string{"schedule", "--once", "--every", "1h"}, append(etcd, loc...)...),
		{"playground"},
		{"config", "show", "--offline"},
	}
	bad := []string{"2.0.8", "2.1.0", "0.19.0", "1.7.99999", "1.10.1-rc", "v", "1.x", "99999999999999999999.1", "2.0.0"}
	for _, args := range cmds {
		for i, v := range bad {
			// Flag, then environment, alternating to keep the run short.
			a, envv := with(args, "--rw-version", v), ""
			if i%2 == 1 && args[0] != "playground" {
				a, envv = args, v
			}
			t.Setenv("RWSNAP_RW_VERSION", envv)
			if envv == "" {
				os.Unsetenv("RWSNAP_RW_VERSION")
			}
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"rwsnap"}, a...), &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), "rw-version") || !strings.Contains(errb.String(), "2.0.7") || !strings.Contains(errb.String(), "1.10") {
				t.Errorf("%v with %q (env %v): exit %d\n%s", args[:min(2, len(args))], v, envv != "", code, errb.String())
			}
		}
	}
	os.Unsetenv("RWSNAP_RW_VERSION")
	if got, _ := os.ReadFile(manifest); !bytes.Equal(got, orig) {
		t.Fatalf("manifest changed: %s", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "r.html")); err == nil {
		t.Fatal("report written")
	}
	if _, err := os.Stat(filepath.Join(dir, "other")); err == nil {
		t.Fatal("copy target created")
	}

	// The config file's risingwave_version, named in the error.
	cfg := filepath.Join(dir, "rwsnap.yaml")
	if err := os.WriteFile(cfg, []byte("clusters:\n  a:\n    etcd: {endpoints: [127.0.0.1:1]}\n    risingwave_version: 2.0.8\n    repository: r\nrepositories:\n  r: {url: \"fs://"+dir+"\", directory: backup}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"rwsnap", "meta", "list-meta-snapshots", "--config", cfg, "--cluster", "a", "--repo", "r"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "risingwave_version") || !strings.Contains(errb.String(), "2.0.8") {
		t.Errorf("config file risingwave_version 2.0.8: exit %d\n%s", code, errb.String())
	}
	errb.Reset()
	code = run(context.Background(), []string{"rwsnap", "config", "show", "--offline", "--config", cfg, "--cluster", "a"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "risingwave_version") {
		t.Errorf("config show with risingwave_version 2.0.8: exit %d\n%s", code, errb.String())
	}
}

// TestSnapshotIDsLikeClap: --snapshot-ids is split on commas and nothing
// else, as risectl's clap (value_delimiter = ',', Vec<u64>) does: empty and
// malformed entries are refused (exit 2) and nothing is deleted.
func TestSnapshotIDsLikeClap(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(dir, "backup", "manifest.json")
	if err := os.MkdirAll(filepath.Dir(manifest), 0o755); err != nil {
		t.Fatal(err)
	}
	orig := []byte(`{"manifest_id":3,"snapshot_metadata":[{"id":1,"hummock_version_id":1,"ssts":[],"max_committed_epoch":1,"safe_epoch":0,"format_version":1,"remarks":null},{"id":2,"hummock_version_id":1,"ssts":[],"max_committed_epoch":1,"safe_epoch":0,"format_version":1,"remarks":null}]}`)
	if err := os.WriteFile(manifest, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	loc := []string{"--backup-storage-url", "fs://" + dir, "--backup-storage-directory", "backup"}
	for _, ids := range []string{"1,,2", ",1", "1,", " 1", "1 ", "1, 2", "1;2", "x", "", ",", "-1", "1.0", "18446744073709551616", "0x1"} {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"rwsnap", "meta", "delete-meta-snapshots", "--snapshot-ids", ids}, loc...), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), "snapshot id") {
			t.Errorf("--snapshot-ids %q: exit %d\n%s", ids, code, errb.String())
		}
		t.Setenv("RWSNAP_SNAPSHOT_IDS", ids)
		code = run(context.Background(), append([]string{"rwsnap", "meta", "delete-meta-snapshots"}, loc...), &out, &errb)
		os.Unsetenv("RWSNAP_SNAPSHOT_IDS")
		if code != 2 {
			t.Errorf("RWSNAP_SNAPSHOT_IDS=%q: exit %d\n%s", ids, code, errb.String())
		}
	}
	// A u64 too large is said to be out of range, not "not a number".
	var oerr bytes.Buffer
	if code := run(context.Background(), append([]string{"rwsnap", "meta", "delete-meta-snapshots", "--snapshot-ids", "18446744073709551616"}, loc...), io.Discard, &oerr); code != 2 || !strings.Contains(oerr.String(), "out of range") {
		t.Errorf("--snapshot-ids 2^64: exit %d\n%s", code, oerr.String())
	}
	if got, _ := os.ReadFile(manifest); !bytes.Equal(got, orig) {
		t.Fatalf("manifest changed: %s", got)
	}
	// What clap takes: "1,2", "+2" (Rust's u64::from_str), repeated flags.
	var out, errb bytes.Buffer
	if code := run(context.Background(), append([]string{"rwsnap", "meta", "delete-meta-snapshots", "--dry-run", "-o", "json", "--snapshot-ids", "1", "--snapshot-ids", "+2"}, loc...), &out, &errb); code != 0 || !strings.Contains(strings.Join(strings.Fields(out.String()), ""), `"would_delete":[1,2]`) {
		t.Errorf("repeated --snapshot-ids: exit %d\n%s%s", code, out.String(), errb.String())
	}
}
