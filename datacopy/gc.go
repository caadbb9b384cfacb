package datacopy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

// ErrGCRunning means another data GC holds the location's lock.
var ErrGCRunning = errors.New("another data garbage collection is running")

// gcWait bounds how long a backup waits for a running GC.
var gcWait = 10 * time.Minute

// gcLockStale is how long a GC lock not refreshed stays its holder's: an
// older one is a dead process's, and another cleaner takes it over. A
// running GC refreshes its lock every gcLockStale/4 (heartbeat), and stops
// before its next delete once its lock is no longer its own or was last
// refreshed more than gcLockStale/2 ago. Tests shorten it.
var gcLockStale = metasnap.PendingStale

type gcLockBody struct {
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Beat changes at every refresh, so each refresh is a new version.
	Beat int `json:"beat"`
}

// ErrGCLockLost means a running GC's lock was taken over by another
// cleaner, or could not be refreshed in time: the GC stopped before its
// next delete.
var ErrGCLockLost = errors.New("the data GC lost its lock")

// gcLock is a GC lock this process holds, refreshed in the background.
type gcLock struct {
	l    *Location
	body gcLockBody
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	etag    string    // the version this process wrote last
	lastOK  time.Time // when it was written
	lostErr error     // set once another holder replaced it
	refErr  error     // the last refresh failure, if any
}

// lockGC takes the copy's exclusive GC lock (restic's exclusive lock to
// the backups' shared ones): created with a conditional put; a lock not
// refreshed for gcLockStale is a dead process's and is taken over (with
// If-Match on the version seen, so two cleaners cannot both take it).
func (l *Location) lockGC(ctx context.Context) (*gcLock, error) {
	host, _ := os.Hostname()
	g := &gcLock{l: l, body: gcLockBody{Host: host, PID: os.Getpid(), Started: time.Now().UTC()}, stop: make(chan struct{})}
	body, _ := json.Marshal(g.body)
	etag, err := l.Store.PutIf(ctx, l.gcLockKey(), body, "")
	if errors.Is(err, objstore.ErrPreconditionFailed) {
		info, serr := l.Store.Stat(ctx, l.gcLockKey())
		switch {
		case errors.Is(serr, objstore.ErrNotFound):
			return l.lockGC(ctx)
		case serr != nil:
			return nil, serr
		case time.Since(info.ModTime) < gcLockStale && !l.gcHolderDead(ctx):
			return nil, fmt.Errorf("%w on %s (lock %s, last refreshed %s); wait for it, or remove the lock if that process is certainly gone", ErrGCRunning, l, l.gcLockKey(), info.ModTime.UTC().Format(time.RFC3339))
		}
		etag, err = l.Store.PutIf(ctx, l.gcLockKey(), body, info.ETag)
	}
	if errors.Is(err, objstore.ErrPreconditionFailed) {
		return nil, fmt.Errorf("%w on %s (another cleaner took the stale lock %s first)", ErrGCRunning, l, l.gcLockKey())
	}
	if err != nil {
		return nil, fmt.Errorf("take the data GC lock %s in %s: %w", l.gcLockKey(), l, err)
	}
	g.etag, g.lastOK = etag, time.Now()
	faultpoint.Hit("datacopy.gc-locked")
	g.wg.Add(1)
	go g.heartbeat(context.WithoutCancel(ctx))
	return g, nil
}

func (g *gcLock) heartbeat(ctx context.Context) {
	defer g.wg.Done()
	t := time.NewTicker(gcLockStale / 4)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			g.refresh(ctx)
		}
	}
}

// refresh rewrites the lock if it is still the version this process
// wrote; a lock replaced meanwhile is lost for good.
func (g *gcLock) refresh(ctx context.Context) {
	// Held across the write, so check never reads back a version this
	// process wrote but has not recorded yet.
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lostErr != nil {
		return
	}
	g.body.Beat++
	body, _ := json.Marshal(g.body)
	ctx, cancel := context.WithTimeout(ctx, gcLockStale/4)
	defer cancel()
	newTag, err := g.l.Store.PutIf(ctx, g.l.gcLockKey(), body, g.etag)
	switch {
	case err == nil:
		g.etag, g.lastOK, g.refErr = newTag, time.Now(), nil
	case errors.Is(err, objstore.ErrPreconditionFailed):
		g.lostErr = fmt.Errorf("%w: %s in %s was replaced or removed by another process", ErrGCLockLost, g.l.gcLockKey(), g.l)
	default:
		g.refErr = err
	}
}

// check says whether the GC may delete now: its lock is still the version
// it wrote (read back, so a takeover is seen even between heartbeats) and
// was refreshed recently enough that no other cleaner can think it stale.
func (g *gcLock) check(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lostErr != nil {
		return g.lostErr
	}
	if age := time.Since(g.lastOK); age > gcLockStale/2 {
		msg := ""
		if g.refErr != nil {
			msg = ": " + g.refErr.Error()
		}
		return fmt.Errorf("%w: %s in %s could not be refreshed for %s (another cleaner may take it over after %s)%s",
			ErrGCLockLost, g.l.gcLockKey(), g.l, age.Round(time.Millisecond), gcLockStale, msg)
	}
	info, err := g.l.Store.Stat(ctx, g.l.gcLockKey())
	if errors.Is(err, objstore.ErrNotFound) || (err == nil && info.ETag != g.etag) {
		g.lostErr = fmt.Errorf("%w: %s in %s was replaced or removed by another process", ErrGCLockLost, g.l.gcLockKey(), g.l)
		return g.lostErr
	}
	if err != nil {
		return fmt.Errorf("%w: cannot read %s in %s back: %w", ErrGCLockLost, g.l.gcLockKey(), g.l, err)
	}
	return nil
}

// release stops the heartbeat and removes the lock if it is still this
// process's (never a lock another cleaner took over).
func (g *gcLock) release(ctx context.Context) {
	close(g.stop)
	g.wg.Wait()
	ctx = context.WithoutCancel(ctx)
	g.mu.Lock()
	lost, etag := g.lostErr, g.etag
	g.mu.Unlock()
	if lost != nil {
		return
	}
	if info, err := g.l.Store.Stat(ctx, g.l.gcLockKey()); err == nil && info.ETag == etag {
		_ = g.l.Store.Delete(ctx, g.l.gcLockKey())
	}
	faultpoint.Hit("datacopy.gc-unlocked")
}

// gcHolderDead says whether the GC lock was written by a process of this
// host that no longer exists (killed): such a lock protects nothing, so a
// rerun need not wait out the staleness window (restic judges its local
// locks the same way). A lock of another host, or one that cannot be
// read, is taken for alive.
func (l *Location) gcHolderDead(ctx context.Context) bool {
	b, _, err := l.Store.Get(ctx, l.gcLockKey())
	if err != nil {
		return false
	}
	var body gcLockBody
	if json.Unmarshal(b, &body) != nil || body.PID <= 0 {
		return false
	}
	host, _ := os.Hostname()
	return host != "" && body.Host == host && body.PID != os.Getpid() && !processAlive(body.PID)
}

// waitForGC returns once no fresh GC lock exists. A backup calls it after
// writing its pending marker: a GC that took its lock before the marker
// existed may not have seen it, so the backup lets that GC finish first;
// a GC that starts later sees the marker.
func (l *Location) waitForGC(ctx context.Context, log *slog.Logger) error {
	deadline := time.Now().Add(gcWait)
	for {
		info, err := l.Store.Stat(ctx, l.gcLockKey())
		if errors.Is(err, objstore.ErrNotFound) || (err == nil && (time.Since(info.ModTime) >= gcLockStale || l.gcHolderDead(ctx))) {
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
	var lock *gcLock
	if !dryRun {
		var err error
		if lock, err = l.lockGC(ctx); err != nil {
			return nil, err
		}
		defer lock.release(ctx)
	}
	for attempt := 0; attempt < gcAttempts; attempt++ {
		res, etag, plan, err := l.markAndPlan(ctx, backup, dryRun, without)
		if err != nil {
			return nil, err
		}
		faultpoint.Hit("datacopy.gc-marked")
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
		// Indexes first, then objects, then stale markers and journals;
		// each delete only while the lock is still this GC's.
		batch := objstore.DeleteBatch(l.Store)
		steps := []struct {
			what  string
			keys  []string
			point string
		}{
			{"indexes", plan.indexes, "datacopy.gc-after-index-delete"},
			{"objects", plan.objects, "datacopy.gc-after-object-delete"},
			{"stale pending markers and journals", plan.stale, "datacopy.gc-after-stale-delete"},
		}
		for _, st := range steps {
			for keys := st.keys; len(keys) > 0; {
				n := min(len(keys), batch)
				if err := lock.check(ctx); err != nil {
					return nil, fmt.Errorf("data GC of %s stopped before deleting %s (%d left; nothing referenced was touched, rerun delete or prune): %w", l, st.what, len(keys), err)
				}
				if err := l.Store.Delete(ctx, keys[:n]...); err != nil {
					return nil, fmt.Errorf("data GC: delete %s: %w", st.what, err)
				}
				faultpoint.Hit(st.point)
				keys = keys[n:]
			}
			if st.what == "indexes" {
				faultpoint.Hit("datacopy.gc-after-indexes")
			}
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
	// Journals of runs that stopped long ago only saved work; a live run's
	// is at most a checkpoint old.
	if js, err := l.Store.List(ctx, l.journalPrefix()); err != nil {
		return nil, "", nil, fmt.Errorf("list the copy journals in %s: %w", l, err)
	} else {
		for _, j := range js {
			if now.Sub(j.ModTime) >= metasnap.PendingStale {
				res.StalePending = append(res.StalePending, j.Key)
				plan.stale = append(plan.stale, j.Key)
			}
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
