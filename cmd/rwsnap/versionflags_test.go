package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRisectlFlagsOfEveryRelease: every flag of risectl meta restore-meta,
// backup-meta and delete-meta-snapshots from v1.0 through v2.0.7 is
// accepted (the run then fails at runtime, exit 1, on the empty location),
// never rejected as unknown (exit 2).
func with(base []string, more ...string) []string {
	return append(append([]string{}, base...), more...)
}

func TestRisectlFlagsOfEveryRelease(t *testing.T) {
	dir := t.TempDir()
	loc := []string{"--backup-storage-url", "fs://" + dir, "--backup-storage-directory", "backup"}
	restoreBase := append([]string{"meta", "restore-meta", "--meta-snapshot-id", "7", "--meta-store-type", "etcd", "--etcd-endpoints", "127.0.0.1:1",
		"--etcd-auth", "--etcd-username", "u", "--etcd-password", "p", "--hummock-storage-url", "fs://" + dir}, loc...)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"v1.0-v1.2 --hummock-storage-dir", with(restoreBase, "--hummock-storage-dir", "hummock_001", "--dry-run"), 1, "manifest"},
		{"v1.3+ --hummock-storage-directory", with(restoreBase, "--hummock-storage-directory", "hummock_001"), 1, "manifest"},
		{"v1.9 --sql-endpoint, v1.10 sql credentials", with(restoreBase, "--sql-endpoint", "x", "--sql-username", "u", "--sql-password", "p", "--sql-database", "d"), 1, "manifest"},
		{"v1.10.2 read flags", with(restoreBase, "--read-attempt-timeout-ms", "1000", "--read-retry-attempts", "2"), 1, "manifest"},
		{"bad read flag value", with(restoreBase, "--read-retry-attempts", "many"), 2, "--read-retry-attempts"},
		{"--rw-version", with(restoreBase, "--rw-version", "2.0.7"), 1, "manifest"},
		{"--rw-version outside the etcd era", with(restoreBase, "--rw-version", "2.1"), 2, "v2.1 removed etcd"},
		{"v2.0 delete --snapshot-ids", append([]string{"meta", "delete-meta-snapshots", "--snapshot-ids", "3,4"}, loc...), 1, "manifest"},
		{"v1.x delete positional", append([]string{"meta", "delete-meta-snapshots", "3", "4"}, loc...), 1, "manifest"},
		{"delete without ids", append([]string{"meta", "delete-meta-snapshots"}, loc...), 2, "--snapshot-ids"},
		{"v1.6+ backup-meta --remarks", append([]string{"meta", "backup-meta", "--remarks", "r", "--etcd-endpoints", "127.0.0.1:1", "--rw-version", "1.7"}, loc...), 1, ""},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"rwsnap"}, tt.args...), &out, &errb)
		if code != tt.code || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("%s: exit %d, want %d with %q\nstderr: %s", tt.name, code, tt.code, tt.want, errb.String())
		}
		if strings.Contains(errb.String(), "unknown flag") {
			t.Errorf("%s: %s", tt.name, errb.String())
		}
	}
}
