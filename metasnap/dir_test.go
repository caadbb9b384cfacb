package metasnap

import (
	"context"
	"errors"
	"testing"

	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwversion"
)

// s3Like is a memory store that says it is S3, for the key rules.
type s3Like struct{ objstore.Store }

func (s3Like) Scheme() string { return "s3" }

func TestDirectoryRulePerRelease(t *testing.T) {
	ctx := context.Background()
	v17, v20 := rwversion.V1_7, rwversion.V2_0
	cases := []struct {
		dir  string
		v    *rwversion.Version
		want string
	}{
		// storage.rs: format!("{}/manifest.json", dir), verbatim in v1.x.
		{"backup/", &v17, "backup//manifest.json"},
		{"/backup", &v17, "/backup/manifest.json"},
		{"a//b", &v17, "a//b/manifest.json"},
		{"backup", &v17, "backup/manifest.json"},
		// OpenDAL normalises (v2.0).
		{"backup/", &v20, "backup/manifest.json"},
		{"/a//b/", &v20, "a/b/manifest.json"},
	}
	for _, c := range cases {
		st := s3Like{objstore.NewMemory()}
		verbatim, err := DirVerbatim(ctx, st, c.dir, c.v)
		if err != nil {
			t.Fatal(err)
		}
		s := NewStorage(st, c.dir)
		if verbatim {
			s = NewStorageVerbatim(st, c.dir)
		}
		if got := s.ManifestKey(); got != c.want {
			t.Errorf("%s %q: %s, want %s", c.v, c.dir, got, c.want)
		}
	}
	// fs:// is OpenDAL in every release.
	if v, _ := DirVerbatim(ctx, objstore.NewMemory(), "backup/", &v17); v {
		t.Errorf("non-S3 store verbatim")
	}
	// Unknown release: the manifest that exists decides; none is refused.
	st := s3Like{objstore.NewMemory()}
	if _, err := DirVerbatim(ctx, st, "backup/", nil); !errors.Is(err, ErrAmbiguousDir) {
		t.Fatalf("no manifest: %v", err)
	}
	if err := st.Put(ctx, "backup//manifest.json", []byte(`{"manifest_id":0,"snapshot_metadata":[]}`)); err != nil {
		t.Fatal(err)
	}
	if v, err := DirVerbatim(ctx, st, "backup/", nil); err != nil || !v {
		t.Fatalf("verbatim manifest: %v %v", v, err)
	}
	if err := st.Put(ctx, "backup/manifest.json", []byte(`{"manifest_id":0,"snapshot_metadata":[]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := DirVerbatim(ctx, st, "backup/", nil); !errors.Is(err, ErrAmbiguousDir) {
		t.Fatalf("both manifests: %v", err)
	}
}
