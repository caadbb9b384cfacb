package e2e

import (
	"bytes"
	"context"
	"encoding/json"
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
	// rwsnap refuses such remarks on its command line (exit 2, nothing
	// written); another writer of the manifest (risectl, a hand edit) may
	// still store them, so the manifest is edited to hold them.
	expectFailure(t, 2, []string{"--remarks", "not valid UTF-8"}, "", nil, append([]string{"meta", "backup-meta", "-q", "--remarks", evil}, f.etcdArgs()...)...)
	mustRun(t, nil, append([]string{"meta", "backup-meta", "-q", "--remarks", "EVIL-REMARK"}, f.etcdArgs()...)...)
	ctx := context.Background()
	key := liveBackupDir + "/manifest.json"
	m, _, err := f.hummock.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	quoted, _ := json.Marshal(evil) // the invalid byte becomes U+FFFD, as any JSON writer makes it
	if !bytes.Contains(m, []byte(`"EVIL-REMARK"`)) {
		t.Fatalf("the manifest lacks the remark:\n%s", m)
	}
	if err := f.hummock.Put(ctx, key, bytes.Replace(m, []byte(`"EVIL-REMARK"`), quoted, 1)); err != nil {
		t.Fatal(err)
	}
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
