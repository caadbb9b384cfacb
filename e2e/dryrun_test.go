package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
	"github.com/rwsnap/rwsnap/rwsim/frontend"
)

// worldState is everything a command could change: both etcds (the
// cluster's and a restore target) and every object in both buckets.
func worldState(t *testing.T, clis []*clientv3.Client, stores []objstore.Store) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for i, cli := range clis {
		for k, v := range dumpEtcd(t, cli) {
			out[fmt.Sprintf("etcd%d %q", i, k)] = fmt.Sprintf("%x", sha256.Sum256([]byte(v)))
		}
	}
	for i, st := range stores {
		objs, err := st.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			b, _, err := st.Get(ctx, o.Key)
			if err != nil {
				t.Fatal(err)
			}
			out[fmt.Sprintf("store%d %s", i, o.Key)] = fmt.Sprintf("%x", sha256.Sum256(b))
		}
	}
	return out
}

func stateDiff(before, after map[string]string) []string {
	var d []string
	for k, v := range before {
		if w, ok := after[k]; !ok {
			d = append(d, "removed "+k)
		} else if w != v {
			d = append(d, "changed "+k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	slices.Sort(d)
	return d
}

// TestDryRunChangesNothing runs EVERY command of the tree (walked from
// --help, so a new command is covered the day it is added) with
// RWSNAP_DRY_RUN=true and the arguments that would otherwise change
// something, and proves that neither etcd nor storage changed. Every
// command that has --dry-run is then run the same way without it, to
// show the invocation really is destructive (the test is not vacuous).
func TestDryRunChangesNothing(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 61})
	for range 3 {
		mustRun(t, nil, append([]string{"meta", "backup-meta", "-q"}, f.etcdArgs()...)...)
	}
	f.minio.CreateBucket(t, "copies")
	copies, err := objstore.Open(context.Background(), f.minio.URL("copies"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { copies.Close() })
	target := etcdtest.StartT(t, embedetcd.Config{})
	targetCli := etcdtest.ClientT(t, target)
	srv, err := frontend.Start(context.Background(), frontend.Options{Backup: f.minioLoc().st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	state := func() map[string]string {
		return worldState(t, []*clientv3.Client{f.cli, targetCli}, []objstore.Store{f.hummock, copies})
	}
	leaves := leafCommands(t)
	paths := slices.Sorted(maps.Keys(leaves))
	withDryRun := 0
	for _, path := range paths {
		flags := leaves[path]
		if path == "playground" {
			continue // its own temporary cluster; touches nothing of ours
		}
		args := func() []string {
			m := manifestNow(t, f.minioLoc())
			ids := m.IDs()
			var a []string
			set := func(flag, value string) {
				if flags[flag] {
					a = append(a, "--"+flag, value)
				}
			}
			if path == "meta restore-meta" {
				set("etcd-endpoints", strings.Join(target.Endpoints(), ","))
				set("meta-snapshot-id", fmt.Sprint(ids[len(ids)-1]))
				set("backup-storage-directory", liveBackupDir)
			} else {
				set("etcd-endpoints", f.endpoints)
			}
			set("backup-storage-url", f.bucketURL)
			if path != "meta restore-meta" && path != "timetravel list" && path != "timetravel epoch" {
				set("backup-storage-directory", liveBackupDir)
			}
			set("hummock-storage-url", f.bucketURL)
			set("pg-url", "postgres://root@"+srv.Addr()+"/dev")
			set("to-url", f.minio.URL("copies"))
			set("to-directory", "copied")
			set("keep-last", "1")
			set("retries", "0")
			set("command", "SELECT 1")
			set("snapshot", fmt.Sprint(ids[len(ids)-1]))
			for _, b := range []string{"all", "once", "orphans"} {
				if flags[b] {
					a = append(a, "--"+b)
				}
			}
			set("orphans-min-age", "0s")
			switch path {
			case "meta delete-meta-snapshots":
				a = append(a, fmt.Sprint(ids[0]))
			case "params set":
				a = append(a, "barrier_interval_ms", "2345")
			case "params get":
				a = append(a, "barrier_interval_ms")
			case "timetravel psql":
				a = append(a, "--", "-c", "SELECT 1")
			}
			return append(strings.Fields(path), a...)
		}
		before := state()
		dry := runLimited(t, []string{"RWSNAP_DRY_RUN=true"}, args()...)
		if d := stateDiff(before, state()); len(d) > 0 {
			t.Errorf("%s with RWSNAP_DRY_RUN=true changed %d things (exit %d), e.g. %v\n%s", path, len(d), dry.code, d[:min(5, len(d))], dry)
		}
		if !flags["dry-run"] {
			continue
		}
		withDryRun++
		if dry.code != 0 || !strings.Contains(strings.ToLower(dry.stdout+dry.stderr), "dry run") {
			t.Errorf("%s with RWSNAP_DRY_RUN=true: want exit 0 and a dry-run report:\n%s", path, dry)
		}
		before = state()
		real := runLimited(t, []string{"RWSNAP_DRY_RUN=false"}, args()...)
		if real.code != 0 {
			t.Errorf("%s without dry run failed, so the dry run proved nothing:\n%s", path, real)
		} else if len(stateDiff(before, state())) == 0 {
			t.Errorf("%s without dry run changed nothing: the test's arguments do not exercise it:\n%s", path, real)
		}
	}
	if withDryRun < 7 {
		t.Errorf("only %d commands have --dry-run", withDryRun)
	}
}
