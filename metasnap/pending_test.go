package metasnap

import (
	"context"
	"fmt"
	"testing"

	"github.com/rwsnap/rwsnap/objstore"
)

// prune --orphans with no minimum age during a backup in flight must keep
// the in-flight object: its pending marker was written before the upload.
func TestDeleteOrphansKeepsInFlightBackup(t *testing.T) {
	ctx := context.Background()
	st := NewStorage(objstore.NewMemory(), "backup")
	if _, err := st.Create(ctx, []byte("first"), SnapshotMetadata{ID: 1}); err != nil {
		t.Fatal(err)
	}
	p, err := WritePending(ctx, st.Store, st.Dir, PendingMarker{Kind: PendingKindSnapshot, IDs: []uint64{2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Store.Put(ctx, st.SnapshotKey(2), []byte("uploading")); err != nil {
		t.Fatal(err)
	}
	st.Store.Put(ctx, st.SnapshotKey(3), []byte("a dead backup's orphan"))
	got, err := DeleteOrphans(ctx, st, 0, false)
	if err != nil || fmt.Sprint(got) != "[3]" {
		t.Fatalf("deleted %v (%v), want only the orphan without a marker", got, err)
	}
	if _, err := st.Store.Stat(ctx, st.SnapshotKey(2)); err != nil {
		t.Fatalf("the in-flight snapshot object was deleted: %v", err)
	}
	if err := p.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ms, _ := ListPending(ctx, st.Store, st.Dir); len(ms) != 0 {
		t.Fatalf("markers left after release: %v", ms)
	}
	if got, err := DeleteOrphans(ctx, st, 0, false); err != nil || fmt.Sprint(got) != "[2]" {
		t.Fatalf("after the marker is gone: %v %v", got, err)
	}
	// Create leaves no marker behind.
	if _, err := st.Create(ctx, []byte("x"), SnapshotMetadata{ID: 4}); err != nil {
		t.Fatal(err)
	}
	if ms, _ := ListPending(ctx, st.Store, st.Dir); len(ms) != 0 {
		t.Fatalf("Create left markers: %v", ms)
	}
}
