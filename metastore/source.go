package metastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rwsnap/rwsnap/etcdsnap"
	"github.com/rwsnap/rwsnap/internal/progress"
)

// ReadModeEnv forces where a backup reads the meta store from: "snapshot"
// (etcd's own snapshot stream, Maintenance.Snapshot), "range" (ranges at
// one revision: RangeStream or paged Gets), or "auto" (the default:
// RangeStream on etcd 3.7+ below SnapshotReadOver, else the snapshot where
// the server allows it, else ranges). For benchmarks and tests.
const ReadModeEnv = "RWSNAP_ETCD_READ"

// CheckEnv refuses a value of RWSNAP_ETCD_READ or RWSNAP_ETCD_RANGE that
// names no read path, so that a command can refuse it before it changes
// anything (a backup allocates its snapshot id before it reads).
func CheckEnv() error {
	for _, e := range []struct{ name, want string }{
		{ReadModeEnv, "snapshot, range or auto"},
		{RangeModeEnv, "stream, paged or auto"},
	} {
		v := os.Getenv(e.name)
		switch strings.ToLower(v) {
		case "", "auto":
			continue
		case "snapshot", "range":
			if e.name == ReadModeEnv {
				continue
			}
		case "stream", "paged":
			if e.name == RangeModeEnv {
				continue
			}
		}
		return fmt.Errorf("%s=%q: want %s", e.name, v, e.want)
	}
	return nil
}

// Source is the meta store at one revision: every read of a consistent
// backup comes from one Source.
type Source interface {
	// Revision is the etcd revision the source holds (0 until the first
	// read of a range source).
	Revision() int64
	// Get reads one key.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Range calls fn for every key under prefix in key order; key and
	// value are valid only during the call.
	Range(ctx context.Context, prefix string, bar *progress.Bar, fn func(key, value []byte) error) error
	// Count counts the keys under prefix.
	Count(ctx context.Context, prefix string) (int, error)
	// Path names the read path ("snapshot" or "range").
	Path() string
	Close() error
}

// RangeSource reads by ranges pinned at one revision (rev 0: the revision
// of the first read).
func RangeSource(cli *clientv3.Client, rev int64) Source { return &rangeSource{cli: cli, rev: rev} }

type rangeSource struct {
	cli *clientv3.Client
	rev int64
}

func (s *rangeSource) Revision() int64 { return s.rev }
func (s *rangeSource) Path() string    { return "range" }
func (s *rangeSource) Close() error    { return nil }

func (s *rangeSource) Get(ctx context.Context, key string) ([]byte, bool, error) {
	r := NewReader(s.cli, s.rev)
	v, ok, err := r.Get(ctx, key)
	if s.rev == 0 {
		s.rev = r.Revision()
	}
	return v, ok, err
}

func (s *rangeSource) Range(ctx context.Context, prefix string, bar *progress.Bar, fn func(key, value []byte) error) error {
	r := NewReader(s.cli, s.rev)
	r.Progress = bar
	return r.Range(ctx, prefix, fn)
}

func (s *rangeSource) Count(ctx context.Context, prefix string) (int, error) {
	return NewReader(s.cli, s.rev).Count(ctx, prefix)
}

// snapshotSource is the state etcd's snapshot stream held.
type snapshotSource struct{ st *etcdsnap.State }

func (s *snapshotSource) Revision() int64 { return s.st.Revision }
func (s *snapshotSource) Path() string    { return "snapshot" }
func (s *snapshotSource) Close() error    { return s.st.Close() }

func (s *snapshotSource) Get(_ context.Context, key string) ([]byte, bool, error) {
	return s.st.Get([]byte(key))
}

func (s *snapshotSource) Range(ctx context.Context, prefix string, bar *progress.Bar, fn func(key, value []byte) error) error {
	var n, size int64
	err := s.st.Range([]byte(prefix), []byte(clientv3.GetPrefixRangeEnd(prefix)), func(k, v []byte) error {
		n++
		size += int64(len(k) + len(v))
		if n%4096 == 0 {
			bar.Add(n, size)
			n, size = 0, 0
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return fn(k, v)
	})
	bar.Add(n, size)
	return err
}

func (s *snapshotSource) Count(_ context.Context, prefix string) (int, error) {
	return s.st.Count([]byte(prefix), []byte(clientv3.GetPrefixRangeEnd(prefix)))
}

// FreeSpace measures the room left in the snapshot path's spool
// directory before the stream is asked for. Tests replace it to drive the
// pre-check both ways (and past it onto a disk that then fills up).
var FreeSpace = etcdsnap.FreeSpace

// errFallBack marks a snapshot read that cannot be had here: the caller
// reads by ranges instead.
var errFallBack = errors.New("snapshot read not possible")

// OpenSource returns the meta store at its current revision: read by
// streamed ranges from an etcd 3.7+ server holding less than
// SnapshotReadOver, from etcd's snapshot stream from a larger or older one
// where the server allows it (or RWSNAP_ETCD_READ=snapshot), by ranges
// otherwise. The snapshot path needs
// temporary disk in $TMPDIR of about 1.5 times etcd's database size.
//
// The snapshot is one bbolt read transaction of the member that sends it,
// so it holds exactly one revision. Its revision must be at least that of
// a linearizable read made first: a lagging member's older state would
// miss writes this backup already depends on (its own snapshot id, the
// hummock checkpoint read before).
func OpenSource(ctx context.Context, cli *clientv3.Client, log *slog.Logger) (Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := CheckEnv(); err != nil {
		return nil, err
	}
	mode := strings.ToLower(os.Getenv(ReadModeEnv))
	if mode == "range" {
		log.Debug("etcd read path: ranges at one revision", "why", ReadModeEnv+"=range")
		return RangeSource(cli, 0), nil
	}
	if mode != "snapshot" && streamingSupported(ctx, cli) {
		// etcd 3.7's RangeStream is faster end to end than spooling and
		// indexing the snapshot up to about 1.3 GiB of data, slower past it
		// (docs/performance.md: 2M keys, 10 s against 14 s; 3M keys, 21 s
		// against 22 s; 10M keys, 4.4 GiB, 123 s against 69 s): the
		// server's work per key read grows with its index, the snapshot's
		// does not. Older servers page their ranges and get the snapshot.
		inUse := dbSizes(ctx, cli).inUse
		if inUse < SnapshotReadOver {
			log.Debug("etcd read path: ranges at one revision", "why", "the server streams ranges (etcd 3.7+)", "db_in_use_bytes", inUse)
			return RangeSource(cli, 0), nil
		}
		log.Debug("etcd read path: trying etcd's snapshot stream", "why", "the server streams ranges (etcd 3.7+) but holds at least "+
			strconv.FormatInt(SnapshotReadOver>>20, 10)+" MiB", "db_in_use_bytes", inUse)
	}
	start := time.Now()
	src, err := openSnapshot(ctx, cli, log)
	if err == nil {
		st := src.(*snapshotSource).st
		log.Debug("etcd read path: etcd's snapshot stream", "revision", src.Revision(), "db_bytes", st.DBSize, "keys", st.Keys,
			"spool", st.SpoolTime.Round(time.Millisecond), "index", st.IndexTime.Round(time.Millisecond), "took", time.Since(start).Round(time.Millisecond))
		return src, nil
	}
	if ctx.Err() != nil || mode == "snapshot" {
		return nil, err
	}
	why := err.Error()
	if !errors.Is(err, errFallBack) {
		log.Warn("etcd snapshot stream failed; reading by ranges instead", "err", err)
		why = "etcd's snapshot stream failed (the warning above)"
	}
	log.Debug("etcd read path: ranges at one revision", "why", why)
	return RangeSource(cli, 0), nil
}

// SnapshotReadOver is the etcd data size (the largest DbSizeInUse of the
// endpoints) from which a backup reads an etcd 3.7+ server through its
// snapshot stream rather than by RangeStream, where the server allows it.
// A variable so tests can move it.
var SnapshotReadOver int64 = 3 << 29 // 1.5 GiB

type dbSize struct{ file, inUse int64 }

// dbSizes asks every endpoint for its database's size and keeps the
// largest (0 when none answers).
func dbSizes(ctx context.Context, cli *clientv3.Client) dbSize {
	var d dbSize
	for _, ep := range cli.Endpoints() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := cli.Status(sctx, ep)
		cancel()
		if err == nil {
			d.file = max(d.file, st.DbSize)
			d.inUse = max(d.inUse, st.DbSizeInUse)
		}
	}
	return d
}

func openSnapshot(ctx context.Context, cli *clientv3.Client, log *slog.Logger) (Source, error) {
	dir := os.TempDir()
	dbSize := dbSizes(ctx, cli).file
	if dbSize == 0 {
		return nil, fmt.Errorf("%w: no endpoint told its database size (Maintenance.Status)", errFallBack)
	}
	free, err := FreeSpace(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errFallBack, err)
	}
	if need := etcdsnap.SpaceNeeded(dbSize); free < need {
		return nil, fmt.Errorf("%w: %s has %d MiB free, the snapshot of a %d MiB etcd database needs %d MiB (set TMPDIR to a larger disk)",
			errFallBack, dir, free>>20, dbSize>>20, need>>20)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		// The linearizable floor: the snapshot must hold this revision.
		resp, err := cli.Get(ctx, string(EtcdKey(CFClusterID, []byte(ClusterIDKey))), clientv3.WithCountOnly())
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", "cf/cluster_id", err)
		}
		floor := resp.Header.Revision
		st, err := readSnapshot(ctx, cli, dir)
		if err != nil {
			return nil, err
		}
		if st.Revision >= floor {
			return &snapshotSource{st: st}, nil
		}
		st.Close()
		lastErr = fmt.Errorf("%w: the member that sent the snapshot was at revision %d, behind revision %d already read", errFallBack, st.Revision, floor)
		log.Debug("etcd snapshot behind the cluster; retrying", "snapshot_revision", st.Revision, "floor", floor)
	}
	return nil, lastErr
}

func readSnapshot(ctx context.Context, cli *clientv3.Client, dir string) (*etcdsnap.State, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := cli.Snapshot(sctx)
	if err == nil {
		defer rc.Close()
		var st *etcdsnap.State
		st, err = etcdsnap.Read(sctx, rc, etcdsnap.Options{Dir: dir})
		if err == nil {
			return st, nil
		}
	}
	if c := status.Code(err); c == codes.PermissionDenied || c == codes.Unimplemented || errors.Is(err, rpctypes.ErrPermissionDenied) {
		return nil, fmt.Errorf("%w: etcd refused its snapshot (%v); Maintenance.Snapshot needs the root role", errFallBack, err)
	}
	return nil, fmt.Errorf("read etcd's snapshot stream: %w", err)
}

// headFrom reads what a snapshot needs before its model lists from src.
func headFrom(ctx context.Context, src Source, bar *progress.Bar) (*Metadata, error) {
	m := &Metadata{SystemParams: map[string]string{}}
	// With a range source the cluster id read comes first: it pins the
	// revision for all others.
	id, ok, err := src.Get(ctx, string(EtcdKey(CFClusterID, []byte(ClusterIDKey))))
	if err != nil {
		return nil, err
	}
	m.Revision = src.Revision()
	m.ClusterID = string(id)
	p := Prefix(CFSystemParams)
	var params int
	err = src.Range(ctx, p, bar, func(k, v []byte) error {
		params++
		m.SystemParams[string(k[len(p):])] = string(v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !ok && params == 0 {
		return nil, ErrNotRisingWave
	}
	if !ok {
		return nil, errors.New("cluster id not found in meta store (cf/cluster_id)")
	}
	if params == 0 {
		return nil, errors.New("system params not found in meta store (cf/system_params/)")
	}
	var stats []KV
	reads := []struct {
		cf  string
		kvs *[]KV
	}{
		{CFDefault, &m.DefaultCF},
		{CFHummockDelta, &m.HummockDeltas},
		{CFVersionStats, &stats},
	}
	err = forEach(len(reads), func(i int) error {
		p := Prefix(reads[i].cf)
		return src.Range(ctx, p, bar, func(k, v []byte) error {
			*reads[i].kvs = append(*reads[i].kvs, KV{Key: bytes.Clone(k[len(p):]), Value: bytes.Clone(v)})
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if len(stats) > 0 {
		m.VersionStats = stats[0].Value
	}
	return m, nil
}

// ReadHeadFrom is ReadHead from src.
func ReadHeadFrom(ctx context.Context, src Source) (*Metadata, error) {
	bar := progress.New("read etcd", 0, "keys")
	defer bar.Finish()
	return headFrom(ctx, src, bar)
}

// CountFrom counts the keys of each column family in src: from a range
// source in one read-only transaction (one round trip, one server read
// at the pinned revision), else concurrently.
func CountFrom(ctx context.Context, src Source, cfs []string) ([]int, error) {
	if rs, ok := src.(*rangeSource); ok && rs.rev != 0 {
		out, err := CountTxn(ctx, rs.cli, rs.rev, cfs)
		if !errors.Is(err, rpctypes.ErrTooManyOps) {
			return out, err
		}
		// A server with a --max-txn-ops below len(cfs): count one by one.
	}
	out := make([]int, len(cfs))
	err := forEach(len(cfs), func(i int) error {
		n, err := src.Count(ctx, Prefix(cfs[i]))
		out[i] = n
		return err
	})
	return out, err
}
