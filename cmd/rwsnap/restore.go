package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/datacopy"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/output"
	"github.com/rwsnap/rwsnap/restore"
)

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "restore-meta",
		Usage: "restore a meta snapshot into a fresh, empty etcd (risectl meta restore-meta's flags)",
		Description: `Rebuilds a lost meta store. Everything is checked before the first write:
the snapshot's checksum and decode, the id generators of the newest snapshot
(RisingWave's rule: the restored cluster takes its id generators, SST object
ids among them, from the newest snapshot so that it never reuses an id; if the
newest cannot be read, --id-generators-from-snapshot N takes them from snapshot
N instead, with a warning naming what may be reused), the
target etcd (empty across the whole keyspace, no live meta node), and the hummock
location (it must be the snapshot's state_store and data_directory unless the
three --overwrite-* flags move the cluster). --validate-integrity also checks
that every SST object the snapshot pins is there.

Then it claims the target: a marker key naming this restore (id, host, pid,
start, snapshot), taken by compare-and-swap before any other write, so of two
restores into one etcd exactly one proceeds and the other stops, having written
nothing, with an error naming the one in progress. It writes every model in
batched transactions (each conditional on still owning the target), the hummock
checkpoint <hummock dir>/checkpoint/0, cf/cluster_id, reads everything back, and
only then removes the marker. Interrupted at any point, read-back included, the
same command (same snapshot, same options) resumes and completes it; a different
restore is refused on a half-restored target.
An existing checkpoint at the hummock location is saved under
<backup dir>/replaced-checkpoints/ before it is replaced.

Stop every meta node first; start it on the restored etcd afterwards.

RisingWave releases: v1.0 through v2.0.7. A v2.0 snapshot's secrets are restored
to cf/catalog_secret; their values are ciphertext under the meta node's
secret-store key (RW_SECRET_STORE_PRIVATE_KEY_HEX), which is not in any snapshot
and must travel separately: start the restored meta node with the same key.
--rw-version names the release the restored cluster runs (a line such as 1.10, or
a release v1.0.0 to v2.0.7); a snapshot written by a newer release is refused
before any write, dry runs included (exit 2: no downgrades). Format-2 entries (SQL meta stores,
RisingWave 2.x) are refused before any write: restore them with that release's
risectl into a SQL meta store. Every risectl restore-meta flag of v1.0-v2.0 is
accepted (--hummock-storage-dir, --sql-*, --read-attempt-timeout-ms,
--read-retry-attempts).

Example (the upstream test's invocation):
  rwsnap meta restore-meta --meta-store-type etcd --meta-snapshot-id 7 \
    --etcd-endpoints 127.0.0.1:2388 \
    --backup-storage-url minio://hummockadmin:hummockadmin@127.0.0.1:9301/hummock001 \
    --hummock-storage-url minio://hummockadmin:hummockadmin@127.0.0.1:9301/hummock001`,
		Flags: withFlags(etcdFlags(), []cli.Flag{
			&cli.Uint64Flag{Name: "meta-snapshot-id", Usage: "the snapshot to restore; required", EnvVars: env("meta-snapshot-id")},
			&cli.StringFlag{Name: "meta-store-type", Value: "etcd", Usage: "only etcd is supported (RisingWave v1.x)", EnvVars: env("meta-store-type")},
			&cli.StringFlag{Name: "backup-storage-url", Category: catStorage, Usage: "where the snapshots are (required)", EnvVars: env("backup-storage-url")},
			&cli.StringFlag{Name: "backup-storage-directory", Category: catStorage, Value: restore.DefaultBackupDir, Usage: "directory of the snapshots", EnvVars: env("backup-storage-directory")},
			&cli.StringFlag{Name: "hummock-storage-url", Category: catStorage, Usage: "the state store, without 'hummock+' (required)", EnvVars: env("hummock-storage-url")},
			&cli.StringFlag{Name: "hummock-storage-directory", Aliases: []string{"hummock-storage-dir"}, Category: catStorage, Value: restore.DefaultHummockDir, Usage: "the state store's data directory (--hummock-storage-dir in risectl v1.0-v1.2)", EnvVars: env("hummock-storage-directory")},
			rwVersionFlag(),
			&cli.BoolFlag{Name: "overwrite-hummock-storage-endpoint", Category: catStorage, Usage: "move the cluster: set state_store and data_directory to the --hummock-storage-* flags", EnvVars: env("overwrite-hummock-storage-endpoint")},
			&cli.StringFlag{Name: "overwrite-backup-storage-url", Category: catStorage, Usage: "with --overwrite-hummock-storage-endpoint: the restored cluster's backup_storage_url", EnvVars: env("overwrite-backup-storage-url")},
			&cli.StringFlag{Name: "overwrite-backup-storage-directory", Category: catStorage, Usage: "with --overwrite-hummock-storage-endpoint: the restored cluster's backup_storage_directory", EnvVars: env("overwrite-backup-storage-directory")},
			&cli.BoolFlag{Name: "validate-integrity", Usage: "check that every SST object the snapshot pins exists at the hummock location", EnvVars: env("validate-integrity")},
			&cli.BoolFlag{Name: "copy-ssts", Category: catStorage, Usage: "first copy the SST objects the snapshot pins from its own hummock location to --hummock-storage-* (skips objects already there); for rebuilding in another bucket or region", EnvVars: env("copy-ssts")},
			&cli.Uint64Flag{Name: "id-generators-from-snapshot", Usage: "take the id generators from snapshot `N` instead of the newest (RisingWave's rule), when the newest cannot be read; ids handed out after N may be reused (a warning says which snapshots' SSTs are at risk)", EnvVars: env("id-generators-from-snapshot")},
			&cli.BoolFlag{Name: "from-backup-data", Category: catData, Usage: "rebuild the hummock location at --hummock-storage-* from the snapshot's data copy (backup-data / --with-data), verifying every checksum; works when the original bucket is gone; moves the cluster there", EnvVars: env("from-backup-data")},
			&cli.StringFlag{Name: "data-storage-url", Category: catData, Usage: "with --from-backup-data: where the data copy is (default: the backup location)", EnvVars: env("data-storage-url")},
			&cli.StringFlag{Name: "data-storage-directory", Category: catData, Usage: "with --from-backup-data: the data copy's directory (default: <backup directory>/data)", EnvVars: env("data-storage-directory")},
			&cli.IntFlag{Name: "data-parallelism", Category: catData, Value: datacopy.DefaultParallelism, Usage: fmt.Sprintf("with --from-backup-data: objects copied at once, 1 to %d (server-side copies and copies into fs:// run %d times as many)", datacopy.MaxParallelism, datacopy.ServerCopyFactor), EnvVars: env("data-parallelism")},
			&cli.BoolFlag{Name: "overwrite-existing-ssts", Category: catStorage, Usage: "with --copy-ssts or --from-backup-data: replace an object at the destination whose content differs (refused otherwise: it is another cluster's data)", EnvVars: env("overwrite-existing-ssts")},
			dryRunFlag("check everything and print the plan"),
			outputFlag(),
		}, risectlRestoreFlags()),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("restore-meta takes no arguments (the id goes in --meta-snapshot-id), got %q", c.Args().Slice())
			}
			if err := checkDataFlags(c); err != nil {
				return err
			}
			ec, err := etcdConfig(c)
			if err != nil {
				return err
			}
			rwv, err := rwVersionFrom(c)
			if err != nil {
				return err
			}
			readTimeout, readRetries := readRetry(c)
			o := restore.Options{
				RWVersion:                rwv,
				ReadAttemptTimeout:       readTimeout,
				ReadRetryAttempts:        readRetries,
				SnapshotID:               c.Uint64("meta-snapshot-id"),
				MetaStoreType:            c.String("meta-store-type"),
				Etcd:                     ec,
				BackupURL:                c.String("backup-storage-url"),
				BackupDir:                c.String("backup-storage-directory"),
				HummockURL:               c.String("hummock-storage-url"),
				HummockDir:               c.String("hummock-storage-directory"),
				DryRun:                   c.Bool("dry-run"),
				OverwriteHummockEndpoint: c.Bool("overwrite-hummock-storage-endpoint"),
				OverwriteBackupURL:       c.String("overwrite-backup-storage-url"),
				OverwriteBackupDir:       c.String("overwrite-backup-storage-directory"),
				ValidateIntegrity:        c.Bool("validate-integrity"),
				CopySSTs:                 c.Bool("copy-ssts"),
				OverwriteSSTs:            c.Bool("overwrite-existing-ssts"),
				FromBackupData:           c.Bool("from-backup-data"),
				DataURL:                  c.String("data-storage-url"),
				DataDir:                  c.String("data-storage-directory"),
				DataParallelism:          c.Int("data-parallelism"),
				IDGeneratorsFrom:         c.Uint64("id-generators-from-snapshot"),
				Logger:                   slog.Default(),
			}
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			// The plan is shown before the first write, not only after
			// success (on stderr with -o json, whose stdout is the result).
			// With JSON logs too, stderr holds only JSON records: the plan
			// is one record.
			planShown := false
			jsonLog := format(c) == output.JSON && lookup(c, "log-format", str) == "json"
			o.OnPlan = func(r *restore.Result) {
				planShown = true
				if jsonLog {
					logRestorePlan(c.Context, r)
					return
				}
				w := c.App.Writer
				if format(c) == output.JSON {
					w = c.App.ErrWriter
				}
				describeRestorePlan(w, r, false)
			}
			// Whether it starts afresh or completes an interrupted restore
			// is said once the target is this restore's.
			o.OnClaim = func(r *restore.Result) {
				if jsonLog {
					msg := "every check passed: writing"
					if r.Resumed {
						msg = "resuming an interrupted restore: writing"
					}
					alwaysLog(c.Context, msg, slog.Uint64("snapshot_id", r.Plan.SnapshotID), slog.Bool("resumed", r.Resumed))
					return
				}
				w := c.App.Writer
				if format(c) == output.JSON {
					w = c.App.ErrWriter
				}
				if r.Resumed {
					fmt.Fprintf(w, "resuming an interrupted restore of snapshot %d: writing...\n", r.Plan.SnapshotID)
				} else {
					fmt.Fprintln(w, "every check passed: writing...")
				}
			}
			res, err := restore.Restore(c.Context, o)
			if err != nil {
				return err
			}
			out := &restoreResult{SnapshotID: res.Plan.SnapshotID, DefaultCFFrom: res.Plan.DefaultCFFrom, HummockVersionID: res.Plan.HummockVersionID,
				Keys: res.Plan.Keys(), Bytes: res.Plan.Bytes(), DryRun: o.DryRun, Resumed: res.Resumed, Written: res.Written,
				ParamChanges: []paramChange{}, SSTsCopied: res.Copy.Copied, Warning: res.Warning, ReplacedCheckpoint: res.Replaced, DurationSeconds: output.Seconds(res.Duration)}
			if res.Data != nil {
				out.DataObjects, out.DataCopied = &res.Data.Objects, &res.Data.Copied
			}
			for _, pc := range res.Plan.ParamChanges {
				out.ParamChanges = append(out.ParamChanges, paramChange{Name: pc.Name, Before: objstore.RedactText(pc.Before), After: objstore.RedactText(pc.After)})
			}
			out.ExistingCheckpoint, out.CheckpointSavedIn = res.ExistingCheckpoint, res.CheckpointSavedIn
			out.table = func(w io.Writer) error {
				if o.DryRun {
					describeRestorePlan(w, res, true)
					return nil
				}
				if !planShown {
					res.Plan.Describe(w)
				}
				if o.CopySSTs {
					fmt.Fprintf(w, "SSTs: %d pinned, %d copied (%s), %d already there\n", res.Copy.Objects, res.Copy.Copied, humanBytes(int(res.Copy.Bytes)), res.Copy.Skipped)
				}
				if res.Data != nil {
					fmt.Fprintf(w, "data: %d objects from the data copy, %d copied (%d server side, %s), %d already there, every MD5 checked\n", res.Data.Objects, res.Data.Copied, res.Data.ServerSide, humanBytes(int(res.Data.Bytes)), res.Data.Skipped)
				}
				if res.Replaced != "" {
					fmt.Fprintf(w, "the previous checkpoint was saved to %s\n", res.Replaced)
				}
				_, err := fmt.Fprintf(w, "restore succeeded: snapshot %d, %d keys written and read back, %s\n", res.Plan.SnapshotID, res.Plan.Keys(), res.Duration.Round(time.Millisecond))
				return err
			}
			return print(c, out)
		},
	}
}

// describeRestorePlan says what a restore will do (dry: would do): the
// plan and the checkpoint it replaces and where that is kept, and for a
// dry run whether a real run would start afresh or complete an interrupted
// restore (a real run says so once it owns the target: OnClaim).
// logRestorePlan logs the plan describeRestorePlan prints as one record,
// its fields as attributes, secrets redacted as in the text.
func logRestorePlan(ctx context.Context, r *restore.Result) {
	p := r.Plan
	type group struct {
		Kind string `json:"kind"`
		Keys int    `json:"keys"`
	}
	groups := make([]group, 0, len(p.Groups))
	for _, g := range p.Groups {
		groups = append(groups, group{g.Kind, g.N})
	}
	params := make([]paramChange, 0, len(p.ParamChanges))
	for _, pc := range p.ParamChanges {
		params = append(params, paramChange{Name: pc.Name, Before: objstore.RedactText(pc.Before), After: objstore.RedactText(pc.After)})
	}
	attrs := []slog.Attr{slog.Uint64("snapshot_id", p.SnapshotID), slog.Uint64("hummock_version_id", p.HummockVersionID),
		slog.Uint64("id_generators_from", p.DefaultCFFrom), slog.Int("keys", p.Keys()), slog.Int("bytes", p.Bytes()),
		slog.Any("groups", groups), slog.Any("param_changes", params),
		slog.String("hummock_checkpoint", p.CheckpointKey()), slog.String("hummock_storage_url", objstore.Redact(p.HummockURL))}
	if r.ExistingCheckpoint != "" {
		attrs = append(attrs, slog.String("existing_checkpoint", r.ExistingCheckpoint), slog.String("checkpoint_saved_in", r.CheckpointSavedIn))
	}
	alwaysLog(ctx, "restore plan", attrs...)
}

// alwaysLog logs at info whatever the level: what the text output prints
// whatever -q says (the plan before the first write) stays shown.
func alwaysLog(ctx context.Context, msg string, attrs ...slog.Attr) {
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0)
	rec.AddAttrs(attrs...)
	_ = slog.Default().Handler().Handle(ctx, rec)
}

func describeRestorePlan(w io.Writer, r *restore.Result, dry bool) {
	r.Plan.Describe(w)
	will := "will"
	if dry {
		will = "would"
	}
	if r.ExistingCheckpoint != "" {
		fmt.Fprintf(w, "  an existing hummock checkpoint, %s, %s be replaced (unless identical) after being saved in %s\n", r.ExistingCheckpoint, will, r.CheckpointSavedIn)
	}
	switch {
	case dry && r.Resumed:
		fmt.Fprintf(w, "dry run: the target etcd holds an interrupted restore of this same snapshot (its %s marker): a real run resumes and completes it; every check passed; nothing was written\n", restore.MarkerKey)
	case dry:
		fmt.Fprintln(w, "dry run: the target etcd is empty and every check passed; nothing was written")
	}
}
