package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
	"github.com/rwsnap/rwsnap/rwsim/metanode"
)

// spelling is another way to write the cluster's own backup location.
type spelling struct{ name, url, dir string }

// checkSpellings runs, for each spelling of the live cluster's own backup
// location, a backup and a delete through rwsnap (--mode auto), then lets
// the meta node take its own backup from its cached manifest, and checks
// that the stored manifest neither dropped rwsnap's snapshot nor
// resurrected the deleted one. Before location identity, rwsnap wrote
// these spellings directly and the meta node's backup lost the entry.
func checkSpellings(t *testing.T, f *fixture, n *metanode.Node, st *metasnap.Storage, spellings []spelling) {
	ctx := context.Background()
	stored := func() []uint64 {
		m, _, err := st.ReadManifest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m.IDs()
	}
	for _, sp := range spellings {
		t.Run(sp.name, func(t *testing.T) {
			victim, err := n.Backup(ctx, "to be deleted through "+sp.name)
			if err != nil {
				t.Fatal(err)
			}
			loc := []string{"--backup-storage-url", sp.url, "--backup-storage-directory", sp.dir}
			r := mustRun(t, nil, append(append([]string{"meta", "backup-meta", "-o", "json"}, f.etcdArgs()...), loc...)...)
			out := jsonOut(t, r)
			id := uint64(out["id"].(float64))
			if out["path"] != "meta" {
				t.Errorf("backup to %s + %q took the %v path: %s", objstore.Redact(sp.url), sp.dir, out["path"], r)
			}
			r = mustRun(t, nil, append(append([]string{"meta", "delete-meta-snapshots", "-o", "json", strconv.FormatUint(victim, 10)}, f.etcdArgs()...), loc...)...)
			if out := jsonOut(t, r); out["path"] != "meta" {
				t.Errorf("delete in %s + %q took the %v path: %s", objstore.Redact(sp.url), sp.dir, out["path"], r)
			}
			own, err := n.Backup(ctx, "the meta node's own, after "+sp.name)
			if err != nil {
				t.Fatal(err)
			}
			ids := stored()
			if !slices.Contains(ids, id) {
				t.Errorf("the meta node's next backup dropped rwsnap's snapshot %d (taken via %s + %q): stored %v", id, objstore.Redact(sp.url), sp.dir, ids)
			}
			if slices.Contains(ids, victim) {
				t.Errorf("the meta node's next backup resurrected snapshot %d deleted via %s + %q: stored %v", victim, objstore.Redact(sp.url), sp.dir, ids)
			}
			if !slices.Contains(ids, own) {
				t.Errorf("own backup %d missing: %v", own, ids)
			}
			// prune through the same spelling goes through the meta node too.
			r = mustRun(t, nil, append(append([]string{"meta", "prune", "--keep-last", "2", "-o", "json"}, f.etcdArgs()...), loc...)...)
			if out := jsonOut(t, r); out["path"] != "meta" {
				t.Errorf("prune in %s + %q did not go through the meta node: %s", objstore.Redact(sp.url), sp.dir, r)
			}
			if _, err := n.Backup(ctx, ""); err != nil {
				t.Fatal(err)
			}
			if got := stored(); len(got) > 3 {
				t.Errorf("prune through %s + %q was undone by the meta node's next backup: %v", objstore.Redact(sp.url), sp.dir, got)
			}
			// copy-meta-snapshots cannot go through the meta node: into
			// this spelling of its location it is refused.
			src := fsLoc(t)
			mustRun(t, nil, f.cmd(src, "meta", "backup-meta", "-q")...)
			before := stored()
			r = run(t, nil, append(append([]string{"meta", "copy-meta-snapshots", "--all", "--to-url", sp.url, "--to-directory", sp.dir}, f.etcdArgs()...), src.args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, "meta leader is live") || !strings.Contains(r.stderr, "the meta node cannot take copied entries") {
				t.Errorf("copy into %s + %q: want a refusal:\n%s", objstore.Redact(sp.url), sp.dir, r)
			}
			if got := stored(); !slices.Equal(got, before) {
				t.Errorf("a refused copy changed the manifest: %v -> %v", before, got)
			}
		})
	}
}

// TestLiveLocationSpellingsMinio: the cluster's MinIO location reached as
// localhost instead of 127.0.0.1, with http:// spelled out, with the
// directory in other slashes.
func TestLiveLocationSpellingsMinio(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 91})
	n := startMeta(t, f, 10, true)
	port := f.minio.Endpoint[strings.LastIndex(f.minio.Endpoint, ":")+1:]
	localhost := strings.Replace(f.bucketURL, f.minio.Endpoint, "localhost:"+port, 1)
	checkSpellings(t, f, n, f.backupStorage(), []spelling{
		{"localhost instead of 127.0.0.1", localhost, liveBackupDir},
		{"http:// spelled out", strings.Replace(f.bucketURL, "@", "@http://", 1), liveBackupDir},
		{"directory with slashes around", f.bucketURL, "/" + liveBackupDir + "/"},
		{"bucket with a trailing slash, localhost", localhost + "/", liveBackupDir},
	})
}

// TestLiveLocationSpellingsFS: a cluster whose backup_storage_url is an
// fs:// directory, reached with //, /./, a trailing slash, through a
// symlink, and with the path split differently between URL and directory.
func TestLiveLocationSpellingsFS(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bk", "backup"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "bk"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	url, dir := "fs://"+root+"/bk", "backup"
	f := newFixture(t, rwsim.Options{Seed: 92, BackupURL: url, BackupDir: dir})
	store, err := objstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	st := metasnap.NewStorage(store, dir)
	n, err := metanode.Start(context.Background(), metanode.Config{Etcd: f.cli, Hummock: f.hummock, DataDir: "hummock_001", Backup: st, LeaseTTL: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.WaitLeader(wctx); err != nil {
		t.Fatal(err)
	}
	checkSpellings(t, f, n, st, []spelling{
		{"double slash", "fs://" + root + "//bk", dir},
		{"dot segment", "fs://" + root + "/./bk", dir},
		{"trailing slash", url + "/", dir + "/"},
		{"symlinked directory", "fs://" + root + "/link", dir},
		{"path split between URL and directory", "fs://" + root, "bk/" + dir},
		{"split differently, through the symlink, with slashes", "fs://" + root + "/", "link//" + dir + "/"},
	})
}
