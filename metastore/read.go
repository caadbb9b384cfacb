package metastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

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
	resp, err := r.cli.Get(ctx, key, opts...)
	if err != nil {
		return nil, false, r.wrap(key, err)
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
		resp, err := r.cli.Get(ctx, start, opts...)
		if err != nil {
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

// ReadMetadata reads the whole snapshot input at one revision. rev 0 pins
// the current revision.
func ReadMetadata(ctx context.Context, cli *clientv3.Client, rev int64) (*Metadata, error) {
	r := NewReader(cli, rev)
	r.Progress = progress.New("read etcd", 0, "keys")
	defer r.Progress.Finish()
	m := &Metadata{SystemParams: map[string]string{}}
	// The cluster id read comes first: it pins the revision for all others.
	id, ok, err := r.Get(ctx, string(EtcdKey(CFClusterID, []byte(ClusterIDKey))))
	if err != nil {
		return nil, err
	}
	m.Revision = r.Revision()
	m.ClusterID = string(id)
	params, err := r.ListCF(ctx, CFSystemParams)
	if err != nil {
		return nil, err
	}
	for _, kv := range params {
		m.SystemParams[string(kv.Key)] = string(kv.Value)
	}
	if !ok && len(params) == 0 {
		return nil, ErrNotRisingWave
	}
	if !ok {
		return nil, errors.New("cluster id not found in meta store (cf/cluster_id)")
	}
	if len(params) == 0 {
		return nil, errors.New("system params not found in meta store (cf/system_params/)")
	}
	var stats []KV
	reads := []struct {
		cf   string
		kvs  *[]KV     // keys kept
		vals *[][]byte // values only
	}{
		{CFDefault, &m.DefaultCF, nil},
		{CFHummockDelta, &m.HummockDeltas, nil},
		{CFVersionStats, &stats, nil},
		{CFCompactionGroup, nil, &m.CompactionGroups},
		{CFTableFragments, nil, &m.TableFragments},
		{CFUserInfo, nil, &m.UserInfo},
		{CFDatabase, nil, &m.Databases},
		{CFSchema, nil, &m.Schemas},
		{CFTable, nil, &m.Tables},
		{CFIndex, nil, &m.Indexes},
		{CFSink, nil, &m.Sinks},
		{CFSource, nil, &m.Sources},
		{CFView, nil, &m.Views},
		{CFFunction, nil, &m.Functions},
		{CFConnection, nil, &m.Connections},
		{CFSubscription, nil, &m.Subscriptions},
		{CFSecret, nil, &m.Secrets},
	}
	// Column families are read concurrently, all at the pinned revision:
	// large ones (table fragments, catalogs) overlap instead of queueing.
	sem := make(chan struct{}, readParallelism)
	errs := make(chan error, len(reads))
	var wg sync.WaitGroup
	for _, rd := range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			cr := NewReader(cli, m.Revision)
			cr.Progress = r.Progress
			p := Prefix(rd.cf)
			errs <- cr.Range(ctx, p, func(k, v []byte) error {
				if rd.kvs != nil {
					*rd.kvs = append(*rd.kvs, KV{Key: k[len(p):], Value: v})
				} else {
					*rd.vals = append(*rd.vals, v)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return nil, err
		}
	}
	if len(stats) > 0 {
		m.VersionStats = stats[0].Value
	}
	return m, nil
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
