package restore

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metastore"
)

// largestRead records the largest range response (unary or one message of
// a stream) a client received.
type largestRead struct {
	mu  sync.Mutex
	max int
}

func (l *largestRead) note(m any) {
	if msg, ok := m.(proto.Message); ok {
		switch msg.(type) {
		case *pb.RangeResponse, *pb.RangeStreamResponse:
			l.mu.Lock()
			l.max = max(l.max, proto.Size(msg))
			l.mu.Unlock()
		}
	}
}

type sizedStream struct {
	grpc.ClientStream
	l *largestRead
}

func (s sizedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		s.l.note(m)
	}
	return err
}

func (l *largestRead) options() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			err := invoker(ctx, method, req, reply, cc, opts...)
			if err == nil {
				l.note(reply)
			}
			return err
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			s, err := streamer(ctx, desc, cc, method, opts...)
			if err != nil {
				return nil, err
			}
			return sizedStream{s, l}, nil
		}),
	}
}

// A store of many small catalog rows followed (in key order) by large
// table-fragment values, as RisingWave's: the target checks and the
// read-back read it in windows the plan bounds, so no single etcd answer
// holds more than about a window (2 MiB) plus a value, whatever the mix.
// One range over the whole keyspace let etcd's stream grow its chunks over
// the small rows and then send the large values in one chunk of many MiB
// (restore's peak RSS grew with the store: 642 MiB at 1M keys). Every
// mismatch is still found: a key missing, one added anywhere in the
// keyspace, one changed.
func TestScanTargetWindowsBoundReads(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.StartT(t, embedetcd.Config{})
	var largest largestRead
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialOptions: largest.options(), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	snap := snapshot(t, 1, nil)
	m := snap.Metadata
	m.Tables = nil
	for i := range 30000 {
		m.Tables = append(m.Tables, message(uint64(1000+i), 40))
	}
	m.TableFragments = nil
	for i := range 40 {
		m.TableFragments = append(m.TableFragments, message(uint64(1000+i), 256<<10))
	}
	plan, err := BuildPlan(snap, nil, PlanOptions{HummockURL: minioURL, HummockDir: "hummock_001"})
	if err != nil {
		t.Fatal(err)
	}
	kvs, err := plan.All()
	if err != nil {
		t.Fatal(err)
	}
	for len(kvs) > 0 {
		var ops []clientv3.Op
		for size := 0; len(kvs) > 0 && len(ops) < 100 && size < 512<<10; kvs = kvs[1:] {
			ops = append(ops, clientv3.OpPut(kvs[0].Key, string(kvs[0].Value)))
			size += len(kvs[0].Value)
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// The old whole-keyspace read, for scale: it is what made RSS grow.
	t.Setenv(metastore.RangeModeEnv, "stream")
	if err := metastore.NewReader(cli, 0).RangeAll(ctx, func(k, v []byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	whole := largest.max
	largest.max = 0

	scan := func() (equal, differs, absent int) {
		t.Helper()
		_, err := scanTarget(ctx, cli, plan, func(k, v []byte, match int) error {
			switch match {
			case matchEqual:
				equal++
			case matchDiffers:
				differs++
			default:
				absent++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if e, d, a := scan(); e != plan.Keys() || d != 0 || a != 0 {
		t.Fatalf("complete target: %d equal, %d differ, %d absent; want %d equal", e, d, a, plan.Keys())
	}
	if bound := windowBytes + 2*(256<<10) + 64<<10; largest.max > bound {
		t.Fatalf("largest etcd answer of the windowed scan: %d bytes, want at most %d", largest.max, bound)
	}
	t.Logf("largest answer: windowed %d bytes, one stream over the keyspace %d bytes", largest.max, whole)
	if err := verifyKeys(ctx, cli, plan); err != nil {
		t.Fatalf("read-back of a complete target: %v", err)
	}

	table := string(metastore.EtcdKey(metastore.CFTable, metastore.U64Key(15000)))
	frag := string(metastore.EtcdKey(metastore.CFTableFragments, metastore.U64Key(1020)))
	put := func(k, v string) {
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	del := func(k string) func() {
		return func() {
			if _, err := cli.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		change func() (undo func())
		want   string
	}{
		{"key missing", func() func() {
			v, _ := getKey(t, cli, table)
			del(table)()
			return func() { put(table, v) }
		}, fmt.Sprintf("holds %d of the %d restored keys", plan.Keys()-1, plan.Keys())},
		{"key before every column family", func() func() { put("a", "x"); return del("a") }, `unexpected key "a"`},
		{"key inside a window", func() func() { k := table + "x"; put(k, "x"); return del(k) }, "unexpected key"},
		{"key after the last", func() func() { put("zzz", "x"); return del("zzz") }, `unexpected key "zzz"`},
		{"value changed", func() func() {
			v, _ := getKey(t, cli, frag)
			put(frag, "changed")
			return func() { put(frag, v) }
		}, "differ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			undo := tc.change()
			err := verifyKeys(ctx, cli, plan)
			undo()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("read-back after %s: %v, want an error containing %q", tc.name, err, tc.want)
			}
			if err := verifyKeys(ctx, cli, plan); err != nil {
				t.Fatalf("read-back once undone: %v", err)
			}
		})
	}
}

// message is a protobuf message with id (field 1) and n bytes (field 2).
func message(id uint64, n int) []byte {
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, id)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, bytes.Repeat([]byte{'x'}, n))
}
