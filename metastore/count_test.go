package metastore

import (
	"context"
	"fmt"
	"testing"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
)

// CountFrom counts every list at the pinned revision in one transaction,
// and one by one from a server whose --max-txn-ops is below the lists'
// number; keys written after the pin are not counted either way.
func TestCountFromPinnedRevision(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxTxnOps uint
	}{
		{"one transaction", 0},
		{"max-txn-ops below the lists", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := etcdtest.StartT(t, embedetcd.Config{MaxTxnOps: tc.maxTxnOps})
			cli := etcdtest.ClientT(t, c)
			want := make([]int, len(SnapshotCFs))
			for i, cf := range SnapshotCFs {
				want[i] = i % 4 // some lists empty
				for j := range want[i] {
					if _, err := cli.Put(ctx, string(EtcdKey(cf, U32Key(uint32(j)))), fmt.Sprint(j)); err != nil {
						t.Fatal(err)
					}
				}
			}
			src := RangeSource(cli, 0)
			if _, _, err := src.Get(ctx, "cf/cluster_id"); err != nil { // pins the revision
				t.Fatal(err)
			}
			for _, cf := range SnapshotCFs { // after the pin: not counted
				if _, err := cli.Put(ctx, string(EtcdKey(cf, []byte("later"))), "x"); err != nil {
					t.Fatal(err)
				}
			}
			got, err := CountFrom(ctx, src, SnapshotCFs)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: counted %d at revision %d, want %d", SnapshotCFs[i], got[i], src.Revision(), want[i])
				}
			}
		})
	}
}
