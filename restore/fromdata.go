package restore

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"strings"

	"github.com/rwsnap/rwsnap/datacopy"
	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

// openDataCopy opens the data copy of --from-backup-data: --data-storage-*
// or <backup dir>/data in the backup location.
func openDataCopy(ctx context.Context, o Options, backup objstore.Store) (*datacopy.Location, func(), error) {
	if o.DataURL == "" {
		return datacopy.NewLocation(backup, path.Join(strings.Trim(o.BackupDir, "/"), datacopy.DefaultSubdir)), func() {}, nil
	}
	st, err := objstore.Open(ctx, o.DataURL)
	if err != nil {
		return nil, nil, fmt.Errorf("open data storage: %w", err)
	}
	dir := o.DataDir
	if dir == "" {
		dir = path.Join(strings.Trim(o.BackupDir, "/"), datacopy.DefaultSubdir)
	}
	return datacopy.NewLocation(st, dir), func() { st.Close() }, nil
}

// dataEntry is the snapshot's SST list as its hummock version has it.
func dataEntry(target *metasnap.MetaSnapshot, plan *Plan) metasnap.SnapshotMetadata {
	return metasnap.SnapshotMetadata{ID: target.ID, SSTs: hummock.ObjectIDs(plan.Version)}
}

// restoreData copies the snapshot's objects from the data copy into the
// new hummock location (dryRun: only the checks).
func restoreData(ctx context.Context, o Options, data *datacopy.Location, target *metasnap.MetaSnapshot, plan *Plan, hs objstore.Store, dryRun bool, log *slog.Logger) (*datacopy.RestoreResult, error) {
	return datacopy.Restore(ctx, datacopy.RestoreOptions{
		Data: data, Entry: dataEntry(target, plan), ClusterID: target.Metadata.ClusterID,
		Dest: hs, DestDir: o.HummockDir, NewPrefixStrategy: newPrefixStrategy(target),
		Overwrite: o.OverwriteSSTs, Parallelism: o.DataParallelism,
		DryRun: dryRun, Logger: log,
	})
}
