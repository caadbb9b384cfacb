package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/rwsim"
)

// TestBackupIsOneRevisionWhileWriting keeps the simulated cluster committing
// epochs and changing catalogs during backups; every snapshot must equal
// etcd exactly at the revision it reports.
func TestBackupIsOneRevisionWhileWriting(t *testing.T) {
	forEachReadPath(t, func(t *testing.T) {
		f := newFixture(t, rwsim.Options{Seed: 2})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var writes int
		defer wg.Wait()
		defer cancel()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if err := f.sim.Advance(ctx); err != nil && ctx.Err() == nil {
					t.Errorf("advance: %v", err)
					return
				}
				key := string(metastore.EtcdKey(metastore.CFTable, metastore.U32Key(uint32(90000+i))))
				if _, err := f.cli.Put(ctx, key, fmt.Sprintf("table written during backup %d", i)); err != nil && ctx.Err() == nil {
					t.Errorf("put: %v", err)
					return
				}
				writes++
				time.Sleep(2 * time.Millisecond)
			}
		}()
		type snap struct {
			ID       uint64 `json:"id"`
			Revision int64  `json:"revision"`
		}
		var snaps []snap
		for i := 0; i < 3; i++ {
			r := mustRun(t, nil, append([]string{"meta", "backup-meta", "-o", "json", "-q"}, f.etcdArgs()...)...)
			var s snap
			if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
				t.Fatal(err)
			}
			snaps = append(snaps, s)
		}
		cancel()
		wg.Wait()
		if writes < 3 {
			t.Fatalf("the writer made only %d changes; the test proves nothing", writes)
		}
		for i, s := range snaps {
			if i > 0 && s.Revision <= snaps[i-1].Revision {
				t.Fatalf("revisions did not advance: %v", snaps)
			}
			raw := checkSnapshotMatchesEtcd(t, f, s.ID, s.Revision)
			var v hummockpb.HummockVersion
			if err := proto.Unmarshal(raw.version, &v); err != nil {
				t.Fatal(err)
			}
			// The version is the last delta at that revision, replayed.
			resp, err := f.cli.Get(context.Background(), metastore.Prefix(metastore.CFHummockDelta), clientv3.WithPrefix(), clientv3.WithRev(s.Revision))
			if err != nil {
				t.Fatal(err)
			}
			var maxID, mce uint64
			for _, kv := range resp.Kvs {
				var d hummockpb.HummockVersionDelta
				if err := proto.Unmarshal(kv.Value, &d); err != nil {
					t.Fatal(err)
				}
				if d.GetId() > maxID {
					maxID, mce = d.GetId(), d.GetMaxCommittedEpoch()
				}
			}
			if v.GetId() != maxID || v.GetMaxCommittedEpoch() != mce {
				t.Fatalf("snapshot %d: version %d mce %d, etcd at revision %d has last delta %d mce %d", s.ID, v.GetId(), v.GetMaxCommittedEpoch(), s.Revision, maxID, mce)
			}
		}
		t.Logf("%d writes during 3 backups at revisions %v", writes, snaps)
	})
}
