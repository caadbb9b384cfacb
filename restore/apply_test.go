package restore

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/progress"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
)

// A target etcd with other transaction limits than the default (more or
// fewer operations, a smaller request limit) is written completely, in as
// few transactions as it accepts: a refused transaction is sent again
// split, and the limit learnt serves every later batch. Each committed
// transaction is one etcd revision, so the revisions count them.
func TestPutBatchedServerLimits(t *testing.T) {
	ctx := context.Background()
	small := func(n int) []KV {
		var kvs []KV
		for i := range n {
			kvs = append(kvs, KV{Key: fmt.Sprintf("cf/t/%06d", i), Value: bytes.Repeat([]byte{byte('a' + i%26)}, 100)})
		}
		return kvs
	}
	large := func(n int) []KV {
		var kvs []KV
		for i := range n {
			kvs = append(kvs, KV{Key: fmt.Sprintf("cf/f/%06d", i), Value: bytes.Repeat([]byte{byte('a' + i%26)}, 30<<10)})
		}
		return kvs
	}
	for _, tc := range []struct {
		name           string
		cfg            embedetcd.Config
		kvs            []KV
		txns           int // committed transactions
		maxOps, maxLen int // limits learnt (at most)
	}{
		{"etcd defaults", embedetcd.Config{}, small(600), 5, maxTxnOps, maxTxnBytes},
		{"more operations allowed", embedetcd.Config{MaxTxnOps: 4096}, small(600), 1, firstTxnOps, maxTxnBytes},
		{"fewer operations allowed", embedetcd.Config{MaxTxnOps: 50}, small(600), 19, 32, maxTxnBytes},
		{"smaller requests", embedetcd.Config{MaxRequestBytes: 200 << 10}, large(40), 11, firstTxnOps, 200 << 10}, // batches of 1 MiB (34 values, then 6) sent 4 values (128 KiB) a transaction
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli := etcdtest.ClientT(t, etcdtest.StartT(t, tc.cfg))
			own, err := Claim(ctx, cli, &Plan{SnapshotID: 1, DefaultCFFrom: 1, Digest: "d"}, false, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer own.Close()
			before, err := cli.Get(ctx, "x")
			if err != nil {
				t.Fatal(err)
			}
			g := &Group{Kind: "t", N: len(tc.kvs), KVs: tc.kvs}
			n, err := putBatched(ctx, cli, own, g, progress.New("test", 0, "keys"))
			if err != nil || n != len(tc.kvs) {
				t.Fatalf("putBatched: %d of %d written, %v", n, len(tc.kvs), err)
			}
			after, err := cli.Get(ctx, "cf/", clientv3.WithPrefix())
			if err != nil {
				t.Fatal(err)
			}
			if len(after.Kvs) != len(tc.kvs) {
				t.Fatalf("%d keys in etcd, want %d", len(after.Kvs), len(tc.kvs))
			}
			for i, kv := range after.Kvs {
				if string(kv.Key) != tc.kvs[i].Key || !bytes.Equal(kv.Value, tc.kvs[i].Value) {
					t.Fatalf("key %d: %q (%d bytes), want %q", i, kv.Key, len(kv.Value), tc.kvs[i].Key)
				}
			}
			if txns := int(after.Header.Revision - before.Header.Revision); txns != tc.txns {
				t.Errorf("%d transactions committed, want %d", txns, tc.txns)
			}
			lim := limitsOf(cli)
			if lim.maxOps() > tc.maxOps || lim.maxBytes() > tc.maxLen {
				t.Errorf("limits learnt: %d ops, %d bytes; want at most %d and %d", lim.maxOps(), lim.maxBytes(), tc.maxOps, tc.maxLen)
			}
		})
	}
}
