package main

import (
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

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
--orphans-min-age (a younger one may belong to a backup still running).

While a meta node is live and the location is the cluster's own, the deletions
go through it (it caches the manifest), as for delete-meta-snapshots; see --mode.

Examples:
  rwsnap meta prune --keep-last 3 --keep-daily 7 --keep-weekly 4 --etcd-endpoints 127.0.0.1:2379 --dry-run
  rwsnap meta prune --keep-within 72h --orphans --backup-storage-url s3://bkp --backup-storage-directory backup`,
		Flags: withFlags(etcdFlags(), locationFlags(), metaNodeFlags(), pruneFlags(), []cli.Flag{
			dryRunFlag("print the verdicts"),
			&cli.BoolFlag{Name: "orphans", Usage: "also delete snapshot objects not in the manifest"},
			mayBeNewFlag(),
			&cli.DurationFlag{Name: "orphans-min-age", Value: metasnap.DefaultOrphanMinAge, Usage: "only orphans older than this"},
			outputFlag(),
		}),
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
			op, err := operatorFor(ctx, c, cl, st, metaclient.UseWrite)
			if err != nil {
				return err
			}
			defer op.Close()
			res, err := runPrune(c, op.Operator, st, policy)
			if err != nil {
				return err
			}
			if c.String("output") == "json" {
				return writeJSON(c.App.Writer, res)
			}
			printPrune(c.App.Writer, res)
			return nil
		},
	}
}

// pruneResult is what prune decided and did.
type pruneResult struct {
	Path      string                   `json:"path"`
	DryRun    bool                     `json:"dry_run"`
	Decisions []metasnap.PruneDecision `json:"snapshots"`
	Deleted   []uint64                 `json:"deleted"`
	Orphans   []uint64                 `json:"orphans_deleted"`
}

func runPrune(c *cli.Context, op metasnap.Operator, st *metasnap.Storage, policy metasnap.PrunePolicy) (*pruneResult, error) {
	ctx := c.Context
	m, err := op.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	res := &pruneResult{Path: op.Path(), DryRun: c.Bool("dry-run"), Decisions: metasnap.PlanPrune(m.SnapshotMetadata, policy), Deleted: []uint64{}, Orphans: []uint64{}}
	ids := metasnap.PruneIDs(res.Decisions)
	if len(ids) > 0 && !res.DryRun {
		if _, err := op.Delete(ctx, ids); err != nil {
			return nil, fmt.Errorf("prune: %w", err)
		}
		res.Deleted = ids
		slog.Info("pruned snapshots", "deleted", len(ids), "kept", len(res.Decisions)-len(ids), "path", op.Path())
	}
	if c.Bool("orphans") {
		orphans, err := metasnap.DeleteOrphans(ctx, st, c.Duration("orphans-min-age"), res.DryRun)
		if err != nil {
			return nil, err
		}
		res.Orphans = append(res.Orphans, orphans...)
	}
	return res, nil
}

func printPrune(w interface{ Write([]byte) (int, error) }, res *pruneResult) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME (UTC)\tVERDICT\tKEPT BY")
	for _, d := range res.Decisions {
		verdict := "delete"
		if d.Keep {
			verdict = "keep"
		} else if res.DryRun {
			verdict = "would delete"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", d.ID, d.Time.Format(time.DateTime), verdict, strings.Join(d.Reasons, ", "))
	}
	tw.Flush()
	deleted := len(metasnap.PruneIDs(res.Decisions))
	if res.DryRun {
		fmt.Fprintf(w, "dry run: %d of %d snapshots would be deleted", deleted, len(res.Decisions))
	} else {
		fmt.Fprintf(w, "%d of %d snapshots deleted", len(res.Deleted), len(res.Decisions))
	}
	if len(res.Orphans) > 0 {
		fmt.Fprintf(w, "; orphan objects %v", res.Orphans)
	}
	fmt.Fprintf(w, " (%s)\n", res.Path)
}
