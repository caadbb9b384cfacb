package metasnap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/objstore"
)

func TestCopy(t *testing.T) {
	ctx := context.Background()
	src := NewStorage(objstore.NewMemory(), "backup")
	dst := NewStorage(objstore.NewMemory(), "elsewhere")
	for id := uint64(1); id <= 3; id++ {
		if _, err := src.Create(ctx, encodedSnapshot(id), entry(id)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Copy(ctx, src, dst, []uint64{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Copied) != "[1 3]" || len(res.Present) != 0 || res.Manifest != 1 {
		t.Fatalf("%+v", res)
	}
	// Rerun: nothing copied, manifest untouched.
	res, err = Copy(ctx, src, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Copied) != "[2]" || fmt.Sprint(res.Present) != "[1 3]" || res.Manifest != 2 {
		t.Fatalf("second copy %+v", res)
	}
	res, err = Copy(ctx, src, dst, nil)
	if err != nil || len(res.Copied) != 0 || res.Manifest != 2 {
		t.Fatalf("third copy %+v %v", res, err)
	}
	for id := uint64(1); id <= 3; id++ {
		a, _, _ := src.Store.Get(ctx, src.SnapshotKey(id))
		b, _, _ := dst.Store.Get(ctx, dst.SnapshotKey(id))
		if string(a) != string(b) {
			t.Fatalf("snapshot %d differs", id)
		}
	}
	if _, err := Copy(ctx, src, src, nil); err == nil || !strings.Contains(err.Error(), "is the source") {
		t.Fatalf("copy onto itself: %v", err)
	}
	if _, err := Copy(ctx, src, dst, []uint64{9}); !errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	// A corrupted source object is refused, not propagated.
	b, _, _ := src.Store.Get(ctx, src.SnapshotKey(2))
	b[30] ^= 1
	src.Store.Put(ctx, src.SnapshotKey(2), b)
	other := NewStorage(objstore.NewMemory(), "x")
	if _, err := Copy(ctx, src, other, nil); !errors.Is(err, ErrChecksum) {
		t.Fatalf("corrupted source: %v", err)
	}
	if m, _, _ := other.ReadManifest(ctx); len(m.SnapshotMetadata) != 0 {
		t.Fatal("a failed copy wrote manifest entries")
	}
}
