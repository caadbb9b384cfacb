package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/restore"
	"github.com/rwsnap/rwsnap/rwsim"
)

// expectedOlder is what restoring a snapshot taken at rev writes when a
// newer snapshot (taken at newestRev) exists: RisingWave takes default_cf
// (the id generators) from the newest.
func expectedOlder(t *testing.T, src *clientv3.Client, rev, newestRev int64) map[string]string {
	t.Helper()
	want := expectedRestore(t, src, rev, nil)
	for k := range want {
		if strings.HasPrefix(k, metastore.CFDefault+"/") {
			delete(want, k)
		}
	}
	for k, v := range expectedRestore(t, src, newestRev, nil) {
		if strings.HasPrefix(k, metastore.CFDefault+"/") {
			want[k] = v
		}
	}
	return want
}

// twoSnapshots takes two backups with the cluster advanced in between, so
// the restores of each write different keyspaces.
func twoSnapshots(t *testing.T, f *fixture) (ids [2]uint64, wants [2]map[string]string) {
	t.Helper()
	id1, rev1 := backupID(t, f)
	for range 3 {
		if err := f.sim.Advance(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	id2, rev2 := backupID(t, f)
	wants[0], wants[1] = expectedOlder(t, f.cli, rev1, rev2), expectedRestore(t, f.cli, rev2, nil)
	if fmt.Sprint(wants[0]) == fmt.Sprint(wants[1]) {
		t.Fatal("the two snapshots restore the same keyspace; the test cannot tell them apart")
	}
	return [2]uint64{id1, id2}, wants
}

func (f *fixture) restoreArgs(id uint64, endpoints string) []string {
	return []string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(id), "--etcd-endpoints", endpoints,
		"--backup-storage-url", f.bucketURL, "--backup-storage-directory", "hummock_001/backup", "--hummock-storage-url", f.bucketURL}
}

// TestTwoRestoresOneTarget: restores of two different snapshots, and two
// runs of the same one, race into one empty etcd. Both pass the emptiness
// check (each is held just before its claim), then exactly one takes the
// marker by compare-and-swap and completes; the other stops before its
// first write with exit 1 and an error naming the restore in progress, or,
// when the winner completed before the loser's check or claim (a loaded
// machine), saying the target holds that complete restore (same snapshot)
// or keys not its own (different). The target ends equal to exactly the
// winner's snapshot.
func TestTwoRestoresOneTarget(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 61})
	ids, wants := twoSnapshots(t, f)
	hold := []string{faultpoint.PauseEnv + "=restore.before-claim=1500ms"}
	for _, tc := range []struct {
		name string
		snap [2]int // indexes into ids
		want string
	}{
		{"different snapshots", [2]int{0, 1}, "another restore owns the target etcd"},
		{"same snapshot", [2]int{1, 1}, "another restore owns the target etcd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := etcdtest.StartT(t, embedetcd.Config{})
			ep := strings.Join(b.Endpoints(), ",")
			var wg sync.WaitGroup
			var res [2]result
			for i := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res[i] = run(t, hold, f.restoreArgs(ids[tc.snap[i]], ep)...)
				}()
			}
			wg.Wait()
			winner := -1
			for i, r := range res {
				switch r.code {
				case 0:
					if winner >= 0 {
						t.Fatalf("both restores exited 0:\n%s\n%s", res[0], res[1])
					}
					winner = i
				case 1:
					want := []string{tc.want, "restore ", "host ", "pid ", "started ", fmt.Sprintf("snapshot %d", ids[tc.snap[1-i]])}
					// On a loaded machine the winner may complete before the
					// loser's check or claim: then the loser finds the
					// winner's keys and refuses them as such.
					switch {
					case tc.snap[0] == tc.snap[1] && strings.Contains(r.stderr, "already holds a complete restore"):
						want = []string{fmt.Sprintf("complete restore of snapshot %d", ids[tc.snap[i]]), "nothing to do"}
					case tc.snap[0] != tc.snap[1] && strings.Contains(r.stderr, "are not this restore's"):
						want = []string{"meta store is not empty", "fresh, empty etcd"}
					}
					for _, w := range want {
						if !strings.Contains(r.stderr, w) {
							t.Errorf("the loser's error lacks %q:\n%s", w, r)
						}
					}
					// It lost at its claim: it never said it writes or resumes.
					for _, bad := range []string{"writing", "resum"} {
						if strings.Contains(r.stdout+r.stderr, bad) {
							t.Errorf("the loser says %q:\n%s", bad, r)
						}
					}
				default:
					t.Fatalf("restore %d: %s", i, r)
				}
			}
			if winner < 0 {
				t.Fatalf("no restore succeeded:\n%s\n%s", res[0], res[1])
			}
			diffKV(t, dumpEtcd(t, etcdtest.ClientT(t, b)), wants[tc.snap[winner]])
		})
	}
}

// TestIdenticalRestoreCompletedBeforeClaim: a run of the same restore
// completes the target between this restore's check of it and its claim
// (the check found it empty, or holding that run's marker). Its claim then
// says the target holds this complete restore, that another run completed
// it meanwhile, and that it wrote nothing: it neither resumes nor rewrites.
func TestIdenticalRestoreCompletedBeforeClaim(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 67})
	ids, wants := twoSnapshots(t, f)
	for _, tc := range []struct {
		name string
		// crashAt leaves a killed run's marker for the check to find.
		crashAt string
	}{
		{"check found it empty", ""},
		{"check found its marker", "restore.after-batch#2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := etcdtest.StartT(t, embedetcd.Config{})
			bcli := etcdtest.ClientT(t, b)
			ep := strings.Join(b.Endpoints(), ",")
			if tc.crashAt != "" {
				wasKilled(t, tc.crashAt, run(t, []string{faultpoint.Env + "=" + tc.crashAt}, f.restoreArgs(ids[1], ep)...))
			}
			var done map[string]string
			res, err := restore.Restore(context.Background(), restore.Options{
				SnapshotID: ids[1], MetaStoreType: "etcd", Etcd: metastore.Config{Endpoints: b.Endpoints()},
				BackupURL: f.bucketURL, BackupDir: "hummock_001/backup", HummockURL: f.bucketURL,
				// Checked, not yet claimed: the other run completes now.
				OnPlan: func(r *restore.Result) {
					if (tc.crashAt != "") != r.Resumed {
						t.Errorf("the check saw resumed=%v", r.Resumed)
					}
					mustRun(t, nil, f.restoreArgs(ids[1], ep)...)
					done = dumpEtcd(t, bcli)
				},
			})
			if !errors.Is(err, restore.ErrAlreadyRestored) || !errors.Is(err, restore.ErrNotEmpty) {
				t.Fatalf("claim after the same restore completed: %v (%+v)", err, res)
			}
			for _, w := range []string{"another run of this same restore completed it", "wrote nothing", fmt.Sprintf("complete restore of snapshot %d", ids[1])} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), "resum") {
				t.Errorf("the error speaks of resuming: %v", err)
			}
			diffKV(t, dumpEtcd(t, bcli), done)
			diffKV(t, done, wants[1])
		})
	}
}

// TestConcurrentRestoresInProcess runs restore.Restore in goroutines of one
// process (same pid), mixing two snapshots: exactly one succeeds, every
// other returns ErrRestoreInProgress, and the target holds the winner's.
func TestConcurrentRestoresInProcess(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 62})
	ids, wants := twoSnapshots(t, f)
	b := etcdtest.StartT(t, embedetcd.Config{Members: 3})
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = restore.Restore(context.Background(), restore.Options{
				SnapshotID: ids[i%2], MetaStoreType: "etcd", Etcd: metastore.Config{Endpoints: b.Endpoints()},
				BackupURL: f.bucketURL, BackupDir: "hummock_001/backup", HummockURL: f.bucketURL,
			})
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("restores %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, restore.ErrRestoreInProgress) && !errors.Is(err, restore.ErrNotEmpty):
			t.Fatalf("restore %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no restore succeeded: %v", errs)
	}
	diffKV(t, dumpEtcd(t, etcdtest.ClientT(t, b)), wants[winner%2])
}

// TestHalfRestoredTarget: a restore killed midway leaves its marker; a
// restore of another snapshot is refused naming it and writes nothing; a
// rerun of the same restore completes it, identical to an uninterrupted one.
func TestHalfRestoredTarget(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 63})
	ids, wants := twoSnapshots(t, f)
	for _, point := range []string{"restore.after-marker", "restore.after-batch#2", "restore.during-readback", "restore.before-marker-removal"} {
		t.Run(point, func(t *testing.T) {
			b := etcdtest.StartT(t, embedetcd.Config{})
			bcli := etcdtest.ClientT(t, b)
			ep := strings.Join(b.Endpoints(), ",")
			wasKilled(t, point, run(t, []string{faultpoint.Env + "=" + point}, f.restoreArgs(ids[0], ep)...))
			before := dumpEtcd(t, bcli)
			if _, ok := before[restore.MarkerKey]; !ok {
				t.Fatalf("killed at %s: no restore marker", point)
			}
			expectFailure(t, 1, []string{"a different restore", fmt.Sprintf("snapshot %d", ids[0]), "host ", "pid ", "started "}, "", nil, f.restoreArgs(ids[1], ep)...)
			after := dumpEtcd(t, bcli)
			delete(before, restore.OwnerKey)
			delete(after, restore.OwnerKey)
			if fmt.Sprint(before) != fmt.Sprint(after) {
				t.Fatalf("the refused restore changed the target (%d keys -> %d)", len(before), len(after))
			}
			r := mustRun(t, nil, f.restoreArgs(ids[0], ep)...)
			if !strings.Contains(r.stderr, "completing an interrupted restore") {
				t.Errorf("rerun did not say it resumed:\n%s", r)
			}
			diffKV(t, dumpEtcd(t, bcli), wants[0])
			// Complete now: a rerun is refused and says why.
			expectFailure(t, 1, []string{"already holds a complete restore", fmt.Sprintf("snapshot %d", ids[0])}, "", nil, f.restoreArgs(ids[0], ep)...)
		})
	}
}

// TestRestoreCompletedWhileAnotherWaited: restore B checks the target
// (empty) and is held before its claim; meanwhile restore A claims,
// completes and removes its marker. B's claim must then fail (the target is
// no longer empty) and write nothing, instead of overwriting A's restore.
// (Found by the chaos campaign, seed 11.)
func TestRestoreCompletedWhileAnotherWaited(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 65})
	ids, wants := twoSnapshots(t, f)
	b := etcdtest.StartT(t, embedetcd.Config{})
	ep := strings.Join(b.Endpoints(), ",")
	var wg sync.WaitGroup
	var ra, rb result
	wg.Add(2)
	go func() {
		defer wg.Done()
		ra = run(t, []string{faultpoint.PauseEnv + "=restore.before-claim=700ms"}, f.restoreArgs(ids[0], ep)...)
	}()
	go func() {
		defer wg.Done()
		rb = run(t, []string{faultpoint.PauseEnv + "=restore.before-claim=6s"}, f.restoreArgs(ids[1], ep)...)
	}()
	wg.Wait()
	if ra.code != 0 {
		t.Fatalf("restore A: %s", ra)
	}
	// Usually B's claim finds A's keys; on a slow machine B may already
	// find A's marker, or A's keys, at its check: refused all the same.
	if rb.code != 1 || !(strings.Contains(rb.stderr, "meta store is not empty") || strings.Contains(rb.stderr, "another restore owns the target etcd")) {
		t.Fatalf("restore B, after A completed: %s", rb)
	}
	diffKV(t, dumpEtcd(t, etcdtest.ClientT(t, b)), wants[0])
}

// TestLiveRestoreNamedFromTheStart: a restore that finds the target held by
// a live restore process (its marker and its leased owner key, as the
// winner of a race leaves them) says from its first line that another
// restore owns the target, naming that process, and never that it resumes
// or writes; it changes nothing, dry run included. Once the owner is gone
// the same restore resumes as before.
func TestLiveRestoreNamedFromTheStart(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 66})
	ids, wants := twoSnapshots(t, f)
	b := etcdtest.StartT(t, embedetcd.Config{})
	bcli := etcdtest.ClientT(t, b)
	ep := strings.Join(b.Endpoints(), ",")
	// The winner: killed right after its claim, then held by a live process
	// on this host (this test's own, whose pid runs) on a lease kept alive.
	wasKilled(t, "restore.after-marker", run(t, []string{faultpoint.Env + "=restore.after-marker"}, f.restoreArgs(ids[0], ep)...))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lease, err := bcli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	ka, err := bcli.KeepAlive(ctx, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range ka {
		}
	}()
	host, _ := os.Hostname()
	winner := fmt.Sprintf(`{"restore_id":"winner-7f3a","host":%q,"pid":%d,"started":"2026-01-02T03:04:05Z"}`, host, os.Getpid())
	if _, err := bcli.Put(ctx, restore.OwnerKey, winner, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	before := dumpEtcd(t, bcli)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"same snapshot", f.restoreArgs(ids[0], ep)},
		{"same snapshot, dry run", append(f.restoreArgs(ids[0], ep), "--dry-run")},
		{"different snapshot", f.restoreArgs(ids[1], ep)},
		{"same snapshot, json", append(f.restoreArgs(ids[0], ep), "-o", "json")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, nil, tc.args...)
			if r.code != 1 {
				t.Fatalf("want exit 1: %s", r)
			}
			for _, w := range []string{"another restore owns the target etcd", "winner-7f3a", fmt.Sprintf("pid %d", os.Getpid()), "host " + host, fmt.Sprintf("snapshot %d", ids[0])} {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("the loser's error lacks %q:\n%s", w, r)
				}
			}
			for _, bad := range []string{"resum", "interrupted", "half-restored", "writing", "restore claimed"} {
				if strings.Contains(strings.ToLower(r.stdout+r.stderr), bad) {
					t.Errorf("the loser says %q:\n%s", bad, r)
				}
			}
			diffKV(t, dumpEtcd(t, bcli), before)
		})
	}
	// The owner is gone: the same restore resumes and completes, saying so.
	if _, err := bcli.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, nil, f.restoreArgs(ids[0], ep)...)
	if !strings.Contains(r.stdout, "resuming an interrupted restore of snapshot") || !strings.Contains(r.stderr, "completing an interrupted restore") {
		t.Errorf("the rerun did not say it resumed:\n%s", r)
	}
	diffKV(t, dumpEtcd(t, bcli), wants[0])
}
