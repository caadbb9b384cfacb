package datacopy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/internal/progress"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

// BackupOptions configure one data backup.
type BackupOptions struct {
	// Source is the hummock location the SSTs are read from.
	Source    objstore.Store
	SourceDir string
	// SourceNewPrefixStrategy is the cluster's v2.0
	// use_new_object_prefix_strategy: with Source's scheme it decides
	// where the SSTs lie (hummock.Prefixed).
	SourceNewPrefixStrategy bool
	Data                    *Location
	// Owner is who the copy belongs to (Claim).
	Owner       Owner
	Parallelism int
	// Keep leaves the pending marker in place: the caller releases it
	// after its manifest commit (the direct path of backup-meta).
	Keep bool
	// DryRun writes nothing: the result says what would be copied
	// (Copied, CopiedBytes from the source's sizes).
	DryRun bool
	// OnCopied is called after each object copied (metrics).
	OnCopied func(bytes int64)
	Logger   *slog.Logger
}

// SnapshotData is the outcome for one snapshot.
type SnapshotData struct {
	ID      uint64   `json:"snapshot_id"`
	State   string   `json:"state"`
	Objects int      `json:"objects"`
	Bytes   int64    `json:"bytes"`
	Missing []uint64 `json:"missing"`
}

// BackupResult reports a data backup.
type BackupResult struct {
	Snapshots []SnapshotData
	// Copied objects and bytes (new since the previous backups); Skipped
	// were already in the copy with their recorded size and checksum.
	Copied, Skipped, ServerSide int
	CopiedBytes                 int64
	Duration                    time.Duration
	// Pending is the in-flight marker when Keep was set.
	Pending *metasnap.Pending
}

// checkpointEvery bounds how much a killed backup has to redo: the partial
// index of each snapshot is rewritten at this interval.
const checkpointEvery = 2 * time.Second

// Backup copies the SST objects the entries reference from the hummock
// location into the data copy, skipping objects the copy already holds
// with their recorded size and checksum, and writes each snapshot's
// index. Order: pending marker (so GC keeps every referenced object), wait
// for a running GC to finish, copy, index. A snapshot whose referenced
// objects are missing at the source gets a partial index naming them and
// Backup returns an error; a kill at any point leaves indexes that list
// only objects that are in the copy, and a rerun continues.
func Backup(ctx context.Context, o BackupOptions, entries []metasnap.SnapshotMetadata) (*BackupResult, error) {
	start := time.Now()
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := &BackupResult{}
	if o.DryRun {
		return dryRun(ctx, o, entries)
	}
	if err := o.Data.Claim(ctx, o.Owner); err != nil {
		return nil, err
	}
	var all []uint64
	ids := make([]uint64, 0, len(entries))
	seen := map[uint64]bool{}
	for _, e := range entries {
		ids = append(ids, e.ID)
		for _, id := range e.SSTs {
			if !seen[id] {
				seen[id] = true
				all = append(all, id)
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pending, err := metasnap.WritePending(ctx, o.Data.Store, o.Data.metaDir(), metasnap.PendingMarker{Kind: metasnap.PendingKindData, IDs: ids, Objects: all})
	if err != nil {
		return nil, err
	}
	release := true
	defer func() {
		if release {
			pending.Release(ctx)
		}
	}()
	faultpoint.Hit("datacopy.after-pending")
	if err := o.Data.waitForGC(ctx, log); err != nil {
		return nil, err
	}

	known, dstObjs, err := o.Data.known(ctx)
	if err != nil {
		return nil, err
	}
	srcPrefixed := hummock.Prefixed(o.Source.Scheme(), o.SourceNewPrefixStrategy)
	var mu sync.Mutex
	done := map[uint64]Object{}
	missing := map[uint64]bool{}
	var toCopy []uint64
	for _, id := range all {
		if k, ok := known[id]; ok {
			done[id] = k
			res.Skipped++
		} else {
			toCopy = append(toCopy, id)
		}
	}
	// One listing of the source instead of a request per object, when it
	// is the cheaper: it gives each object's size and ETag, so a
	// server-side copy is one CopyObject (its response has the copy's
	// ETag). An object the listing does not show is still tried (and
	// found missing by the copy itself).
	srcObjs := map[uint64]objstore.ObjectInfo{}
	if listSourceWorthIt(len(toCopy), len(all)) {
		if srcObjs, err = listSSTs(ctx, o.Source, o.SourceDir, srcPrefixed); err != nil {
			return nil, err
		}
	}
	// An object a killed run copied but did not record is in the copy with
	// the source's size and content MD5 (both ETags are the MD5 of the
	// bytes): recorded without copying it again.
	var adopted []Object
	rest := toCopy[:0]
	for _, id := range toCopy {
		si, ok1 := srcObjs[id]
		di, ok2 := dstObjs[id]
		sm, okS := objstore.ContentMD5(o.Source, si)
		dm, okD := objstore.ContentMD5(o.Data.Store, di)
		if ok1 && ok2 && okS && okD && sm == dm && si.Size == di.Size {
			ob := Object{ID: id, Size: di.Size, MD5: dm}
			done[id] = ob
			adopted = append(adopted, ob)
			res.Skipped++
			continue
		}
		rest = append(rest, id)
	}
	toCopy = rest
	// Snapshots whose index is complete and whose objects are all there
	// keep their index untouched (a rerun never downgrades them).
	untouched := map[uint64]bool{}
	for _, e := range entries {
		if x, err := o.Data.ReadIndex(ctx, e.ID); err == nil && StateFor(e, x) == StateComplete {
			all := true
			for _, id := range e.SSTs {
				if _, ok := known[id]; !ok {
					all = false
				}
			}
			untouched[e.ID] = all
		}
	}
	writeIndexes := func() error {
		for _, e := range entries {
			if untouched[e.ID] {
				continue
			}
			x := &Index{SnapshotID: e.ID, ClusterID: o.Owner.ClusterID, State: StatePartial,
				Source: o.Source.String() + " directory " + o.SourceDir}
			for _, id := range e.SSTs {
				if ob, ok := done[id]; ok {
					x.Objects = append(x.Objects, ob)
				} else if missing[id] {
					x.Missing = append(x.Missing, id)
				}
			}
			if len(x.Missing) == 0 && len(x.Objects) == len(uniq(e.SSTs)) {
				// Verified: every object's size and MD5 were checked after
				// its copy (the copy's ETag, a hash, or a stat), or found
				// with its record.
				x.State = StateComplete
			}
			if err := o.Data.WriteIndex(ctx, x); err != nil {
				return err
			}
			faultpoint.Hit("datacopy.after-index")
		}
		return nil
	}
	jr, err := newJournal(o.Data)
	if err != nil {
		return nil, err
	}
	// Checkpoints: the objects copied since the last one, as one journal
	// segment (the indexes are written once, at the end).
	var fresh []Object
	fresh = append(fresh, adopted...)
	checkpoint := func() error {
		mu.Lock()
		seg := fresh
		fresh = nil
		mu.Unlock()
		return jr.write(ctx, seg)
	}
	bar := progress.New("copy data", int64(len(toCopy)), "objects")
	var copiedBytes atomic.Int64
	stop := make(chan struct{})
	ticker := make(chan struct{})
	var ckErr atomic.Value
	go func() {
		defer close(ticker)
		t := time.NewTicker(checkpointEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if err := checkpoint(); err != nil {
					ckErr.Store(err)
				}
			}
		}
	}()
	err = Parallel(ctx, copyParallelism(ctx, o.Parallelism, o.Source, o.Data.Store), toCopy, func(ctx context.Context, id uint64) error {
		var si *objstore.ObjectInfo
		if info, ok := srcObjs[id]; ok {
			si = &info
		}
		r, err := copyObject(ctx, o.Source, hummock.SSTPath(o.SourceDir, id, srcPrefixed), si, o.Data.Store, o.Data.ObjectKey(id), id, nil)
		if errors.Is(err, objstore.ErrNotFound) {
			mu.Lock()
			missing[id] = true
			mu.Unlock()
			return nil
		}
		if err != nil {
			return fmt.Errorf("copy SST object %d from %s to %s: %w", id, o.Source, o.Data, err)
		}
		mu.Lock()
		done[id] = r.Object
		fresh = append(fresh, r.Object)
		res.Copied++
		if r.ServerSide {
			res.ServerSide++
		}
		mu.Unlock()
		copiedBytes.Add(r.Size)
		if o.OnCopied != nil {
			o.OnCopied(r.Size)
		}
		bar.Add(1, r.Size)
		return nil
	})
	close(stop)
	<-ticker
	bar.Finish()
	res.CopiedBytes = copiedBytes.Load()
	if err != nil {
		// Record what did land, so the rerun skips it.
		if werr := checkpoint(); werr != nil {
			log.Warn("could not record the objects copied before the failure", "err", werr)
		}
		return res, err
	}
	if v := ckErr.Load(); v != nil {
		return res, v.(error)
	}
	if err := checkpoint(); err != nil {
		return res, err
	}
	faultpoint.Hit("datacopy.before-index")
	// An index that says complete is only as good as the marker that kept
	// the GC off the copied objects the whole time: if it went stale, a GC
	// may have removed some, and the rerun (which lists the copy) copies
	// them again.
	if err := pending.Held(); err != nil {
		return res, fmt.Errorf("data of snapshots %s not recorded in %s: %w", metasnap.FormatIDs(ids), o.Data, err)
	}
	if err := writeIndexes(); err != nil {
		return res, err
	}
	// Every object copied is now in an index: this run's journal is done.
	if err := jr.remove(ctx); err != nil {
		log.Warn("could not remove the copy journal (the next data GC does)", "err", err)
	}
	for _, e := range entries {
		sd := SnapshotData{ID: e.ID, State: StateComplete, Missing: []uint64{}}
		for _, id := range uniq(e.SSTs) {
			if ob, ok := done[id]; ok {
				sd.Objects++
				sd.Bytes += ob.Size
			} else {
				sd.Missing = append(sd.Missing, id)
			}
		}
		if len(sd.Missing) > 0 {
			sd.State = StatePartial
		}
		res.Snapshots = append(res.Snapshots, sd)
	}
	res.Duration = time.Since(start)
	if o.Keep {
		release = false
		res.Pending = pending
	}
	var bad []string
	for _, sd := range res.Snapshots {
		if len(sd.Missing) > 0 {
			bad = append(bad, fmt.Sprintf("snapshot %d: %d referenced objects missing from %s (ids %s)", sd.ID, len(sd.Missing), o.Source, metasnap.FormatIDs(sd.Missing[:min(len(sd.Missing), 20)])))
		}
	}
	if len(bad) > 0 {
		return res, fmt.Errorf("%w: %s; those snapshots are marked partial (vacuumed by the cluster? a snapshot outside the cluster's own backup location pins nothing)", ErrMissingObjects, joinLines(bad))
	}
	log.Info("data copied", "snapshots", len(entries), "objects", len(all), "copied", res.Copied, "server_side", res.ServerSide,
		"already_there", res.Skipped, "bytes", res.CopiedBytes, "duration", res.Duration.Round(time.Millisecond))
	return res, nil
}

// ErrMissingObjects means referenced SSTs are gone from the hummock
// location.
var ErrMissingObjects = errors.New("referenced SST objects are missing")

// known returns the objects the copy already holds as some index (or the
// journal of an earlier run) records them: listed with the recorded size
// (and, where the store gives the content MD5, with the recorded one).
// One listing, not a request per object, so an incremental run costs the
// new objects plus a LIST. It also returns that listing.
func (l *Location) known(ctx context.Context) (map[uint64]Object, map[uint64]objstore.ObjectInfo, error) {
	xs, err := l.Indexes(ctx)
	if err != nil {
		return nil, nil, err
	}
	rec := map[uint64]Object{}
	for _, x := range xs {
		for _, o := range x.Objects {
			rec[o.ID] = o
		}
	}
	jobjs, _, err := l.journalObjects(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, o := range jobjs {
		if _, ok := rec[o.ID]; !ok {
			rec[o.ID] = o
		}
	}
	objs, err := l.listObjects(ctx)
	if err != nil {
		return nil, nil, err
	}
	out := make(map[uint64]Object, len(rec))
	for id, info := range objs {
		r, ok := rec[id]
		if !ok || r.Size != info.Size {
			continue
		}
		if m, ok := objstore.ContentMD5(l.Store, info); ok && m != r.MD5 {
			continue
		}
		out[id] = r
	}
	return out, objs, nil
}

// listSourceWorthIt says whether one listing of the hummock directory is
// cheaper than a request per object to copy. The directory holds about
// the objects the snapshots reference (the live ones and those older
// snapshots pin), a listing page 1000 of them: list when those pages are
// fewer than half the objects to copy.
func listSourceWorthIt(toCopy, referenced int) bool {
	return toCopy > 0 && (referenced+999)/1000 < toCopy/2
}

// listSSTs lists the SST objects under dir of a hummock location, by id
// (only keys where the path rule puts that id).
func listSSTs(ctx context.Context, s objstore.Store, dir string, prefixed bool) (map[uint64]objstore.ObjectInfo, error) {
	objs, err := s.List(ctx, dir+"/")
	if err != nil {
		return nil, fmt.Errorf("list the SST objects of %s directory %q: %w", s, dir, err)
	}
	out := make(map[uint64]objstore.ObjectInfo, len(objs))
	for _, o := range objs {
		if id, ok := hummock.ParseSSTObjectID(o.Key); ok && o.Key == hummock.SSTPath(dir, id, prefixed) {
			out[id] = o
		}
	}
	return out, nil
}

// listObjects lists the SST objects of the copy by id.
func (l *Location) listObjects(ctx context.Context) (map[uint64]objstore.ObjectInfo, error) {
	objs, err := l.Store.List(ctx, l.objectPrefix())
	if err != nil {
		return nil, fmt.Errorf("list data objects in %s: %w", l, err)
	}
	out := make(map[uint64]objstore.ObjectInfo, len(objs))
	for _, o := range objs {
		if id, ok := hummock.ParseSSTObjectID(o.Key); ok && o.Key == l.ObjectKey(id) {
			out[id] = o
		}
	}
	return out, nil
}

func uniq(ids []uint64) []uint64 {
	seen := make(map[uint64]bool, len(ids))
	out := make([]uint64, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func joinLines(s []string) string {
	out := ""
	for i, l := range s {
		if i > 0 {
			out += "; "
		}
		out += l
	}
	return out
}

// dryRun says what Backup would copy, writing nothing.
func dryRun(ctx context.Context, o BackupOptions, entries []metasnap.SnapshotMetadata) (*BackupResult, error) {
	start := time.Now()
	res := &BackupResult{}
	if cur, err := o.Data.ReadOwner(ctx); err == nil {
		if err := cur.check(o.Owner, o.Data); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, objstore.ErrNotFound) {
		return nil, err
	}
	known, _, err := o.Data.known(ctx)
	if err != nil {
		return nil, err
	}
	srcPrefixed := hummock.Prefixed(o.Source.Scheme(), o.SourceNewPrefixStrategy)
	sizes := map[uint64]int64{}
	missing := map[uint64]bool{}
	for _, e := range entries {
		for _, id := range uniq(e.SSTs) {
			if _, ok := known[id]; ok {
				continue
			}
			if _, done := sizes[id]; done || missing[id] {
				continue
			}
			info, err := o.Source.Stat(ctx, hummock.SSTPath(o.SourceDir, id, srcPrefixed))
			switch {
			case errors.Is(err, objstore.ErrNotFound):
				missing[id] = true
			case err != nil:
				return nil, err
			default:
				sizes[id] = info.Size
			}
		}
	}
	counted := map[uint64]bool{}
	for _, e := range entries {
		sd := SnapshotData{ID: e.ID, State: StateComplete, Missing: []uint64{}}
		for _, id := range uniq(e.SSTs) {
			switch {
			case missing[id]:
				sd.Missing = append(sd.Missing, id)
				sd.State = StatePartial
				continue
			case hasKey(known, id):
				sd.Bytes += known[id].Size
				if !counted[id] {
					counted[id] = true
					res.Skipped++
				}
			default:
				sd.Bytes += sizes[id]
				if !counted[id] {
					counted[id] = true
					res.Copied++
					res.CopiedBytes += sizes[id]
				}
			}
			sd.Objects++
		}
		res.Snapshots = append(res.Snapshots, sd)
	}
	res.Duration = time.Since(start)
	return res, nil
}

func hasKey(m map[uint64]Object, id uint64) bool { _, ok := m[id]; return ok }
