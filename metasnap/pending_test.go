package metasnap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

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

// flakyPuts fails every Put while down is set: a marker whose rewrites
// fail, as a stalled mount or a partitioned store does.
type flakyPuts struct {
	objstore.Store
	down bool
}

func (f *flakyPuts) Put(ctx context.Context, key string, data []byte) error {
	if f.down {
		return errors.New("store unreachable")
	}
	return f.Store.Put(ctx, key, data)
}

// A backup may commit on the strength of its pending marker only if the
// marker never went unrewritten long enough for a cleaner to take it for
// a dead backup's: a pause or failed rewrites in the middle count even
// when a later rewrite succeeded (a GC may have run in the gap).
func TestPendingHeld(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		steps []string // "ok" rewrite succeeds, "fail" rewrite fails; 5 minutes apart
		after time.Duration
		lost  bool
	}{
		{"just written", nil, 0, false},
		{"rewritten every 5 minutes for an hour", []string{"ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"}, time.Minute, false},
		{"paused since the write", nil, 20 * time.Minute, true},
		{"rewrites failed for 15 minutes, then recovered", []string{"ok", "fail", "fail", "ok", "ok"}, 0, true},
		{"one failed rewrite", []string{"ok", "fail", "ok", "ok"}, 0, false},
		{"rewrites failing since", []string{"ok", "fail", "fail", "fail"}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &flakyPuts{Store: objstore.NewMemory()}
			p, err := WritePending(ctx, store, "backup", PendingMarker{Kind: PendingKindSnapshot, IDs: []uint64{7}})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Release(ctx)
			clock := p.lastOK
			p.mu.Lock()
			p.now = func() time.Time { return clock }
			p.mu.Unlock()
			for _, s := range tc.steps {
				clock = clock.Add(5 * time.Minute)
				store.down = s == "fail"
				p.refreshOnce(ctx)
			}
			clock = clock.Add(tc.after)
			err = p.Held()
			if tc.lost != errors.Is(err, ErrPendingLost) {
				t.Fatalf("Held() = %v, want lost=%v", err, tc.lost)
			}
		})
	}
}

// The commit checks the markers it relies on: with a stale data marker
// (backup-meta --with-data) the entry is not added and the manifest is
// left as it was.
func TestCreateRefusedWhenMarkerWentStale(t *testing.T) {
	ctx := context.Background()
	st := NewStorage(objstore.NewMemory(), "backup")
	if _, err := st.Create(ctx, []byte("first"), SnapshotMetadata{ID: 1}); err != nil {
		t.Fatal(err)
	}
	before, _, err := st.Store.Get(ctx, st.ManifestKey())
	if err != nil {
		t.Fatal(err)
	}
	data, err := WritePending(ctx, st.Store, st.Dir, PendingMarker{Kind: PendingKindData, IDs: []uint64{2}, Objects: []uint64{9}})
	if err != nil {
		t.Fatal(err)
	}
	defer data.Release(ctx)
	stale := data.lastOK.Add(PendingStale)
	data.mu.Lock()
	data.now = func() time.Time { return stale }
	data.mu.Unlock()
	_, err = st.CreateStream(ctx, SnapshotMetadata{ID: 2}, CreateOptions{Also: data}, func(w io.Writer) error {
		_, err := w.Write([]byte("second"))
		return err
	})
	if !errors.Is(err, ErrPendingLost) {
		t.Fatalf("CreateStream with a stale data marker: %v, want ErrPendingLost", err)
	}
	after, _, err := st.Store.Get(ctx, st.ManifestKey())
	if err != nil || string(after) != string(before) {
		t.Fatalf("the manifest changed (%v):\n%s\nwas\n%s", err, after, before)
	}
}
