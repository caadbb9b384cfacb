package main

import (
	"fmt"
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
	n := len(m.SnapshotMetadata)
	capErr := metasnap.CheckCapacity(n, c.Bool("force"))
	if c.String("output") == "json" {
		out := map[string]any{"dry_run": true, "path": ch.Path, "via": ch.Operator.Path(), "snapshots": n, "manifest_id": m.ManifestID, "reason": ch.Reason}
		if capErr != nil {
			out["refused"] = capErr.Error()
		}
		if err := writeJSON(c.App.Writer, out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.App.Writer, "dry run: would take a snapshot through %s (%s); the location holds %d snapshots, manifest_id %d; nothing was written\n",
			ch.Operator.Path(), ch.Reason, n, m.ManifestID)
	}
	return capErr
}

// deleteDryRun is delete-meta-snapshots --dry-run: the ids are checked
// against the manifest the real delete would change.
func deleteDryRun(c *cli.Context, ch *metaclient.Choice, ids []uint64) error {
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
	remaining := 0
	for _, e := range m.SnapshotMetadata {
		if !slices.Contains(ids, e.ID) {
			remaining++
		}
	}
	if c.String("output") == "json" {
		return writeJSON(c.App.Writer, map[string]any{"dry_run": true, "would_delete": ids, "manifest_id": m.ManifestID, "remaining": remaining, "path": ch.Path, "via": ch.Operator.Path()})
	}
	fmt.Fprintf(c.App.Writer, "dry run: would delete %s through %s (%d would remain); nothing was deleted\n", metasnap.FormatIDs(ids), ch.Operator.Path(), remaining)
	return nil
}
