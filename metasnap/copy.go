package metasnap

import (
	"context"
	"errors"
	"fmt"
	"io"

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
		if de := dm.Find(id); de != nil {
			if de.HummockVersionID != e.HummockVersionID || de.MaxCommittedEpoch != e.MaxCommittedEpoch {
				return nil, fmt.Errorf("%s already has a different snapshot %d (hummock version %d, not %d): ids of two clusters collide; copy into another directory", dst, id, de.HummockVersionID, e.HummockVersionID)
			}
		}
		// Each object is streamed, never held: copied through a check (a
		// damaged source, or one that changes during the copy, fails it
		// and nothing is stored), then read back. One already at the
		// target is kept when it holds the same bytes.
		var sh *Head
		dh, err := dst.Scan(ctx, id)
		switch {
		case err == nil:
			if sh, err = src.Scan(ctx, id); err != nil {
				return nil, fmt.Errorf("snapshot %d at the source: %w", id, err)
			}
		case errors.Is(err, objstore.ErrNotFound) || errors.Is(err, ErrChecksum):
		default:
			return nil, fmt.Errorf("read snapshot %d at %s: %w", id, dst, err)
		}
		if dh != nil && sameObject(dh, sh) {
			res.Present = append(res.Present, id)
		} else {
			// Absent, or present but different or damaged: (re)write it.
			if sh, err = copyObject(ctx, src, dst, id, sh); err != nil {
				return nil, err
			}
			back, err := dst.Scan(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("read back snapshot %d from %s: %w", id, dst, err)
			}
			if !sameObject(back, sh) {
				return nil, fmt.Errorf("snapshot %d read back from %s differs from what was written (%d bytes, checksum %016x; wrote %d bytes, %016x)", id, dst, back.Size, back.Checksum, sh.Size, sh.Checksum)
			}
			res.Copied = append(res.Copied, id)
			res.Bytes += sh.Size
		}
		entries = append(entries, *e)
		bar.Add(1, sh.Size)
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

// sameObject says two verified snapshot objects hold the same bytes: same
// size and same (verified) xxhash64 of everything before the checksum.
func sameObject(a, b *Head) bool {
	return a.Size == b.Size && a.Checksum == b.Checksum && a.ID == b.ID
}

// copyObject streams snapshot id from src to dst, checking it on the way:
// the object is stored only if it verifies (and, when want is set, is the
// object want describes). It returns what was copied.
func copyObject(ctx context.Context, src, dst *Storage, id uint64, want *Head) (*Head, error) {
	rc, info, err := src.openObject(ctx, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var got *Head
	err = objstore.PutStream(ctx, dst.Store, dst.SnapshotKey(id), func(w io.Writer) error {
		h, err := Scan(io.TeeReader(rc, w), info.Size, nil)
		if err != nil {
			return fmt.Errorf("snapshot %d at the source: %w", id, err)
		}
		if h.ID != id {
			return fmt.Errorf("snapshot object %s at the source holds id %d, not %d", src.SnapshotKey(id), h.ID, id)
		}
		if want != nil && !sameObject(h, want) {
			return fmt.Errorf("snapshot %d changed at the source during the copy", id)
		}
		got = h
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("write snapshot %d to %s: %w", id, dst, err)
	}
	return got, nil
}

// SameLocation says whether two URL+directory pairs are provably one
// location (CanonicalSame: however spelled, credentials aside).
func SameLocation(urlA, dirA, urlB, dirB string) bool {
	return CanonicalSame(context.Background(), urlA, dirA, urlB, dirB)
}
