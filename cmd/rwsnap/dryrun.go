package main

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/metaclient"
	"github.com/rwsnap/rwsnap/metasnap"
)

// backupDryRun is backup-meta --dry-run: the path is chosen and the
// location read (its manifest, RisingWave's cap), nothing is allocated or
// written (not even a snapshot id in etcd).
func backupDryRun(c *cli.Context, ch *metaclient.Choice) error {
	m, err := ch.Manifest(c.Context)
	if err != nil {
		return err
	}
	if d, ok := ch.Operator.(*metasnap.Direct); ok && d.Opts.Hummock != nil {
		// The read a backup would do, its refusals included (an unknown or
		// ambiguous release, a contradicting --rw-version, a broken delta
		// chain); nothing is allocated or written.
		o := d.Opts
		o.Remarks = c.String("remarks")
		lines, err := metasnap.ReadAsBackup(c.Context, o)
		if err != nil {
			return err
		}
		slog.Info("meta store read as RisingWave "+lines.Range.String(), "replay_rules", lines.Replay, "why", lines.Range.Why())
	}
	n := len(m.SnapshotMetadata)
	capErr := metasnap.CheckCapacity(n, c.Bool("force"))
	out := &backupDryRunResult{DryRun: true, Path: ch.Path, Via: ch.Operator.Path(), Reason: ch.Reason, Snapshots: n, ManifestID: m.ManifestID}
	if capErr != nil {
		out.Refused = capErr.Error()
	}
	if err := print(c, out); err != nil {
		return err
	}
	return capErr
}

// deleteDryRun is delete-meta-snapshots --dry-run: the ids are checked
// against the manifest the real delete would change.
func deleteDryRun(c *cli.Context, ch *metaclient.Choice, ids []uint64, st *metasnap.Storage) error {
	m, err := ch.Manifest(c.Context)
	if err != nil {
		return err
	}
	var missing []string
	for _, id := range ids {
		if m.Find(id) == nil {
			missing = append(missing, strconv.FormatUint(id, 10))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("%w: %s not in the manifest (it lists %s); nothing would be deleted",
			metasnap.ErrSnapshotNotFound, strings.Join(missing, ", "), metasnap.FormatIDs(m.IDs()))
	}
	remaining := []uint64{}
	for _, e := range m.SnapshotMetadata {
		if !slices.Contains(ids, e.ID) {
			remaining = append(remaining, e.ID)
		}
	}
	gc, err := dataGC(c.Context, c, st, true, ids)
	if err != nil {
		return err
	}
	return print(c, &deleteResult{DryRun: true, Deleted: []uint64{}, WouldDelete: ids, Remaining: remaining, ManifestID: m.ManifestID, Path: ch.Path, Via: ch.Operator.Path(), DataGC: gc})
}
