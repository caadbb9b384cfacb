package metasnap

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rwsnap/rwsnap/objstore"
)

// Every spelling of one location is the same location; other locations
// are different, and what cannot be told apart from the names alone is
// unsure (treated as the cluster's own).
func TestIdentifyByCanonicalForm(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "real", "bk"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "real"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	const m = "minio://ak:sk@"
	tests := []struct {
		name                 string
		url, dir             string // the target
		clusterURL, clustDir string
		want                 Verdict
	}{
		{"identical", m + "127.0.0.1:9000/b", "backup", m + "127.0.0.1:9000/b", "backup", Same},
		{"localhost vs 127.0.0.1", m + "localhost:9000/b", "backup", m + "127.0.0.1:9000/b", "backup", Same},
		{"::1 vs 127.0.0.1 (loopback)", m + "[::1]:9000/b", "backup", m + "127.0.0.1:9000/b", "backup", Same},
		{"http:// spelled out", m + "http://127.0.0.1:9000/b", "backup", m + "127.0.0.1:9000/b", "backup", Same},
		{"default port", m + "127.0.0.1/b", "backup", m + "127.0.0.1:80/b", "backup", Same},
		{"host case", m + "LOCALHOST:9000/b", "backup", m + "localhost:9000/b", "backup", Same},
		{"other credentials", "minio://x:y@127.0.0.1:9000/b", "backup", m + "127.0.0.1:9000/b", "backup", Same},
		{"bucket with trailing slash", m + "127.0.0.1:9000/b/", "backup", m + "127.0.0.1:9000/b", "backup", Same},
		{"directory slashes", m + "127.0.0.1:9000/b", "/backup/", m + "127.0.0.1:9000/b", "backup", Same},
		{"directory // (S3 keys differ; some servers clean them)", m + "127.0.0.1:9000/b", "x//backup", m + "127.0.0.1:9000/b", "x/backup", Unsure},
		{"directory /./", m + "127.0.0.1:9000/b", "x/./backup", m + "127.0.0.1:9000/b", "x/backup", Unsure},
		{"other bucket", m + "127.0.0.1:9000/c", "backup", m + "127.0.0.1:9000/b", "backup", Different},
		{"other directory", m + "127.0.0.1:9000/b", "backup2", m + "127.0.0.1:9000/b", "backup", Different},
		{"other port, same bucket and directory", m + "127.0.0.1:9001/b", "backup", m + "127.0.0.1:9000/b", "backup", Unsure},
		{"unresolvable name", m + "minio.invalid:9000/b", "backup", m + "127.0.0.1:9000/b", "backup", Unsure},
		{"https vs http", m + "https://127.0.0.1:9000/b", "backup", m + "127.0.0.1:9000/b", "backup", Unsure},
		{"s3 same bucket", "s3://b", "backup/", "s3://b", "backup", Same},
		{"s3 other bucket", "s3://c", "backup", "s3://b", "backup", Different},
		{"fs vs minio", "fs://" + root, "backup", m + "127.0.0.1:9000/b", "backup", Different},
		{"fs identical", "fs://" + root + "/real", "bk", "fs://" + root + "/real", "bk", Same},
		{"fs //", "fs://" + root + "//real", "bk", "fs://" + root + "/real", "bk", Same},
		{"fs /./", "fs://" + root + "/./real", "bk", "fs://" + root + "/real", "bk", Same},
		{"fs trailing slash", "fs://" + root + "/real/", "bk/", "fs://" + root + "/real", "bk", Same},
		{"fs ..", "fs://" + root + "/real/../real", "bk", "fs://" + root + "/real", "bk", Same},
		{"fs symlinked directory", "fs://" + root + "/link", "bk", "fs://" + root + "/real", "bk", Same},
		{"fs symlink, not yet created below", "fs://" + root + "/link", "new/dir", "fs://" + root + "/real", "new/dir", Same},
		{"fs path split between URL and directory", "fs://" + root, "real/bk", "fs://" + root + "/real", "bk", Same},
		{"fs split the other way, via the link", "fs://" + root + "/link/bk", "", "fs://" + root, "real/bk", Same},
		{"fs other directory (names alone cannot rule out a bind mount)", "fs://" + root + "/real", "other", "fs://" + root + "/real", "bk", Unsure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Identify(context.Background(), IdentifyInput{TargetURL: tt.url, TargetDir: tt.dir, ClusterURL: tt.clusterURL, ClusterDir: tt.clustDir})
			if got.Verdict != tt.want {
				t.Fatalf("%s + %q vs %s + %q: %s (%s), want %s", tt.url, tt.dir, tt.clusterURL, tt.clustDir, got.Verdict, got.Reason, tt.want)
			}
			if got.Reason == "" {
				t.Fatal("no reason given")
			}
			if v := got.Verdict; v.Own() != (v != Different) {
				t.Fatal("in doubt, a location must count as the cluster's own")
			}
		})
	}
}

// What the names cannot settle, the meta node's manifest or a probe does.
func TestIdentifyByEvidence(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	open := func(url, dir string) *Storage {
		st, err := objstore.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return NewStorage(st, dir)
	}
	// Two fs directories that are different: the probe shows it.
	a := open("fs://"+root+"/a", "bk")
	in := IdentifyInput{Target: a, TargetURL: "fs://" + root + "/a", TargetDir: "bk", ClusterURL: "fs://" + root + "/b", ClusterDir: "bk"}
	if got := Identify(ctx, in); got.Verdict != Unsure {
		t.Fatalf("without evidence: %s", got.Verdict)
	}
	in.Probe = true
	if got := Identify(ctx, in); got.Verdict != Different {
		t.Fatalf("probe: %s (%s)", got.Verdict, got.Reason)
	}
	if objs, _ := a.Store.List(ctx, ""); len(objs) != 0 {
		t.Fatalf("the probe left %v", objs)
	}
	// A store reached under two names (shared memory stands in for a
	// server behind two addresses): the probe shows it is one.
	mem := open("memory-shared", "bk")
	in = IdentifyInput{Target: mem, TargetURL: "memory-shared", TargetDir: "bk", ClusterURL: "memory", ClusterDir: "bk", Probe: true}
	if got := Identify(ctx, in); got.Verdict != Same {
		t.Fatalf("one store, two names: %s (%s)", got.Verdict, got.Reason)
	}
	// The manifest stored there is the one the meta node serves.
	if _, err := a.Create(ctx, encodedSnapshot(5), entry(5)); err != nil {
		t.Fatal(err)
	}
	stored, _, _ := a.ReadManifest(ctx)
	in = IdentifyInput{Target: a, TargetURL: "fs://" + root + "/a", TargetDir: "bk", ClusterURL: "fs://" + root + "/b", ClusterDir: "bk",
		MetaManifest: func(context.Context) (*Manifest, error) { return stored, nil }}
	if got := Identify(ctx, in); got.Verdict != Same {
		t.Fatalf("same manifest as the meta node's: %s (%s)", got.Verdict, got.Reason)
	}
	other := &Manifest{ManifestID: 9}
	in.MetaManifest = func(context.Context) (*Manifest, error) { return other, nil }
	if got := Identify(ctx, in); got.Verdict != Unsure {
		t.Fatalf("another manifest, no probe: %s", got.Verdict)
	}
}
