package metastore

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
)

func readAt(t *testing.T, cli *clientv3.Client, rev int64, cf string) []KV {
	t.Helper()
	kvs, err := NewReader(cli, rev).ListCF(context.Background(), cf)
	if err != nil {
		t.Fatal(err)
	}
	return kvs
}

// The streamed read (etcd 3.7 RangeStream, several chunks) and the paged
// one return exactly the same keys and values at a pinned revision, while
// the column family changes after it; Count agrees.
func TestRangeStreamAndPagedAgree(t *testing.T) {
	c := etcdtest.StartT(t, embedetcd.Config{})
	cli := etcdtest.ClientT(t, c)
	ctx := context.Background()
	val := bytes.Repeat([]byte("v"), 2000)
	for i := range 3000 {
		if _, err := cli.Put(ctx, string(EtcdKey(CFTable, U32Key(uint32(1000+i)))), fmt.Sprintf("%d%s", i, val)); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	rev := resp.Header.Revision
	for i := range 500 {
		if _, err := cli.Delete(ctx, string(EtcdKey(CFTable, U32Key(uint32(1000+2*i))))); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, string(EtcdKey(CFTable, U32Key(uint32(9000+i)))), "late"); err != nil {
			t.Fatal(err)
		}
	}
	var got [2][]KV
	for i, mode := range []string{"stream", "paged"} {
		t.Setenv(RangeModeEnv, mode)
		got[i] = readAt(t, cli, rev, CFTable)
		n, err := NewReader(cli, rev).Count(ctx, Prefix(CFTable))
		if err != nil || n != 3000 || len(got[i]) != 3000 {
			t.Fatalf("%s: %d keys read, %d counted (%v), want 3000", mode, len(got[i]), n, err)
		}
	}
	for i := range got[0] {
		if !bytes.Equal(got[0][i].Key, got[1][i].Key) || !bytes.Equal(got[0][i].Value, got[1][i].Value) {
			t.Fatalf("key %d: stream %q, paged %q", i, got[0][i].Key, got[1][i].Key)
		}
	}
}

// refuseStreams is an etcd server older than 3.7 as the client sees it:
// RangeStream is an unknown method.
func refuseStreams() grpc.DialOption {
	return grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if method == "/etcdserverpb.KV/RangeStream" {
			return nil, status.Error(codes.Unimplemented, "unknown method RangeStream for service etcdserverpb.KV")
		}
		return streamer(ctx, desc, cc, method, opts...)
	})
}

// A server that refuses streams (etcd 3.4-3.6) is read with paged Gets,
// and the client remembers it.
func TestRangeStreamFallsBackToPaged(t *testing.T) {
	c := etcdtest.StartT(t, embedetcd.Config{})
	seedMinimal(t, etcdtest.ClientT(t, c), 40)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), Logger: zap.NewNop(), DialOptions: []grpc.DialOption{refuseStreams()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	streamModes.Store(cli, true) // as if its version said 3.7
	if kvs := readAt(t, cli, 0, CFTable); len(kvs) != 40 {
		t.Fatalf("%d keys through the fallback, want 40", len(kvs))
	}
	if v, _ := streamModes.Load(cli); v != false {
		t.Fatal("the refusal was not remembered")
	}
	if kvs := readAt(t, cli, 0, CFTable); len(kvs) != 40 {
		t.Fatalf("%d keys on the second read, want 40", len(kvs))
	}
}

// The version an etcd server reports decides the read path.
func TestServerStreamsByVersion(t *testing.T) {
	c := etcdtest.StartT(t, embedetcd.Config{})
	cli := etcdtest.ClientT(t, c)
	if !serverStreams(context.Background(), cli) {
		t.Fatal("etcd 3.7.3 should stream ranges")
	}
	for _, tt := range []struct {
		v    string
		want bool
	}{{"3.7.3", true}, {"3.7.0", true}, {"v3.8.1", true}, {"4.0.0", true}, {"3.6.9", false}, {"3.5.17", false}, {"3.4.0", false}, {"", false}, {"x.y", false}} {
		if got := VersionAtLeast(tt.v, 3, 7); got != tt.want {
			t.Errorf("VersionAtLeast(%q, 3, 7) = %v", tt.v, got)
		}
	}
}
