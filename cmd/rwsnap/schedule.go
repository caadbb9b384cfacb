package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/metaclient"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/report"
	"github.com/rwsnap/rwsnap/rwversion"
	"github.com/rwsnap/rwsnap/schedule"
)

func scheduleCommand() *cli.Command {
	return &cli.Command{
		Name:  "schedule",
		Usage: "take snapshots on a schedule, prune them, and expose Prometheus metrics",
		Description: `A daemon (or, with --once, a single run for cron, a Kubernetes CronJob or an
Airflow task) that takes a meta snapshot every --every (plus up to --jitter),
applies the --keep-* retention rules after each, and never runs two jobs at once:
a run that finds the previous job still going is skipped and logged. A failed
job is retried --retries times with exponential backoff. SIGTERM/Ctrl-C lets the
running job finish (up to --stop-timeout), then stops; the manifest is never left
torn. Each job goes through the live meta node or directly, chosen afresh (see
--mode), since a meta node may start or stop between runs.

The backup report (rwsnap meta report) on --metrics-addr at /, rebuilt after
every job. Metrics on --metrics-addr: /metrics (rwsnap_backup_last_success_timestamp_seconds,
rwsnap_backup_duration_seconds, rwsnap_backup_bytes, rwsnap_backup_failures_total,
rwsnap_snapshots, ...) and /healthz (503 when no backup succeeded within 3 x --every).

Examples:
  rwsnap schedule --every 1h --jitter 5m --keep-last 24 --keep-daily 7 --metrics-addr :9464 --etcd-endpoints 127.0.0.1:2379
  rwsnap schedule --once --keep-daily 14 --etcd-endpoints 127.0.0.1:2379      # from cron`,
		Flags: withFlags(etcdFlags(), locationFlags(), metaNodeFlags(), pruneFlags(), []cli.Flag{
			&cli.DurationFlag{Name: "every", Usage: "interval between snapshots, e.g. 1h (required unless --once)", EnvVars: env("every")},
			&cli.DurationFlag{Name: "jitter", Usage: "random extra delay up to this before each run", EnvVars: env("jitter")},
			&cli.BoolFlag{Name: "once", Usage: "take one snapshot (with retries), prune, and exit with its status", EnvVars: env("once")},
			&cli.IntFlag{Name: "retries", Value: 3, Usage: "retries of a failed job", EnvVars: env("retries")},
			&cli.DurationFlag{Name: "retry-backoff", Value: 10 * time.Second, Usage: "wait before the first retry; doubles each time", EnvVars: env("retry-backoff")},
			&cli.DurationFlag{Name: "stop-timeout", Value: time.Minute, Usage: "on SIGTERM, how long the running job may finish before it is cancelled", EnvVars: env("stop-timeout")},
			&cli.DurationFlag{Name: "job-timeout", Value: schedule.DefaultJobTimeout, Usage: "bound on each attempt of a job: a hung store or meta node fails that attempt (then retried), and later jobs still run", EnvVars: env("job-timeout")},
			&cli.StringFlag{Name: "metrics-addr", Usage: "serve /metrics, /healthz and the backup report at / here, e.g. :9464 or 127.0.0.1:9464", EnvVars: env("metrics-addr")},
			&cli.IntFlag{Name: "max-jobs", Usage: "stop after this many scheduled runs (0: never)", EnvVars: env("max-jobs")},
			&cli.StringFlag{Name: "remarks", Value: "scheduled by rwsnap", Usage: "remarks stored with each snapshot", EnvVars: env("remarks")},
			&cli.BoolFlag{Name: "force", Usage: "as for backup-meta", EnvVars: env("force")},
			withDataFlag(),
			dryRunFlag("each job chooses its path, reads the manifest and logs what it would take and prune"),
			outputFlag(),
		}, dataFlags()),
		Action: runSchedule,
	}
}

func runSchedule(c *cli.Context) error {
	// schedule --config FILE without --cluster (or etcd flags): every
	// cluster of the file that has a schedule, from this one daemon.
	if _, explicit := configPath(c); explicit && lookup(c, "cluster", str) == "" && !c.IsSet("etcd-endpoints") {
		f, err := loadConfig(c)
		if err != nil {
			return err
		}
		if f != nil && len(f.Scheduled()) > 0 {
			return runFleet(c, f)
		}
	}
	return scheduleOne(c, schedule.NewMetrics(), "", true)
}

// scheduleOne is the daemon of one cluster; m is its metrics (a fleet
// member's view), cluster its name in a fleet ("" alone), serve says
// whether it serves the metrics itself.
func scheduleOne(c *cli.Context, m *schedule.Metrics, cluster string, serve bool) error {
	log := slog.Default()
	if cluster != "" {
		log = log.With("cluster", cluster)
	}
	policy := prunePolicy(c)
	prune := policy != (metasnap.PrunePolicy{})
	if prune {
		if err := policy.Validate(); err != nil {
			return usageError{err}
		}
	}
	if err := checkDataFlags(c); err != nil {
		return err
	}
	if !c.Bool("once") && c.Duration("every") <= 0 {
		return usagef("--every is required (e.g. --every 1h), or use --once")
	}
	if j, e := c.Duration("jitter"), c.Duration("every"); !c.Bool("once") && j > e {
		return usagef("--jitter %s is longer than --every %s: runs would overlap and be skipped; use a jitter below the interval (e.g. --jitter %s)", j, e, e/10)
	}
	ctx := c.Context
	cl, st, err := openLocation(ctx, c, true)
	if err != nil {
		return err
	}
	defer cl.Close()
	st.MayBeNew = true // the first job creates the manifest
	hs, err := objstore.Open(ctx, cl.loc.HummockURL)
	if err != nil {
		return fmt.Errorf("open hummock storage: %w", err)
	}
	defer hs.Close()
	var page *report.Page // the backup report at /, rebuilt after every job
	if addr := c.String("metrics-addr"); addr != "" && serve {
		maxAge := 3 * c.Duration("every")
		if maxAge == 0 {
			maxAge = time.Hour
		}
		var keep metasnap.PrunePolicy
		if prune {
			keep = policy
		}
		page = schedulePage(ctx, st, report.Options{Policy: keep, Hummock: hs, DataDir: cl.loc.DataDir})
		bound, err := schedule.Serve(ctx, addr, m, maxAge, schedule.Route{Pattern: "/", Handler: page})
		if err != nil {
			return err
		}
		slog.Info("serving metrics", "addr", bound.String(), "paths", "/metrics /healthz / (backup report)")
	}
	log.Info("scheduler started", "every", c.Duration("every"), "jitter", c.Duration("jitter"), "retention", prune)
	remarks := c.String("remarks")
	if cl.pin != nil && !rwversion.For(cl.pin.Line).Manifest.Remarks && !c.IsSet("remarks") {
		remarks = "" // the default remark; the release stores none (before v1.6)
	}
	job := func(ctx context.Context) (schedule.Result, error) {
		// Chosen per job: a meta node may start or stop between runs.
		op, err := operatorFor(ctx, c, cl, st, metaclient.UseBackup, hs)
		if err != nil {
			return schedule.Result{}, err
		}
		defer op.Close()
		if c.Bool("dry-run") {
			if c.Bool("with-data") {
				if err := dataDryRunCheck(ctx, c, cl, st); err != nil {
					return schedule.Result{}, err
				}
			}
			return scheduleDryRun(ctx, op, policy, prune)
		}
		var afterData func(context.Context, metasnap.SnapshotMetadata) (*dataResult, error)
		if c.Bool("with-data") {
			var closeData func()
			if afterData, closeData, err = withDataBackup(ctx, c, cl, st, op, hs, m); err != nil {
				return schedule.Result{}, err
			}
			defer closeData()
		}
		res, err := op.Backup(ctx, remarks)
		if err != nil {
			return schedule.Result{}, err
		}
		out := schedule.Result{SnapshotID: res.Entry.ID, Bytes: res.Bytes, Snapshots: len(res.Manifest.SnapshotMetadata)}
		if afterData != nil {
			if _, err := afterData(ctx, res.Entry); err != nil {
				return out, err
			}
		}
		if prune {
			ds := metasnap.PlanPrune(res.Manifest.SnapshotMetadata, policy)
			if ids := metasnap.PruneIDs(ds); len(ids) > 0 {
				m, err := op.Delete(ctx, ids)
				if err != nil {
					return out, fmt.Errorf("snapshot %d taken, but prune failed: %w", res.Entry.ID, err)
				}
				out.Pruned, out.Snapshots = len(ids), len(m.SnapshotMetadata)
				if c.Bool("with-data") {
					if _, err := dataGC(ctx, c, st, false, nil); err != nil {
						return out, err
					}
				}
			}
		}
		return out, nil
	}
	return schedule.Run(ctx, schedule.Config{
		Every: c.Duration("every"), Jitter: c.Duration("jitter"), Once: c.Bool("once"),
		Retries: c.Int("retries"), Backoff: c.Duration("retry-backoff"), StopTimeout: c.Duration("stop-timeout"),
		JobTimeout: c.Duration("job-timeout"), MaxJobs: c.Int("max-jobs"), Metrics: m, Logger: log,
		Done: func(r schedule.Report) {
			refreshPage(ctx, page)
			if err := print(c, newScheduleRun(r, cluster)); err != nil {
				slog.Warn("cannot print the result line", "err", err)
			}
		},
	}, job)
}

// scheduleDryRun is one job of schedule --dry-run: what it would take and
// prune, logged; nothing written.
func scheduleDryRun(ctx context.Context, op *metaclient.Choice, policy metasnap.PrunePolicy, prune bool) (schedule.Result, error) {
	m, err := op.Manifest(ctx)
	if err != nil {
		return schedule.Result{}, err
	}
	var ids []uint64
	if prune {
		// Planned on the current manifest: the snapshot the job would take
		// is not in it yet.
		ids = metasnap.PruneIDs(metasnap.PlanPrune(m.SnapshotMetadata, policy))
	}
	slog.Info("dry run: would take a snapshot and prune; nothing written", "path", op.Path, "via", op.Operator.Path(),
		"snapshots", len(m.SnapshotMetadata), "would_prune", metasnap.FormatIDs(ids))
	return schedule.Result{Snapshots: len(m.SnapshotMetadata)}, nil
}
