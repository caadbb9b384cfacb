package datacopy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/internal/progress"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

// RestoreOptions configure copying a snapshot's data into a new hummock
// location.
type RestoreOptions struct {
	Data *Location
	// Entry is the snapshot's manifest entry (its SSTs); ClusterID the
	// cluster id inside the snapshot: the copy must be that cluster's.
	Entry     metasnap.SnapshotMetadata
	ClusterID string
	Dest      objstore.Store
	DestDir   string
	// NewPrefixStrategy is the snapshot's v2.0
	// use_new_object_prefix_strategy, which the restored cluster keeps:
	// with Dest's scheme it decides where RisingWave will look for the SSTs.
	NewPrefixStrategy bool
	// Overwrite replaces an existing different object at the destination
	// (refused otherwise).
	Overwrite   bool
	Parallelism int
	DryRun      bool
	Logger      *slog.Logger
}

// RestoreResult reports the copy into the new hummock location.
type RestoreResult struct {
	Objects, Copied, Skipped, ServerSide int
	Bytes                                int64
	Duration                             time.Duration
}

// ErrDifferentObject means the destination holds another object under a
// referenced id.
var ErrDifferentObject = errors.New("a different object exists at the destination")

// Restore copies every SST of the snapshot from the data copy to
// Dest/DestDir, laid out by RisingWave's path rule for Dest's scheme, and
// checks each object's size and MD5 against the index. Everything that
// can be checked first is: the copy is the snapshot's cluster's, its index
// is complete, every object is in the copy with its recorded size, so a
// bad copy is refused before anything is written. An object already at
// the destination with the recorded size and MD5 is kept (a rerun
// continues); a different one is refused unless Overwrite.
func Restore(ctx context.Context, o RestoreOptions) (*RestoreResult, error) {
	start := time.Now()
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := o.Entry
	x, err := o.Data.ReadIndex(ctx, e.ID)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("snapshot %d has no data copy in %s (no %s): back it up with `rwsnap meta backup-data %d` while its hummock location exists, or check --data-storage-url/--data-storage-directory", e.ID, o.Data, o.Data.IndexKey(e.ID), e.ID)
	}
	if err != nil {
		return nil, err
	}
	if o.ClusterID != "" && x.ClusterID != o.ClusterID {
		return nil, fmt.Errorf("%w: the data copy of snapshot %d in %s is of cluster %s, the snapshot of cluster %s; nothing restored", ErrOtherOwner, e.ID, o.Data, x.ClusterID, o.ClusterID)
	}
	if st := StateFor(e, x); st != StateComplete {
		msg := ""
		if len(x.Missing) > 0 {
			msg = fmt.Sprintf(": %d referenced objects were missing when it was copied (ids %s)", len(x.Missing), metasnap.FormatIDs(x.Missing[:min(len(x.Missing), 20)]))
		}
		return nil, fmt.Errorf("the data copy of snapshot %d in %s is %s%s; it cannot rebuild the hummock location; nothing restored", e.ID, o.Data, st, msg)
	}
	rec := make(map[uint64]Object, len(x.Objects))
	for _, ob := range x.Objects {
		rec[ob.ID] = ob
	}
	objs, err := o.Data.listObjects(ctx)
	if err != nil {
		return nil, err
	}
	ids := uniq(e.SSTs)
	var bad []string
	for _, id := range ids {
		info, ok := objs[id]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("object %d missing from the data copy", id))
		case info.Size != rec[id].Size:
			bad = append(bad, fmt.Sprintf("object %d is %d bytes, the index records %d", id, info.Size, rec[id].Size))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("data copy of snapshot %d in %s is damaged (%d objects: %s); nothing restored", e.ID, o.Data, len(bad), strings.Join(bad[:min(len(bad), 10)], "; "))
	}
	res := &RestoreResult{Objects: len(ids)}
	if o.DryRun {
		res.Duration = time.Since(start)
		return res, nil
	}
	prefixed := hummock.Prefixed(o.Dest.Scheme(), o.NewPrefixStrategy)
	// One listing of the destination instead of a HEAD per object: what is
	// already there (a rerun, or another cluster's data) is compared by it.
	dstObjs, err := listSSTs(ctx, o.Dest, o.DestDir, prefixed)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	bar := progress.New("restore data", int64(len(ids)), "objects")
	err = Parallel(ctx, copyParallelism(ctx, o.Parallelism, o.Data.Store, o.Dest), ids, func(ctx context.Context, id uint64) error {
		want := rec[id]
		dstKey := hummock.SSTPath(o.DestDir, id, prefixed)
		if di, ok := dstObjs[id]; ok {
			same := di.Size == want.Size
			if same {
				m, err := contentMD5(ctx, o.Dest, di)
				if err != nil {
					return fmt.Errorf("object %d: read the existing %s: %w", id, dstKey, err)
				}
				same = m == want.MD5
			}
			if same {
				mu.Lock()
				res.Skipped++
				mu.Unlock()
				bar.Add(1, 0)
				return nil
			}
			if !o.Overwrite {
				return fmt.Errorf("%w: %s in %s holds another object %d (%d bytes, the copy has %d bytes with MD5 %s); restore into an empty location, or pass --overwrite-existing-ssts", ErrDifferentObject, dstKey, o.Dest, id, di.Size, want.Size, want.MD5)
			}
			log.Warn("replacing a different object (--overwrite-existing-ssts)", "object", id, "key", dstKey)
		}
		si := objs[id]
		r, err := copyObject(ctx, o.Data.Store, o.Data.ObjectKey(id), &si, o.Dest, dstKey, id, &want)
		if err != nil {
			return fmt.Errorf("restore SST object %d from %s to %s: %w", id, o.Data, o.Dest, err)
		}
		mu.Lock()
		res.Copied++
		res.Bytes += r.Size
		if r.ServerSide {
			res.ServerSide++
		}
		mu.Unlock()
		bar.Add(1, r.Size)
		return nil
	})
	bar.Finish()
	res.Duration = time.Since(start)
	if err != nil {
		return res, err
	}
	log.Info("data restored", "snapshot", e.ID, "objects", res.Objects, "copied", res.Copied, "server_side", res.ServerSide, "already_there", res.Skipped, "bytes", res.Bytes)
	return res, nil
}

// ValidateAt checks every SST of the snapshot at a hummock location by
// size and content MD5 against the data copy's index (restore-meta
// --validate-integrity after --from-backup-data).
func ValidateAt(ctx context.Context, l *Location, e metasnap.SnapshotMetadata, hs objstore.Store, dir string, newPrefixStrategy bool) error {
	x, err := l.ReadIndex(ctx, e.ID)
	if err != nil {
		return err
	}
	rec := make(map[uint64]Object, len(x.Objects))
	for _, ob := range x.Objects {
		rec[ob.ID] = ob
	}
	prefixed := hummock.Prefixed(hs.Scheme(), newPrefixStrategy)
	var bad []string
	for _, id := range uniq(e.SSTs) {
		key := hummock.SSTPath(dir, id, prefixed)
		info, err := hs.Stat(ctx, key)
		if err != nil {
			bad = append(bad, fmt.Sprintf("object %d: %v", id, err))
			continue
		}
		want, ok := rec[id]
		if !ok {
			bad = append(bad, fmt.Sprintf("object %d is not in the data index", id))
			continue
		}
		if info.Size != want.Size {
			bad = append(bad, fmt.Sprintf("object %d is %d bytes, want %d", id, info.Size, want.Size))
			continue
		}
		m, err := contentMD5(ctx, hs, info)
		if err != nil {
			bad = append(bad, fmt.Sprintf("object %d: %v", id, err))
		} else if m != want.MD5 {
			bad = append(bad, fmt.Sprintf("object %d has MD5 %s, want %s", id, m, want.MD5))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("integrity validation failed at %s under %q: %d of %d objects: %s", hs, dir, len(bad), len(uniq(e.SSTs)), strings.Join(bad[:min(len(bad), 10)], "; "))
	}
	return nil
}
