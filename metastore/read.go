package metastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rwsnap/rwsnap/internal/progress"
)

// KV is one key/value pair of a column family, the cf prefix stripped.
type KV struct {
	Key   []byte
	Value []byte
}

// ErrNotRisingWave means the etcd holds no RisingWave meta store.
var ErrNotRisingWave = errors.New("not a RisingWave meta store: no cf/cluster_id and no cf/system_params/ keys")

// ErrCompacted means etcd compacted the revision a read was pinned to.
var ErrCompacted = errors.New("etcd compacted the pinned revision during the read")

// DefaultPageSize is the first page of a range, in keys. Later pages adapt
// to the values seen: etcd counts every key left in the range to answer
// each paged request, so small pages over a large column family cost
// O(keys²/page); pages grow up to MaxPageSize while they stay under
// pageTargetBytes, and shrink when large table-fragment values make them
// heavy.
const (
	// readParallelism bounds concurrent column-family reads.
	readParallelism = 4
	DefaultPageSize = 512
	MaxPageSize     = 16384
	pageTargetBytes = 8 << 20
)

// Reader reads column families at one etcd revision. The first range fixes
// the revision; every later one uses it, so the result is one consistent cut.
type Reader struct {
	cli *clientv3.Client
	rev int64
	// PageSize fixes the keys per range request; 0 adapts (DefaultPageSize
	// first).
	PageSize int
	// Progress, when set, counts keys and bytes read.
	Progress *progress.Bar
	pace     pacer
}

// A pacer holds a range's reads to a memory budget (a Feed reading lists
// ahead of its consumer). wait is called before each request (each page,
// each response of a stream); got follows every request with the cost of what
// came back (responseCost; 0 for nothing). begin is called in the reading
// goroutine as the values of a response of that cost start to be handed
// out, which also ends the previous response's.
type pacer interface {
	wait(ctx context.Context) error
	got(cost int64)
	begin(cost int64)
}

// NewReader returns a reader; rev 0 means "fix at the first read".
func NewReader(cli *clientv3.Client, rev int64) *Reader {
	return &Reader{cli: cli, rev: rev}
}

// Revision is the pinned revision (0 before the first read).
func (r *Reader) Revision() int64 { return r.rev }

// Get reads one key at the pinned revision; nil if absent.
func (r *Reader) Get(ctx context.Context, key string) ([]byte, bool, error) {
	opts := []clientv3.OpOption{}
	if r.rev != 0 {
		opts = append(opts, clientv3.WithRev(r.rev))
	}
	resp, failed, err := r.getRetrying(ctx, key, opts...)
	if err != nil {
		return nil, false, r.gaveUp(key, failed, err)
	}
	if r.rev == 0 {
		r.rev = resp.Header.Revision
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	return resp.Kvs[0].Value, true, nil
}

// Range calls fn for every key under prefix in etcd key order, page by page.
func (r *Reader) Range(ctx context.Context, prefix string, fn func(key, value []byte) error) error {
	return r.rangeKeys(ctx, prefix, clientv3.GetPrefixRangeEnd(prefix), fn)
}

// RangeAll calls fn for every key in etcd, page by page.
func (r *Reader) RangeAll(ctx context.Context, fn func(key, value []byte) error) error {
	// Range end "\x00" means "every key from start on" to etcd.
	return r.rangeKeys(ctx, "\x00", "\x00", fn)
}

func (r *Reader) rangeKeys(ctx context.Context, start, end string, fn func(key, value []byte) error) error {
	if streamingSupported(ctx, r.cli) {
		if r.rev == 0 {
			// Pin the revision with a one-key read; a stream then reads at it.
			if _, _, err := r.Get(ctx, start); err != nil {
				return err
			}
		}
		err := r.streamKeys(ctx, start, end, fn)
		if !errors.Is(err, errNoStreaming) {
			return err
		}
		noStreaming(r.cli)
	}
	return r.pagedKeys(ctx, start, end, fn)
}

// streamKeys reads [start, end) at the pinned revision with etcd 3.7's
// RangeStream: the server sends the range in chunks of about its request
// size limit and, unlike a paged Get with a limit, does not count the keys
// left in the range for every chunk (O(keys) instead of O(keys²/page)). A
// transient failure mid-stream resumes after the last key received, at the
// same revision, so the result is still one consistent cut.
func (r *Reader) streamKeys(ctx context.Context, start, end string, fn func(key, value []byte) error) error {
	got := false
	for attempt := 0; ; attempt++ {
		last, err := r.streamOnce(ctx, start, end, fn)
		if last != nil {
			got = true
			start = string(append(last, 0))
		}
		if err == nil {
			return nil
		}
		if !got && status.Code(err) == codes.Unimplemented {
			return errNoStreaming
		}
		var fnErr callbackError
		if errors.As(err, &fnErr) {
			return fnErr.err
		}
		if attempt >= 3 || !transientRead(err) || ctx.Err() != nil {
			return r.wrap(start, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
}

// callbackError carries the caller's own error out of a stream.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// streamOnce runs one RangeStream and returns the last key handed to fn.
func (r *Reader) streamOnce(ctx context.Context, start, end string, fn func(key, value []byte) error) ([]byte, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := getStream(sctx, r.cli, start, end, r.rev, r.pace)
	if err != nil {
		return nil, err
	}
	// On an early return the client's goroutine still sends one last
	// (error) response: drain it so it can exit.
	defer func() {
		cancel()
		for range ch {
		}
	}()
	var last []byte
	for resp := range ch {
		if resp.err != nil {
			return last, resp.err
		}
		if r.pace != nil {
			r.pace.begin(resp.cost)
		}
		var size int64
		for _, kv := range resp.kvs {
			size += int64(len(kv.Key) + len(kv.Value))
			if err := fn(kv.Key, kv.Value); err != nil {
				return last, callbackError{err}
			}
			last = kv.Key
		}
		r.Progress.Add(int64(len(resp.kvs)), size)
	}
	return last, nil
}

// transientRead says whether a failed read may succeed when retried.
func transientRead(err error) bool {
	if errors.Is(err, rpctypes.ErrCompacted) {
		return false
	}
	code := status.Code(err)
	// clientv3 hands etcd's own errors ("too many requests", "leader
	// changed") over as rpctypes.EtcdError, which carries its code apart.
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
		return true
	}
	return false
}

// pageAttempts bounds the tries of one page of a paged read.
const pageAttempts = 4

// pagedKeys reads [start, end) with paged Gets: every etcd version has it.
// A page that fails transiently is asked for again, from the key after the
// last one received and at the same revision (the way a cut stream
// resumes), so the read stays one consistent cut. clientv3 retries only
// Unavailable itself; a page whose operation deadline passed on a stalled
// member, or that an overloaded server refused, is retried here.
func (r *Reader) pagedKeys(ctx context.Context, start, end string, fn func(key, value []byte) error) error {
	what := start
	pageSize := r.PageSize
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(pageSize))}
		if r.rev != 0 {
			opts = append(opts, clientv3.WithRev(r.rev))
		}
		if r.pace != nil {
			if err := r.pace.wait(ctx); err != nil {
				return err
			}
		}
		resp, failed, err := r.getRetrying(ctx, start, opts...)
		if r.pace != nil {
			var cost int64
			if err == nil {
				cost = responseCost(resp.Kvs)
			}
			r.pace.got(cost)
			r.pace.begin(cost)
		}
		if err != nil {
			if failed >= pageAttempts {
				return r.gaveUpRange(what, start, end, failed, err)
			}
			return r.wrap(what, err)
		}
		if r.rev == 0 {
			r.rev = resp.Header.Revision
		}
		var size int64
		for _, kv := range resp.Kvs {
			size += int64(len(kv.Key) + len(kv.Value))
			if err := fn(kv.Key, kv.Value); err != nil {
				return err
			}
		}
		r.Progress.Add(int64(len(resp.Kvs)), size)
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		start = string(append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0))
		if r.PageSize <= 0 { // adaptive unless a fixed size was asked for
			switch {
			case size < pageTargetBytes/2 && pageSize < MaxPageSize:
				pageSize *= 2
			case size > pageTargetBytes*2 && pageSize > 16:
				pageSize /= 2
			}
		}
	}
}

// Count returns the number of keys under prefix at the pinned revision
// (pinning it if unset). One count is one pass over etcd's index.
func (r *Reader) Count(ctx context.Context, prefix string) (int, error) {
	opts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)), clientv3.WithCountOnly()}
	if r.rev != 0 {
		opts = append(opts, clientv3.WithRev(r.rev))
	}
	resp, failed, err := r.getRetrying(ctx, prefix, opts...)
	if err != nil {
		return 0, r.gaveUp(prefix, failed, err)
	}
	if r.rev == 0 {
		r.rev = resp.Header.Revision
	}
	return int(resp.Count), nil
}

// ListCF returns the pairs of a column family with the "cf/" prefix removed,
// as RisingWave's list_cf does.
func (r *Reader) ListCF(ctx context.Context, cf string) ([]KV, error) {
	p := Prefix(cf)
	var out []KV
	err := r.Range(ctx, p, func(k, v []byte) error {
		out = append(out, KV{Key: k[len(p):], Value: v})
		return nil
	})
	return out, err
}

// getRetrying is one Get, asked again after a transient failure:
// pageAttempts tries in all, with a growing pause. It returns how many
// tries failed.
func (r *Reader) getRetrying(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, int, error) {
	for failed := 1; ; failed++ {
		resp, err := r.cli.Get(ctx, key, opts...)
		if err == nil {
			return resp, 0, nil
		}
		if !transientRead(err) || ctx.Err() != nil || failed >= pageAttempts {
			return nil, failed, err
		}
		select {
		case <-ctx.Done():
			return nil, failed, ctx.Err()
		case <-time.After(time.Duration(failed) * 200 * time.Millisecond):
		}
	}
}

// gaveUp is the error of a read of what that failed (attempts times in a
// row, when retried).
func (r *Reader) gaveUp(what string, attempts int, err error) error {
	if attempts < pageAttempts {
		return r.wrap(what, err)
	}
	return fmt.Errorf("read %q from etcd at revision %d: failed %d times in a row: %w", what, r.rev, attempts, err)
}

// gaveUpRange is the error of a page of range what that failed attempts
// times in a row, the last time from key from.
func (r *Reader) gaveUpRange(what, from, end string, attempts int, err error) error {
	where := "its start"
	if from != what {
		where = fmt.Sprintf("%q (after the last key received)", from)
	}
	return fmt.Errorf("read %q from etcd at revision %d: range [%q, %q) failed %d times in a row, the last from %s: %w",
		what, r.rev, what, end, attempts, where, err)
}

func (r *Reader) wrap(what string, err error) error {
	if errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("read %q at revision %d: %w (raise etcd auto-compaction-retention, or retry): %v", what, r.rev, ErrCompacted, err)
	}
	return fmt.Errorf("read %q from etcd at revision %d: %w", what, r.rev, err)
}

// Metadata is everything a RisingWave v1.x meta snapshot (ClusterMetadata)
// is built from, read at one etcd revision. Values are etcd's bytes,
// untouched; lists are in etcd key order, as list_cf returns them.
type Metadata struct {
	Revision         int64
	DefaultCF        []KV
	HummockDeltas    []KV     // cf/hummock_1, replayed, never stored
	VersionStats     []byte   // cf/hummock_7 first row; nil if absent
	CompactionGroups [][]byte // cf/hummock_6
	TableFragments   [][]byte
	UserInfo         [][]byte
	Databases        [][]byte
	Schemas          [][]byte
	Tables           [][]byte
	Indexes          [][]byte
	Sinks            [][]byte
	Sources          [][]byte
	Views            [][]byte
	Functions        [][]byte
	Connections      [][]byte
	Subscriptions    [][]byte
	Secrets          [][]byte // cf/catalog_secret (v1.10+; in snapshots from v2.0)
	SystemParams     map[string]string
	ClusterID        string
	// Counts are the keys per column family at Revision, for lists that
	// are streamed rather than held (ReadHead + CountCFs).
	Counts map[string]int
}

// Keys counts the etcd keys read.
func (m *Metadata) Keys() int {
	n := len(m.DefaultCF) + len(m.HummockDeltas) + len(m.CompactionGroups) + len(m.TableFragments) +
		len(m.UserInfo) + len(m.Databases) + len(m.Schemas) + len(m.Tables) + len(m.Indexes) + len(m.Sinks) +
		len(m.Sources) + len(m.Views) + len(m.Functions) + len(m.Connections) + len(m.Subscriptions) + len(m.Secrets) + len(m.SystemParams) + 1
	if m.VersionStats != nil {
		n++
	}
	return n
}

// SnapshotCFs are the column families stored as the snapshot's lists, in
// the snapshot's order (metasnap.ModelSections), then subscriptions and
// secrets (the v2.0 trailing list).
var SnapshotCFs = []string{CFCompactionGroup, CFTableFragments, CFUserInfo, CFDatabase, CFSchema, CFTable,
	CFIndex, CFSink, CFSource, CFView, CFFunction, CFConnection, CFSubscription, CFSecret}

// Has says whether column family cf holds keys at m.Revision: read into
// m, or counted (Counts) when its keys are streamed instead.
func (m *Metadata) Has(cf string) bool {
	if m.Counts[cf] > 0 {
		return true
	}
	switch cf {
	case CFSubscription:
		return len(m.Subscriptions) > 0
	case CFSecret:
		return len(m.Secrets) > 0
	}
	return false
}

// ReadMetadata reads the whole snapshot input at one revision. rev 0 pins
// the current revision.
func ReadMetadata(ctx context.Context, cli *clientv3.Client, rev int64) (*Metadata, error) {
	m, bar, err := readHead(ctx, cli, rev)
	if err != nil {
		return nil, err
	}
	defer bar.Finish()
	lists := []*[][]byte{&m.CompactionGroups, &m.TableFragments, &m.UserInfo, &m.Databases, &m.Schemas, &m.Tables,
		&m.Indexes, &m.Sinks, &m.Sources, &m.Views, &m.Functions, &m.Connections, &m.Subscriptions, &m.Secrets}
	err = forEach(len(SnapshotCFs), func(i int) error {
		cr := NewReader(cli, m.Revision)
		cr.Progress = bar
		return cr.Range(ctx, Prefix(SnapshotCFs[i]), func(_, v []byte) error {
			*lists[i] = append(*lists[i], v)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// ReadHead reads, at one revision (rev 0 pins the current one), what a
// snapshot needs before its model lists: cluster id, system params,
// default cf, hummock deltas and version stats. The model lists are then
// read at m.Revision, e.g. streamed into the snapshot (metasnap.Backup).
func ReadHead(ctx context.Context, cli *clientv3.Client, rev int64) (*Metadata, error) {
	m, bar, err := readHead(ctx, cli, rev)
	bar.Finish()
	return m, err
}

func readHead(ctx context.Context, cli *clientv3.Client, rev int64) (*Metadata, *progress.Bar, error) {
	bar := progress.New("read etcd", 0, "keys")
	m, err := headFrom(ctx, RangeSource(cli, rev), bar)
	return m, bar, err
}

// CountCFs counts the keys of each column family at rev, concurrently.
func CountCFs(ctx context.Context, cli *clientv3.Client, rev int64, cfs []string) ([]int, error) {
	out := make([]int, len(cfs))
	err := forEach(len(cfs), func(i int) error {
		n, err := NewReader(cli, rev).Count(ctx, Prefix(cfs[i]))
		out[i] = n
		return err
	})
	return out, err
}

// CountTxn counts the keys of each column family at rev (which must be
// pinned) in one read-only transaction.
func CountTxn(ctx context.Context, cli *clientv3.Client, rev int64, cfs []string) ([]int, error) {
	ops := make([]clientv3.Op, len(cfs))
	for i, cf := range cfs {
		p := Prefix(cf)
		ops[i] = clientv3.OpGet(p, clientv3.WithRange(clientv3.GetPrefixRangeEnd(p)), clientv3.WithCountOnly(), clientv3.WithRev(rev))
	}
	resp, err := cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrTooManyOps) {
			return nil, err
		}
		return nil, (&Reader{rev: rev}).wrap("counts of "+strings.Join(cfs, ", "), err)
	}
	if len(resp.Responses) != len(cfs) {
		return nil, fmt.Errorf("count column families at revision %d: etcd answered %d of %d ranges", rev, len(resp.Responses), len(cfs))
	}
	out := make([]int, len(cfs))
	for i, r := range resp.Responses {
		rr := r.GetResponseRange()
		if rr == nil {
			return nil, fmt.Errorf("count %s at revision %d: etcd answered no range", cfs[i], rev)
		}
		out[i] = int(rr.Count)
	}
	return out, nil
}

// forEach runs fn(0..n-1), readParallelism at a time (column families are
// read concurrently, all at one pinned revision), and returns the first
// error.
func forEach(n int, fn func(i int) error) error {
	sem := make(chan struct{}, readParallelism)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs <- fn(i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ReadSystemParams reads cf/system_params/ at the current revision.
func ReadSystemParams(ctx context.Context, cli *clientv3.Client) (map[string]string, error) {
	kvs, err := NewReader(cli, 0).ListCF(ctx, CFSystemParams)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out, nil
}
