package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/rwsim"
)

// TestRestoreNewestUnreadable: the newest snapshot's object is corrupted.
// Restoring an older one is refused with the reason (RisingWave takes the
// id generators from the newest) and the way forward; with
// --id-generators-from-snapshot naming the newest readable one, the
// restore succeeds with a warning, writing that snapshot's default cf.
func TestRestoreNewestUnreadable(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 64})
	ctx := context.Background()
	var ids [3]uint64
	var revs [3]int64
	for i := range ids {
		for range 2 {
			if err := f.sim.Advance(ctx); err != nil {
				t.Fatal(err)
			}
		}
		ids[i], revs[i] = backupID(t, f)
	}
	key := fmt.Sprintf("hummock_001/backup/%d.snapshot", ids[2])
	b, _, err := f.hummock.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := f.hummock.Put(ctx, key, b); err != nil {
		t.Fatal(err)
	}
	target := etcdtest.StartT(t, embedetcd.Config{})
	ep := strings.Join(target.Endpoints(), ",")
	args := f.restoreArgs(ids[0], ep)
	expectFailure(t, 1, []string{fmt.Sprintf("newest snapshot %d", ids[2]), "checksum mismatch", "id generators",
		fmt.Sprintf("--id-generators-from-snapshot %d", ids[1])}, f.minio.SecretKey, nil, args...)
	expectFailure(t, 2, []string{"older than the restored snapshot"}, "", nil, append(f.restoreArgs(ids[1], ep), "--id-generators-from-snapshot", fmt.Sprint(ids[0]))...)
	if n := len(dumpEtcd(t, etcdtest.ClientT(t, target))); n != 0 {
		t.Fatalf("refused restores wrote %d keys", n)
	}
	r := mustRun(t, nil, append(args, "--id-generators-from-snapshot", fmt.Sprint(ids[1]))...)
	if !strings.Contains(r.stderr, fmt.Sprintf("the id generators come from snapshot %d, not from the newest snapshot %d", ids[1], ids[2])) {
		t.Errorf("no warning:\n%s", r)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("id generators from newer snapshot %d", ids[1])) {
		t.Errorf("the plan does not say where the generators come from:\n%s", r)
	}
	diffKV(t, dumpEtcd(t, etcdtest.ClientT(t, target)), expectedOlder(t, f.cli, revs[0], revs[1]))
}
