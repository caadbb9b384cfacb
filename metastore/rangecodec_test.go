package metastore

import (
	"errors"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
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
