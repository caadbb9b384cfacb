package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/rwsim"
)

// TestLivePruneAndScheduleThroughMeta: with a meta node live, prune and
// schedule go through it, so its cached manifest follows and its next own
// backup does not resurrect pruned snapshots.
func TestLivePruneAndScheduleThroughMeta(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, rwsim.Options{Seed: 41})
	n := startMeta(t, f, 10, true)
	var ids []uint64
	for i := 0; i < 3; i++ {
		id, err := n.Backup(ctx, "meta's own")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		if err := f.sim.Advance(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r := mustRun(t, nil, append([]string{"meta", "prune", "--keep-last", "1"}, f.etcdArgs()...)...)
	if !strings.Contains(r.stdout, "2 of 3 snapshots deleted") || !strings.Contains(r.stdout, "meta node") {
		t.Fatalf("prune through the meta node:\n%s", r)
	}
	if m := n.Manifest(); len(m.SnapshotMetadata) != 1 || m.SnapshotMetadata[0].ID != ids[2] {
		t.Fatalf("the meta node's cache after prune: %v", m.IDs())
	}
	own, err := n.Backup(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "the meta node's backup after prune", f.storedIDs(t), ids[2], own)

	// One scheduled job: through the meta node, visible in its cache.
	r = mustRun(t, nil, append([]string{"schedule", "--once", "--keep-last", "2", "--remarks", "scheduled"}, f.etcdArgs()...)...)
	if !strings.Contains(r.stderr, "working through the meta node") {
		t.Fatalf("schedule did not use the meta node:\n%s", r)
	}
	m := n.Manifest()
	if len(m.SnapshotMetadata) != 2 || m.SnapshotMetadata[0].ID != own || *m.SnapshotMetadata[1].Remarks != "scheduled" {
		t.Fatalf("the meta node's cache after a scheduled job: %v", m.IDs())
	}
	wantIDs(t, "stored after the scheduled job", f.storedIDs(t), m.IDs()...)
}
