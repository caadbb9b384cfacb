package metasnap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/internal/progress"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwversion"
)

// ErrLiveLeader means a meta node is running and owns the target location.
var ErrLiveLeader = errors.New("a RisingWave meta leader is live")

// BackupOptions configures one backup-meta run.
type BackupOptions struct {
	Etcd    *clientv3.Client
	Hummock objstore.Store // the state store (state_store minus "hummock+")
	DataDir string         // data_directory
	Target  *Storage
	// OwnLocation says the target is the cluster's own backup_storage_url
	// and directory, the manifest a running meta node caches.
	OwnLocation bool
	Remarks     string
	Force       bool
	// Attempts bounds retries when a checkpoint or etcd compaction races
	// the read (default 3).
	Attempts int
	Logger   *slog.Logger
	// RWVersion overrides the release line detected from the meta store
	// (--rw-version); it must agree with what the store shows.
	RWVersion *rwversion.Version
	// RWRelease is the exact release (e.g. "1.10.2", from --rw-version
	// 1.10.2) when known: new entries of v1.10+ record it as rw_version,
	// as RisingWave writes RW_VERSION; "" writes null there.
	RWRelease string
	// ManifestRWVersion is the rw_version of the newest entry of the
	// cluster's own manifest, a lower bound of its release ("" if none).
	ManifestRWVersion string
	// BeforeCommit runs after the read and before the snapshot is stored;
	// the pending marker it returns (backup-meta --with-data copies the
	// data and holds its marker across the commit) must still be Held when
	// the manifest entry is written, and is released once the commit is
	// done or failed.
	BeforeCommit func(ctx context.Context, entry SnapshotMetadata) (*Pending, error)
}

// BackupResult describes a stored snapshot.
type BackupResult struct {
	Entry    SnapshotMetadata
	Revision int64
	Keys     int
	Bytes    int
	Duration time.Duration
	Manifest *Manifest
	// Lines is the RisingWave release the meta store was read as.
	Lines Lines
	// Warnings are what the user must know although the snapshot was
	// stored (e.g. a meta node that dropped the remarks).
	Warnings []string
}

// Backup takes one consistent snapshot of the meta store (one etcd
// revision, the hummock version replayed to it) and stores it in
// RisingWave's format at opts.Target.
func Backup(ctx context.Context, opts BackupOptions) (*BackupResult, error) {
	start := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, _, err := opts.Target.ReadManifest(ctx)
	if err != nil {
		return nil, err
	}
	if opts.OwnLocation && opts.ManifestRWVersion == "" {
		opts.ManifestRWVersion = newestRWVersion(m)
	}
	if err := checkCapacity(len(m.SnapshotMetadata), opts.Force, log); err != nil {
		return nil, fmt.Errorf("%s: %w", opts.Target, err)
	}
	leader, err := metastore.FindLeader(ctx, opts.Etcd)
	if err != nil {
		return nil, err
	}
	if leader != nil {
		if opts.OwnLocation && !opts.Force {
			return nil, fmt.Errorf("%w (%s, lease ttl %ds) and caches the manifest of %s: a direct write there would be overwritten by its next backup and its SSTs left unpinned; back up through the meta node (risectl meta backup-meta) or to another --backup-storage-url/--backup-storage-directory, or pass --force if the meta node is certainly stopped",
				ErrLiveLeader, leader.Addr, leader.TTL, opts.Target)
		}
		if opts.OwnLocation {
			log.Warn("writing the live cluster's own backup location directly (--force)", "leader", leader.Addr)
		} else {
			log.Warn("a meta leader is live: the SSTs of this snapshot are not pinned by that cluster and may be vacuumed", "leader", leader.Addr)
		}
	}
	id, err := metastore.AllocBackupID(ctx, opts.Etcd)
	if err != nil {
		return nil, err
	}
	log.Info("allocated snapshot id", "id", id)
	// Crash tests: killed here, an id is used up and nothing is stored.
	faultpoint.Hit("backup.after-id")

	attempts := opts.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	for attempt := 1; ; attempt++ {
		rd, err := readConsistent(ctx, opts, id, log)
		if err != nil {
			return nil, err
		}
		log.Info("meta store read as RisingWave "+rd.lines.Range.String(), "replay_rules", rd.lines.Replay, "why", rd.lines.Range.Why())
		// Crash tests: killed here, the read is lost and nothing is stored.
		faultpoint.Hit("backup.before-upload")
		var dataPending *Pending
		if opts.BeforeCommit != nil {
			// backup-meta --with-data: the SSTs are copied before the
			// entry exists, so an entry never claims data it lacks.
			held, err := opts.BeforeCommit(ctx, rd.entry)
			if err != nil {
				rd.bar.Finish()
				rd.close()
				return nil, err
			}
			defer held.Release(ctx)
			dataPending = held
		}
		var written int64
		// The lists are read ahead from here on, while the manifest is
		// read and the pending marker written.
		rd.startFeed(ctx)
		manifest, err := opts.Target.CreateStream(ctx, rd.entry, CreateOptions{Force: opts.Force, Also: dataPending}, func(w io.Writer) error {
			n, _, err := WriteSnapshot(w, id, rd.body)
			written = n
			return err
		})
		rd.bar.Finish()
		rd.close()
		if errors.Is(err, metastore.ErrCompacted) && attempt < attempts {
			// etcd compacted the pinned revision mid-stream: nothing was
			// stored; read again at a newer revision.
			log.Warn("etcd compacted the revision being read; retrying", "attempt", attempt, "err", err)
			faultpoint.Hit("backup.read-retry")
			continue
		}
		if err != nil {
			return nil, err
		}
		res := &BackupResult{Entry: rd.entry, Revision: rd.md.Revision, Keys: rd.keys, Bytes: int(written), Duration: time.Since(start), Manifest: manifest, Lines: rd.lines}
		log.Info("snapshot stored", "id", id, "revision", rd.md.Revision, "etcd_read", rd.src.Path(), "hummock_version_id", rd.entry.HummockVersionID,
			"keys", res.Keys, "bytes", res.Bytes, "ssts", len(rd.entry.SSTs), "duration", res.Duration.Round(time.Millisecond))
		return res, nil
	}
}

// checkCapacity applies RisingWave's cap on snapshots per location early
// (the binding check is in the manifest compare-and-swap) and warns near it.
func checkCapacity(n int, force bool, log *slog.Logger) error {
	if err := CheckCapacity(n, force); err != nil {
		return err
	}
	if n >= WarnSnapshots {
		log.Warn("backup location is close to RisingWave's snapshot cap", "snapshots", n, "cap", MaxSnapshots)
	}
	return nil
}

// consistentRead is a snapshot ready to be streamed: everything but the
// model lists read at one revision, and the lists as counted streams at it.
type consistentRead struct {
	md    *metastore.Metadata
	body  *Body
	entry SnapshotMetadata
	keys  int
	lines Lines
	bar   *progress.Bar
	// src holds the revision's keys until the snapshot is written.
	src metastore.Source
	// feed reads the lists (counts[i] values under prefixes[i], in the
	// order they are written) ahead of the writer once started.
	feed     *metastore.Feed
	prefixes []string
	counts   []int
}

// startFeed starts reading the lists ahead of WriteSnapshot.
func (rd *consistentRead) startFeed(ctx context.Context) {
	if rd.feed == nil {
		rd.feed = metastore.NewFeed(ctx, rd.src, rd.prefixes, rd.counts, rd.bar)
	}
}

// close stops the feed and releases the source.
func (rd *consistentRead) close() {
	if rd.feed != nil {
		rd.feed.Close()
	}
	rd.src.Close()
}

// readConsistent reads the checkpoint, then etcd at one revision, and
// replays the deltas. The checkpoint is read first: meta deletes deltas only
// after writing a newer checkpoint, so if one raced the read the delta chain
// has a gap, replay stops short, and the whole read is retried.
func readConsistent(ctx context.Context, opts BackupOptions, id uint64, log *slog.Logger) (*consistentRead, error) {
	attempts := opts.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	var lastErr error
	for attempt := 1; attempt <= attempts; attempt++ {
		rd, err := readOnce(ctx, opts, id, log)
		if err == nil {
			return rd, nil
		}
		if !errors.Is(err, hummock.ErrInconsistentVersion) && !errors.Is(err, metastore.ErrCompacted) {
			return nil, err
		}
		lastErr = err
		log.Warn("meta store changed under the read; retrying", "attempt", attempt, "err", err)
		// Crash tests: killed between two read attempts.
		faultpoint.Hit("backup.read-retry")
	}
	return nil, fmt.Errorf("no consistent read after %d attempts: %w", attempts, lastErr)
}

func readOnce(ctx context.Context, opts BackupOptions, id uint64, log *slog.Logger) (*consistentRead, error) {
	cpKey := hummock.CheckpointPath(opts.DataDir)
	cpBytes, _, err := opts.Hummock.Get(ctx, cpKey)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("no hummock checkpoint at %s in %s: check --hummock-storage-url and --hummock-storage-directory (the state_store and data_directory params): %w", cpKey, opts.Hummock, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read hummock checkpoint %s: %w", cpKey, err)
	}
	cp, err := hummock.DecodeCheckpoint(cpBytes)
	if err != nil {
		return nil, fmt.Errorf("hummock checkpoint %s: %w", cpKey, err)
	}
	// Every read below comes from src: one revision of the meta store
	// (etcd's snapshot stream, or ranges pinned at the first read).
	src, err := metastore.OpenSource(ctx, opts.Etcd, log)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			src.Close()
		}
	}()
	md, err := metastore.ReadHeadFrom(ctx, src)
	if err != nil {
		return nil, err
	}
	// The v1 format counts each list before its messages: count every
	// list's column family at the pinned revision (then stream it there).
	counts, err := metastore.CountFrom(ctx, src, metastore.SnapshotCFs)
	if err != nil {
		return nil, err
	}
	md.Counts = map[string]int{}
	for i, cf := range metastore.SnapshotCFs {
		md.Counts[cf] = counts[i]
	}
	deltas := make([]*hummockpb.HummockVersionDelta, 0, len(md.HummockDeltas))
	for _, kv := range md.HummockDeltas {
		d, err := hummock.DecodeDelta(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("hummock delta at cf/hummock_1/%x: %w", kv.Key, err)
		}
		deltas = append(deltas, d)
	}
	version, lines, err := replayByVersion(Evidence(md, cp.GetVersion(), deltas, opts.ManifestRWVersion), opts.RWVersion, cp.GetVersion(), deltas)
	if err != nil {
		return nil, fmt.Errorf("replay %d deltas onto checkpoint version %d: %w", len(deltas), cp.GetVersion().GetId(), err)
	}
	sp, _, err := metastore.SystemParamsFromKV(md.SystemParams)
	if err != nil {
		return nil, err
	}
	mo := proto.MarshalOptions{Deterministic: true}
	spBytes, err := mo.Marshal(sp)
	if err != nil {
		return nil, fmt.Errorf("encode system params: %w", err)
	}
	vBytes, err := mo.Marshal(version)
	if err != nil {
		return nil, fmt.Errorf("encode hummock version: %w", err)
	}
	rd := &consistentRead{md: md, keys: md.Keys(), lines: lines, src: src}
	for i, n := range counts {
		if metastore.SnapshotCFs[i] != metastore.CFSecret || lines.Layout.Secrets {
			rd.keys += n
		}
	}
	rd.bar = progress.New("backup", int64(rd.keys), "keys")
	rd.bar.Add(int64(md.Keys()), 0)
	// The lists in the order WriteSnapshot takes them: SnapshotCFs is
	// the models, then subscriptions and secrets.
	for i, cf := range metastore.SnapshotCFs {
		n := counts[i]
		if cf == metastore.CFSecret && !lines.Layout.Secrets {
			n = 0 // not written: not read
		}
		rd.prefixes = append(rd.prefixes, metastore.Prefix(cf))
		rd.counts = append(rd.counts, n)
	}
	stream := func(i int) List {
		return List{Count: counts[i], Each: func(yield func([]byte) error) error {
			// Tests hold one list here (RWSNAP_PAUSE_AT) to see progress
			// drawn mid-stream.
			faultpoint.Hit("backup.list." + metastore.SnapshotCFs[i])
			// Every caller of WriteSnapshot gets the feed, started or not.
			rd.startFeed(ctx)
			return rd.feed.Each(i, yield)
		}}
	}
	rd.body = &Body{
		DefaultCF:      md.DefaultCF,
		HummockVersion: vBytes,
		VersionStats:   md.VersionStats,
		SystemParams:   spBytes,
		ClusterID:      md.ClusterID,
		// v1.8+ decoders need item 19 even empty; older ones stop before
		// it, so it is always written.
		Subscriptions: stream(len(ModelSections)),
	}
	for i := range rd.body.Models {
		rd.body.Models[i] = stream(i)
	}
	if lines.Layout.Secrets {
		l := stream(len(ModelSections) + 1)
		rd.body.Secrets = &l
	}
	rd.entry = SnapshotMetadata{
		ID:                id,
		HummockVersionID:  version.GetId(),
		SSTs:              hummock.ObjectIDs(version),
		MaxCommittedEpoch: version.GetMaxCommittedEpoch(),
		SafeEpoch:         version.GetSafeEpoch(),
		FormatVersion:     FormatV1,
		StateTableInfo:    stateTableInfo(version),
	}
	// The entry has the keys the release writes (the newest line the store
	// fits: older lines' serde ignores keys it does not know).
	shape := rwversion.For(lines.Range.Hi).Manifest
	rd.entry.Absent = AbsentFor(shape)
	if !shape.FormatVersion {
		rd.entry.FormatVersion = 0 // v1.0-v1.3 entries have none; read back as 0
	}
	if shape.RWVersion && opts.RWRelease != "" {
		if p, err := rwversion.ParsePin(opts.RWRelease); err == nil && p.Line == lines.Range.Hi && lines.Range.Lo == lines.Range.Hi {
			r := p.Release
			rd.entry.RWVersion = &r
		}
	}
	if opts.Remarks != "" {
		if !shape.Remarks {
			return nil, fmt.Errorf("remarks %q: RisingWave %s stores no remarks (from v1.6 on): the meta node would drop them", opts.Remarks, lines.Range)
		}
		r := opts.Remarks
		rd.entry.Remarks = &r
	}
	ok = true
	return rd, nil
}

func stateTableInfo(v *hummockpb.HummockVersion) map[uint32]StateTableInfo {
	out := make(map[uint32]StateTableInfo, len(v.GetStateTableInfo()))
	for id, info := range v.GetStateTableInfo() {
		out[id] = StateTableInfo{CommittedEpoch: info.GetCommittedEpoch(), SafeEpoch: info.GetSafeEpoch(), CompactionGroupID: info.GetCompactionGroupId()}
	}
	return out
}

// ReadSnapshot reads the meta store as Backup does (one revision, the
// hummock version replayed to it) and writes the bytes snapshot id would
// have to w, storing nothing and allocating no id. It returns the revision
// read and the etcd read path taken ("snapshot" or "range"); tests compare
// the paths with it.
func ReadSnapshot(ctx context.Context, opts BackupOptions, id uint64, w io.Writer) (int64, string, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rd, err := readConsistent(ctx, opts, id, log)
	if err != nil {
		return 0, "", err
	}
	defer rd.close()
	defer rd.bar.Finish()
	rd.startFeed(ctx)
	if _, _, err := WriteSnapshot(w, id, rd.body); err != nil {
		return 0, "", err
	}
	return rd.md.Revision, rd.src.Path(), nil
}
