package metasnap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/internal/faultpoint"
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
	// ManifestRWVersion is the rw_version of the newest entry of the
	// cluster's own manifest, a lower bound of its release ("" if none).
	ManifestRWVersion string
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

	chunks, entry, md, lines, err := buildSnapshot(ctx, opts, id, log)
	if err != nil {
		return nil, err
	}
	// Crash tests: killed here, the read is lost and nothing is stored.
	faultpoint.Hit("backup.before-upload")
	manifest, err := opts.Target.CreateChunksWith(ctx, chunks, entry, CreateOptions{Force: opts.Force})
	if err != nil {
		return nil, err
	}
	res := &BackupResult{Entry: entry, Revision: md.Revision, Keys: md.Keys(), Bytes: chunksLen(chunks), Duration: time.Since(start), Manifest: manifest, Lines: lines}
	log.Info("snapshot stored", "id", id, "revision", md.Revision, "hummock_version_id", entry.HummockVersionID,
		"keys", res.Keys, "bytes", res.Bytes, "ssts", len(entry.SSTs), "duration", res.Duration.Round(time.Millisecond))
	return res, nil
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

// readConsistent reads the checkpoint, then etcd at one revision, and
// replays the deltas. The checkpoint is read first: meta deletes deltas only
// after writing a newer checkpoint, so if one raced the read the delta chain
// has a gap, replay stops short, and the whole read is retried.
func readConsistent(ctx context.Context, opts BackupOptions, id uint64, log *slog.Logger) (*MetaSnapshot, *hummockpb.HummockVersion, *metastore.Metadata, Lines, error) {
	attempts := opts.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	var lastErr error
	for attempt := 1; attempt <= attempts; attempt++ {
		snap, v, md, lines, err := readOnce(ctx, opts, id)
		if err == nil {
			return snap, v, md, lines, nil
		}
		if !errors.Is(err, hummock.ErrInconsistentVersion) && !errors.Is(err, metastore.ErrCompacted) {
			return nil, nil, nil, Lines{}, err
		}
		lastErr = err
		log.Warn("meta store changed under the read; retrying", "attempt", attempt, "err", err)
		// Crash tests: killed between two read attempts.
		faultpoint.Hit("backup.read-retry")
	}
	return nil, nil, nil, Lines{}, fmt.Errorf("no consistent read after %d attempts: %w", attempts, lastErr)
}

func readOnce(ctx context.Context, opts BackupOptions, id uint64) (*MetaSnapshot, *hummockpb.HummockVersion, *metastore.Metadata, Lines, error) {
	cpKey := hummock.CheckpointPath(opts.DataDir)
	cpBytes, _, err := opts.Hummock.Get(ctx, cpKey)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, nil, nil, Lines{}, fmt.Errorf("no hummock checkpoint at %s in %s: check --hummock-storage-url and --hummock-storage-directory (the state_store and data_directory params): %w", cpKey, opts.Hummock, err)
	}
	if err != nil {
		return nil, nil, nil, Lines{}, fmt.Errorf("read hummock checkpoint %s: %w", cpKey, err)
	}
	cp, err := hummock.DecodeCheckpoint(cpBytes)
	if err != nil {
		return nil, nil, nil, Lines{}, fmt.Errorf("hummock checkpoint %s: %w", cpKey, err)
	}
	md, err := metastore.ReadMetadata(ctx, opts.Etcd, 0)
	if err != nil {
		return nil, nil, nil, Lines{}, err
	}
	deltas := make([]*hummockpb.HummockVersionDelta, 0, len(md.HummockDeltas))
	for _, kv := range md.HummockDeltas {
		d, err := hummock.DecodeDelta(kv.Value)
		if err != nil {
			return nil, nil, nil, Lines{}, fmt.Errorf("hummock delta at cf/hummock_1/%x: %w", kv.Key, err)
		}
		deltas = append(deltas, d)
	}
	version, lines, err := replayByVersion(Evidence(md, cp.GetVersion(), deltas, opts.ManifestRWVersion), opts.RWVersion, cp.GetVersion(), deltas)
	if err != nil {
		return nil, nil, nil, Lines{}, fmt.Errorf("replay %d deltas onto checkpoint version %d: %w", len(deltas), cp.GetVersion().GetId(), err)
	}
	sp, _, err := metastore.SystemParamsFromKV(md.SystemParams)
	if err != nil {
		return nil, nil, nil, Lines{}, err
	}
	mo := proto.MarshalOptions{Deterministic: true}
	spBytes, err := mo.Marshal(sp)
	if err != nil {
		return nil, nil, nil, Lines{}, fmt.Errorf("encode system params: %w", err)
	}
	vBytes, err := mo.Marshal(version)
	if err != nil {
		return nil, nil, nil, Lines{}, fmt.Errorf("encode hummock version: %w", err)
	}
	cm := &ClusterMetadata{
		HummockVersion:   vBytes,
		VersionStats:     md.VersionStats,
		CompactionGroups: md.CompactionGroups,
		TableFragments:   md.TableFragments,
		UserInfo:         md.UserInfo,
		Databases:        md.Databases,
		Schemas:          md.Schemas,
		Tables:           md.Tables,
		Indexes:          md.Indexes,
		Sinks:            md.Sinks,
		Sources:          md.Sources,
		Views:            md.Views,
		Functions:        md.Functions,
		Connections:      md.Connections,
		SystemParams:     spBytes,
		ClusterID:        md.ClusterID,
		// v1.8+ decoders need item 19 even empty; older ones stop before
		// it, so it is always written.
		Subscriptions:    md.Subscriptions,
		HasSubscriptions: true,
		DefaultCF:        md.DefaultCF,
	}
	if lines.Layout.Secrets {
		cm.Secrets, cm.HasSecrets = md.Secrets, true
	}
	return &MetaSnapshot{FormatVersion: FormatV1, ID: id, Metadata: cm}, version, md, lines, nil
}

func stateTableInfo(v *hummockpb.HummockVersion) map[uint32]StateTableInfo {
	out := make(map[uint32]StateTableInfo, len(v.GetStateTableInfo()))
	for id, info := range v.GetStateTableInfo() {
		out[id] = StateTableInfo{CommittedEpoch: info.GetCommittedEpoch(), SafeEpoch: info.GetSafeEpoch(), CompactionGroupID: info.GetCompactionGroupId()}
	}
	return out
}

func chunksLen(chunks [][]byte) int {
	n := 0
	for _, c := range chunks {
		n += len(c)
	}
	return n
}
