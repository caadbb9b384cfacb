package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
	"github.com/rwsnap/rwsnap/rwsim/frontend"
	"github.com/rwsnap/rwsnap/rwversion"
)

// TestRoundTripPerVersion: backup -> verify -> restore -> time travel
// against rwsim in each release mode (real etcd, MinIO, pgwire), with the
// release recognised from the meta store alone.
func TestRoundTripPerVersion(t *testing.T) {
	want := map[rwversion.Version]string{
		// Nothing tells v1.0-v1.9 apart in a v1.7 store without change logs,
		// and their replay rules agree on it.
		rwversion.V1_7: "read as RisingWave v1.0–v1.9",
		// v1.2 and v1.5 seed v1.7's layout; their meta nodes differ.
		{Major: 1, Minor: 2}: "read as RisingWave v1.0–v1.9",
		{Major: 1, Minor: 5}: "read as RisingWave v1.0–v1.9",
		rwversion.V1_9:       "read as RisingWave v1.9",
		rwversion.V1_10:      "read as RisingWave v1.10",
		rwversion.V2_0:       "read as RisingWave v2.0",
	}
	for _, mode := range rwsim.Modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, rwsim.Options{Seed: 21, RWVersion: mode})
			r := mustRun(t, nil, append([]string{"meta", "backup-meta", "-o", "json", "--log-level", "info"}, f.etcdArgs()...)...)
			if !strings.Contains(r.stderr, want[mode]) {
				t.Fatalf("backup did not say %q:\n%s", want[mode], r)
			}
			var out struct {
				ID       uint64 `json:"id"`
				Revision int64  `json:"revision"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("%v: %s", err, r)
			}
			mustRun(t, nil, append([]string{"meta", "verify-meta-snapshot", "--all", "--check-ssts"}, f.etcdArgs()...)...)

			// The snapshot has the release's layout: v2.0's secret list.
			bs := metasnap.NewStorage(f.hummock, "hummock_001/backup")
			snap, _, err := bs.Load(ctx, out.ID)
			if err != nil {
				t.Fatal(err)
			}
			m := snap.Metadata
			if m.HasSecrets != mode.AtLeast(rwversion.V2_0) || len(m.Secrets) != map[bool]int{true: 1}[mode.AtLeast(rwversion.V2_0)] {
				t.Fatalf("secret list: present %v, %d secrets", m.HasSecrets, len(m.Secrets))
			}
			if (len(m.Subscriptions) > 0) != mode.AtLeast(rwversion.V1_9) {
				t.Fatalf("%d subscriptions", len(m.Subscriptions))
			}

			// A --rw-version the store contradicts is refused.
			if mode.AtLeast(rwversion.V1_10) {
				r := run(t, nil, append([]string{"meta", "backup-meta", "--rw-version", "1.9"}, f.etcdArgs()...)...)
				if r.code != 2 || !strings.Contains(r.stderr, "contradicts the meta store") || !strings.Contains(r.stderr, "state_table_info") {
					t.Fatalf("contradicting --rw-version: %s", r)
				}
			}

			// Restore into a fresh etcd: every model, secrets (v2.0) and
			// subscriptions (v1.8+) included.
			b := etcdtest.StartT(t, embedetcd.Config{})
			bcli := etcdtest.ClientT(t, b)
			restore := []string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(out.ID), "--etcd-endpoints", strings.Join(b.Endpoints(), ","),
				"--backup-storage-url", f.bucketURL, "--backup-storage-directory", "hummock_001/backup", "--hummock-storage-url", f.bucketURL}
			if mode == rwversion.V2_0 {
				for _, extra := range [][]string{{"--rw-version", "1.10"}, {"--rw-version", "1.10.2", "--dry-run"}} {
					r := run(t, nil, append(restore, extra...)...)
					if r.code != 2 || !strings.Contains(r.stderr, "cannot be downgraded") {
						t.Fatalf("v2.0 snapshot in v1.10 mode %v: %s", extra, r)
					}
				}
				if n := len(dumpEtcd(t, bcli)); n != 0 {
					t.Fatalf("refused restore wrote %d keys", n)
				}
			}
			mustRun(t, nil, restore...)
			got := dumpEtcd(t, bcli)
			for _, cf := range []string{metastore.CFSecret, metastore.CFSubscription} {
				src := cfAt(t, f.cli, cf, out.Revision)
				if cf == metastore.CFSecret && !mode.AtLeast(rwversion.V2_0) {
					src = map[string]string{}
				}
				for k, v := range src {
					if got[k] != v {
						t.Errorf("restored %s lacks %q", cf, k)
					}
				}
				for k := range got {
					if strings.HasPrefix(k, metastore.Prefix(cf)) && src[k] == "" {
						t.Errorf("restored %s has extra %q", cf, k)
					}
				}
			}
			if mode.AtLeast(rwversion.V2_0) && len(cfAt(t, f.cli, metastore.CFSecret, out.Revision)) == 0 {
				t.Fatal("v2.0 source has no secrets")
			}

			// Time travel to the snapshot through a frontend of the release.
			srv, err := frontend.Start(ctx, frontend.Options{Backup: bs, Shape: frontend.ShapeFor(mode), Version: rwsim.ModeRelease(mode)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			r = mustRun(t, nil, "timetravel", "epoch", "--snapshot", fmt.Sprint(out.ID), "--pg-url", "postgres://root@"+srv.Addr()+"/dev")
			if !strings.Contains(r.stdout, "SET QUERY_EPOCH") {
				t.Fatalf("time travel: %s", r)
			}
		})
	}
}

func cfAt(t *testing.T, cli *clientv3.Client, cf string, rev int64) map[string]string {
	t.Helper()
	resp, err := cli.Get(context.Background(), metastore.Prefix(cf), clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}

// formatObject is a snapshot object as RisingWave writes any format:
// u32le format | u64le id | payload | u64le xxhash64 of all before.
func formatObject(format uint32, id uint64, payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, format)
	b = binary.LittleEndian.AppendUint64(b, id)
	b = append(b, payload...)
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

// TestMixedLocation: a backup location shared with RisingWave's SQL meta
// store (format 2) and 2.x (snake_case state_table_info, no global epochs)
// entries. rwsnap backs up into it, lists every entry with its rw_version,
// verifies the foreign ones by checksum and header, keeps them byte for byte
// through its rewrites, counts them, serves time travel, and refuses to
// restore a format-2 entry into etcd before writing anything.
func TestMixedLocation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, rwsim.Options{Seed: 22, RWVersion: rwversion.V2_0})
	dir := t.TempDir()
	url := "fs://" + dir
	// Hand-written entries (src/storage/backup/src/lib.rs @v1.10.2 and
	// @v2.8.5): a v1.10 SQL-backend format-2 entry (pbjson), a v2.1 one
	// (snake_case numbers, no epochs), an entry with a field rwsnap does
	// not know.
	e1 := `{"id":1,"hummock_version_id":5,"ssts":[],"max_committed_epoch":6597069766656,"safe_epoch":0,"format_version":2,"remarks":"sql","state_table_info":{"1001":{"committedEpoch":"6597069766656","compactionGroupId":"3"}},"rw_version":"1.10.2"}`
	e2 := `{"id":2,"hummock_version_id":6,"ssts":[],"format_version":2,"remarks":null,"state_table_info":{"1001":{"committed_epoch":6597069832192,"compaction_group_id":3}},"rw_version":"2.1.0","future":[1]}`
	manifest := `{"manifest_id":4,"snapshot_metadata":[` + e1 + `,` + e2 + `]}`
	if err := os.MkdirAll(filepath.Join(dir, "backup"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"manifest.json": []byte(manifest),
		"1.snapshot":    formatObject(2, 1, []byte{1, 0, 0, 0, 2, 0, 0, 0, '[', ']'}),
		"2.snapshot":    formatObject(2, 2, []byte{0, 0, 0, 0}),
	} {
		if err := os.WriteFile(filepath.Join(dir, "backup", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	loc := []string{"--backup-storage-url", url, "--backup-storage-directory", "backup"}
	r := mustRun(t, nil, append(append([]string{"meta", "backup-meta", "-o", "json"}, f.etcdArgs()...), loc...)...)
	var out struct {
		ID uint64 `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r)
	}
	stored, err := os.ReadFile(filepath.Join(dir, "backup", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(stored), `{"manifest_id":5,"snapshot_metadata":[`+e1+`,`+e2+`,{"id":`) {
		t.Fatalf("foreign entries not kept byte for byte:\n%s", stored)
	}
	r = mustRun(t, nil, append([]string{"meta", "list-meta-snapshots", "-o", "json"}, loc...)...)
	var list struct {
		Snapshots []struct {
			ID            uint64 `json:"id"`
			FormatVersion uint32 `json:"format_version"`
			RWVersion     string `json:"rw_version"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Snapshots) != 3 || list.Snapshots[0].RWVersion != "1.10.2" || list.Snapshots[1].RWVersion != "2.1.0" || list.Snapshots[1].FormatVersion != 2 {
		t.Fatalf("list: %s", r.stdout)
	}
	mustRun(t, nil, append([]string{"meta", "verify-meta-snapshot", "--all"}, loc...)...)
	// A corrupted foreign object fails verify, naming it.
	p := filepath.Join(dir, "backup", "2.snapshot")
	b, _ := os.ReadFile(p)
	b[13] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, nil, append([]string{"meta", "verify-meta-snapshot", "2"}, loc...)...); r.code != 1 || !strings.Contains(r.stdout+r.stderr, "checksum") {
		t.Fatalf("verify of a corrupted format-2 object: %s", r)
	}

	// Restore of a format-2 entry into etcd: refused before any write.
	e := etcdtest.StartT(t, embedetcd.Config{})
	ecli := etcdtest.ClientT(t, e)
	r = run(t, nil, "meta", "restore-meta", "--meta-snapshot-id", "1", "--etcd-endpoints", strings.Join(e.Endpoints(), ","),
		"--backup-storage-url", url, "--backup-storage-directory", "backup", "--hummock-storage-url", f.bucketURL)
	if r.code != 1 || !strings.Contains(r.stderr, "cannot be restored into etcd") || !strings.Contains(r.stderr, "risectl") {
		t.Fatalf("format-2 restore: %s", r)
	}
	if n := len(dumpEtcd(t, ecli)); n != 0 {
		t.Fatalf("refused restore wrote %d keys", n)
	}
	// rwsnap's own entry restores from the mixed location.
	mustRun(t, nil, "meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(out.ID), "--etcd-endpoints", strings.Join(e.Endpoints(), ","),
		"--backup-storage-url", url, "--backup-storage-directory", "backup", "--hummock-storage-url", f.bucketURL)

	// Deleting rwsnap's entry keeps the foreign ones as they were.
	mustRun(t, nil, append([]string{"meta", "delete-meta-snapshots", "--snapshot-ids", fmt.Sprint(out.ID)}, loc...)...)
	stored, _ = os.ReadFile(filepath.Join(dir, "backup", "manifest.json"))
	if string(stored) != `{"manifest_id":6,"snapshot_metadata":[`+e1+`,`+e2+`]}` {
		t.Fatalf("after delete:\n%s", stored)
	}

	// Time travel: the 2.x entry's per-table epochs are offered.
	st, err := objstore.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := frontend.Start(ctx, frontend.Options{Backup: metasnap.NewStorage(st, "backup"), Shape: frontend.V110, Version: "2.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	r = mustRun(t, nil, "timetravel", "epoch", "--snapshot", "2", "--pg-url", "postgres://root@"+srv.Addr()+"/dev")
	if !strings.Contains(r.stdout, "SET QUERY_EPOCH") {
		t.Fatalf("time travel to the 2.x entry: %s", r)
	}
}

// TestBackupDirectoryPerRelease: backup_storage_directory "backup/" on
// MinIO is used verbatim by a v1.x cluster (key backup//manifest.json, as
// RisingWave's native S3 client does) and normalised for v2.0 (OpenDAL):
// rwsnap writes and reads where the cluster's release does.
func TestBackupDirectoryPerRelease(t *testing.T) {
	for mode, key := range map[rwversion.Version]string{rwversion.V1_10: "backup//manifest.json", rwversion.V2_0: "backup/manifest.json"} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, rwsim.Options{Seed: 23, RWVersion: mode, BackupDir: "backup/"})
			if mode == rwversion.V1_10 {
				// MinIO refuses "//" in object names, so a v1.10 cluster's
				// own backups fail there; rwsnap uses the same key and says
				// what to do (AWS S3 takes the key as is).
				r := run(t, nil, append([]string{"meta", "backup-meta"}, f.etcdArgs()...)...)
				if r.code != 1 || !strings.Contains(r.stderr, `"backup//manifest.json"`) || !strings.Contains(r.stderr, `set backup_storage_directory to "backup"`) {
					t.Fatalf("v1.10 backup to backup/ on MinIO: %s", r)
				}
				return
			}
			mustRun(t, nil, append([]string{"meta", "backup-meta"}, f.etcdArgs()...)...)
			objs, err := f.hummock.List(ctx, "backup/")
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, o := range objs {
				keys = append(keys, o.Key)
			}
			if !strings.Contains(strings.Join(keys, " "), key) {
				t.Fatalf("manifest not at %s: %v", key, keys)
			}
			r := mustRun(t, nil, append([]string{"meta", "list-meta-snapshots"}, f.etcdArgs()...)...)
			if !strings.Contains(r.stdout, "1 snapshots") {
				t.Fatalf("list: %s", r)
			}
			// Without the cluster, the existing manifest decides.
			mustRun(t, nil, "meta", "verify-meta-snapshot", "--all", "--backup-storage-url", f.bucketURL, "--backup-storage-directory", "backup/")
		})
	}
}
