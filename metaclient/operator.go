package metaclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rwsnap/rwsnap/metaclient/backuppb"
	"github.com/rwsnap/rwsnap/metasnap"
)

var (
	// ErrConcurrentJob: the meta node already runs a backup job (v1.x runs
	// one at a time).
	ErrConcurrentJob = errors.New("the meta node is already running a backup job")
	// ErrTooManySnapshots: the meta node's cap of 100 snapshots.
	ErrTooManySnapshots = errors.New("the meta node refuses more snapshots")
	// ErrJobFailed: the job's status is FAILED.
	ErrJobFailed = errors.New("backup job failed")
	// ErrJobNotFound: the meta node no longer knows the job.
	ErrJobNotFound = errors.New("backup job status not found")
)

// backupMetaErr explains the meta node's refusals of BackupMeta (it
// reports both as gRPC Internal with RisingWave's text; backup_manager.rs
// start_backup_job).
func (c *Client) backupMetaErr(err error) error {
	msg := short(err)
	switch {
	case strings.Contains(msg, "concurrent backup job is not supported"):
		return rpcError(ErrConcurrentJob, err, "%s (meta node %s: %q): RisingWave v1.x runs one backup job at a time; wait for it to finish (list-meta-snapshots shows it when done) and retry",
			ErrConcurrentJob, c.Addr(), msg)
	case strings.Contains(msg, "too many existent meta snapshots"):
		return rpcError(ErrTooManySnapshots, err, "%s (meta node %s: %q): delete or prune old snapshots first", ErrTooManySnapshots, c.Addr(), msg)
	}
	return c.callErr("start a backup job", err)
}

// Operator is metasnap.Operator through a live meta node: the meta node
// takes snapshots and rewrites its cached manifest itself, so nothing it
// caches is lost and every snapshot's SSTs stay pinned.
type Operator struct {
	Client *Client
	// Storage is the meta node's backup location, read (never written) for
	// what the gRPC manifest lacks: each snapshot's ssts, state_table_info
	// and object size. Nil: entries come without them.
	Storage *metasnap.Storage
	// Poll is the job status interval; default 1s, as risectl.
	Poll   time.Duration
	Logger *slog.Logger
}

var _ metasnap.Operator = (*Operator)(nil)

func (o *Operator) log() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Path implements metasnap.Operator.
func (o *Operator) Path() string { return "meta node at " + o.Client.Addr() }

// maxStatusErrors bounds consecutive failed status polls (a meta node
// briefly unavailable) before giving up on watching the job.
const maxStatusErrors = 5

// Backup implements metasnap.Operator as risectl meta backup-meta does
// (src/ctl/src/cmd_impl/meta/backup_meta.rs): start a job, then poll its
// status every second until it succeeds or fails.
func (o *Operator) Backup(ctx context.Context, remarks string) (*metasnap.BackupResult, error) {
	start := time.Now()
	log := o.log()
	poll := o.Poll
	if poll <= 0 {
		poll = time.Second
	}
	id, err := o.Client.BackupMeta(ctx, remarks)
	if err != nil {
		return nil, err
	}
	log.Info("backup job started by the meta node", "job", id, "meta", o.Client.Addr())
	failures := 0
	for {
		st, err := o.Client.JobStatus(ctx, id)
		if err != nil {
			failures++
			if failures >= maxStatusErrors || ctx.Err() != nil || !errors.Is(err, ErrUnreachable) {
				return nil, fmt.Errorf("backup job %d: lost track of it (it may still finish; list-meta-snapshots shows it then): %w", id, err)
			}
			log.Warn("backup job status unavailable; retrying", "job", id, "err", err)
		} else {
			failures = 0
			switch st.Status {
			case backuppb.BackupJobStatus_RUNNING:
				log.Info("backup job is still running: job " + strconv.FormatUint(id, 10) + withMessage(st.Message))
			case backuppb.BackupJobStatus_SUCCEEDED:
				log.Info("backup job succeeded: job " + strconv.FormatUint(id, 10) + withMessage(st.Message))
				res, err := o.result(ctx, id, start)
				if err == nil && remarks != "" && res.Entry.Remarks == nil {
					// A meta node before v1.6 has no remarks field in
					// BackupMetaRequest: it never saw them.
					res.Warnings = append(res.Warnings, fmt.Sprintf("the meta node %s stored snapshot %d without the remarks %q: its RisingWave release stores no remarks (they exist from v1.6; v1.0-v1.5 drop them)", o.Client.Addr(), id, remarks))
					log.Warn(res.Warnings[len(res.Warnings)-1])
				}
				return res, err
			case backuppb.BackupJobStatus_NOT_FOUND:
				stored := ""
				if m, err := o.Manifest(ctx); err == nil && m.Find(id) == nil {
					stored = fmt.Sprintf("; snapshot %d is not in its manifest, so it was not stored", id)
				}
				return nil, fmt.Errorf("%w: job %d%s (the meta node %s keeps only its latest job's status, in memory: another backup started since, the meta node restarted, or the job failed: RisingWave v1.0-v1.2 have no FAILED status and report a failed job as NOT_FOUND, without a message; its log says why%s; list-meta-snapshots shows whether snapshot %d was stored)",
					ErrJobNotFound, id, withMessage(st.Message), o.Client.Addr(), stored, id)
			case backuppb.BackupJobStatus_FAILED:
				return nil, fmt.Errorf("%w: job %d, %s", ErrJobFailed, id, st.Message)
			default:
				return nil, fmt.Errorf("backup job %d: the meta node %s answered an unknown status %d (%s)", id, o.Client.Addr(), int32(st.Status), st.Message)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("backup job %d: stopped waiting (the meta node continues it): %w", id, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// result describes the snapshot a succeeded job stored.
func (o *Operator) result(ctx context.Context, id uint64, start time.Time) (*metasnap.BackupResult, error) {
	m, err := o.Manifest(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup job %d succeeded, but reading the manifest failed: %w", id, err)
	}
	e := m.Find(id)
	if e == nil {
		return nil, fmt.Errorf("backup job %d succeeded, but the meta node's manifest (manifest_id %d) does not list snapshot %d", id, m.ManifestID, id)
	}
	res := &metasnap.BackupResult{Entry: *e, Duration: time.Since(start), Manifest: m}
	if o.Storage != nil {
		if info, err := o.Storage.Store.Stat(ctx, o.Storage.SnapshotKey(id)); err == nil {
			res.Bytes = int(info.Size)
		} else {
			o.log().Warn("cannot stat the new snapshot object", "key", o.Storage.SnapshotKey(id), "err", err)
		}
	}
	return res, nil
}

// Manifest implements metasnap.Operator: the meta node's cached manifest
// (what it will write next), completed from the stored manifest.json with
// the fields the gRPC message lacks.
func (o *Operator) Manifest(ctx context.Context) (*metasnap.Manifest, error) {
	pm, err := o.Client.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	m := &metasnap.Manifest{ManifestID: pm.GetManifestId(), SnapshotMetadata: make([]metasnap.SnapshotMetadata, 0, len(pm.GetSnapshotMetadata()))}
	for _, e := range pm.GetSnapshotMetadata() {
		m.SnapshotMetadata = append(m.SnapshotMetadata, metasnap.SnapshotMetadata{
			ID:                e.GetId(),
			HummockVersionID:  e.GetHummockVersionId(),
			MaxCommittedEpoch: e.GetMaxCommittedEpoch(),
			SafeEpoch:         e.GetSafeEpoch(),
			FormatVersion:     e.GetFormatVersion(),
			Remarks:           e.Remarks,
			RWVersion:         e.RwVersion, // v1.10+ meta nodes report it
		})
	}
	if o.Storage == nil {
		return m, nil
	}
	stored, _, err := o.Storage.ReadManifest(ctx)
	if err != nil {
		// The meta node's view is the authoritative one; only the SST
		// lists are missing.
		o.log().Warn("cannot read the stored manifest for the snapshots' SST lists", "err", err)
		return m, nil
	}
	if stored.ManifestID != m.ManifestID {
		o.log().Warn("the stored manifest.json differs from the meta node's cached manifest; the meta node's next backup or delete replaces the stored one with its own",
			"stored_manifest_id", stored.ManifestID, "meta_manifest_id", m.ManifestID,
			"stored_ids", metasnap.FormatIDs(stored.IDs()), "meta_ids", metasnap.FormatIDs(m.IDs()))
	}
	var unknown []uint64
	for i := range m.SnapshotMetadata {
		e := &m.SnapshotMetadata[i]
		s := stored.Find(e.ID)
		if s == nil {
			unknown = append(unknown, e.ID)
			continue
		}
		e.SSTs, e.StateTableInfo, e.Extra, e.Absent = s.SSTs, s.StateTableInfo, s.Extra, s.Absent
		if e.RWVersion == nil {
			e.RWVersion = s.RWVersion
		}
	}
	if len(unknown) > 0 {
		o.log().Warn("snapshots the meta node lists are missing from the stored manifest.json (SST lists unknown)", "ids", metasnap.FormatIDs(unknown))
	}
	return m, nil
}

// Delete implements metasnap.Operator. The meta node silently ignores ids
// it does not know; rwsnap refuses them first, as the direct path does,
// so a typo deletes nothing.
func (o *Operator) Delete(ctx context.Context, ids []uint64) (*metasnap.Manifest, error) {
	if len(ids) == 0 {
		return nil, errors.New("no snapshot ids given")
	}
	m, err := o.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, id := range ids {
		if m.Find(id) == nil {
			missing = append(missing, strconv.FormatUint(id, 10))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%w: %s not in the manifest of the meta node %s (it lists %s); nothing deleted",
			metasnap.ErrSnapshotNotFound, strings.Join(missing, ", "), o.Client.Addr(), metasnap.FormatIDs(m.IDs()))
	}
	if err := o.Client.DeleteSnapshots(ctx, ids); err != nil {
		return nil, err
	}
	o.log().Info("meta node deleted snapshots", "ids", metasnap.FormatIDs(ids), "meta", o.Client.Addr())
	return o.Manifest(ctx)
}

// withMessage appends the meta node's status message as risectl prints it
// ("job N, MESSAGE"), leaving out the dangling comma when it is empty.
func withMessage(m string) string {
	if m == "" {
		return ""
	}
	return ", " + m
}
