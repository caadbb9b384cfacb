package restore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

func TestLoad(t *testing.T) {
	ctx := context.Background()
	st := metasnap.NewStorage(objstore.NewMemory(), "backup")
	for _, id := range []uint64{3, 5} {
		s := snapshot(t, id, map[string]uint64{"table_id_next_generator": 1000 + id})
		if _, err := st.Create(ctx, s.Encode(), metasnap.SnapshotMetadata{ID: id, HummockVersionID: 42, FormatVersion: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// A SQL-meta-store snapshot listed by a newer RisingWave.
	if _, err := st.UpdateManifest(ctx, func(m *metasnap.Manifest, _ bool) error {
		m.SnapshotMetadata = append(m.SnapshotMetadata, metasnap.SnapshotMetadata{ID: 4, HummockVersionID: 1, FormatVersion: 2})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	target, newest, err := Load(ctx, st, 3)
	if err != nil || target.ID != 3 || newest == nil || newest.ID != 5 {
		t.Fatalf("Load(3) = %v, %v, %v", target, newest, err)
	}
	if _, newest, err := Load(ctx, st, 5); err != nil || newest != nil {
		t.Fatalf("Load(5): newest %v, %v", newest, err)
	}
	if _, _, err := Load(ctx, st, 4); err == nil || !strings.Contains(err.Error(), "SQL meta store snapshots are not supported") {
		t.Fatalf("Load(4) = %v", err)
	}
	if _, _, err := Load(ctx, st, 9); !errors.Is(err, metasnap.ErrSnapshotNotFound) || !strings.Contains(err.Error(), "3, 5, 4") {
		t.Fatalf("Load(9) = %v", err)
	}
}
