package datacopy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

// ErrGCRunning means another data GC holds the location's lock.
var ErrGCRunning = errors.New("another data garbage collection is running")

// gcWait bounds how long a backup waits for a running GC.
var gcWait = 10 * time.Minute

type gcLock struct {
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

// lockGC takes the copy's exclusive GC lock (restic's exclusive lock to
// the backups' shared ones): created with a conditional put; a lock not
// refreshed for metasnap.PendingStale is a dead process's and is taken
// over. The returned func releases it.
func (l *Location) lockGC(ctx context.Context) (func(), error) {
	host, _ := os.Hostname()
	body, _ := json.Marshal(gcLock{Host: host, PID: os.Getpid(), Started: time.Now().UTC()})
	_, err := l.Store.PutIf(ctx, l.gcLockKey(), body, "")
	if errors.Is(err, objstore.ErrPreconditionFailed) {
		info, serr := l.Store.Stat(ctx, l.gcLockKey())
		switch {
		case errors.Is(serr, objstore.ErrNotFound):
			return l.lockGC(ctx)
		case serr != nil:
			return nil, serr
		case time.Since(info.ModTime) < metasnap.PendingStale:
			return nil, fmt.Errorf("%w on %s (lock %s since %s); wait for it, or remove the lock if that process is certainly gone", ErrGCRunning, l, l.gcLockKey(), info.ModTime.UTC().Format(time.RFC3339))
		}
		_, err = l.Store.PutIf(ctx, l.gcLockKey(), body, info.ETag)
	}
	if err != nil {
		return nil, fmt.Errorf("take the data GC lock %s in %s: %w", l.gcLockKey(), l, err)
	}
	return func() { _ = l.Store.Delete(context.WithoutCancel(ctx), l.gcLockKey()) }, nil
}

// waitForGC returns once no fresh GC lock exists. A backup calls it after
// writing its pending marker: a GC that took its lock before the marker
// existed may not have seen it, so the backup lets that GC finish first;
// a GC that starts later sees the marker.
func (l *Location) waitForGC(ctx context.Context, log *slog.Logger) error {
	deadline := time.Now().Add(gcWait)
	for {
		info, err := l.Store.Stat(ctx, l.gcLockKey())
		if errors.Is(err, objstore.ErrNotFound) || (err == nil && time.Since(info.ModTime) >= metasnap.PendingStale) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("check the data GC lock of %s: %w", l, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w on %s for more than %s; retry later", ErrGCRunning, l, gcWait)
		}
		log.Info("waiting for a data garbage collection to finish", "lock", l.gcLockKey())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// GCResult reports a data GC.
type GCResult struct {
	DryRun bool `json:"dry_run"`
	// Objects deleted (or, dry run, that would be), with their bytes.
	Objects []uint64 `json:"objects"`
	Bytes   int64    `json:"bytes"`
	// Indexes of snapshots no longer in the manifest.
	Indexes []uint64 `json:"indexes"`
	// Kept objects (referenced by an entry or a backup in flight).
	Kept int `json:"kept"`
	// ProtectedBytes is the size of the kept objects.
	ProtectedBytes int64 `json:"protected_bytes"`
	// StalePending are markers of dead backups that were removed.
	StalePending []string `json:"stale_pending"`
}

// gcAttempts bounds the mark phase restarts when the manifest changes.
const gcAttempts = 8

// GC deletes the data objects no remaining snapshot references, by mark
// and sweep: under the copy's GC lock, it marks every SST of every entry
// of the backup location's manifest and of every fresh pending marker
// (backups in flight), and sweeps the rest, deleting only if the manifest
// is still the version it marked from (its ETag: the compare-and-swap
// every manifest writer goes through); a change restarts the mark. Indexes
// of snapshots gone from the manifest go first, then the objects, so a
// crash leaves only unreferenced objects for the next run.
//
// without lists snapshots to treat as deleted already: a dry run of
// delete or prune shows what their deletion would free.
func GC(ctx context.Context, l *Location, backup *metasnap.Storage, dryRun bool, without []uint64, log *slog.Logger) (*GCResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !dryRun {
		unlock, err := l.lockGC(ctx)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	for attempt := 0; attempt < gcAttempts; attempt++ {
		res, etag, plan, err := l.markAndPlan(ctx, backup, dryRun, without)
		if err != nil {
			return nil, err
		}
		if dryRun || (len(plan.objects) == 0 && len(plan.indexes) == 0 && len(plan.stale) == 0) {
			return res, nil
		}
		faultpoint.Hit("datacopy.gc-before-sweep")
		// Under the manifest's compare-and-swap: sweep only what was
		// marked from the manifest still in place.
		_, cur, err := backup.ReadManifest(ctx)
		if err != nil {
			return nil, err
		}
		if cur != etag {
			log.Info("the manifest changed while marking; marking again")
			continue
		}
		if err := l.Store.Delete(ctx, plan.indexes...); err != nil {
			return nil, fmt.Errorf("data GC: delete indexes: %w", err)
		}
		faultpoint.Hit("datacopy.gc-after-indexes")
		if err := l.Store.Delete(ctx, plan.objects...); err != nil {
			return nil, fmt.Errorf("data GC: delete objects: %w", err)
		}
		if err := l.Store.Delete(ctx, plan.stale...); err != nil {
			return nil, fmt.Errorf("data GC: delete stale pending markers: %w", err)
		}
		log.Info("data GC", "objects_deleted", len(res.Objects), "bytes", res.Bytes, "indexes_deleted", len(res.Indexes), "kept", res.Kept)
		return res, nil
	}
	return nil, fmt.Errorf("data GC: the manifest of %s changed %d times while marking; retry", backup, gcAttempts)
}

type gcPlan struct{ objects, indexes, stale []string }

func (l *Location) markAndPlan(ctx context.Context, backup *metasnap.Storage, dryRun bool, without []uint64) (*GCResult, string, *gcPlan, error) {
	res := &GCResult{DryRun: dryRun, Objects: []uint64{}, Indexes: []uint64{}, StalePending: []string{}}
	plan := &gcPlan{}
	// List first, mark after: an object uploaded after the listing is not
	// a candidate, and one listed belongs to a backup whose marker was
	// written before its upload and so is seen below.
	objs, err := l.listObjects(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	idx, err := l.IndexIDs(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	m, etag, err := backup.ReadExistingManifest(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	markers, err := metasnap.ListPending(ctx, l.Store, l.metaDir())
	if err != nil {
		return nil, "", nil, err
	}
	marked := map[uint64]bool{}
	snaps := map[uint64]bool{}
	gone := map[uint64]bool{}
	for _, id := range without {
		gone[id] = true
	}
	for _, e := range m.SnapshotMetadata {
		if gone[e.ID] {
			continue
		}
		snaps[e.ID] = true
		for _, id := range e.SSTs {
			marked[id] = true
		}
	}
	now := time.Now()
	for _, p := range markers {
		if !p.Fresh(now) {
			res.StalePending = append(res.StalePending, p.Key)
			plan.stale = append(plan.stale, p.Key)
			continue
		}
		for _, id := range p.IDs {
			snaps[id] = true
		}
		for _, id := range p.Objects {
			marked[id] = true
		}
	}
	ids := make([]uint64, 0, len(objs))
	for id := range objs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if marked[id] {
			res.Kept++
			res.ProtectedBytes += objs[id].Size
			continue
		}
		res.Objects = append(res.Objects, id)
		res.Bytes += objs[id].Size
		plan.objects = append(plan.objects, objs[id].Key)
	}
	for _, id := range idx {
		if !snaps[id] {
			res.Indexes = append(res.Indexes, id)
			plan.indexes = append(plan.indexes, l.IndexKey(id))
		}
	}
	return res, etag, plan, nil
}
