package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/rwsim"
)

// TestStoredStringsPrintedEscaped: remarks and parameter values holding
// terminal control sequences (clear screen, colours, a forged line, C1
// CSI, invalid UTF-8) are printed escaped by every table that shows them,
// never raw; JSON keeps the exact value, escaped as JSON.
func TestStoredStringsPrintedEscaped(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 73})
	evil := "ok\x1b[2J\x1b[31mFAKE\nbackup job succeeded: job 1\u009b0m\xff"
	mustRun(t, nil, append([]string{"meta", "backup-meta", "-q", "--remarks", evil}, f.etcdArgs()...)...)
	if _, err := f.cli.Put(context.Background(), "cf/system_params/backup_storage_directory_evil", evil); err != nil {
		t.Fatal(err)
	}
	raw := []string{"\x1b", "\u009b", "\xff", "FAKE\nbackup"}
	// The manifest is JSON, so the invalid byte comes back as U+FFFD;
	// etcd keeps it as is.
	escaped := `ok\x1b[2J\x1b[31mFAKE\nbackup job succeeded: job 1\u009b0m`
	for _, args := range [][]string{
		{"meta", "list-meta-snapshots"},
		{"timetravel", "list", "--backup-storage-url", f.bucketURL, "--backup-storage-directory", liveBackupDir},
		{"params", "list"},
	} {
		if args[0] != "timetravel" {
			args = append(args, f.etcdArgs()...)
		}
		r := mustRun(t, nil, args...)
		for _, bad := range raw {
			if strings.Contains(r.stdout, bad) || strings.Contains(r.stderr, bad) {
				t.Errorf("%s printed %q raw:\n%q", strings.Join(args[:2], " "), bad, r.stdout)
			}
		}
		want := escaped + "\uFFFD"
		if args[0] == "params" {
			want = escaped + `\xff`
		}
		if !strings.Contains(r.stdout, want) {
			t.Errorf("%s does not show the escaped value:\n%s", strings.Join(args[:2], " "), r.stdout)
		}
	}
	r := mustRun(t, nil, append([]string{"meta", "list-meta-snapshots", "-o", "json"}, f.etcdArgs()...)...)
	if strings.Contains(r.stdout, "\x1b") || !strings.Contains(r.stdout, `\u001b[2J`) {
		t.Errorf("JSON must escape control characters as JSON does:\n%s", r.stdout)
	}
}
