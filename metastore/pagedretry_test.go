package metastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
)

// pageFaults fails chosen Range calls (numbered over the client, from 1)
// with an error instead of sending them, or runs a hook before sending
// one, and records every Range request. It sits inside clientv3's own
// retry interceptor, as a server's answer does: clientv3 resends a Range
// that failed Unavailable, or whose own deadline passed, up to 100 times
// itself (each resend recorded here); an overloaded server's "too many
// requests", and whatever outlasts clientv3's retries, reach the reader.
type pageFaults struct {
	mu       sync.Mutex
	fail     func(call int) error
	before   map[int]func()
	calls    int
	requests []*pb.RangeRequest
}

func (p *pageFaults) interceptor() grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method != "/etcdserverpb.KV/Range" {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		p.mu.Lock()
		p.calls++
		n := p.calls
		p.requests = append(p.requests, req.(*pb.RangeRequest))
		var err error
		if p.fail != nil {
			err = p.fail(n)
		}
		hook := p.before[n]
		p.mu.Unlock()
		if err != nil {
			return err
		}
		if hook != nil {
			hook()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
}

// pagedStore writes 3000 keys of cf/catalog_table, pins the revision, then
// deletes and changes keys after it (a read resumed at another revision,
// or from the range's start, would show it).
func pagedStore(t *testing.T) (*embedetcd.Cluster, *clientv3.Client, int64) {
	t.Helper()
	ctx := context.Background()
	c := etcdtest.StartT(t, embedetcd.Config{})
	plain := etcdtest.ClientT(t, c)
	for i := 0; i < 3000; i += 100 {
		var ops []clientv3.Op
		for j := i; j < i+100; j++ {
			ops = append(ops, clientv3.OpPut(string(EtcdKey(CFTable, U32Key(uint32(1000+j)))), fmt.Sprintf("value %d", j)))
		}
		if _, err := plain.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := plain.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if _, err := plain.Delete(ctx, string(EtcdKey(CFTable, U32Key(uint32(1000+3*i))))); err != nil {
			t.Fatal(err)
		}
		if _, err := plain.Put(ctx, string(EtcdKey(CFTable, U32Key(uint32(1001+3*i)))), "changed"); err != nil {
			t.Fatal(err)
		}
	}
	return c, plain, resp.Header.Revision
}

func faultyClient(t *testing.T, c *embedetcd.Cluster, p *pageFaults) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), Logger: zap.NewNop(), DialOptions: []grpc.DialOption{p.interceptor()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// pagedRead reads cf/catalog_table at rev in pages of 200 keys (15 pages).
func pagedRead(cli *clientv3.Client, rev int64) ([]KV, error) {
	r := NewReader(cli, rev)
	r.PageSize = 200
	return r.ListCF(context.Background(), CFTable)
}

// A paged read whose pages fail with transient errors (a page's deadline
// passed on a stalled member, an overloaded server, a leader change;
// twice in a row on one page) asks for the failed page again, from the key
// after the last one received and at the same revision: the keys read are
// exactly those at that revision, none missing and none twice.
func TestPagedReadResumesAfterTransientErrors(t *testing.T) {
	t.Setenv(RangeModeEnv, "paged")
	c, plain, rev := pagedStore(t)
	want := readAt(t, plain, rev, CFTable)
	faults := map[int]error{
		3:  rpctypes.ErrGRPCRequestTooManyRequests,
		6:  rpctypes.ErrGRPCRequestTooManyRequests,
		7:  rpctypes.ErrGRPCRequestTooManyRequests, // the same page again
		9:  rpctypes.ErrGRPCLeaderChanged,
		11: status.Error(codes.DeadlineExceeded, "injected: the page's deadline passed"),
	}
	p := &pageFaults{fail: func(n int) error { return faults[n] }}
	got, err := pagedRead(faultyClient(t, c, p), rev)
	if err != nil {
		t.Fatalf("a paged read through transient errors: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d keys read through the errors, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Fatalf("key %d: %q=%q, want %q=%q", i, got[i].Key, got[i].Value, want[i].Key, want[i].Value)
		}
	}
	// 15 pages and the failed calls.
	if len(p.requests) != 15+len(faults) {
		t.Fatalf("%d range calls, want %d", len(p.requests), 15+len(faults))
	}
	for i, r := range p.requests {
		if r.Revision != rev {
			t.Errorf("call %d read at revision %d, want %d", i+1, r.Revision, rev)
		}
		if faults[i+1] != nil && !bytes.Equal(p.requests[i+1].Key, r.Key) {
			t.Errorf("call %d failed from %q, the next asked from %q: not the same page", i+1, r.Key, p.requests[i+1].Key)
		}
	}
}

// A page that keeps failing is given up after a few attempts with an error
// naming the range, the revision and where the read had got to; a
// compacted revision is not retried at all.
func TestPagedReadGivesUp(t *testing.T) {
	t.Setenv(RangeModeEnv, "paged")
	c, plain, rev := pagedStore(t)
	prefix := Prefix(CFTable)

	t.Run("transient error persists", func(t *testing.T) {
		p := &pageFaults{fail: func(n int) error {
			if n >= 4 {
				return rpctypes.ErrGRPCRequestTooManyRequests
			}
			return nil
		}}
		_, err := pagedRead(faultyClient(t, c, p), rev)
		if !errors.Is(err, rpctypes.ErrTooManyRequests) {
			t.Fatalf("a page failing for good: %v", err)
		}
		for _, w := range []string{fmt.Sprintf("%q", prefix), fmt.Sprintf("revision %d", rev), fmt.Sprintf("failed %d times in a row", pageAttempts), "after the last key received", "too many requests"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("the error does not say %q: %v", w, err)
			}
		}
		if len(p.requests) != 3+pageAttempts {
			t.Fatalf("%d range calls, want 3 pages and %d attempts of the 4th", len(p.requests), pageAttempts)
		}
	})
	t.Run("compacted", func(t *testing.T) {
		now, err := plain.Get(context.Background(), "x")
		if err != nil {
			t.Fatal(err)
		}
		p := &pageFaults{before: map[int]func(){4: func() {
			if _, err := plain.Compact(context.Background(), now.Header.Revision); err != nil {
				t.Error(err)
			}
		}}}
		_, err = pagedRead(faultyClient(t, c, p), rev)
		if !errors.Is(err, ErrCompacted) || !strings.Contains(err.Error(), prefix) {
			t.Fatalf("a read whose revision was compacted: %v", err)
		}
		if len(p.requests) != 4 {
			t.Fatalf("%d range calls, want 4: a compacted revision is not retried", len(p.requests))
		}
	})
}

// The single reads beside the pages (the Get that pins the revision, a
// column family's Count) are asked again after a transient error too, and
// give up the same way.
func TestGetAndCountRetry(t *testing.T) {
	t.Setenv(RangeModeEnv, "paged")
	c, plain, rev := pagedStore(t)
	key := string(EtcdKey(CFTable, U32Key(1002)))
	wantCount := len(readAt(t, plain, rev, CFTable))
	busy := rpctypes.ErrGRPCRequestTooManyRequests
	p := &pageFaults{fail: func(n int) error {
		if n == 1 || n == 2 || n == 4 {
			return busy
		}
		return nil
	}}
	r := NewReader(faultyClient(t, c, p), 0)
	v, ok, err := r.Get(context.Background(), key)
	if err != nil || !ok || string(v) != "value 2" || r.Revision() == 0 {
		t.Fatalf("Get through two refusals: %q %v %v (revision %d)", v, ok, err, r.Revision())
	}
	r = NewReader(r.cli, rev)
	if n, err := r.Count(context.Background(), Prefix(CFTable)); err != nil || n != wantCount {
		t.Fatalf("Count through a refusal: %d %v, want %d", n, err, wantCount)
	}
	if len(p.requests) != 5 {
		t.Fatalf("%d range calls, want 5 (3 refused, 2 answered)", len(p.requests))
	}
	p.fail = func(int) error { return busy }
	_, err = r.Count(context.Background(), Prefix(CFTable))
	if !errors.Is(err, rpctypes.ErrTooManyRequests) || !strings.Contains(err.Error(), fmt.Sprintf("failed %d times in a row", pageAttempts)) || !strings.Contains(err.Error(), Prefix(CFTable)) {
		t.Fatalf("Count refused for good: %v", err)
	}
}
