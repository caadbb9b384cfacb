package metastore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"unsafe"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// leanCodec decodes etcd's range and transaction responses in a few
// allocations per message instead of several per key: ranges keep one
// copy of the message, which every key and value is a slice of, with the
// KeyValues in one array; transactions decode only their header and
// outcome. Profiles of 1M-key backups and restores had protobuf's decoding
// and the garbage collection of its per-key allocations among rwsnap's
// largest costs. Requests go through gRPC's protobuf codec; the wire
// format is unchanged.
type leanCodec struct{}

var protoCodec = encoding.GetCodecV2(protocodec.Name)

func (leanCodec) Name() string { return protocodec.Name }

func (leanCodec) Marshal(v any) (mem.BufferSlice, error) { return protoCodec.Marshal(v) }

func (leanCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *pb.RangeStreamResponse:
		return decodeRangeStream(data.Materialize(), m)
	case *pb.RangeResponse:
		m.Reset()
		return decodeRange(data.Materialize(), m)
	case *pb.TxnResponse:
		return decodeTxnOutcome(data.Materialize(), m)
	}
	return protoCodec.Unmarshal(data, v)
}

var errRangeWire = errors.New("malformed RangeStreamResponse")

// decodeRangeStream decodes a RangeStreamResponse as proto.Unmarshal would
// (fields repeated are merged, unknown ones skipped), keeping b.
func decodeRangeStream(b []byte, m *pb.RangeStreamResponse) error {
	m.Reset()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errRangeWire, protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("%w: %v", errRangeWire, protowire.ParseError(n))
			}
			if m.RangeResponse == nil {
				m.RangeResponse = &pb.RangeResponse{}
			}
			if err := decodeRange(v, m.RangeResponse); err != nil {
				return err
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errRangeWire, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// decodeRange merges one RangeResponse message into r.
func decodeRange(b []byte, r *pb.RangeResponse) error {
	// Count the kvs first so they fit one array.
	kvs := 0
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return fmt.Errorf("%w: %v", errRangeWire, protowire.ParseError(n))
		}
		rest = rest[n:]
		if num == 2 && typ == protowire.BytesType {
			kvs++
		}
		n = protowire.ConsumeFieldValue(num, typ, rest)
		if n < 0 {
			return fmt.Errorf("%w: %v", errRangeWire, protowire.ParseError(n))
		}
		rest = rest[n:]
	}
	arr := make([]mvccpb.KeyValue, kvs)
	r.Kvs = append(r.Kvs, make([]*mvccpb.KeyValue, kvs)...)
	out := r.Kvs[len(r.Kvs)-kvs:]
	i := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			n, err := mergeHeader(b, &r.Header)
			if err != nil {
				return fmt.Errorf("%w: header: %v", errRangeWire, err)
			}
			b = b[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("%w: kv: %v", errRangeWire, protowire.ParseError(n))
			}
			if err := decodeKV(v, &arr[i]); err != nil {
				return err
			}
			out[i] = &arr[i]
			i++
			b = b[n:]
		case num == 3 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("%w: more: %v", errRangeWire, protowire.ParseError(n))
			}
			r.More = protowire.DecodeBool(v)
			b = b[n:]
		case num == 4 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("%w: count: %v", errRangeWire, protowire.ParseError(n))
			}
			r.Count = int64(v)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("%w: %v", errRangeWire, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return nil
}

// mergeHeader merges the length-prefixed ResponseHeader at the start of b
// into *h (as protobuf merges a repeated field) and returns its length.
func mergeHeader(b []byte, h **pb.ResponseHeader) (int, error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return 0, protowire.ParseError(n)
	}
	if *h == nil {
		*h = &pb.ResponseHeader{}
	}
	return n, proto.UnmarshalOptions{Merge: true}.Unmarshal(v, *h)
}

// decodeKV decodes a KeyValue whose key and value stay slices of b.
func decodeKV(b []byte, kv *mvccpb.KeyValue) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: kv: %v", errRangeWire, protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case (num == 1 || num == 5) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("%w: kv: %v", errRangeWire, protowire.ParseError(n))
			}
			// Full slice expressions: an append to one cannot overwrite
			// the bytes after it.
			v = v[:len(v):len(v)]
			if num == 1 {
				kv.Key = v
			} else {
				kv.Value = v
			}
			b = b[n:]
		case num >= 2 && num <= 6 && num != 5 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("%w: kv: %v", errRangeWire, protowire.ParseError(n))
			}
			switch num {
			case 2:
				kv.CreateRevision = int64(v)
			case 3:
				kv.ModRevision = int64(v)
			case 4:
				kv.Version = int64(v)
			case 6:
				kv.Lease = int64(v)
			}
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("%w: kv: %v", errRangeWire, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return nil
}

// maxMsgSize is Connect's MaxCallRecvMsgSize and MaxCallSendMsgSize: a
// chunk holds at least one key, whatever its size.
const maxMsgSize = 512 << 20

// leanCall is what clientv3 passes each call (Connect's limits, waiting
// for a connection), with leanCodec.
var leanCall = []grpc.CallOption{grpc.ForceCodecV2(leanCodec{}), grpc.WaitForReady(true),
	grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)}

// streamChunk is one response of a stream, or the error that ended it.
type streamChunk struct {
	kvs  []*mvccpb.KeyValue
	cost int64 // the memory the response holds (responseCost)
	err  error
}

// responseCost estimates the memory one response's kvs hold: their bytes
// and, per key, the KeyValue and its pointer.
func responseCost(kvs []*mvccpb.KeyValue) int64 {
	n := int64(len(kvs)) * kvOverhead
	for _, kv := range kvs {
		n += int64(len(kv.Key) + len(kv.Value))
	}
	return n
}

// kvOverhead is a decoded KeyValue's size apart from its key and value.
const kvOverhead = 96

// getStream is clientv3's GetStream for [start, end) at rev, through
// leanCodec: the same call on the client's connection (its interceptors
// and credentials), the same errors. Cancel ctx and drain the channel to
// stop it early. The channel is unbuffered, so at most one response waits
// decoded ahead of the reader; pace, when set, is asked before each
// further response is received and told what each one holds.
func getStream(ctx context.Context, cli *clientv3.Client, start, end string, rev int64, pace pacer) (<-chan streamChunk, error) {
	req := &pb.RangeRequest{Key: []byte(start), RangeEnd: []byte(end), Revision: rev}
	c, err := clientv3.RetryKVClient(cli).RangeStream(ctx, req, leanCall...)
	if err != nil {
		return nil, clientv3.ContextError(ctx, err)
	}
	ch := make(chan streamChunk)
	go func() {
		defer close(ch)
		for {
			if pace != nil {
				if err := pace.wait(ctx); err != nil {
					ch <- streamChunk{err: err}
					return
				}
			}
			resp, err := c.Recv()
			if err != nil {
				if pace != nil {
					pace.got(0)
				}
				if !errors.Is(err, io.EOF) {
					ch <- streamChunk{err: clientv3.ContextError(ctx, err)}
				}
				return
			}
			kvs := resp.GetRangeResponse().GetKvs()
			cost := responseCost(kvs)
			if pace != nil {
				pace.got(cost)
			}
			ch <- streamChunk{kvs: kvs, cost: cost}
		}
	}()
	return ch, nil
}

// decodeTxnOutcome decodes a TxnResponse's header and outcome, skipping
// its per-operation responses: a put's response holds only a header
// again, and a restore writing a million keys decoded a million of them
// for nothing.
func decodeTxnOutcome(b []byte, m *pb.TxnResponse) error {
	m.Reset()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errTxnWire, protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			n, err := mergeHeader(b, &m.Header)
			if err != nil {
				return fmt.Errorf("%w: header: %v", errTxnWire, err)
			}
			b = b[n:]
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("%w: succeeded: %v", errTxnWire, protowire.ParseError(n))
			}
			m.Succeeded = protowire.DecodeBool(v)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("%w: %v", errTxnWire, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return nil
}

var errTxnWire = errors.New("malformed TxnResponse")

// PutIf writes n keys in one transaction if cmp holds, as
// cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(k, v)...).Commit() does: the
// same request on the wire, the same interceptors, errors and retries.
// It builds the request in a few allocations instead of several per key
// and does not decode the per-put responses. kv(i) gives the i-th key and
// value; they are only read, and not kept after PutIf returns. It returns
// the transaction's revision and whether cmp held.
func PutIf(ctx context.Context, cli *clientv3.Client, cmp clientv3.Cmp, n int, kv func(i int) (key string, value []byte)) (int64, bool, error) {
	puts := make([]pb.PutRequest, n)
	wraps := make([]pb.RequestOp_RequestPut, n)
	reqs := make([]pb.RequestOp, n)
	ops := make([]*pb.RequestOp, n)
	for i := range n {
		k, v := kv(i)
		puts[i].Key = unsafe.Slice(unsafe.StringData(k), len(k))
		puts[i].Value = v
		wraps[i].RequestPut = &puts[i]
		reqs[i].Request = &wraps[i]
		ops[i] = &reqs[i]
	}
	req := &pb.TxnRequest{Compare: []*pb.Compare{cmp.GetCompare()}, Success: ops}
	resp, err := clientv3.RetryKVClient(cli).Txn(ctx, req, leanCall...)
	if err != nil {
		return 0, false, clientv3.ContextError(ctx, err)
	}
	return resp.GetHeader().GetRevision(), resp.GetSucceeded(), nil
}

// rangeOnce is cli.Get(ctx, start, WithRange(end), WithLimit(limit),
// WithRev(rev)) through leanCodec: the same request, interceptors,
// retries and errors.
func rangeOnce(ctx context.Context, cli *clientv3.Client, start, end string, limit, rev int64) (*pb.RangeResponse, error) {
	req := &pb.RangeRequest{Key: []byte(start), RangeEnd: []byte(end), Limit: limit, Revision: rev}
	resp, err := clientv3.RetryKVClient(cli).Range(ctx, req, leanCall...)
	if err != nil {
		return nil, clientv3.ContextError(ctx, err)
	}
	return resp, nil
}
