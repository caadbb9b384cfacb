package metastore

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
)

// cutter cuts RangeStreams: the messages numbered in cutAt (counted over
// every stream of the client, from 1) are not delivered; the stream fails
// there with a transient error instead, as when a connection drops
// mid-stream. It records each stream's request.
type cutter struct {
	mu       sync.Mutex
	cutAt    map[int]bool
	received int
	requests []*pb.RangeRequest
	// delivered is the last key delivered to the client per stream.
	delivered [][]byte
}

type cutStream struct {
	grpc.ClientStream
	c *cutter
	i int // this stream's index in requests
}

func (s *cutStream) SendMsg(m any) error {
	if r, ok := m.(*pb.RangeRequest); ok {
		s.c.mu.Lock()
		s.c.requests[s.i] = r
		s.c.mu.Unlock()
	}
	return s.ClientStream.SendMsg(m)
}

func (s *cutStream) RecvMsg(m any) error {
	if err := s.ClientStream.RecvMsg(m); err != nil {
		return err
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.received++
	if s.c.cutAt[s.c.received] {
		return status.Error(codes.Unavailable, fmt.Sprintf("injected: stream cut at message %d", s.c.received))
	}
	if r, ok := m.(*pb.RangeStreamResponse); ok && r.RangeResponse != nil && len(r.RangeResponse.Kvs) > 0 {
		s.c.delivered[s.i] = r.RangeResponse.Kvs[len(r.RangeResponse.Kvs)-1].Key
	}
	return nil
}

func (c *cutter) interceptor() grpc.DialOption {
	return grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil || method != "/etcdserverpb.KV/RangeStream" {
			return s, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.requests = append(c.requests, nil)
		c.delivered = append(c.delivered, nil)
		return &cutStream{ClientStream: s, c: c, i: len(c.requests) - 1}, nil
	})
}

// A RangeStream cut mid-stream by a transient error (after some chunks,
// twice) resumes after the last key received, at the same revision: the
// keys read are exactly those of a paged read at that revision, in order,
// none missing and none twice, although the column family changed after
// the revision (a resume at another revision, or from the range's start,
// would show it).
func TestRangeStreamResumesAfterCut(t *testing.T) {
	t.Setenv(RangeModeEnv, "stream")
	ctx := context.Background()
	c := etcdtest.StartT(t, embedetcd.Config{})
	plain := etcdtest.ClientT(t, c)
	val := bytes.Repeat([]byte("v"), 2000)
	for i := 0; i < 3000; i += 100 {
		var ops []clientv3.Op
		for j := i; j < i+100; j++ {
			ops = append(ops, clientv3.OpPut(string(EtcdKey(CFTable, U32Key(uint32(1000+j)))), fmt.Sprintf("%d%s", j, val)))
		}
		if _, err := plain.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := plain.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	rev := resp.Header.Revision
	for i := range 500 {
		if _, err := plain.Delete(ctx, string(EtcdKey(CFTable, U32Key(uint32(1000+3*i))))); err != nil {
			t.Fatal(err)
		}
		if _, err := plain.Put(ctx, string(EtcdKey(CFTable, U32Key(uint32(1001+3*i)))), "changed"); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(RangeModeEnv, "paged")
	want := readAt(t, plain, rev, CFTable)
	t.Setenv(RangeModeEnv, "stream")

	// etcd sends chunks of 10, 20, 40, ... keys up to about 1.5 MiB: the
	// 3rd message ends at key 70, the 7th at about key 1300.
	cut := &cutter{cutAt: map[int]bool{3: true, 7: true}}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), Logger: zap.NewNop(), DialOptions: []grpc.DialOption{cut.interceptor()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	got := readAt(t, cli, rev, CFTable)

	if len(cut.requests) != 3 {
		t.Fatalf("%d streams opened, want 3 (two cuts, each resumed)", len(cut.requests))
	}
	for i, r := range cut.requests {
		if r.Revision != rev {
			t.Errorf("stream %d read at revision %d, want %d", i, r.Revision, rev)
		}
		if i > 0 {
			if resume := append(bytes.Clone(cut.delivered[i-1]), 0); !bytes.Equal(r.Key, resume) {
				t.Errorf("stream %d starts at %q, want right after the last key delivered, %q", i, r.Key, resume)
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d keys read through the cuts, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Fatalf("key %d: %q (%d bytes), want %q (%d bytes)", i, got[i].Key, len(got[i].Value), want[i].Key, len(want[i].Value))
		}
	}
}
