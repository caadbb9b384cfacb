package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
)

// TestDataGCCrashAtEveryStep kills prune with SIGKILL at every step it
// takes, the data GC's included (lock taken, marked, every index and
// object delete, lock released), counted by RWSNAP_CRASH_STEP, from the
// same starting state each time; then reruns it. After every kill, every
// object a remaining snapshot or a backup in flight references is in the
// copy byte-identical, and no snapshot claims data the copy lacks; after
// every rerun the copy holds exactly the referenced objects (the
// unreferenced ones, and only they, are gone) and verifies with
// --read-data. delete-meta-snapshots runs the same data GC (dataGC).
func TestDataGCCrashAtEveryStep(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 46})
	ctx := context.Background()
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	loc := []string{"--backup-storage-url", "fs://" + root, "--backup-storage-directory", "rw"}
	backup := func() {
		t.Helper()
		mustRun(t, nil, append(append([]string{"meta", "backup-meta", "--with-data", "-q", "--mode", "direct"}, loc...), f.etcdArgs()...)...)
	}
	// Three snapshots; prune --keep-last 2 removes the first, and with it
	// the objects only it references, except one a backup in flight names.
	backup()
	v1 := hummock.ObjectIDs(f.sim.ExpectedVersion())
	for i := 0; i < 2; i++ {
		for range 3 {
			if err := f.sim.Advance(ctx); err != nil {
				t.Fatal(err)
			}
		}
		backup()
	}
	st := metasnap.NewStorage(mustOpen(t, "fs://"+root), "rw")
	m, _, err := st.ReadManifest(ctx)
	if err != nil || len(m.SnapshotMetadata) != 3 {
		t.Fatalf("manifest: %v", err)
	}
	kept := map[uint64]bool{}
	for _, e := range m.SnapshotMetadata[1:] {
		for _, id := range e.SSTs {
			kept[id] = true
		}
	}
	var only1 []uint64
	for _, id := range v1 {
		if !kept[id] {
			only1 = append(only1, id)
		}
	}
	if len(only1) < 2 {
		t.Fatalf("the first snapshot has %d objects of its own; the test needs at least 2", len(only1))
	}
	// A backup in flight (its pending marker, as backup-data writes it)
	// references one of them: GC must keep it.
	data := mustOpen(t, "fs://"+root)
	inflight := only1[0]
	p, err := metasnap.WritePending(ctx, data, "rw/data/rwsnap", metasnap.PendingMarker{Kind: metasnap.PendingKindData, IDs: []uint64{999}, Objects: []uint64{inflight}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release(ctx)
	kept[inflight] = true
	gone := append([]uint64(nil), only1[1:]...)
	key := func(id uint64) string { return hummock.SSTPath("rw/data", id, false) }
	want := map[uint64][]byte{}
	for id := range kept {
		b, _, err := data.Get(ctx, key(id))
		if err != nil {
			t.Fatalf("object %d before the GC: %v", id, err)
		}
		want[id] = b
	}
	pristine := filepath.Join(dir, "pristine")
	copyTree(t, root, pristine)

	prune := append(append([]string{"meta", "prune", "--keep-last", "2", "--mode", "direct", "-q"}, loc...), f.etcdArgs()...)
	checkKept := func(when string) {
		t.Helper()
		for id, b := range want {
			got, _, err := data.Get(ctx, key(id))
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("%s: referenced object %d is not intact: %v", when, id, err)
			}
		}
		checkNoOverclaim(t, loc, f)
	}
	steps := 0
	for n := 1; ; n++ {
		restoreTree(t, pristine, root)
		r := run(t, []string{fmt.Sprintf("RWSNAP_CRASH_STEP=#%d", n)}, prune...)
		if r.code == 0 {
			steps = n - 1
			break
		}
		if r.code != 137 && r.code != -1 {
			t.Fatalf("step %d: prune failed instead of being killed:\n%s", n, r)
		}
		checkKept(fmt.Sprintf("killed at step %d", n))
		// The rerun finishes the job: exactly the unreferenced objects go.
		mustRun(t, nil, prune...)
		checkKept(fmt.Sprintf("rerun after step %d", n))
		left := dataObjectIDs(t, data)
		for _, id := range gone {
			if slices.Contains(left, id) {
				t.Fatalf("rerun after step %d: unreferenced object %d survived", n, id)
			}
		}
		for _, id := range left {
			if !kept[id] {
				t.Fatalf("rerun after step %d: object %d is left that nothing references", n, id)
			}
		}
		if n > 500 {
			t.Fatal("prune never completed without a kill")
		}
	}
	// The walk reached the GC's sweep: at least a lock, a mark, one delete
	// per gone object and per removed index, and the unlock.
	if steps < len(gone)+4 {
		t.Fatalf("only %d steps were killed; the GC has at least %d", steps, len(gone)+4)
	}
	mustRun(t, nil, append(append([]string{"meta", "verify-meta-snapshot", "--all", "--check-data", "--read-data"}, loc...), f.etcdArgs()...)...)
	t.Logf("killed prune at each of its %d steps; %d objects freed, %d kept", steps, len(gone), len(kept))
}

// dataObjectIDs lists the SST objects of the data copy rw/data.
func dataObjectIDs(t *testing.T, s objstore.Store) []uint64 {
	t.Helper()
	objs, err := s.List(context.Background(), "rw/data/")
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, o := range objs {
		if id, ok := hummock.ParseSSTObjectID(o.Key); ok && o.Key == hummock.SSTPath("rw/data", id, false) {
			ids = append(ids, id)
		}
	}
	return ids
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v %s", from, to, err, out)
	}
}

// restoreTree makes to a copy of from again (mtimes kept, so the pending
// marker stays fresh and the ETags of the fs store repeat).
func restoreTree(t *testing.T, from, to string) {
	t.Helper()
	if err := os.RemoveAll(to); err != nil {
		t.Fatal(err)
	}
	copyTree(t, from, to)
}
