package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/internal/progress"
	"github.com/rwsnap/rwsnap/metaclient"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/output"
)

func metaCommand() *cli.Command {
	return &cli.Command{
		Name:  "meta",
		Usage: "meta snapshots: backup, list, verify, delete, restore (risectl meta's commands; through the meta node while one runs, directly otherwise)",
		Description: `risectl meta's commands, from outside the cluster: they read and write the
backup location (and etcd) directly, or go through the live meta node where it
caches the manifest.

Examples:
  rwsnap meta backup-meta --etcd-endpoints 127.0.0.1:2379 --remarks "before upgrade"
  rwsnap meta list-meta-snapshots --etcd-endpoints 127.0.0.1:2379
  rwsnap meta verify-meta-snapshot --all --check-ssts --cluster prod`,
		Subcommands: append([]*cli.Command{
			backupMetaCommand(),
			backupDataCommand(),
			listCommand(),
			verifyCommand(),
			deleteCommand(),
			restoreCommand(),
			pruneCommand(),
			copyCommand(),
		}, inspectCommands()...),
	}
}

func backupMetaCommand() *cli.Command {
	return &cli.Command{
		Name:  "backup-meta",
		Usage: "take a consistent meta snapshot (one etcd revision) and store it in RisingWave's format",
		Description: `Reads the hummock checkpoint and the whole meta store at one etcd revision,
replays the hummock version deltas, and writes <dir>/<id>.snapshot, then adds the
snapshot to <dir>/manifest.json with compare-and-swap. The snapshot id comes from
RisingWave's own backup id generator, so it never collides with the meta node's.

Locations default to the cluster's system params (backup_storage_url,
backup_storage_directory, state_store, data_directory); flags override them.

From etcd 3.7 on, the revision is read by streamed ranges while etcd holds less
than 1.5 GiB of data. From a larger one, or from an older etcd whose ranges are
paged (slow on large stores), it is read from etcd's own snapshot stream
(Maintenance.Snapshot, the bbolt database) when the etcd user may take
snapshots (the root role, or no auth). The snapshot is spooled to an
unlinked file in $TMPDIR, which needs free space of about 1.5 times etcd's
database size; when that space, or the permission, is missing, ranges are
used. --log-level debug says which path was taken; RWSNAP_ETCD_READ=snapshot
(or range) forces one.

The RisingWave release (v1.0 through v2.0.7) is recognised from the meta store
(system params, column families, hummock delta kinds, the manifest's rw_version)
and its rules are followed: the snapshot layout (v1.8 subscriptions, v2.0
secrets) and the delta replay (v1.9 and v1.10 change logs, v1.10 watermarks and
compaction). If several releases fit and their rules disagree, or --rw-version
contradicts the store, nothing is stored and the error says what the store
shows. A v2.0 snapshot holds the secrets as ciphertext under the meta node's
secret-store key (RW_SECRET_STORE_PRIVATE_KEY_HEX), which is not in the
snapshot: keep it separately, a restored cluster needs the same key.

While a meta leader is live (its election lease in etcd) and the target is the
cluster's own backup location, the meta node caches that manifest and would
overwrite a direct write, so rwsnap asks the meta node to take the backup, as
'risectl meta backup-meta' does (gRPC on --meta-addr / RW_META_ADDR, default the
leader's address in etcd), and polls the job every second. --mode direct refuses
that location then; --force writes directly anyway (when you know the meta node is
stopped although its lease has not expired). Another location is written directly,
with a warning that the cluster does not pin its SSTs.

Examples:
  rwsnap meta backup-meta --etcd-endpoints 127.0.0.1:2379 --remarks "before upgrade"
  RW_META_ADDR=http://meta:5690 rwsnap meta backup-meta --etcd-endpoints etcd:2379 --mode meta`,
		Flags: withFlags(etcdFlags(), locationFlags(), metaNodeFlags(), []cli.Flag{
			&cli.StringFlag{Name: "remarks", Usage: "free text stored with the snapshot (shown by list and rw_meta_snapshot); RisingWave v1.6+ only: refused with --rw-version before 1.6, and a warning says when an older meta node dropped it", EnvVars: env("remarks")},
			&cli.BoolFlag{Name: "force", Usage: "write even to a live cluster's own location, or when more than 100 snapshots exist (RisingWave's cap)", EnvVars: env("force")},
			dryRunFlag("choose the path and check the location and the cap, print what would be taken"),
			withDataFlag(),
			outputFlag(),
		}, dataFlags()),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("backup-meta takes no arguments, got %q", c.Args().Slice())
			}
			if err := checkDataFlags(c); err != nil {
				return err
			}
			ctx := c.Context
			cl, target, err := openLocation(ctx, c, true)
			if err != nil {
				return err
			}
			defer cl.Close()
			target.MayBeNew = true // a first backup creates the manifest, as RisingWave's does
			ch, err := operatorFor(ctx, c, cl, target, metaclient.UseBackup)
			if err != nil {
				return err
			}
			defer ch.Close()
			if c.Bool("dry-run") {
				if c.Bool("with-data") {
					if err := dataDryRunCheck(ctx, c, cl, target); err != nil {
						return err
					}
				}
				return backupDryRun(c, ch)
			}
			var afterData func(context.Context, metasnap.SnapshotMetadata) (*dataResult, error)
			if c.Bool("with-data") {
				var closeData func()
				if afterData, closeData, err = withDataBackup(ctx, c, cl, target, ch, nil, nil); err != nil {
					return err
				}
				defer closeData()
			}
			slog.Info("backing up", "etcd", c.String("etcd-endpoints"), "to", target.String(), "path", ch.Path, "via", ch.Operator.Path())
			res, err := ch.Backup(ctx, c.String("remarks"))
			if err != nil {
				return err
			}
			var dataErr error
			var data *dataResult
			if afterData != nil {
				data, dataErr = afterData(ctx, res.Entry)
			}
			out := &backupResult{ID: res.Entry.ID, ManifestID: res.Manifest.ManifestID, Path: ch.Path, Via: ch.Operator.Path(),
				Bytes: res.Bytes, DurationSeconds: output.Seconds(res.Duration), duration: res.Duration,
				Pinned: ch.Path == string(metaclient.ModeMeta) || cl.loc.OwnLocation, Snapshot: newSnapshotInfo(res.Entry)}
			if ch.Path != string(metaclient.ModeMeta) { // the meta node does not report its read
				out.Revision, out.Keys = &res.Revision, &res.Keys
			}
			out.Data, out.Warnings = data, res.Warnings
			if err := print(c, out); err != nil {
				return err
			}
			return dataErr
		},
	}
}

func listCommand() *cli.Command {
	return &cli.Command{
		Name:  "list-meta-snapshots",
		Usage: "list the snapshots in the backup location's manifest",
		Description: `Reads <dir>/manifest.json (RisingWave's index of snapshots; objects it does not
name are invisible to RisingWave) and prints one row per snapshot with its epoch
range as times: a time-travel query (SET QUERY_EPOCH) can read any epoch in it.

While a meta leader is live and the location is the cluster's own, the list is
the meta node's cached manifest (what it pins and will write next; --mode auto),
with each snapshot's SST list taken from manifest.json; if the meta node does
not answer, manifest.json is read directly, with a warning.

Examples:
  rwsnap meta list-meta-snapshots --etcd-endpoints 127.0.0.1:2379
  rwsnap meta list-meta-snapshots --backup-storage-url s3://bkp --backup-storage-directory backup -o json`,
		Flags: withFlags(etcdFlags(), locationFlags(), metaNodeFlags(), []cli.Flag{mayBeNewFlag(), outputFlag()}, dataFlags()[:2]),
		Action: func(c *cli.Context) error {
			ctx := c.Context
			cl, st, err := openLocation(ctx, c, false)
			if err != nil {
				return err
			}
			defer cl.Close()
			ch, err := operatorFor(ctx, c, cl, st, metaclient.UseRead)
			if err != nil {
				return err
			}
			defer ch.Close()
			m, err := ch.Manifest(ctx)
			if err != nil {
				return err
			}
			lr := newListResult(m, ch.Path, ch.Operator.Path())
			states, err := dataStates(ctx, c, st, m)
			if err != nil {
				return err
			}
			for i := range lr.Snapshots {
				lr.Snapshots[i].Data = states[lr.Snapshots[i].ID]
			}
			return print(c, lr)
		},
	}
}

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify-meta-snapshot",
		Usage:     "check snapshots end to end: manifest, object, checksum, decode, version, SSTs",
		ArgsUsage: "[ID...]",
		Description: `For each snapshot: the manifest entry parses, the object exists, its xxhash64
checksum matches, the payload decodes, the hummock version inside matches the
manifest entry (version id, epochs, pinned SST objects) and, with --check-ssts,
every SST object it pins exists in hummock storage. Also reports orphan snapshot
objects that no manifest entry names (left by interrupted runs).

Exits 1 if any snapshot fails.

Examples:
  rwsnap meta verify-meta-snapshot --all --etcd-endpoints 127.0.0.1:2379
  rwsnap meta verify-meta-snapshot 3 --check-ssts --backup-storage-url fs:///backups --backup-storage-directory backup`,
		Flags: withFlags(etcdFlags(), locationFlags(), []cli.Flag{
			&cli.BoolFlag{Name: "all", Usage: "verify every snapshot in the manifest"},
			&cli.BoolFlag{Name: "check-ssts", Usage: "also check that every pinned SST object exists (lists the data directory)"},
			&cli.BoolFlag{Name: "check-data", Category: catData, Usage: "also check the snapshots' data copy against its index: every referenced object there with its recorded size and checksum"},
			&cli.BoolFlag{Name: "read-data", Category: catData, Usage: "with --check-data: re-read and re-hash every byte of the data copy (restic's check --read-data)"},
			mayBeNewFlag(),
			outputFlag(),
		}, dataFlags()[:2]),
		Action: func(c *cli.Context) error {
			ids, err := idsOrAll(c)
			if err != nil {
				return err
			}
			ctx := c.Context
			cl, st, err := openLocation(ctx, c, false)
			if err != nil {
				return err
			}
			defer cl.Close()
			opts := metasnap.VerifyOptions{IDs: ids, CheckSSTs: c.Bool("check-ssts")}
			// --check-ssts looks where the user means: the given hummock
			// location, else the connected cluster's current one, else
			// the one each snapshot recorded.
			var sstLoc *sstLocation
			if opts.CheckSSTs {
				urlFlag := c.String("hummock-storage-url") != ""
				if urlFlag || (cl.etcd != nil && cl.loc.HummockURL != "") {
					hs, err := objstore.Open(ctx, cl.loc.HummockURL)
					if err != nil {
						return fmt.Errorf("open hummock storage: %w", err)
					}
					defer hs.Close()
					opts.Hummock, opts.DataDir = hs, cl.loc.DataDir
					sstLoc = &sstLocation{URL: objstore.Redact(cl.loc.HummockURL), Directory: cl.loc.DataDir, Source: "cluster"}
					if urlFlag {
						sstLoc.Source = "flags"
					}
				} else {
					opts.DataDir = c.String("hummock-storage-directory")
					sstLoc = &sstLocation{Directory: opts.DataDir, Source: "snapshot"}
				}
				slog.Info("checking SSTs", "in", sstLoc.URL, "data_directory", sstLoc.Directory, "source", sstLoc.Source)
			}
			if c.Bool("read-data") && !c.Bool("check-data") {
				return usagef("--read-data goes with --check-data")
			}
			rep, err := metasnap.Verify(ctx, st, opts)
			if err != nil {
				return err
			}
			vr := newVerifyResult(rep, sstLoc)
			if c.Bool("check-data") {
				if vr.Data, err = checkData(ctx, c, st, ids); err != nil {
					return err
				}
				vr.OK = vr.OK && vr.Data.ok()
			}
			if err := print(c, vr); err != nil {
				return err
			}
			if !vr.OK {
				return errors.New(vr.failure())
			}
			return nil
		},
	}
}

func deleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete-meta-snapshots",
		Usage:     "delete snapshots: manifest first, then their objects",
		ArgsUsage: "ID [ID...]",
		Description: `Removes the snapshots from manifest.json (compare-and-swap, so a concurrent
backup's entry is never lost), then deletes their objects. If any id is not in
the manifest nothing is changed. Their SSTs are no longer pinned: the cluster's
full GC may then reclaim them.

While a meta leader is live and the location is the cluster's own, the meta node
caches the manifest and would re-add what a direct delete removed, so rwsnap asks
the meta node to delete (as 'risectl meta delete-meta-snapshots' does; --mode auto).
Ids the meta node does not list are refused first, so nothing is deleted then.
--mode direct refuses that location while the leader is live, unless --force.

Example:
  rwsnap meta delete-meta-snapshots 3 4 --etcd-endpoints 127.0.0.1:2379`,
		Flags: withFlags(etcdFlags(), locationFlags(), metaNodeFlags(), []cli.Flag{
			&cli.GenericFlag{Name: "snapshot-ids", Value: &rawList{}, Usage: "the ids to delete, comma-separated with no spaces or empty entries, e.g. 3,4 (risectl v2.0's form, read as its clap does; repeatable; positional ids as in v1.x work too)", EnvVars: env("snapshot-ids")},
			&cli.BoolFlag{Name: "force", Usage: "delete directly even in a live cluster's own location (when you know its meta node is stopped)", EnvVars: env("force")},
			dryRunFlag("check that every id is in the manifest and print what would be deleted"),
			outputFlag(),
		}, dataFlags()[:2]),
		Action: func(c *cli.Context) error {
			raw, _ := c.Generic("snapshot-ids").(*rawList)
			var flagIDs []string
			if raw != nil {
				flagIDs = raw.vals
			}
			ids, err := parseIDs(append(c.Args().Slice(), flagIDs...))
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				return usagef("name the snapshot ids to delete (positional, or --snapshot-ids 3,4)")
			}
			ctx := c.Context
			cl, st, err := openLocation(ctx, c, false)
			if err != nil {
				return err
			}
			defer cl.Close()
			ch, err := operatorFor(ctx, c, cl, st, metaclient.UseWrite)
			if err != nil {
				return err
			}
			defer ch.Close()
			if c.Bool("dry-run") {
				return deleteDryRun(c, ch, ids, st)
			}
			m, err := ch.Delete(ctx, ids)
			if err != nil {
				return err
			}
			gc, gcErr := dataGC(ctx, c, st, false, nil)
			if err := print(c, &deleteResult{Deleted: ids, Remaining: m.IDs(), ManifestID: m.ManifestID, Path: ch.Path, Via: ch.Operator.Path(), DataGC: gc}); err != nil {
				return err
			}
			return gcErr
		},
	}
}

// idsOrAll reads the snapshot ids of a command that takes ids or --all,
// exactly one of the two.
func idsOrAll(c *cli.Context) ([]uint64, error) {
	ids, err := parseIDs(c.Args().Slice())
	switch {
	case err != nil:
		return nil, err
	case len(ids) == 0 && !c.Bool("all"):
		return nil, usagef("name snapshot ids or pass --all")
	case len(ids) > 0 && c.Bool("all"):
		return nil, usagef("give snapshot ids or --all, not both")
	}
	return ids, nil
}

func parseIDs(args []string) ([]uint64, error) {
	var ids []uint64
	for _, a := range args {
		// As risectl's clap (value_delimiter = ',', u64): split on commas
		// only, nothing trimmed, and every piece must be a u64 (Rust's
		// u64::from_str: an optional '+', then decimal digits).
		for _, f := range strings.Split(a, ",") {
			if f == "" {
				return nil, usagef("snapshot ids %q: an empty id (a doubled, leading or trailing comma); write ids as 3,4", a)
			}
			digits := strings.TrimPrefix(f, "+")
			id, err := strconv.ParseUint(digits, 10, 64)
			if digits != "" && strings.TrimLeft(digits, "0123456789") == "" && errors.Is(err, strconv.ErrRange) {
				return nil, usagef("snapshot id %q (in %q) is out of range: ids are u64s, at most %d", f, a, uint64(math.MaxUint64))
			}
			if err != nil || digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
				return nil, usagef("snapshot id %q (in %q) is not a number: ids are decimal u64s separated by commas, without spaces", f, a)
			}
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// rawList is a repeatable flag kept exactly as typed: urfave's StringSlice
// trims spaces around each piece (clap does not) and reads a value with
// its "sl:::" prefix as JSON.
type rawList struct{ vals []string }

func (r *rawList) Set(s string) error { r.vals = append(r.vals, s); return nil }
func (r *rawList) String() string     { return strings.Join(r.vals, ",") }

func humanBytes(n int) string { return progress.Bytes(int64(n)) }
