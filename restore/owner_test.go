package restore

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/progress"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
)

func getKey(t *testing.T, cli *clientv3.Client, k string) (string, bool) {
	t.Helper()
	resp, err := cli.Get(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}

// TestStaleOwnerCannotWrite: once a process's claim is gone (its lease
// expired and another run took over, or the owner key was replaced), its
// batch writes and its marker removal fail with ErrLostOwnership and write
// nothing.
func TestStaleOwnerCannotWrite(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.ClientT(t, etcdtest.StartT(t, embedetcd.Config{}))
	log := slog.New(slog.DiscardHandler)
	plan := &Plan{SnapshotID: 7, DefaultCFFrom: 7, Digest: "digest-a"}
	bar := progress.New("test", 0, "keys")
	for _, tc := range []struct {
		name string
		lose func(o *Owner)
	}{
		{"lease expired", func(o *Owner) {
			if _, err := cli.Revoke(ctx, o.lease); err != nil {
				t.Fatal(err)
			}
		}},
		{"taken over", func(o *Owner) {
			if _, err := cli.Put(ctx, OwnerKey, `{"restore_id":"other"}`); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := cli.Delete(ctx, "", clientv3.WithFromKey()); err != nil {
				t.Fatal(err)
			}
			o, err := Claim(ctx, cli, plan, false, log)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			if _, err := putBatched(ctx, cli, o, &Group{Kind: "t", N: 1, KVs: []KV{{Key: "cf/a", Value: []byte("1")}}}, bar); err != nil {
				t.Fatalf("owner's write: %v", err)
			}
			tc.lose(o)
			n, err := putBatched(ctx, cli, o, &Group{Kind: "t", N: 1, KVs: []KV{{Key: "cf/b", Value: []byte("2")}}}, bar)
			if !errors.Is(err, ErrLostOwnership) || n != 0 {
				t.Fatalf("stale write: %d written, %v", n, err)
			}
			if _, ok := getKey(t, cli, "cf/b"); ok {
				t.Fatal("a stale owner wrote a key")
			}
			if err := o.Check(ctx); !errors.Is(err, ErrLostOwnership) {
				t.Fatalf("Check: %v", err)
			}
			if err := o.Finish(ctx); !errors.Is(err, ErrLostOwnership) {
				t.Fatalf("Finish: %v", err)
			}
			if _, ok := getKey(t, cli, MarkerKey); !ok {
				t.Fatal("a stale owner removed the marker")
			}
		})
	}
}

// TestClaim: a fresh claim writes marker and owner; a second claim of a
// different plan, or of the same plan while the owner lives, is refused
// naming the owner; once the owner is gone (lease revoked, as after a
// crash) the same plan resumes and a different one is still refused.
func TestClaim(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.ClientT(t, etcdtest.StartT(t, embedetcd.Config{}))
	log := slog.New(slog.DiscardHandler)
	a := &Plan{SnapshotID: 7, DefaultCFFrom: 7, Digest: "digest-a"}
	b := &Plan{SnapshotID: 9, DefaultCFFrom: 9, Digest: "digest-b"}
	o, err := Claim(ctx, cli, a, false, log)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := getKey(t, cli, MarkerKey); !ok || !strings.Contains(v, o.ID()) || !strings.Contains(v, `"snapshot_id":7`) {
		t.Fatalf("marker %q", v)
	}
	for _, tc := range []struct {
		plan   *Plan
		resume bool
		want   []string
	}{
		{b, false, []string{"different restore", "snapshot 7", o.ID()}},
		{a, false, []string{"running this same restore", o.ID()}},
		{a, true, []string{"running this same restore", o.ID()}},
	} {
		if _, err := Claim(ctx, cli, tc.plan, tc.resume, log); !errors.Is(err, ErrRestoreInProgress) {
			t.Fatalf("second claim of %s: %v", tc.plan.Digest, err)
		} else {
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("second claim of %s: %q lacks %q", tc.plan.Digest, err, w)
				}
			}
		}
	}
	o.Close() // what the lease's expiry does after a crash
	if _, err := Claim(ctx, cli, b, true, log); !errors.Is(err, ErrRestoreInProgress) {
		t.Fatalf("a different plan resumed: %v", err)
	}
	o2, err := Claim(ctx, cli, a, true, log)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if o2.Marker.RestoreID != o.ID() {
		t.Fatalf("the resumed run replaced the marker: %+v", o2.Marker)
	}
	if err := o2.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{MarkerKey, OwnerKey} {
		if _, ok := getKey(t, cli, k); ok {
			t.Fatalf("%s left after Finish", k)
		}
	}
}

// TestClaimFromAnotherHost: the target is held by a process on another
// host, which this one cannot probe. Claim waits for its lease: if the
// process is gone (nobody keeps the lease alive) the lease expires and the
// same restore resumes; if it is alive (the lease is kept alive), Claim is
// refused naming it once the wait is over.
func TestClaimFromAnotherHost(t *testing.T) {
	defer func(d time.Duration) { ownerTTL = d }(ownerTTL)
	ownerTTL = 2 * time.Second
	ctx := context.Background()
	cli := etcdtest.ClientT(t, etcdtest.StartT(t, embedetcd.Config{}))
	log := slog.New(slog.DiscardHandler)
	a := &Plan{SnapshotID: 7, DefaultCFFrom: 7, Digest: "digest-a"}
	remote := func(keepAlive bool) {
		t.Helper()
		if _, err := cli.Delete(ctx, "", clientv3.WithFromKey()); err != nil {
			t.Fatal(err)
		}
		l, err := cli.Grant(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		if keepAlive {
			kctx, cancel := context.WithCancel(ctx)
			t.Cleanup(cancel)
			if _, err := cli.KeepAlive(kctx, l.ID); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := cli.Txn(ctx).Then(
			clientv3.OpPut(MarkerKey, `{"restore_id":"r1","host":"elsewhere","pid":1,"snapshot_id":7,"plan_digest":"digest-a","started":"then"}`),
			clientv3.OpPut(OwnerKey, `{"restore_id":"r1","host":"elsewhere","pid":1,"started":"then"}`, clientv3.WithLease(l.ID))).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	remote(false)
	o, err := Claim(ctx, cli, a, true, log)
	if err != nil {
		t.Fatalf("resume after the remote owner's lease expired: %v", err)
	}
	o.Close()
	remote(true)
	if _, err := Claim(ctx, cli, a, true, log); !errors.Is(err, ErrRestoreInProgress) || !strings.Contains(err.Error(), "host elsewhere") {
		t.Fatalf("claim while a remote owner lives: %v", err)
	}
}

// TestClaimFreshNeedsEmptyTarget: the emptiness check and the claim are
// apart in time. If another restore claimed, completed and removed its
// marker in between, the target holds its keys and no marker: a fresh claim
// must fail (and write nothing) instead of overwriting that restore.
func TestClaimFreshNeedsEmptyTarget(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.ClientT(t, etcdtest.StartT(t, embedetcd.Config{}))
	log := slog.New(slog.DiscardHandler)
	if _, err := cli.Put(ctx, "cf/cluster_id", "restored-by-another"); err != nil {
		t.Fatal(err)
	}
	a := &Plan{SnapshotID: 7, DefaultCFFrom: 7, Digest: "digest-a"}
	if o, err := Claim(ctx, cli, a, false, log); !errors.Is(err, ErrNotEmpty) {
		o.Close()
		t.Fatalf("fresh claim of a target holding keys: %v", err)
	}
	for _, k := range []string{MarkerKey, OwnerKey} {
		if _, ok := getKey(t, cli, k); ok {
			t.Fatalf("the refused claim wrote %s", k)
		}
	}
	// Empty again: the fresh claim works.
	if _, err := cli.Delete(ctx, "cf/cluster_id"); err != nil {
		t.Fatal(err)
	}
	o, err := Claim(ctx, cli, a, false, log)
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
}
