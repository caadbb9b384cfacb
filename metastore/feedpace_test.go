package metastore

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
)

// streamTally counts, per range start key, the bytes of the range
// responses the client received: what a reader holds until it lets go.
type streamTally struct {
	mu       sync.Mutex
	received map[string]int64
	largest  int64
}

func (s *streamTally) interceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil || method != "/etcdserverpb.KV/RangeStream" {
		return cs, err
	}
	return &talliedStream{ClientStream: cs, s: s}, nil
}

func (s *streamTally) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if r, ok := reply.(*pb.RangeResponse); ok && err == nil && method == "/etcdserverpb.KV/Range" {
		s.add(string(req.(*pb.RangeRequest).Key), responseCost(r.Kvs))
	}
	return err
}

func (s *streamTally) add(key string, n int64) {
	// A page or resumed stream starts after the last key: tally it under
	// its list's prefix ("cf/lNN/").
	if len(key) > 7 {
		key = key[:7]
	}
	s.mu.Lock()
	s.received[key] += n
	s.largest = max(s.largest, n)
	s.mu.Unlock()
}

type talliedStream struct {
	grpc.ClientStream
	s   *streamTally
	key string
}

func (t *talliedStream) SendMsg(m any) error {
	if r, ok := m.(*pb.RangeRequest); ok {
		t.key = string(r.Key)
	}
	return t.ClientStream.SendMsg(m)
}

func (t *talliedStream) RecvMsg(m any) error {
	err := t.ClientStream.RecvMsg(m)
	if r, ok := m.(*pb.RangeStreamResponse); ok && err == nil {
		t.s.add(t.key, responseCost(r.GetRangeResponse().GetKvs()))
	}
	return err
}

// The lists a feed reads ahead from etcd hold no more than its budget in
// responses (plus one response's overshoot), however large etcd makes
// them: a value is a slice of its response, so counting values let lists
// waiting on the budget pin several responses each.
func TestFeedHoldsEtcdResponsesToItsBudget(t *testing.T) {
	c := etcdtest.StartT(t, embedetcd.Config{MaxRequestBytes: 1 << 20})
	for _, mode := range []string{"stream", "paged"} {
		t.Run(mode, func(t *testing.T) {
			t.Setenv(RangeModeEnv, mode)
			testFeedHoldsEtcdResponses(t, c)
		})
	}
}

func testFeedHoldsEtcdResponses(t *testing.T, c *embedetcd.Cluster) {
	tally := &streamTally{received: map[string]int64{}}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 10 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(tally.interceptor), grpc.WithChainUnaryInterceptor(tally.unary)}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	if _, err := cli.Delete(ctx, "cf/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}

	const lists, vals, size = 6, 1000, 8 << 10 // 8 MiB a list
	var prefixes []string
	var counts []int
	value := func(p string, j int) string {
		v := fmt.Sprintf("%s%06d-", p, j)
		return v + strings.Repeat("x", size-len(v))
	}
	for i := range lists {
		p := fmt.Sprintf("cf/l%02d/", i)
		prefixes = append(prefixes, p)
		counts = append(counts, vals)
		for j := 0; j < vals; j += 100 {
			var ops []clientv3.Op
			for k := j; k < j+100; k++ {
				ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s%06d", p, k), value(p, k)))
			}
			if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	head, err := cli.Get(ctx, "cf/")
	if err != nil {
		t.Fatal(err)
	}

	const budget = 2 << 20
	f := newFeed(ctx, RangeSource(cli, head.Header.Revision), prefixes, counts, nil, budget)
	defer f.Close()
	// Stall on list 0's first value until the lists behind it stop
	// reading, then see what they hold.
	var ahead int64
	settle := func() {
		var last int64 = -1
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
			time.Sleep(300 * time.Millisecond)
			tally.mu.Lock()
			var n int64
			for _, p := range prefixes[1:] {
				n += tally.received[p]
			}
			tally.mu.Unlock()
			if n == last {
				break
			}
			last = n
		}
		ahead = last
	}
	for i, p := range prefixes {
		got := 0
		err := f.Each(i, func(v []byte) error {
			if i == 0 && got == 0 {
				settle()
			}
			if want := value(p, got); !bytes.Equal(v, []byte(want)) {
				return fmt.Errorf("list %d value %d = %.20q, want %.20q", i, got, v, want)
			}
			got++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got != vals {
			t.Fatalf("list %d: %d values, want %d", i, got, vals)
		}
	}
	tally.mu.Lock()
	largest := tally.largest
	tally.mu.Unlock()
	if largest < 1<<19 {
		// Streams come near etcd's request limit, pages near
		// pageTargetBytes: either way well past the budget's share.
		t.Fatalf("largest response %d bytes: the test needs responses of more than 512 KiB", largest)
	}
	t.Logf("lists read ahead hold %d KiB of responses; budget %d KiB, largest response %d KiB", ahead>>10, budget>>10, largest>>10)
	if limit := budget + 2*largest; ahead > limit {
		t.Fatalf("lists read ahead hold %d bytes of responses, want at most %d (budget %d, largest response %d)", ahead, limit, budget, largest)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.used != 0 {
		t.Fatalf("%d bytes still charged after every list was consumed", f.used)
	}
}
