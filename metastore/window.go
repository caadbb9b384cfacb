package metastore

import (
	"bytes"
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// RangeWindow reads the keys of [start, end) ("\x00" as end: to the end
// of the keyspace) at the pinned revision, in pages of at most limit keys,
// and calls fn for each in key order. It is for a caller that knows about
// how many keys a range holds and cuts the keyspace into windows of a
// bounded size (restore's checks and read-back): a page then never holds
// more than limit keys of one window, where one stream or paged read over
// column families of very different value sizes can grow a chunk sized
// for small values into hundreds of MiB of large ones. A Get with a limit
// makes etcd count the rest of the range, which is cheap here: the range
// is the window. A transient failure is retried from the last key
// received, at the same revision.
func (r *Reader) RangeWindow(ctx context.Context, start, end string, limit int, fn func(key, value []byte) error) error {
	limit = max(limit, 1)
	for attempt := 0; ; {
		resp, err := rangeOnce(ctx, r.cli, start, end, int64(limit), r.rev)
		if err != nil {
			if attempt >= 3 || !transientRead(err) || ctx.Err() != nil {
				return r.wrap(start, err)
			}
			attempt++
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
			continue
		}
		if r.rev == 0 {
			r.rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := fn(kv.Key, kv.Value); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		start = string(append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0))
	}
}

// CountAll counts every key in etcd at the pinned revision (pinning it if
// unset): one pass over etcd's index, no values.
func (r *Reader) CountAll(ctx context.Context) (int, error) {
	opts := []clientv3.OpOption{clientv3.WithRange("\x00"), clientv3.WithCountOnly()}
	if r.rev != 0 {
		opts = append(opts, clientv3.WithRev(r.rev))
	}
	resp, err := r.cli.Get(ctx, "\x00", opts...)
	if err != nil {
		return 0, r.wrap("\x00", err)
	}
	if r.rev == 0 {
		r.rev = resp.Header.Revision
	}
	return int(resp.Count), nil
}
