package main

import (
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/metaclient"
	"github.com/rwsnap/rwsnap/metasnap"
)

// pruneFlags are shared by prune and schedule.
func pruneFlags() []cli.Flag {
	const cat = "retention"
	return []cli.Flag{
		&cli.IntFlag{Name: "keep-last", Category: cat, Usage: "keep the newest N snapshots", EnvVars: env("keep-last")},
		&cli.DurationFlag{Name: "keep-within", Category: cat, Usage: "keep every snapshot within this long of the newest (e.g. 72h)", EnvVars: env("keep-within")},
		&cli.IntFlag{Name: "keep-hourly", Category: cat, Usage: "keep the newest snapshot of each of the last N hours that have one", EnvVars: env("keep-hourly")},
		&cli.IntFlag{Name: "keep-daily", Category: cat, Usage: "... of the last N days", EnvVars: env("keep-daily")},
		&cli.IntFlag{Name: "keep-weekly", Category: cat, Usage: "... of the last N ISO weeks", EnvVars: env("keep-weekly")},
		&cli.IntFlag{Name: "keep-monthly", Category: cat, Usage: "... of the last N months", EnvVars: env("keep-monthly")},
	}
}

func prunePolicy(c *cli.Context) metasnap.PrunePolicy {
	return metasnap.PrunePolicy{
		KeepLast: c.Int("keep-last"), KeepWithin: c.Duration("keep-within"), KeepHourly: c.Int("keep-hourly"),
		KeepDaily: c.Int("keep-daily"), KeepWeekly: c.Int("keep-weekly"), KeepMonthly: c.Int("keep-monthly"),
	}
}

func pruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "delete the snapshots no retention rule keeps (the newest always stays)",
		Description: `A snapshot is kept if any --keep-* rule keeps it; the newest is always kept.
Times are the snapshots' max committed epochs (UTC). Every snapshot is printed
with the rules that keep it. The deletions are one manifest update, then the
objects, like delete-meta-snapshots.

--orphans also removes snapshot objects that no manifest entry names (left by
interrupted backups; RisingWave never removes them), if older than
--orphans-min-age and not named by a pending marker (a running backup writes one
before its upload and removes it after its manifest commit).

With a data copy (backup-data, --with-data), the data objects no remaining
snapshot references are then removed by mark and sweep: never an object any
entry or any backup in flight references; --dry-run lists what would go.

While a meta node is live and the location is the cluster's own, the deletions
go through it (it caches the manifest), as for delete-meta-snapshots; see --mode.

Examples:
  rwsnap meta prune --keep-last 3 --keep-daily 7 --keep-weekly 4 --etcd-endpoints 127.0.0.1:2379 --dry-run
  rwsnap meta prune --keep-within 72h --orphans --backup-storage-url s3://bkp --backup-storage-directory backup`,
		Flags: withFlags(etcdFlags(), locationFlags(), metaNodeFlags(), pruneFlags(), []cli.Flag{
			dryRunFlag("print the verdicts"),
			&cli.BoolFlag{Name: "orphans", Usage: "also delete snapshot objects not in the manifest"},
			mayBeNewFlag(),
			&cli.DurationFlag{Name: "orphans-min-age", Value: metasnap.DefaultOrphanMinAge, Usage: "only orphans older than this and not named by a running backup's pending marker"},
			outputFlag(),
		}, dataFlags()[:2]),
		Action: func(c *cli.Context) error {
			policy := prunePolicy(c)
			if err := policy.Validate(); err != nil {
				return usageError{err}
			}
			ctx := c.Context
			cl, st, err := openLocation(ctx, c, false)
			if err != nil {
				return err
			}
			defer cl.Close()
			// A dry run only reads: like list, it falls back to reading the
			// location directly when the meta node does not answer.
			use := metaclient.UseWrite
			if c.Bool("dry-run") {
				use = metaclient.UseRead
			}
			op, err := operatorFor(ctx, c, cl, st, use)
			if err != nil {
				return err
			}
			defer op.Close()
			res, err := runPrune(c, op.Operator, st, policy)
			if err != nil {
				return err
			}
			res.Path = op.Path
			return print(c, res)
		},
	}
}

func runPrune(c *cli.Context, op metasnap.Operator, st *metasnap.Storage, policy metasnap.PrunePolicy) (*pruneResult, error) {
	ctx := c.Context
	m, err := op.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	decisions := metasnap.PlanPrune(m.SnapshotMetadata, policy)
	ids := metasnap.PruneIDs(decisions)
	res := &pruneResult{Via: op.Path(), DryRun: c.Bool("dry-run"), Snapshots: newPruneDecisions(decisions), Deleted: []uint64{}, WouldDelete: ids, OrphansDeleted: []uint64{}}
	if len(ids) > 0 && !res.DryRun {
		if _, err := op.Delete(ctx, ids); err != nil {
			return nil, fmt.Errorf("prune: %w", err)
		}
		res.Deleted = ids
		slog.Info("pruned snapshots", "deleted", len(ids), "kept", len(decisions)-len(ids), "path", op.Path())
	}
	if c.Bool("orphans") {
		orphans, err := metasnap.DeleteOrphans(ctx, st, c.Duration("orphans-min-age"), res.DryRun)
		if err != nil {
			return nil, err
		}
		res.OrphansDeleted = append(res.OrphansDeleted, orphans...)
	}
	var without []uint64
	if res.DryRun {
		without = ids
	}
	if res.DataGC, err = dataGC(ctx, c, st, res.DryRun, without); err != nil {
		return res, err
	}
	return res, nil
}
