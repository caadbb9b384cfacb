package metasnap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rwsnap/rwsnap/internal/progress"
	"github.com/rwsnap/rwsnap/objstore"
)

// CopyResult reports a copy between backup locations.
type CopyResult struct {
	Copied   []uint64 `json:"copied"`
	Present  []uint64 `json:"already_present"`
	Bytes    int64    `json:"bytes"`
	Manifest uint64   `json:"target_manifest_id"`
}

// Copy copies snapshots (objects and manifest entries) from src to dst,
// e.g. to another region or before moving backup_storage_url. Each object
// is checksummed when read and again after it is written; the target's
// manifest gets the entries in one compare-and-swap, after their objects.
// A rerun copies nothing. ids empty means every snapshot.
func Copy(ctx context.Context, src, dst *Storage, ids []uint64) (*CopyResult, error) {
	if src.Store.String() == dst.Store.String() && src.Dir == dst.Dir {
		return nil, errors.New("the copy target is the source location; give another --to-url or --to-directory")
	}
	sm, _, err := src.ReadExistingManifest(ctx)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		ids = sm.IDs()
	}
	dm, _, err := dst.ReadManifest(ctx)
	if err != nil {
		return nil, err
	}
	res := &CopyResult{Copied: []uint64{}, Present: []uint64{}}
	var entries []SnapshotMetadata
	bar := progress.New("copy snapshots", int64(len(ids)), "snapshots")
	defer bar.Finish()
	for _, id := range ids {
		e := sm.Find(id)
		if e == nil {
			return nil, fmt.Errorf("%w: %d is not in the manifest of %s (it lists %s)", ErrSnapshotNotFound, id, src, FormatIDs(sm.IDs()))
		}
		b, _, err := src.Store.Get(ctx, src.SnapshotKey(id))
		if err != nil {
			return nil, fmt.Errorf("read snapshot %d from %s: %w", id, src, err)
		}
		if err := VerifyChecksum(b); err != nil {
			return nil, fmt.Errorf("snapshot %d at the source: %w", id, err)
		}
		if de := dm.Find(id); de != nil {
			if de.HummockVersionID != e.HummockVersionID || de.MaxCommittedEpoch != e.MaxCommittedEpoch {
				return nil, fmt.Errorf("%s already has a different snapshot %d (hummock version %d, not %d): ids of two clusters collide; copy into another directory", dst, id, de.HummockVersionID, e.HummockVersionID)
			}
		}
		existing, _, err := dst.Store.Get(ctx, dst.SnapshotKey(id))
		switch {
		case err == nil && bytes.Equal(existing, b):
			res.Present = append(res.Present, id)
		case err == nil || errors.Is(err, objstore.ErrNotFound):
			if err := dst.Store.Put(ctx, dst.SnapshotKey(id), b); err != nil {
				return nil, fmt.Errorf("write snapshot %d to %s: %w", id, dst, err)
			}
			back, _, err := dst.Store.Get(ctx, dst.SnapshotKey(id))
			if err != nil {
				return nil, fmt.Errorf("read back snapshot %d from %s: %w", id, dst, err)
			}
			if err := VerifyChecksum(back); err != nil || !bytes.Equal(back, b) {
				return nil, fmt.Errorf("snapshot %d read back from %s differs from what was written (%v)", id, dst, err)
			}
			res.Copied = append(res.Copied, id)
			res.Bytes += int64(len(b))
		default:
			return nil, fmt.Errorf("read snapshot %d at %s: %w", id, dst, err)
		}
		entries = append(entries, *e)
		bar.Add(1, int64(len(b)))
	}
	m, err := dst.UpdateManifest(ctx, func(m *Manifest, _ bool) error {
		added := 0
		for _, e := range entries {
			if m.Find(e.ID) == nil {
				m.SnapshotMetadata = append(m.SnapshotMetadata, e)
				added++
			}
		}
		if added == 0 {
			return errNoChange
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Manifest = m.ManifestID
	return res, nil
}

// SameLocation says whether two URL+directory pairs name one location.
func SameLocation(urlA, dirA, urlB, dirB string) bool {
	return SameURL(urlA, urlB) && strings.Trim(dirA, "/") == strings.Trim(dirB, "/")
}
