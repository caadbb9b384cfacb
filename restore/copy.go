package restore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/rwsnap/rwsnap/datacopy"
	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/internal/progress"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

// copyParallelism bounds concurrent SST copies (and memory: each copy holds
// one object, at most sstable_size_mb).
const copyParallelism = 4

// CopyStats reports an SST copy.
type CopyStats struct {
	Objects, Copied, Skipped int
	Bytes                    int64
}

// CopySSTs copies every SST object the snapshot pins from the snapshot's own
// hummock location (its state_store and data_directory) to dst/dstDir, so a
// cluster can be rebuilt in another bucket or region. An object already at
// the destination with the same size and content (MD5) is skipped, so a
// rerun is cheap; a different object under a pinned id is refused unless
// overwrite, and every copy is checked by checksum.
func CopySSTs(ctx context.Context, target *metasnap.MetaSnapshot, plan *Plan, dst objstore.Store, dstDir string, overwrite bool, log *slog.Logger) (CopyStats, error) {
	var st CopyStats
	src, srcDir, err := snapshotHummock(ctx, target)
	if err != nil {
		return st, fmt.Errorf("copy SSTs: %w", err)
	}
	defer src.Close()
	if src.String() == dst.String() && strings.Trim(srcDir, "/") == strings.Trim(dstDir, "/") {
		log.Info("copy SSTs: the hummock location is the snapshot's own; nothing to copy")
		return st, nil
	}
	ids := hummock.ObjectIDs(plan.Version)
	st.Objects = len(ids)
	strategy := newPrefixStrategy(target)
	srcPrefixed, dstPrefixed := hummock.Prefixed(src.Scheme(), strategy), hummock.Prefixed(dst.Scheme(), strategy)
	var copied, skipped atomic.Int64
	var bytes atomic.Int64
	bar := progress.New("copy SSTs", int64(len(ids)), "objects")
	defer bar.Finish()
	err = datacopy.Parallel(ctx, copyParallelism, ids, func(ctx context.Context, id uint64) error {
		n, did, err := datacopy.CopyCompared(ctx, src, hummock.SSTPath(srcDir, id, srcPrefixed), dst, hummock.SSTPath(dstDir, id, dstPrefixed), id, overwrite)
		if err != nil {
			return fmt.Errorf("copy SST object %d: %w", id, err)
		}
		if did {
			copied.Add(1)
			bytes.Add(n)
		} else {
			skipped.Add(1)
		}
		bar.Add(1, n)
		return nil
	})
	st.Copied, st.Skipped, st.Bytes = int(copied.Load()), int(skipped.Load()), bytes.Load()
	return st, err
}
