package e2e

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
)

// TestNoManifestIsAnError: every command that works on stored snapshots,
// pointed at a location that holds no manifest.json (a mistyped
// directory on MinIO, a mistyped fs:// path), exits 1 naming the object
// it looked for and where, and changes nothing; even when snapshot
// objects lie there (prune --orphans must not take them all for
// orphans). --may-be-new turns it into an empty location, and backup-meta
// into a fresh location just works. The commands come from the tree:
// every one with --backup-storage-url.
func TestNoManifestIsAnError(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 67})
	r := mustRun(t, nil, append([]string{"meta", "backup-meta", "-q"}, f.etcdArgs()...)...)
	id := backupIDOf(t, r)
	target := etcdtest.StartT(t, embedetcd.Config{})
	leaves := leafCommands(t)
	creators := map[string]bool{"meta backup-meta": true, "schedule": true}
	ctx := context.Background()
	// A snapshot object without a manifest beside it.
	obj := getObject(t, f, fmt.Sprintf("%s/%d.snapshot", liveBackupDir, id))
	fsDir := t.TempDir()
	for _, loc := range []struct{ name, url, dir string }{
		{"minio, mistyped directory", f.bucketURL, "hummock_001/bakcup"},
		{"fs, mistyped path", "fs://" + fsDir + "/typo", "backup"},
	} {
		t.Run(loc.name, func(t *testing.T) {
			st := openLoc(t, loc.url, loc.dir)
			if err := st.Store.Put(ctx, st.SnapshotKey(id), obj); err != nil {
				t.Fatal(err)
			}
			checked := 0
			for _, path := range slices.Sorted(maps.Keys(leaves)) {
				flags := leaves[path]
				// config only shows the configuration; it reads no storage.
				if !flags["backup-storage-url"] || creators[path] || strings.HasPrefix(path, "config ") {
					continue
				}
				args := strings.Fields(path)
				add := func(flag string, v ...string) {
					if flags[flag] {
						args = append(append(args, "--"+flag), v...)
					}
				}
				if path == "meta restore-meta" {
					add("etcd-endpoints", strings.Join(target.Endpoints(), ","))
					add("meta-snapshot-id", fmt.Sprint(id))
					add("hummock-storage-url", f.bucketURL)
				} else if !strings.HasPrefix(path, "timetravel") {
					add("etcd-endpoints", f.endpoints)
				}
				add("backup-storage-url", loc.url)
				add("backup-storage-directory", loc.dir)
				add("mode", "direct")
				add("all")
				add("orphans")
				add("orphans-min-age", "0s")
				add("keep-last", "1")
				add("to-url", "fs://"+t.TempDir())
				add("to-directory", "copy")
				add("at", "-1s")
				add("html", filepath.Join(t.TempDir(), "report.html"))
				switch path {
				case "meta delete-meta-snapshots", "meta inspect":
					args = append(args, fmt.Sprint(id))
				case "meta diff":
					args = append(args, fmt.Sprint(id), fmt.Sprint(id))
				}
				r := runLimited(t, nil, args...)
				checked++
				if r.code != 1 || !strings.Contains(r.stderr, "no manifest.json") || !strings.Contains(r.stderr, st.ManifestKey()) || !strings.Contains(r.stderr, "--may-be-new") {
					t.Errorf("%s on a location without manifest: want exit 1 naming %s and --may-be-new:\n%s", path, st.ManifestKey(), r)
				}
				if _, _, err := st.Store.Get(ctx, st.SnapshotKey(id)); err != nil {
					t.Fatalf("%s removed the snapshot object lying there: %v", path, err)
				}
				if _, err := st.Store.Stat(ctx, st.ManifestKey()); err == nil {
					t.Fatalf("%s wrote a manifest", path)
				}
			}
			if checked < 7 {
				t.Fatalf("only %d commands checked", checked)
			}
			// Said to be new: an empty location.
			for _, args := range [][]string{
				{"meta", "list-meta-snapshots", "--may-be-new"},
				{"meta", "verify-meta-snapshot", "--all", "--may-be-new"},
				{"meta", "prune", "--keep-last", "1", "--may-be-new"},
			} {
				r := mustRun(t, nil, append(args, "--backup-storage-url", loc.url, "--backup-storage-directory", loc.dir)...)
				if args[1] == "list-meta-snapshots" && !strings.Contains(r.stdout, "0 snapshots") {
					t.Errorf("list --may-be-new: %s", r)
				}
			}
			// A first backup into a fresh location needs no flag.
			fresh := loc.dir + "-fresh"
			mustRun(t, nil, append([]string{"meta", "backup-meta", "-q", "--backup-storage-url", loc.url, "--backup-storage-directory", fresh}, f.etcdArgs()...)...)
			r := mustRun(t, nil, "meta", "list-meta-snapshots", "--backup-storage-url", loc.url, "--backup-storage-directory", fresh)
			if !strings.Contains(r.stdout, "1 snapshots") {
				t.Errorf("after the first backup into a fresh location: %s", r)
			}
		})
	}
}

// openLoc opens a backup location the way rwsnap does (url + directory).
func openLoc(t *testing.T, url, dir string) *metasnap.Storage {
	t.Helper()
	store, err := objstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return metasnap.NewStorage(store, dir)
}
