package metasnap

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/rwsnap/rwsnap/objstore"
)

// PlanCopy is Copy's dry run: it reads both locations and reports what
// Copy would copy (Copied, Bytes) and find already there (Present),
// failing where Copy would fail, and writes nothing. Manifest is the
// target's current manifest_id.
func PlanCopy(ctx context.Context, src, dst *Storage, ids []uint64) (*CopyResult, error) {
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
	res := &CopyResult{Copied: []uint64{}, Present: []uint64{}, Manifest: dm.ManifestID}
	for _, id := range ids {
		e := sm.Find(id)
		if e == nil {
			return nil, fmt.Errorf("%w: %d is not in the manifest of %s (it lists %s)", ErrSnapshotNotFound, id, src, FormatIDs(sm.IDs()))
		}
		if de := dm.Find(id); de != nil && (de.HummockVersionID != e.HummockVersionID || de.MaxCommittedEpoch != e.MaxCommittedEpoch) {
			return nil, fmt.Errorf("%s already has a different snapshot %d (hummock version %d, not %d): ids of two clusters collide; copy into another directory", dst, id, de.HummockVersionID, e.HummockVersionID)
		}
		b, _, err := src.Store.Get(ctx, src.SnapshotKey(id))
		if err != nil {
			return nil, fmt.Errorf("read snapshot %d from %s: %w", id, src, err)
		}
		if err := VerifyChecksum(b); err != nil {
			return nil, fmt.Errorf("snapshot %d at the source: %w", id, err)
		}
		existing, _, err := dst.Store.Get(ctx, dst.SnapshotKey(id))
		switch {
		case err == nil && bytes.Equal(existing, b):
			res.Present = append(res.Present, id)
		case err == nil || errors.Is(err, objstore.ErrNotFound):
			res.Copied = append(res.Copied, id)
			res.Bytes += int64(len(b))
		default:
			return nil, fmt.Errorf("read snapshot %d at %s: %w", id, dst, err)
		}
	}
	return res, nil
}
