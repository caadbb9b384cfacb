package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/datacopy"
	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwversion"
)

// Defaults of risectl meta restore-meta.
const (
	DefaultBackupDir  = "backup"
	DefaultHummockDir = "hummock_001"
)

// MarkerKey is taken first (by Claim's compare-and-swap) and removed last,
// after the read-back: a target holding it is a restore in progress that
// only a rerun of the same restore may complete (see owner.go).
const MarkerKey = "__rwsnap_restore_in_progress"

// Limits of one etcd transaction. etcd's --max-txn-ops default is 128 and
// its request limit (--max-request-bytes) 1.5 MiB; 1 MiB leaves room for
// overhead. A server configured for more takes firstTxnOps at once; one
// that refuses a transaction as too many operations or too large gets it
// again split (see txnLimits), so a server configured for less works too.
const (
	firstTxnOps    = 1024
	maxTxnOps      = 128
	maxTxnBytes    = 1 << 20
	txnParallelism = 4
)

// ErrNotEmpty means the target etcd holds keys a restore would not write.
var ErrNotEmpty = errors.New("meta store is not empty")

// ErrAlreadyRestored means the target already holds this complete restore
// (it comes with ErrNotEmpty).
var ErrAlreadyRestored = errors.New("nothing to do")

// Options are risectl's restore-meta flags.
type Options struct {
	SnapshotID    uint64
	MetaStoreType string
	Etcd          metastore.Config
	BackupURL     string
	BackupDir     string
	HummockURL    string
	HummockDir    string
	DryRun        bool
	// OnPlan, when set, is called once every check has passed and before
	// the first write (never in a dry run), so the plan is shown before
	// anything changes.
	OnPlan func(*Result)
	// OnClaim, when set, is called once this restore owns the target,
	// before its first write: only then is it known to start afresh or to
	// complete an interrupted restore (Result.Resumed); a restore that
	// loses the target to another never says it is writing or resuming.
	OnClaim func(*Result)
	// Move the cluster: rewrite state_store, data_directory and the backup
	// params (all three flags together, as in RisingWave).
	OverwriteHummockEndpoint bool
	OverwriteBackupURL       string
	OverwriteBackupDir       string
	// ValidateIntegrity checks that every SST object the snapshot pins
	// exists at the hummock location before writing.
	ValidateIntegrity bool
	// CopySSTs copies the pinned SST objects from the snapshot's hummock
	// location to the --hummock-storage-* one first (not in risectl).
	CopySSTs bool
	// OverwriteSSTs lets --copy-ssts and --from-backup-data replace an
	// object at the destination whose content differs (refused otherwise).
	OverwriteSSTs bool
	// FromBackupData rebuilds the hummock location at HummockURL/HummockDir
	// from the snapshot's data copy (datacopy), for when the original
	// bucket is gone; DataURL/DataDir name the copy (default: the backup
	// location, <BackupDir>/data).
	FromBackupData   bool
	DataURL, DataDir string
	DataParallelism  int
	// IDGeneratorsFrom takes the id generators (default cf) from this
	// snapshot instead of the newest (RisingWave's rule), for when the
	// newest cannot be read; 0 means the newest. See LoadFrom.
	IDGeneratorsFrom uint64
	// RWVersion is the release line the restored cluster runs
	// (--rw-version); nil follows the snapshot.
	RWVersion *rwversion.Version
	// ReadAttemptTimeout and ReadRetryAttempts are risectl v1.10.2+'s
	// --read-attempt-timeout-ms and --read-retry-attempts: how long one read
	// of a backup object may take, and how often it is retried.
	ReadAttemptTimeout time.Duration
	ReadRetryAttempts  int
	Logger             *slog.Logger
}

// Validate checks the flags alone, before touching anything.
func (o *Options) Validate() error {
	var missing []string
	if o.SnapshotID == 0 {
		missing = append(missing, "--meta-snapshot-id")
	}
	if o.BackupURL == "" {
		missing = append(missing, "--backup-storage-url")
	}
	if o.HummockURL == "" {
		missing = append(missing, "--hummock-storage-url")
	}
	if len(o.Etcd.Endpoints) == 0 && o.MetaStoreType == "etcd" {
		missing = append(missing, "--etcd-endpoints")
	}
	switch o.MetaStoreType {
	case "etcd":
	case "mem", "sql", "sqlite", "postgres", "mysql":
		return fmt.Errorf("--meta-store-type %s is not supported: rwsnap restores etcd meta stores (RisingWave v1.x); use risectl for SQL meta stores", o.MetaStoreType)
	default:
		return fmt.Errorf("--meta-store-type %q is unknown; the supported value is etcd", o.MetaStoreType)
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing required flags: %s", strings.Join(missing, ", "))
	}
	if o.IDGeneratorsFrom != 0 && o.IDGeneratorsFrom < o.SnapshotID {
		return fmt.Errorf("--id-generators-from-snapshot %d is older than the restored snapshot %d: its id generators would go back further still; give %d or a newer snapshot", o.IDGeneratorsFrom, o.SnapshotID, o.SnapshotID)
	}
	if o.DataParallelism != 0 { // 0: the default
		if err := datacopy.CheckParallelism(o.DataParallelism); err != nil {
			return err
		}
	}
	if o.FromBackupData {
		if o.CopySSTs {
			return errors.New("--from-backup-data and --copy-ssts both fill the new hummock location: give one (--from-backup-data copies from the data copy, --copy-ssts from the snapshot's own hummock location)")
		}
		if o.DataDir != "" && o.DataURL == "" {
			return errors.New("--data-storage-directory needs --data-storage-url (without both, the data copy is <backup dir>/data in the backup location)")
		}
		// The cluster moves to the new location: state_store and
		// data_directory are rewritten, and the backup params default to
		// the location restored from.
		o.OverwriteHummockEndpoint = true
		if o.OverwriteBackupURL == "" {
			o.OverwriteBackupURL = o.BackupURL
		}
		if o.OverwriteBackupDir == "" {
			o.OverwriteBackupDir = o.BackupDir
			if o.OverwriteBackupDir == "" {
				o.OverwriteBackupDir = DefaultBackupDir
			}
		}
	} else if o.DataURL != "" || o.DataDir != "" {
		return errors.New("--data-storage-url and --data-storage-directory only apply with --from-backup-data")
	}
	n := 0
	for _, set := range []bool{o.OverwriteHummockEndpoint, o.OverwriteBackupURL != "", o.OverwriteBackupDir != ""} {
		if set {
			n++
		}
	}
	if n != 0 && n != 3 {
		return errors.New("--overwrite-hummock-storage-endpoint, --overwrite-backup-storage-url and --overwrite-backup-storage-directory must be set together")
	}
	if o.HummockDir == "" {
		o.HummockDir = DefaultHummockDir
	}
	if o.BackupDir == "" {
		o.BackupDir = DefaultBackupDir
	}
	return nil
}

// Result reports a restore.
type Result struct {
	Plan     *Plan
	Warning  string // set when the id generators do not come from the newest snapshot
	Resumed  bool
	Written  int // keys written by this run
	Replaced string
	// ExistingCheckpoint names the hummock checkpoint already at the
	// target location ("" when there is none): the restore replaces it
	// (unless it is the same), after saving it under CheckpointSavedIn.
	ExistingCheckpoint string
	CheckpointSavedIn  string
	Copy               CopyStats
	Data               *datacopy.RestoreResult // with FromBackupData
	Duration           time.Duration
}

// Restore runs the whole restore: load, plan, check, write, verify. With
// DryRun it stops after the checks and writes nothing.
func Restore(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bs, err := objstore.Open(ctx, o.BackupURL)
	if err != nil {
		return nil, fmt.Errorf("open backup storage: %w", err)
	}
	defer bs.Close()
	backup := metasnap.NewStorage(bs, o.BackupDir)
	if verbatim, err := metasnap.DirVerbatim(ctx, bs, o.BackupDir, o.RWVersion); err != nil {
		return nil, err
	} else if verbatim {
		backup = metasnap.NewStorageVerbatim(bs, o.BackupDir)
	}
	var target, newest *metasnap.MetaSnapshot
	var warning string
	err = withReadRetry(ctx, o, log, func(ctx context.Context) error {
		var err error
		target, newest, warning, err = LoadFrom(ctx, backup, o.SnapshotID, o.IDGeneratorsFrom)
		return err
	})
	if err != nil {
		return nil, err
	}
	// The target's lists stay in its (verified) object and are streamed by
	// every pass; the id-generator source is only checked and its head kept.
	defer target.Close()
	defer newest.Close()
	if warning != "" {
		log.Warn(warning)
	}
	plan, err := BuildPlan(target, newest, PlanOptions{HummockURL: o.HummockURL, HummockDir: o.HummockDir,
		OverwriteHummockEndpoint: o.OverwriteHummockEndpoint, OverwriteBackupURL: o.OverwriteBackupURL, OverwriteBackupDir: o.OverwriteBackupDir})
	if err != nil {
		return nil, err
	}
	if err := CheckLine(target, plan.Version, o.RWVersion); err != nil {
		return nil, err
	}
	log.Debug("snapshot verified and planned", "keys", plan.Keys(), "bytes", plan.Bytes(), "elapsed", time.Since(start).Round(time.Millisecond))
	hs, err := objstore.Open(ctx, o.HummockURL)
	if err != nil {
		return nil, fmt.Errorf("open hummock storage: %w", err)
	}
	defer hs.Close()
	cli, err := metastore.Connect(ctx, o.Etcd)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	resume, err := CheckTarget(ctx, cli, plan)
	if err != nil {
		return nil, err
	}
	res := &Result{Plan: plan, Resumed: resume, Warning: warning}
	if _, err := hs.Stat(ctx, plan.CheckpointKey()); err == nil {
		res.ExistingCheckpoint = plan.CheckpointKey() + " at " + hs.String()
		res.CheckpointSavedIn = backup.Dir + "/replaced-checkpoints/ at " + backup.Store.String()
	} else if !errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("look for an existing hummock checkpoint %s: %w", plan.CheckpointKey(), err)
	}
	var data *datacopy.Location
	if o.FromBackupData {
		var closeData func()
		if data, closeData, err = openDataCopy(ctx, o, bs); err != nil {
			return nil, err
		}
		defer closeData()
		// Every check the copy allows before any write: the copy is this
		// cluster's, complete, and holds every object with its size.
		if _, err := restoreData(ctx, o, data, target, plan, hs, true, log); err != nil {
			return nil, err
		}
	}
	if o.ValidateIntegrity && !o.FromBackupData {
		store, dir := hs, o.HummockDir
		if o.CopySSTs && o.DryRun {
			// Nothing is copied in a dry run: check what would be copied.
			src, srcDir, err := snapshotHummock(ctx, target)
			if err != nil {
				return nil, err
			}
			defer src.Close()
			store, dir = src, srcDir
		}
		if !o.CopySSTs || o.DryRun {
			if err := ValidateIntegrity(ctx, store, dir, plan); err != nil {
				return nil, err
			}
			log.Info("integrity validated: every pinned SST object exists", "objects", len(hummock.ObjectIDs(plan.Version)), "at", store.String())
		}
	}
	if o.DryRun {
		res.Duration = time.Since(start)
		return res, nil
	}
	if o.OnPlan != nil {
		o.OnPlan(res)
	}
	// Own the target before the first write anywhere (SST copies included):
	// a second restore stops here, having written nothing.
	own, err := Claim(ctx, cli, plan, resume, log)
	if err != nil {
		return res, err
	}
	defer own.Close()
	log.Info("restore claimed the target etcd", "restore_id", own.ID(), "marker", own.Marker.String())
	if o.OnClaim != nil {
		o.OnClaim(res)
	}
	if o.CopySSTs {
		if res.Copy, err = CopySSTs(ctx, target, plan, hs, o.HummockDir, o.OverwriteSSTs, log); err != nil {
			if !resume && (errors.Is(err, datacopy.ErrChecksum) || errors.Is(err, datacopy.ErrDifferentObject)) {
				if ferr := own.Finish(ctx); ferr != nil {
					log.Warn("could not release the claim on the target etcd", "err", ferr)
				}
			}
			return res, err
		}
		log.Info("SSTs copied", "objects", res.Copy.Objects, "copied", res.Copy.Copied, "already_there", res.Copy.Skipped, "bytes", res.Copy.Bytes)
		if o.ValidateIntegrity {
			if err := ValidateIntegrity(ctx, hs, o.HummockDir, plan); err != nil {
				return res, err
			}
		}
	}
	if o.FromBackupData {
		if res.Data, err = restoreData(ctx, o, data, target, plan, hs, false, log); err != nil {
			if !resume && (errors.Is(err, datacopy.ErrChecksum) || errors.Is(err, datacopy.ErrDifferentObject)) {
				// Refused: nothing but the claim was written to etcd;
				// release it so the target is as empty as before.
				if ferr := own.Finish(ctx); ferr != nil {
					log.Warn("could not release the claim on the target etcd", "err", ferr)
				}
			}
			return res, err
		}
		if o.ValidateIntegrity {
			if err := datacopy.ValidateAt(ctx, data, dataEntry(target, plan), hs, o.HummockDir, newPrefixStrategy(target)); err != nil {
				return res, err
			}
			log.Info("integrity validated: every referenced object at the new location has its recorded size and MD5", "objects", res.Data.Objects)
		}
	}
	if resume {
		log.Warn("completing an interrupted restore of the same snapshot", "snapshot", plan.SnapshotID)
	}
	var verified bool
	if res.Written, res.Replaced, verified, err = Apply(ctx, cli, own, hs, backup, plan, log); err != nil {
		return res, err
	}
	log.Debug("written", "keys", res.Written, "read_back_during_writes", verified, "elapsed", time.Since(start).Round(time.Millisecond))
	// The marker stays until the read-back passes: a run killed while
	// reading back is resumed by the rerun like any other.
	if err := VerifyTarget(ctx, cli, hs, plan, verified); err != nil {
		return res, err
	}
	log.Debug("read back", "keys", plan.Keys(), "elapsed", time.Since(start).Round(time.Millisecond))
	if err := own.Finish(ctx); err != nil {
		return res, err
	}
	res.Duration = time.Since(start)
	log.Info("restore complete", "snapshot", plan.SnapshotID, "keys", plan.Keys(), "written", res.Written, "duration", res.Duration.Round(time.Millisecond))
	return res, nil
}

// snapshotHummock opens the hummock location a snapshot names.
// newPrefixStrategy is the snapshot's v2.0 use_new_object_prefix_strategy
// (false before v2.0, or when the params do not decode): the restored
// cluster keeps it, so it decides the SST layout at both ends of a copy.
func newPrefixStrategy(s *metasnap.MetaSnapshot) bool {
	sp, err := metastore.DecodeSystemParams(s.Metadata.SystemParams)
	return err == nil && sp.GetUseNewObjectPrefixStrategy()
}

func snapshotHummock(ctx context.Context, s *metasnap.MetaSnapshot) (objstore.Store, string, error) {
	sp, err := metastore.DecodeSystemParams(s.Metadata.SystemParams)
	if err != nil {
		return nil, "", err
	}
	url, ok := strings.CutPrefix(sp.GetStateStore(), "hummock+")
	if !ok {
		return nil, "", fmt.Errorf("the snapshot's state_store %q is not a hummock+ URL", objstore.RedactText(sp.GetStateStore()))
	}
	st, err := objstore.Open(ctx, url)
	if err != nil {
		return nil, "", fmt.Errorf("open the snapshot's state store: %w", err)
	}
	return st, sp.GetDataDirectory(), nil
}

// Load reads the target snapshot and, when the manifest has a newer one,
// the newest (its id generators are what a restore writes).
func Load(ctx context.Context, backup *metasnap.Storage, id uint64) (target, newest *metasnap.MetaSnapshot, err error) {
	m, _, err := backup.ReadExistingManifest(ctx)
	if err != nil {
		return nil, nil, err
	}
	e := m.Find(id)
	if e == nil {
		return nil, nil, fmt.Errorf("%w: snapshot id %d not found in the manifest of %s (it lists %s)", metasnap.ErrSnapshotNotFound, id, backup, metasnap.FormatIDs(m.IDs()))
	}
	if e.Err != nil {
		return nil, nil, fmt.Errorf("snapshot %d cannot be restored: %w", id, e.Err)
	}
	if e.FormatVersion >= metasnap.FormatV2 {
		return nil, nil, fmt.Errorf("%w: snapshot %d has format_version %d (%s): SQL meta store snapshots are not supported, they cannot be restored into etcd (nothing was written); restore it into a SQL meta store with the risectl of the RisingWave release that wrote it (risectl meta restore-meta --meta-store-type sql/postgres/mysql/sqlite)", errFormatRefused, id, e.FormatVersion, e.WrittenBy())
	}
	if target, err = backup.LoadStream(ctx, id); err != nil {
		return nil, nil, err
	}
	newestID := slices.Max(m.IDs())
	if newestID == id {
		return target, nil, nil
	}
	if newest, err = backup.LoadHead(ctx, newestID); err != nil {
		target.Close()
		return nil, nil, fmt.Errorf("the newest snapshot %d supplies the id generators a restore writes, and cannot be read: %w", newestID, err)
	}
	return target, newest, nil
}

// CheckTarget requires an empty etcd, or one holding only this same
// restore's marker and a subset of its keys (an interrupted run), and no
// live meta leader. It reports whether this is a resumption.
func CheckTarget(ctx context.Context, cli *clientv3.Client, plan *Plan) (bool, error) {
	if l, err := metastore.FindLeader(ctx, cli); err != nil {
		return false, err
	} else if l != nil {
		return false, fmt.Errorf("a RisingWave meta node (%s) is live on the target etcd: stop every meta node before restoring", l.Addr)
	}
	// A restore running now is named from the start: the marker alone
	// would read as an interrupted restore this one could resume.
	if err := refuseLiveOwner(ctx, cli, plan); err != nil {
		return false, err
	}
	resume := false
	var foreign []string
	seen, foreignCount := 0, 0
	_, err := scanTarget(ctx, cli, plan, func(k, v []byte, match int) error {
		key := string(k)
		switch key {
		case MarkerKey:
			var m marker
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("%w: it holds an unreadable restore marker %q (%v); wipe the target etcd and start again", ErrNotEmpty, MarkerKey, err)
			}
			if m.Digest != plan.Digest {
				return fmt.Errorf("%w: it holds %s, a different restore than this one (snapshot %d with these options): a half-restored target can only be completed by rerunning that same restore; otherwise wipe the target etcd and start again",
					ErrRestoreInProgress, m, plan.SnapshotID)
			}
			resume = true
			return nil
		case OwnerKey:
			return nil // a live or crashed run of a restore: Claim decides
		}
		seen++
		if match == matchEqual {
			return nil
		}
		foreignCount++
		if len(foreign) < 3 {
			foreign = append(foreign, strconv.Quote(keyPrefix(key)))
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	switch {
	case foreignCount > 0:
		return false, fmt.Errorf("%w: %d keys are not this restore's, e.g. under %s; restore needs a fresh, empty etcd (wipe its data directory)", ErrNotEmpty, foreignCount, strings.Join(foreign, ", "))
	case seen > 0 && !resume && seen == plan.Keys():
		return false, fmt.Errorf("%w: it already holds a complete restore of snapshot %d (all %d keys match, no restore in progress): %w; to restore again, use a fresh etcd", ErrNotEmpty, plan.SnapshotID, seen, ErrAlreadyRestored)
	case seen > 0 && !resume:
		return false, fmt.Errorf("%w: it already holds %d of this snapshot's keys but no restore is in progress (restored before?); use a fresh etcd", ErrNotEmpty, seen)
	}
	return resume, nil
}

// keyPrefix shows a key by its column family, readable in messages.
func keyPrefix(k string) string {
	if i := strings.LastIndex(k, "/"); i >= 0 {
		return k[:i+1]
	}
	if len(k) > 40 {
		return k[:40] + "..."
	}
	return k
}

// ValidateIntegrity checks that every SST object the snapshot pins exists
// at the hummock location (RisingWave HEAD's --validate-integrity).
func ValidateIntegrity(ctx context.Context, hs objstore.Store, dir string, plan *Plan) error {
	objs, err := hs.List(ctx, strings.Trim(dir, "/")+"/")
	if err != nil {
		return fmt.Errorf("validate integrity: list %s: %w", hs, err)
	}
	present := make(map[uint64]bool, len(objs))
	for _, o := range objs {
		if id, ok := hummock.ParseSSTObjectID(o.Key); ok {
			present[id] = true
		}
	}
	var missing []uint64
	for _, id := range hummock.ObjectIDs(plan.Version) {
		if !present[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("integrity validation failed: referenced objects not found in object store %s under %q: %d of %d, e.g. %v; check --hummock-storage-url and --hummock-storage-directory, or copy the SSTs there first",
			hs, dir, len(missing), len(hummock.ObjectIDs(plan.Version)), missing[:min(len(missing), 10)])
	}
	return nil
}
