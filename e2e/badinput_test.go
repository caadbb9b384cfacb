package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/rwsim"
)

// expectFailure runs rwsnap, wants exit code `code`, a message containing
// every `want`, and no trace of `secret`.
func expectFailure(t *testing.T, code int, want []string, secret string, env []string, args ...string) {
	t.Helper()
	r := run(t, env, args...)
	if r.code != code {
		t.Fatalf("rwsnap %s: want exit %d: %s", strings.Join(args, " "), code, r)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("rwsnap %s: stderr lacks %q:\n%s", strings.Join(args, " "), w, r.stderr)
		}
	}
	if secret != "" && (strings.Contains(r.stdout, secret) || strings.Contains(r.stderr, secret)) {
		t.Errorf("secret %q printed:\n%s", secret, r)
	}
}

func TestBackupBadInput(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 3})
	empty := etcdtest.StartT(t, embedetcd.Config{})
	emptyEP := strings.Join(empty.Endpoints(), ",")
	// A second cluster whose hummock checkpoint is gone.
	noCP := newFixture(t, rwsim.Options{Seed: 4})
	if err := noCP.hummock.Delete(context.Background(), hummock.CheckpointPath("hummock_001")); err != nil {
		t.Fatal(err)
	}
	wrongSecret := "wrong-secret-Zq81"
	badMinio := strings.Replace(f.bucketURL, f.minio.SecretKey, wrongSecret, 1)
	tests := []struct {
		name   string
		code   int
		want   []string
		secret string
		args   []string
	}{
		{"no etcd endpoints", 2, []string{"--etcd-endpoints is required"}, "", []string{"meta", "backup-meta"}},
		{"unreachable etcd", 1, []string{"127.0.0.1:1", "does not answer"}, "", []string{"meta", "backup-meta", "--etcd-endpoints", "127.0.0.1:1"}},
		{"not a RisingWave etcd", 1, []string{"not a RisingWave meta store"}, "", []string{"meta", "backup-meta", "--etcd-endpoints", emptyEP}},
		{"missing checkpoint", 1, []string{"no hummock checkpoint at hummock_001/checkpoint/0", "--hummock-storage-url"}, "", []string{"meta", "backup-meta", "--etcd-endpoints", noCP.endpoints}},
		{"invalid URL", 2, []string{"--backup-storage-url", "supported", "s3://BUCKET"}, "", []string{"meta", "backup-meta", "--etcd-endpoints", f.endpoints, "--backup-storage-url", "gcs://bucket"}},
		{"wrong credentials", 1, []string{f.minio.AccessKey}, wrongSecret, []string{"meta", "backup-meta", "--etcd-endpoints", f.endpoints, "--backup-storage-url", badMinio}},
		{"delete in a location without manifest", 1, []string{"no manifest.json", `"hummock_001/backup/manifest.json"`, "--may-be-new"}, "", []string{"meta", "delete-meta-snapshots", "42", "--etcd-endpoints", f.endpoints}},
		{"non-numeric id", 2, []string{"not a number"}, "", []string{"meta", "delete-meta-snapshots", "x1", "--etcd-endpoints", f.endpoints}},
		{"unknown flag", 2, []string{"unknown flag --no-such-flag for rwsnap meta backup-meta"}, "", []string{"meta", "backup-meta", "--no-such-flag"}},
		{"misspelt flag", 2, []string{"unknown flag --etcd-endpoint ", "did you mean --etcd-endpoints?"}, "", []string{"meta", "backup-meta", "--etcd-endpoint", "x"}},
		{"unknown command", 2, []string{`unknown command "backp-meta" for rwsnap meta`, "did you mean backup-meta?"}, "", []string{"meta", "backp-meta"}},
		{"bad output format", 2, []string{`--output "yaml": want table or json`}, "", []string{"meta", "list-meta-snapshots", "-o", "yaml", "--etcd-endpoints", f.endpoints}},
		{"unknown param name", 2, []string{"unknown system parameter"}, "", []string{"params", "get", "no_such_param", "--etcd-endpoints", f.endpoints}},
		// Bad flag values of the commands that write: exit 2 naming the
		// flag, nothing written (checked below).
		{"empty backup URL", 2, []string{"--backup-storage-url is empty"}, "", []string{"meta", "backup-meta", "--etcd-endpoints", f.endpoints, "--backup-storage-url", ""}},
		{"blank backup directory", 2, []string{"--backup-storage-directory is blank"}, "", []string{"meta", "backup-meta", "--etcd-endpoints", f.endpoints, "--backup-storage-directory", " \t "}},
		{"remarks with an escape sequence", 2, []string{"--remarks", "control character"}, "", []string{"meta", "backup-meta", "--etcd-endpoints", f.endpoints, "--remarks", "ok\x1b[2Jforged"}},
		{"remarks not UTF-8", 2, []string{"--remarks is not valid UTF-8"}, "", []string{"meta", "backup-meta", "--etcd-endpoints", f.endpoints, "--remarks", "ok\xff"}},
		{"hummock directory with a newline", 2, []string{"--hummock-storage-directory", "control character"}, "", []string{"meta", "backup-meta", "--etcd-endpoints", f.endpoints, "--hummock-storage-directory", "hummock_001\nx"}},
		{"meta address not UTF-8", 2, []string{"--meta-addr is not valid UTF-8"}, "", []string{"meta", "delete-meta-snapshots", "42", "--etcd-endpoints", f.endpoints, "--meta-addr", "\xff"}},
		{"mode typo", 2, []string{`--mode: "drect"`}, "", []string{"meta", "backup-meta", "--etcd-endpoints", f.endpoints, "--mode", "drect"}},
		{"negative orphan age", 2, []string{"--orphans-min-age -1h0m0s: cannot be negative"}, "", []string{"meta", "prune", "--keep-last", "1", "--orphans", "--orphans-min-age", "-1h", "--etcd-endpoints", f.endpoints}},
		{"schedule mode typo", 2, []string{`--mode: "NaN"`}, "", []string{"schedule", "--once", "--mode", "NaN", "--etcd-endpoints", f.endpoints}},
		{"schedule negative retries", 2, []string{"--retries -1: cannot be negative"}, "", []string{"schedule", "--once", "--retries", "-1", "--etcd-endpoints", f.endpoints}},
		{"params set bad frontend", 2, []string{"--pg-url: not a PostgreSQL connection string"}, "", []string{"params", "set", "barrier_interval_ms", "2000", "--pg-url", "NaN", "--etcd-endpoints", f.endpoints}},
		{"endpoint with a space", 2, []string{`--etcd-endpoints: endpoint "127.0.0.1:1 2"`}, "", []string{"meta", "backup-meta", "--etcd-endpoints", f.endpoints + ",127.0.0.1:1 2"}},
		{"param not UTF-8, forced", 2, []string{"backup_storage_directory", "not valid UTF-8"}, "", []string{"params", "set", "backup_storage_directory", "backup\xff", "--force", "--etcd-endpoints", f.endpoints}},
		{"param with an escape, forced", 2, []string{"data_directory", "control character (U+001B)"}, "", []string{"params", "set", "data_directory", "hummock_001\x1b[2J", "--force", "--etcd-endpoints", f.endpoints}},
		{"two different backup URLs", 2, []string{"--backup-storage-url is given twice"}, wrongSecret, []string{"meta", "backup-meta", "--etcd-endpoints", f.endpoints, "--backup-storage-url", f.bucketURL, "--backup-storage-url", badMinio}},
	}
	before := dumpEtcd(t, f.cli)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectFailure(t, tt.code, tt.want, tt.secret, nil, tt.args...)
		})
	}
	// Nothing of the failures above reached the backup location or etcd.
	m, _, err := metasnap.NewStorage(f.hummock, "hummock_001/backup").ReadManifest(context.Background())
	if err != nil || len(m.SnapshotMetadata) != 0 {
		t.Fatalf("failed runs changed the manifest: %+v %v", m, err)
	}
	if d := stateDiff(before, dumpEtcd(t, f.cli)); len(d) > 0 {
		t.Fatalf("failed runs changed etcd: %v", d)
	}
}

func TestVerifyRefusesCorruptedSnapshot(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 5})
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		mustRun(t, nil, append([]string{"meta", "backup-meta", "-q"}, f.etcdArgs()...)...)
	}
	st := metasnap.NewStorage(f.hummock, "hummock_001/backup")
	m, _, _ := st.ReadManifest(ctx)
	bad := m.SnapshotMetadata[0].ID
	b, _, _ := f.hummock.Get(ctx, st.SnapshotKey(bad))
	b = b[:len(b)-100] // truncated upload
	if err := f.hummock.Put(ctx, st.SnapshotKey(bad), b); err != nil {
		t.Fatal(err)
	}
	r := run(t, nil, append([]string{"meta", "verify-meta-snapshot", "--all"}, f.etcdArgs()...)...)
	if r.code != 1 || !strings.Contains(r.stdout, fmt.Sprintf("%d  FAILED", bad)) || !strings.Contains(r.stdout, "checksum mismatch") {
		t.Fatalf("verify of a truncated snapshot:\n%s", r)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("%d  ok", m.SnapshotMetadata[1].ID)) {
		t.Fatalf("the intact snapshot must still pass:\n%s", r)
	}
}

// TestConcurrentBackupsLoseNothing runs 8 backup-meta processes at once
// against one location: all succeed with distinct ids, none is lost.
func TestConcurrentBackupsLoseNothing(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 6})
	var wg sync.WaitGroup
	results := make([]result, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = run(t, nil, append([]string{"meta", "backup-meta", "-q"}, f.etcdArgs()...)...)
		}()
	}
	wg.Wait()
	ids := map[string]bool{}
	for _, r := range results {
		if r.code != 0 {
			t.Fatalf("a concurrent backup failed: %s", r)
		}
		id := strings.Fields(strings.TrimPrefix(r.stdout, "backup job succeeded: job "))[0]
		ids[strings.TrimSuffix(id, ",")] = true
	}
	m, _, err := metasnap.NewStorage(f.hummock, "hummock_001/backup").ReadManifest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 8 || len(m.SnapshotMetadata) != 8 || m.ManifestID != 8 {
		t.Fatalf("ids %v, manifest has %d entries, manifest_id %d", ids, len(m.SnapshotMetadata), m.ManifestID)
	}
	for _, e := range m.SnapshotMetadata {
		if !ids[fmt.Sprint(e.ID)] {
			t.Errorf("manifest entry %d not reported by any run", e.ID)
		}
	}
}

// TestBackupLiveLeader: with a meta leader live, the cluster's own backup
// location is refused (the meta caches the manifest); another location or
// --force works, with a warning.
func TestBackupLiveLeader(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 7})
	ctx := context.Background()
	resign, err := f.sim.Campaign(ctx, f.cli, "127.0.0.1:5690", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer resign()
	expectFailure(t, 1, []string{"meta leader is live", "127.0.0.1:5690", "--force"}, f.minio.SecretKey, nil,
		append([]string{"meta", "backup-meta"}, f.etcdArgs()...)...)
	other := "fs://" + t.TempDir()
	r := mustRun(t, nil, append([]string{"meta", "backup-meta", "--backup-storage-url", other, "--backup-storage-directory", "elsewhere"}, f.etcdArgs()...)...)
	if !strings.Contains(r.stderr, "not pinned") {
		t.Errorf("no warning about unpinned SSTs:\n%s", r)
	}
	// The result line does not contradict the warning.
	if strings.Contains(r.stdout, "SSTs pinned") || !strings.Contains(r.stdout, "not pinned by the cluster") {
		t.Errorf("the result line contradicts the warning:\n%s", r)
	}
	r = mustRun(t, nil, append([]string{"meta", "backup-meta", "--force"}, f.etcdArgs()...)...)
	if !strings.Contains(r.stderr, "--force") {
		t.Errorf("no warning for --force:\n%s", r)
	}
	// Once the meta node is gone (its lease revoked), direct writes are fine.
	resign()
	mustRun(t, nil, append([]string{"meta", "backup-meta"}, f.etcdArgs()...)...)
}

// TestBackupBrokenDeltaChain: a gap in the delta log makes every attempt
// inconsistent; backup-meta retries, then says so, and stores nothing.
func TestBackupBrokenDeltaChain(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 8})
	ctx := context.Background()
	// Remove the second-newest delta: the newest one no longer chains.
	gap := f.sim.ExpectedVersion().GetId() - 1
	if _, err := f.cli.Delete(ctx, string(metastore.EtcdKey(metastore.CFHummockDelta, metastore.U64Key(gap)))); err != nil {
		t.Fatal(err)
	}
	expectFailure(t, 1, []string{"no consistent read after 3 attempts", "inconsistent hummock version"}, "", nil,
		append([]string{"meta", "backup-meta"}, f.etcdArgs()...)...)
	m, _, err := metasnap.NewStorage(f.hummock, "hummock_001/backup").ReadManifest(ctx)
	if err != nil || len(m.SnapshotMetadata) != 0 {
		t.Fatalf("a failed backup changed the manifest: %v %v", m, err)
	}
}
