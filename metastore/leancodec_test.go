package metastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
)

// decodeRangeStream reads what protobuf's own decoder reads, for every
// shape a server may send: empty chunks, empty keys and values, negative
// and large numbers, fields repeated (merged), fields unknown to this
// client (skipped); and refuses what protobuf refuses.
func TestDecodeRangeStreamMatchesProto(t *testing.T) {
	kv := func(i int, v []byte) *mvccpb.KeyValue {
		return &mvccpb.KeyValue{Key: []byte(fmt.Sprintf("cf/catalog_table/%08d", i)), Value: v,
			CreateRevision: int64(i), ModRevision: int64(i) << 40, Version: -int64(i), Lease: 1 << 62}
	}
	msg := func(kvs ...*mvccpb.KeyValue) []byte {
		b, err := proto.Marshal(&pb.RangeStreamResponse{RangeResponse: &pb.RangeResponse{Kvs: kvs}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var many []*mvccpb.KeyValue
	for i := range 1000 {
		many = append(many, kv(i, []byte(fmt.Sprint("value ", i))))
	}
	last, err := proto.Marshal(&pb.RangeStreamResponse{RangeResponse: &pb.RangeResponse{
		Header: &pb.ResponseHeader{ClusterId: 7, MemberId: 8, Revision: 99, RaftTerm: 3}, More: true, Count: 12345, Kvs: many[:2]}})
	if err != nil {
		t.Fatal(err)
	}
	// An unknown field (number 15) inside a KeyValue, a RangeResponse and
	// the top level.
	unknownKV := protowire.AppendTag(nil, 15, protowire.BytesType)
	unknownKV = protowire.AppendBytes(unknownKV, []byte("future"))
	kvBytes, _ := proto.Marshal(kv(5, []byte("v")))
	rr := protowire.AppendTag(nil, 2, protowire.BytesType)
	rr = protowire.AppendBytes(rr, append(kvBytes, unknownKV...))
	rr = protowire.AppendTag(rr, 9, protowire.VarintType)
	rr = protowire.AppendVarint(rr, 1)
	withUnknown := protowire.AppendTag(nil, 1, protowire.BytesType)
	withUnknown = protowire.AppendBytes(withUnknown, rr)
	withUnknown = append(withUnknown, unknownKV...)

	for _, tc := range []struct {
		name string
		wire []byte
	}{
		{"empty message", nil},
		{"empty range response", msg()},
		{"one key", msg(kv(1, []byte("v")))},
		{"empty value and key", msg(&mvccpb.KeyValue{}, kv(2, nil))},
		{"large value", msg(kv(3, make([]byte, 3<<20)))},
		{"many keys", msg(many...)},
		{"last chunk: header, more, count", last},
		{"range response repeated: merged", append(msg(many[:3]...), last...)},
		{"unknown fields", withUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want pb.RangeStreamResponse
			if err := proto.Unmarshal(tc.wire, &want); err != nil {
				t.Fatal(err)
			}
			var got pb.RangeStreamResponse
			if err := decodeRangeStream(append([]byte(nil), tc.wire...), &got); err != nil {
				t.Fatal(err)
			}
			// Unknown fields are dropped where protobuf keeps them: compare
			// what the client reads.
			w, g := want.GetRangeResponse(), got.GetRangeResponse()
			if (w == nil) != (g == nil) || w.GetMore() != g.GetMore() || w.GetCount() != g.GetCount() || !proto.Equal(w.GetHeader(), g.GetHeader()) || len(w.GetKvs()) != len(g.GetKvs()) {
				t.Fatalf("decoded %v, protobuf decoded %v", g, w)
			}
			for i := range w.GetKvs() {
				a, b := w.Kvs[i], g.Kvs[i]
				if string(a.Key) != string(b.Key) || string(a.Value) != string(b.Value) || a.CreateRevision != b.CreateRevision ||
					a.ModRevision != b.ModRevision || a.Version != b.Version || a.Lease != b.Lease {
					t.Fatalf("kv %d: decoded %v, protobuf decoded %v", i, b, a)
				}
			}
			// Keys and values are slices of one buffer: an append to one
			// must not be able to write over what follows it.
			for i, kv := range g.GetKvs() {
				if cap(kv.Key) != len(kv.Key) || cap(kv.Value) != len(kv.Value) {
					t.Fatalf("kv %d: key or value has room past its end (cap %d/%d, len %d/%d)", i, cap(kv.Key), cap(kv.Value), len(kv.Key), len(kv.Value))
				}
			}
		})
	}

	for _, tc := range []struct {
		name string
		wire []byte
	}{
		{"truncated", msg(many[:5]...)[:100]},
		{"bad tag", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"length past the end", []byte{0x0a, 0x10, 0x12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if proto.Unmarshal(tc.wire, &pb.RangeStreamResponse{}) == nil {
				t.Fatal("protobuf accepts it: not a malformed case")
			}
			if err := decodeRangeStream(tc.wire, &pb.RangeStreamResponse{}); !errors.Is(err, errRangeWire) {
				t.Fatalf("err = %v, want errRangeWire", err)
			}
		})
	}
}

// decodeTxnOutcome reads a transaction's header and outcome as protobuf
// does, whatever else the response holds, and refuses what protobuf
// refuses.
func TestDecodeTxnOutcomeMatchesProto(t *testing.T) {
	hdr := &pb.ResponseHeader{ClusterId: 7, MemberId: 8, Revision: 1 << 40, RaftTerm: 3}
	put := &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: hdr}}}
	get := &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: []byte("k")}}}}}
	marshal := func(m *pb.TxnResponse) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	unknown := protowire.AppendTag(nil, 12, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, []byte("future"))
	for _, tc := range []struct {
		name string
		wire []byte
	}{
		{"empty", nil},
		{"failed, no header", marshal(&pb.TxnResponse{})},
		{"succeeded with puts", marshal(&pb.TxnResponse{Header: hdr, Succeeded: true, Responses: []*pb.ResponseOp{put, put, put}})},
		{"failed with a range", marshal(&pb.TxnResponse{Header: hdr, Responses: []*pb.ResponseOp{get}})},
		{"repeated: merged, last wins", append(marshal(&pb.TxnResponse{Header: &pb.ResponseHeader{ClusterId: 1, Revision: 5}, Succeeded: true}),
			marshal(&pb.TxnResponse{Header: &pb.ResponseHeader{Revision: 9}})...)},
		{"unknown field", append(marshal(&pb.TxnResponse{Header: hdr, Succeeded: true}), unknown...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want pb.TxnResponse
			if err := proto.Unmarshal(tc.wire, &want); err != nil {
				t.Fatal(err)
			}
			got := pb.TxnResponse{Succeeded: true, Responses: []*pb.ResponseOp{put}}
			if err := decodeTxnOutcome(tc.wire, &got); err != nil {
				t.Fatal(err)
			}
			if got.Succeeded != want.Succeeded || !proto.Equal(got.GetHeader(), want.GetHeader()) || got.Responses != nil {
				t.Fatalf("decoded %v, protobuf decoded %v", &got, &want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		wire []byte
	}{
		{"truncated", marshal(&pb.TxnResponse{Header: hdr, Succeeded: true, Responses: []*pb.ResponseOp{put}})[:9]},
		{"bad header", []byte{0x0a, 0x02, 0x08, 0xff}},
		{"length past the end", []byte{0x1a, 0x10, 0x12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if proto.Unmarshal(tc.wire, &pb.TxnResponse{}) == nil {
				t.Fatal("protobuf accepts it: not a malformed case")
			}
			if err := decodeTxnOutcome(tc.wire, &pb.TxnResponse{}); !errors.Is(err, errTxnWire) {
				t.Fatalf("err = %v, want errTxnWire", err)
			}
		})
	}
}

// PutIf sends the request clientv3's Txn sends for the same puts (byte
// for byte), writes them when the condition holds and nothing when it
// does not, and fails as clientv3 does on a server limit. rangeOnce reads
// what a Get reads.
func TestPutIfAndRangeOnceAsClientv3(t *testing.T) {
	c := etcdtest.StartT(t, embedetcd.Config{MaxTxnOps: 64})
	var mu sync.Mutex
	var sent [][]byte
	record := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == "/etcdserverpb.KV/Txn" {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req.(proto.Message))
			if err != nil {
				return err
			}
			mu.Lock()
			sent = append(sent, b)
			mu.Unlock()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 10 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(record)}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	if _, err := cli.Put(ctx, "owner", "me"); err != nil {
		t.Fatal(err)
	}
	held := clientv3.Compare(clientv3.Value("owner"), "=", "me")
	lost := clientv3.Compare(clientv3.Value("owner"), "=", "someone else")
	kvs := []struct {
		k string
		v []byte
	}{{"a/1", []byte("one")}, {"a/2", nil}, {"a/3", make([]byte, 100<<10)}}
	at := func(i int) (string, []byte) { return kvs[i].k, kvs[i].v }

	var ops []clientv3.Op
	for _, kv := range kvs {
		ops = append(ops, clientv3.OpPut(kv.k, string(kv.v)))
	}
	if _, err := cli.Txn(ctx).If(held).Then(ops...).Commit(); err != nil {
		t.Fatal(err)
	}
	rev, ok, err := PutIf(ctx, cli, held, len(kvs), at)
	if err != nil || !ok {
		t.Fatalf("PutIf = %d, %v, %v; want the condition held", rev, ok, err)
	}
	if len(sent) != 2 || !bytes.Equal(sent[0], sent[1]) {
		t.Fatalf("PutIf sent %x, clientv3 sent %x", sent[len(sent)-1], sent[0])
	}
	got, err := cli.Get(ctx, "a/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Revision != rev || len(got.Kvs) != 3 || got.Kvs[0].ModRevision != rev || string(got.Kvs[2].Value) != string(kvs[2].v) {
		t.Fatalf("after PutIf at rev %d: %v", rev, got)
	}

	// The condition fails: nothing written, the revision unchanged.
	rev2, ok, err := PutIf(ctx, cli, lost, 1, func(int) (string, []byte) { return "a/4", []byte("no") })
	if err != nil || ok || rev2 != rev {
		t.Fatalf("PutIf with a failing condition = %d, %v, %v; want %d, false, nil", rev2, ok, err, rev)
	}
	if r, _ := cli.Get(ctx, "a/4"); len(r.Kvs) != 0 {
		t.Fatal("PutIf wrote although the condition failed")
	}

	// A server limit fails as it does through clientv3 (restore splits on it).
	many := func(i int) (string, []byte) { return fmt.Sprintf("b/%03d", i), []byte("v") }
	if _, _, err := PutIf(ctx, cli, held, 65, many); !errors.Is(err, rpctypes.ErrTooManyOps) {
		t.Fatalf("65 puts, --max-txn-ops 64: err = %v, want ErrTooManyOps", err)
	}
	// A cancelled context is the context's error, as clientv3 returns it.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := PutIf(cctx, cli, held, 1, many); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v, want context.Canceled", err)
	}

	// rangeOnce reads what Get reads: keys, values, revisions, more, count.
	for _, limit := range []int64{0, 1, 2, 10} {
		want, err := cli.Get(ctx, "a/", clientv3.WithRange("a0"), clientv3.WithLimit(limit), clientv3.WithRev(rev))
		if err != nil {
			t.Fatal(err)
		}
		r, err := rangeOnce(ctx, cli, "a/", "a0", limit, rev)
		if err != nil {
			t.Fatal(err)
		}
		if r.More != want.More || r.Count != want.Count || r.Header.Revision != want.Header.Revision || len(r.Kvs) != len(want.Kvs) {
			t.Fatalf("limit %d: rangeOnce %v, Get %v", limit, r, want)
		}
		for i := range r.Kvs {
			if !proto.Equal(r.Kvs[i], want.Kvs[i]) {
				t.Fatalf("limit %d, kv %d: rangeOnce %v, Get %v", limit, i, r.Kvs[i], want.Kvs[i])
			}
		}
	}
	if _, err := rangeOnce(ctx, cli, "a/", "a0", 0, rev+100); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("future revision: err = %v, want ErrFutureRev", err)
	}
}
