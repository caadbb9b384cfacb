package restore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
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

// TestLoadFrom: an unreadable newest snapshot blocks the restore of an
// older one with an error that says why (id generators) and names the
// newest readable snapshot for --id-generators-from-snapshot; with it, the
// generators come from that snapshot, with a warning naming the snapshots
// whose SSTs the restored cluster may overwrite.
func TestLoadFrom(t *testing.T) {
	ctx := context.Background()
	st := metasnap.NewStorage(objstore.NewMemory(), "backup")
	for _, id := range []uint64{3, 5, 7} {
		s := snapshot(t, id, map[string]uint64{"table_id_next_generator": 1000 + id, sstGeneratorKey: 100 * id})
		if _, err := st.Create(ctx, s.Encode(), metasnap.SnapshotMetadata{ID: id, HummockVersionID: 42, FormatVersion: 1, SSTs: []uint64{100*id - 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Store.Put(ctx, "backup/7.snapshot", []byte("torn")); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := LoadFrom(ctx, st, 3, 0)
	for _, w := range []string{"newest snapshot 7", "id generators", "--id-generators-from-snapshot 5"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Fatalf("LoadFrom(3, newest unreadable) = %v, want it to say %q", err, w)
		}
	}
	target, gens, warning, err := LoadFrom(ctx, st, 3, 5)
	if err != nil || target.ID != 3 || gens == nil || gens.ID != 5 {
		t.Fatalf("LoadFrom(3, 5) = %v, %v, %v", target, gens, err)
	}
	for _, w := range []string{"from snapshot 5, not from the newest snapshot 7", "restarts at 500", "snapshots 7 pin SST objects up to 699"} {
		if !strings.Contains(warning, w) {
			t.Errorf("warning %q lacks %q", warning, w)
		}
	}
	p, err := BuildPlan(target, gens, PlanOptions{HummockURL: minioURL, HummockDir: "hummock_001"})
	if err != nil || p.DefaultCFFrom != 5 {
		t.Fatalf("plan: %v, %v", p, err)
	}
	for _, kv := range mustAll(t, p) {
		if kv.Key == "default/table_id_next_generator" && string(kv.Value) != string(metastore.MemcomparableU64(1005)) {
			t.Fatalf("table id generator %x, want snapshot 5's", kv.Value)
		}
	}
	// Its own generators: no newer snapshot's.
	if _, gens, warning, err := LoadFrom(ctx, st, 3, 3); err != nil || gens != nil || !strings.Contains(warning, "from snapshot 3") {
		t.Fatalf("LoadFrom(3, 3) = %v, %q, %v", gens, warning, err)
	}
	for _, tc := range []struct {
		id, from uint64
		want     string
	}{
		{5, 3, "older than the restored snapshot 5"},
		{3, 9, "not found"},
		{3, 7, "newest snapshot 7"}, // the newest itself is still unreadable
	} {
		if _, _, _, err := LoadFrom(ctx, st, tc.id, tc.from); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadFrom(%d, %d) = %v, want %q", tc.id, tc.from, err, tc.want)
		}
	}
	// With the newest readable, the default stays RisingWave's rule.
	if _, gens, warning, err := LoadFrom(ctx, st, 5, 0); err == nil {
		t.Fatalf("LoadFrom(5, 0) with 7 torn = %v %q", gens, warning)
	}
}
