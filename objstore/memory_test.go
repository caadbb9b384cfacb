package objstore_test

import (
	"context"
	"testing"

	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/objstore/objstoretest"
)

func TestMemoryConformance(t *testing.T) {
	objstoretest.RunConformance(t, func(t *testing.T) objstore.Store {
		return objstore.NewMemory()
	})
}

// "memory" and "memory-shared" share one process-wide store.
func TestMemoryShared(t *testing.T) {
	ctx := context.Background()
	a, err := objstore.Open(ctx, "memory")
	if err != nil {
		t.Fatal(err)
	}
	b, err := objstore.Open(ctx, "memory-shared")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "TestMemoryShared/k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	got, _, err := b.Get(ctx, "TestMemoryShared/k")
	if err != nil || string(got) != "v" {
		t.Fatalf("Get through the second Open = %q, %v", got, err)
	}
	if err := b.Delete(ctx, "TestMemoryShared/k"); err != nil {
		t.Fatal(err)
	}
}
