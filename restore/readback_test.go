package restore

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
)

// The read-back during the writes proves the target exact only when
// nobody else changed it: a write, a delete or a change undone again by
// another client at any time between the claim and the last write (here
// while later batches are still going out, after the window of the key
// changed was read back) leaves it unproven, and the full read-back then
// finds what is wrong. With no other client it proves the target, and the full
// read-back agrees.
func TestReadBackDuringWrites(t *testing.T) {
	ctx := context.Background()
	// RisingWave lists its models in etcd key order; a list out of that
	// order is read back from the group's index once all of it is written.
	snapshotOf := func(sorted bool) *metasnap.MetaSnapshot {
		snap := snapshot(t, 1, nil)
		m := snap.Metadata
		m.Tables = nil
		for i := range 30000 {
			m.Tables = append(m.Tables, message(uint64(1000+i), 40))
		}
		if sorted {
			slices.SortFunc(m.Tables, func(a, b []byte) int {
				ia, _ := metastore.DecodeU64Key(a)
				ib, _ := metastore.DecodeU64Key(b)
				return bytes.Compare(metastore.U64Key(ia), metastore.U64Key(ib))
			})
		}
		m.TableFragments = nil
		for i := range 40 {
			m.TableFragments = append(m.TableFragments, message(uint64(1000+i), 64<<10))
		}
		return snap
	}
	table := string(metastore.EtcdKey(metastore.CFTable, metastore.U64Key(1005)))
	for _, tc := range []struct {
		name     string
		unsorted bool
		foreign  func(cli *clientv3.Client) error // run by another client during our 100th transaction, once table was read back (if sorted)
		want     string                           // the full read-back's error ("" none)
	}{
		{"nobody else writes", false, nil, ""},
		{"a key added", false, func(cli *clientv3.Client) error { _, err := cli.Put(ctx, "zzz", "x"); return err }, `unexpected key "zzz"`},
		{"a written key changed", false, func(cli *clientv3.Client) error { _, err := cli.Put(ctx, table, "x"); return err }, "differ"},
		{"a written key deleted", false, func(cli *clientv3.Client) error { _, err := cli.Delete(ctx, table); return err }, "holds 30050 of the 30051"},
		{"a key added and deleted again", false, func(cli *clientv3.Client) error {
			if _, err := cli.Put(ctx, "cf/catalog_table/x", "x"); err != nil {
				return err
			}
			_, err := cli.Delete(ctx, "cf/catalog_table/x")
			return err
		}, ""},
		{"list out of key order, nobody else writes", true, nil, ""},
		{"list out of key order, a written key changed", true, func(cli *clientv3.Client) error { _, err := cli.Put(ctx, table, "x"); return err }, "differ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := snapshotOf(!tc.unsorted)
			c := etcdtest.StartT(t, embedetcd.Config{})
			other := etcdtest.ClientT(t, c)
			var txns atomic.Int64
			read, readOnce := make(chan struct{}), sync.Once{}
			var foreignErr atomic.Value
			cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), Logger: zap.NewNop(), DialOptions: []grpc.DialOption{
				grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
					err := invoker(ctx, method, req, reply, cc, opts...)
					if r, ok := reply.(*pb.RangeResponse); ok && err == nil {
						for _, kv := range r.Kvs {
							if string(kv.Key) == table {
								readOnce.Do(func() { close(read) })
							}
						}
					}
					if strings.HasSuffix(method, "/Txn") && txns.Add(1) == 100 && tc.foreign != nil {
						if !tc.unsorted {
							<-read // the window holding table was read back: only the revisions can tell
						}
						if ferr := tc.foreign(other); ferr != nil {
							foreignErr.Store(ferr)
						}
					}
					return err
				})}})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			plan, err := BuildPlan(snap, nil, PlanOptions{HummockURL: minioURL, HummockDir: "hummock_001"})
			if err != nil {
				t.Fatal(err)
			}
			if plan.Keys() != 30051 {
				t.Fatalf("plan of %d keys, want 30051", plan.Keys())
			}
			written, verified, err := claimAndApply(ctx, t, cli, plan)
			if err != nil || written != plan.Keys() {
				t.Fatalf("apply: %d keys written, %v", written, err)
			}
			if err, _ := foreignErr.Load().(error); err != nil {
				t.Fatal(err)
			}
			if txns.Load() < 80 {
				t.Fatalf("only %d transactions: the other client did not write midway", txns.Load())
			}
			if verified != (tc.foreign == nil) {
				t.Fatalf("read-back during the writes proved the target: %v, want %v", verified, tc.foreign == nil)
			}
			err = verifyKeys(ctx, cli, plan)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("full read-back: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// The cluster id is written last, after the checkpoint: a restore whose
// claim is lost just then fails, and says so, instead of reporting a
// target it did not finish.
func TestApplyFailsWhenTheLastWriteFails(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.StartT(t, embedetcd.Config{})
	other := etcdtest.ClientT(t, c)
	clusterID := []byte("cf/cluster_id")
	var stolen atomic.Bool
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), Logger: zap.NewNop(), DialOptions: []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if r, ok := req.(*pb.TxnRequest); ok {
				for _, op := range r.Success {
					if p := op.GetRequestPut(); p != nil && bytes.Equal(p.Key, clusterID) && !stolen.Swap(true) {
						if _, err := other.Put(ctx, OwnerKey, "another restore"); err != nil {
							return err
						}
					}
				}
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		})}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	plan, err := BuildPlan(snapshot(t, 1, nil), nil, PlanOptions{HummockURL: minioURL, HummockDir: "hummock_001"})
	if err != nil {
		t.Fatal(err)
	}
	_, verified, err := claimAndApply(ctx, t, cli, plan)
	if !stolen.Load() {
		t.Fatal("the cluster id was never written")
	}
	if err == nil || verified {
		t.Fatalf("apply = verified %v, err %v; want the lost claim's error", verified, err)
	}
	if r, _ := other.Get(ctx, string(clusterID)); len(r.Kvs) != 0 {
		t.Fatalf("cluster id written under a lost claim: %q", r.Kvs[0].Value)
	}
}

// claimAndApply claims a fresh target for plan and applies it, with the
// checkpoint going to a scratch directory.
func claimAndApply(ctx context.Context, t *testing.T, cli *clientv3.Client, plan *Plan) (int, bool, error) {
	t.Helper()
	st, err := objstore.Open(ctx, "fs://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	own, err := Claim(ctx, cli, plan, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	written, _, verified, err := Apply(ctx, cli, own, st, metasnap.NewStorage(st, "backup"), plan, slog.New(slog.DiscardHandler))
	return written, verified, err
}
