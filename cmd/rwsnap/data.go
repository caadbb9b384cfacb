package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/datacopy"
	"github.com/rwsnap/rwsnap/internal/progress"
	"github.com/rwsnap/rwsnap/metaclient"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/schedule"
)

const catData = "data copy (SST objects)"

// dataFlags choose the data copy of a backup location.
func dataFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "data-storage-url", Category: catData, Usage: "where the copies of the snapshots' SST objects live, RisingWave URL syntax (default: the backup location itself)", EnvVars: env("data-storage-url")},
		&cli.StringFlag{Name: "data-storage-directory", Category: catData, Usage: "directory of the data copy (default: <backup directory>/" + datacopy.DefaultSubdir + ")", EnvVars: env("data-storage-directory")},
		&cli.IntFlag{Name: "data-parallelism", Category: catData, Value: datacopy.DefaultParallelism, Usage: fmt.Sprintf("objects copied at once, 1 to %d (each streamed copy to S3 holds at most a few S3 parts in memory); server-side copies on one S3 endpoint and copies into a local directory (fs://) run %d times as many", datacopy.MaxParallelism, datacopy.ServerCopyFactor), EnvVars: env("data-parallelism")},
	}
}

// checkDataFlags refuses bad data flags before anything is read or
// written, in a dry run as in the real run (exit 2).
func checkDataFlags(c *cli.Context) error {
	if err := datacopy.CheckParallelism(c.Int("data-parallelism")); err != nil {
		return usageError{err}
	}
	return nil
}

// dataDryRunCheck is what --with-data adds to a dry run: the data
// location opens (its URL is valid) and, if it already holds a copy, that
// copy is this backup location's (and cluster's) as the real run requires.
// Nothing is written.
func dataDryRunCheck(ctx context.Context, c *cli.Context, cl *cluster, st *metasnap.Storage) error {
	data, closeData, err := openData(ctx, c, st)
	if err != nil {
		return err
	}
	defer closeData()
	cur, err := data.ReadOwner(ctx)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	clusterID := ""
	if cl.etcd != nil {
		if clusterID, err = metastoreClusterID(ctx, cl); err != nil {
			return err
		}
	}
	return data.CheckOwnerIs(cur, dataOwner(cl, clusterID))
}

func withDataFlag() cli.Flag {
	return &cli.BoolFlag{Name: "with-data", Category: catData, Usage: "also copy the SST objects the snapshot references into the data copy (see backup-data)", EnvVars: env("with-data")}
}

// openData opens the data copy of the backup location st: the
// --data-storage-* flags, else <backup dir>/data in the backup store. The
// returned func closes what was opened.
func openData(ctx context.Context, c *cli.Context, st *metasnap.Storage) (*datacopy.Location, func(), error) {
	url, dir := c.String("data-storage-url"), c.String("data-storage-directory")
	if dir == "" {
		dir = path.Join(st.Dir, datacopy.DefaultSubdir)
	}
	if url == "" {
		return datacopy.NewLocation(st.Store, dir), func() {}, nil
	}
	s, err := objstore.Open(ctx, url)
	if err != nil {
		return nil, nil, fmt.Errorf("open data storage: %w", err)
	}
	return datacopy.NewLocation(s, dir), func() { s.Close() }, nil
}

// dataOwner names the backup location (and cluster) a data copy serves.
func dataOwner(cl *cluster, clusterID string) datacopy.Owner {
	return datacopy.Owner{ClusterID: clusterID, Backup: datacopy.BackupIdentity(cl.loc.BackupURL, cl.loc.BackupDir)}
}

// snapshotClusterID reads the cluster id stored in a snapshot, streaming it
// once (its lists are checked and skipped, not held).
func snapshotClusterID(ctx context.Context, st *metasnap.Storage, id uint64) (string, error) {
	h, err := st.Scan(ctx, id)
	if err != nil {
		return "", err
	}
	return h.Meta.ClusterID, nil
}

// dataBackup is the state of one data backup run from a command.
type dataBackup struct {
	c      *cli.Context
	cl     *cluster
	st     *metasnap.Storage
	data   *datacopy.Location
	hs     objstore.Store
	closes []func()
	// metrics, when run by schedule.
	metrics *schedule.Metrics
	dryRun  bool
}

func newDataBackup(ctx context.Context, c *cli.Context, cl *cluster, st *metasnap.Storage, hs objstore.Store) (*dataBackup, error) {
	d := &dataBackup{c: c, cl: cl, st: st, hs: hs}
	data, closeData, err := openData(ctx, c, st)
	if err != nil {
		return nil, err
	}
	d.data = data
	d.closes = append(d.closes, closeData)
	if d.hs == nil {
		if cl.loc.HummockURL == "" {
			d.Close()
			return nil, usagef("the data is copied from the hummock location: pass --hummock-storage-url and --hummock-storage-directory, or --etcd-endpoints to take them from the cluster's params")
		}
		if d.hs, err = objstore.Open(ctx, cl.loc.HummockURL); err != nil {
			d.Close()
			return nil, fmt.Errorf("open hummock storage: %w", err)
		}
		hs := d.hs
		d.closes = append(d.closes, func() { hs.Close() })
	}
	if metasnap.SameURL(objstore.Redact(d.hs.String()), objstore.Redact(d.data.Store.String())) {
		slog.Warn("the data copy is in the hummock location's own store: it does not survive the loss of that bucket; pass --data-storage-url to keep it elsewhere",
			"data", d.data.String(), "hummock", d.hs.String())
	}
	return d, nil
}

func (d *dataBackup) Close() {
	for _, f := range d.closes {
		f()
	}
}

func (d *dataBackup) run(ctx context.Context, entries []metasnap.SnapshotMetadata, clusterID string, keep bool) (*datacopy.BackupResult, error) {
	o := datacopy.BackupOptions{Source: d.hs, SourceDir: d.cl.loc.DataDir, SourceNewPrefixStrategy: d.cl.loc.NewObjectPrefixStrategy, Data: d.data, Owner: dataOwner(d.cl, clusterID),
		Parallelism: d.c.Int("data-parallelism"), Keep: keep, Logger: slog.Default(), DryRun: d.dryRun}
	if d.metrics != nil {
		o.OnCopied = d.metrics.DataCopied
	}
	r, err := datacopy.Backup(ctx, o, entries)
	if d.metrics != nil && r != nil {
		d.metrics.DataBackup(err == nil, dataProtectedBytes(r))
	}
	return r, err
}

func dataProtectedBytes(r *datacopy.BackupResult) int64 {
	var n int64
	for _, s := range r.Snapshots {
		n += s.Bytes
	}
	return n
}

// hook returns the direct path's BeforeCommit: the data is copied, and its
// pending marker held, before the snapshot's manifest entry is written.
func (d *dataBackup) hook(res **datacopy.BackupResult) func(ctx context.Context, e metasnap.SnapshotMetadata) (*metasnap.Pending, error) {
	return func(ctx context.Context, e metasnap.SnapshotMetadata) (*metasnap.Pending, error) {
		clusterID, err := metastoreClusterID(ctx, d.cl)
		if err != nil {
			return nil, err
		}
		r, err := d.run(ctx, []metasnap.SnapshotMetadata{e}, clusterID, true)
		*res = r
		if err != nil {
			if r != nil && r.Pending != nil {
				r.Pending.Release(ctx)
			}
			return nil, fmt.Errorf("snapshot %d not stored: its data could not be copied: %w", e.ID, err)
		}
		return r.Pending, nil
	}
}

// dataResult is the data part of backup-meta --with-data and backup-data.
type dataResult struct {
	DryRun          bool                    `json:"dry_run"`
	Location        string                  `json:"location"`
	Snapshots       []datacopy.SnapshotData `json:"snapshots"`
	Copied          int                     `json:"objects_copied"`
	ServerSide      int                     `json:"objects_copied_server_side"`
	Skipped         int                     `json:"objects_already_there"`
	CopiedBytes     int64                   `json:"bytes_copied"`
	DurationSeconds float64                 `json:"duration_seconds"`
}

func newDataResult(l *datacopy.Location, r *datacopy.BackupResult) *dataResult {
	if r == nil {
		return nil
	}
	out := &dataResult{Location: l.String(), Snapshots: r.Snapshots, Copied: r.Copied, ServerSide: r.ServerSide, Skipped: r.Skipped,
		CopiedBytes: r.CopiedBytes, DurationSeconds: r.Duration.Seconds()}
	if out.Snapshots == nil {
		out.Snapshots = []datacopy.SnapshotData{}
	}
	return out
}

func (r *dataResult) WriteTable(w io.Writer) error {
	if r.DryRun {
		_, err := fmt.Fprintf(w, "dry run: would copy %d objects (%s) into %s, %d already there; nothing was written\n", r.Copied, progress.Bytes(r.CopiedBytes), r.Location, r.Skipped)
		return err
	}
	for _, s := range r.Snapshots {
		fmt.Fprintf(w, "data of snapshot %d: %s, %d objects, %s\n", s.ID, s.State, s.Objects, progress.Bytes(s.Bytes))
	}
	_, err := fmt.Fprintf(w, "data copy %s: %d objects copied (%d server side, %s), %d already there, %.1fs\n",
		r.Location, r.Copied, r.ServerSide, progress.Bytes(r.CopiedBytes), r.Skipped, r.DurationSeconds)
	return err
}

func backupDataCommand() *cli.Command {
	return &cli.Command{
		Name:      "backup-data",
		Usage:     "copy the SST objects snapshots reference into the data copy, so they survive the loss of the hummock bucket",
		ArgsUsage: "ID [ID...] | --all",
		Description: `A meta snapshot only names the SST objects that hold the tables' data; if the
hummock bucket is lost, every snapshot is worthless. backup-data copies exactly the
objects the named snapshots reference (protect snapshots that already exist, taken
by RisingWave or by rwsnap) from the hummock location into the data copy:
<backup directory>/data in the backup location, or --data-storage-url and
--data-storage-directory. Objects keep their names (<id>.data, laid out by
RisingWave's SST path rule for the data copy's scheme), so the copy is itself
shaped like a hummock data directory.

Incremental: an object already in the copy with its recorded size and checksum is
never copied again. On one S3 endpoint the copy is server side (CopyObject,
UploadPartCopy over 5 GiB); otherwise objects are streamed (multipart, never a
whole SST in memory), --data-parallelism at a time. A per-snapshot index records
each object's size and MD5; list-meta-snapshots shows each snapshot's data as
complete, partial or none, and verify-meta-snapshot --check-data [--read-data]
checks it. An object already missing from the hummock location is named and
its snapshot stays partial (exit 1). A kill leaves nothing that claims more than
it holds; the rerun continues.

A data copy serves one backup location of one cluster (garbage collection marks
from one manifest): one owned by another is refused.

Examples:
  rwsnap meta backup-data --all --etcd-endpoints 127.0.0.1:2379
  rwsnap meta backup-data 1001 1002 --data-storage-url s3://dr-bucket --data-storage-directory rw-data`,
		Flags: withFlags(etcdFlags(), locationFlags(), dataFlags(), []cli.Flag{
			&cli.BoolFlag{Name: "all", Usage: "every snapshot in the manifest"},
			dryRunFlag("list what would be copied"),
			outputFlag(),
		}),
		Action: func(c *cli.Context) error {
			ids, err := idsOrAll(c)
			if err != nil {
				return err
			}
			if err := checkDataFlags(c); err != nil {
				return err
			}
			ctx := c.Context
			cl, st, err := openLocation(ctx, c, false)
			if err != nil {
				return err
			}
			defer cl.Close()
			m, _, err := st.ReadExistingManifest(ctx)
			if err != nil {
				return err
			}
			var entries []metasnap.SnapshotMetadata
			if c.Bool("all") {
				entries = m.SnapshotMetadata
			} else {
				var missing []uint64
				for _, id := range ids {
					if e := m.Find(id); e != nil {
						entries = append(entries, *e)
					} else {
						missing = append(missing, id)
					}
				}
				if len(missing) > 0 {
					return fmt.Errorf("%w: %s not in the manifest of %s (it lists %s); nothing copied", metasnap.ErrSnapshotNotFound, metasnap.FormatIDs(missing), st, metasnap.FormatIDs(m.IDs()))
				}
			}
			d, err := newDataBackup(ctx, c, cl, st, nil)
			if err != nil {
				return err
			}
			defer d.Close()
			d.dryRun = c.Bool("dry-run")
			out := &dataResult{Location: d.data.String(), Snapshots: []datacopy.SnapshotData{}}
			if len(entries) == 0 {
				return print(c, out)
			}
			clusterID, err := snapshotClusterID(ctx, st, entries[len(entries)-1].ID)
			if err != nil {
				return err
			}
			r, err := d.run(ctx, entries, clusterID, false)
			if r != nil {
				out := newDataResult(d.data, r)
				out.DryRun = d.dryRun
				if perr := print(c, out); perr != nil && err == nil {
					err = perr
				}
			}
			return err
		},
	}
}

// metastoreClusterID is the connected cluster's id (cf/cluster_id).
func metastoreClusterID(ctx context.Context, cl *cluster) (string, error) {
	if cl.etcd == nil {
		return "", errors.New("the cluster id needs --etcd-endpoints")
	}
	id, err := readClusterID(ctx, cl)
	if err != nil {
		return "", fmt.Errorf("read the cluster id: %w", err)
	}
	return id, nil
}

// afterMetaBackup copies the data of a snapshot the meta node took: right
// after it, so the snapshot shows partial until the copy is verified.
func afterMetaBackup(ctx context.Context, d *dataBackup, st *metasnap.Storage, e metasnap.SnapshotMetadata) (*datacopy.BackupResult, error) {
	clusterID, err := snapshotClusterID(ctx, st, e.ID)
	if err != nil {
		return nil, err
	}
	// A partial index first: the snapshot exists and its copy has begun.
	if err := d.data.Claim(ctx, dataOwner(d.cl, clusterID)); err != nil {
		return nil, err
	}
	if err := d.data.WriteIndex(ctx, &datacopy.Index{SnapshotID: e.ID, ClusterID: clusterID, State: datacopy.StatePartial, Source: d.hs.String()}); err != nil {
		return nil, err
	}
	r, err := d.run(ctx, []metasnap.SnapshotMetadata{e}, clusterID, false)
	if err != nil {
		return r, fmt.Errorf("snapshot %d was taken by the meta node, but copying its data failed (it shows as partial; rerun `rwsnap meta backup-data %d`): %w", e.ID, e.ID, err)
	}
	return r, nil
}

// withDataBackup prepares backup-meta --with-data: on the direct path the
// data is copied inside the backup (before the manifest entry); the
// returned func runs after the backup for the meta node's path.
func withDataBackup(ctx context.Context, c *cli.Context, cl *cluster, st *metasnap.Storage, ch *metaclient.Choice, hs objstore.Store, metrics *schedule.Metrics) (after func(ctx context.Context, e metasnap.SnapshotMetadata) (*dataResult, error), closeFn func(), err error) {
	if direct, ok := ch.Operator.(*metasnap.Direct); ok && hs == nil {
		hs = direct.Opts.Hummock
	}
	if err := checkDataFlags(c); err != nil {
		return nil, nil, err
	}
	d, err := newDataBackup(ctx, c, cl, st, hs)
	if err != nil {
		return nil, nil, err
	}
	d.metrics = metrics
	var res *datacopy.BackupResult
	if direct, ok := ch.Operator.(*metasnap.Direct); ok {
		direct.Opts.BeforeCommit = d.hook(&res)
		return func(context.Context, metasnap.SnapshotMetadata) (*dataResult, error) {
			return newDataResult(d.data, res), nil
		}, d.Close, nil
	}
	return func(ctx context.Context, e metasnap.SnapshotMetadata) (*dataResult, error) {
		r, err := afterMetaBackup(ctx, d, st, e)
		return newDataResult(d.data, r), err
	}, d.Close, nil
}

// dataStates reads each entry's data state; a backup location without a
// data copy has "none" everywhere.
func dataStates(ctx context.Context, c *cli.Context, st *metasnap.Storage, m *metasnap.Manifest) (map[uint64]string, error) {
	data, closeData, err := openData(ctx, c, st)
	if err != nil {
		return nil, err
	}
	defer closeData()
	return data.States(ctx, m)
}

// dataCheckResult is verify --check-data's part.
type dataCheckResult struct {
	Location  string           `json:"location"`
	Snapshots []datacopy.Check `json:"snapshots"`
}

func (r *dataCheckResult) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "DATA OF\tSTATE\tRESULT\tOBJECTS\tSIZE\tPROBLEMS\n")
	for _, s := range r.Snapshots {
		res := "ok"
		if !s.OK {
			res = "FAILED"
		}
		probs := ""
		for i, p := range s.Problems {
			if i > 0 {
				probs += "; "
			}
			probs += p
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", s.ID, s.State, res, s.Objects, progress.Bytes(s.Bytes), probs)
	}
	return tw.Flush()
}

func (r *dataCheckResult) ok() bool {
	for _, s := range r.Snapshots {
		if !s.OK {
			return false
		}
	}
	return true
}

// checkData runs verify --check-data on the entries named by ids (all if
// empty).
func checkData(ctx context.Context, c *cli.Context, st *metasnap.Storage, ids []uint64) (*dataCheckResult, error) {
	m, _, err := st.ReadExistingManifest(ctx)
	if err != nil {
		return nil, err
	}
	var entries []metasnap.SnapshotMetadata
	if len(ids) == 0 {
		entries = m.SnapshotMetadata
	}
	for _, id := range ids {
		if e := m.Find(id); e != nil {
			entries = append(entries, *e)
		}
	}
	data, closeData, err := openData(ctx, c, st)
	if err != nil {
		return nil, err
	}
	defer closeData()
	checks, err := datacopy.Verify(ctx, data, entries, c.Bool("read-data"))
	if err != nil {
		return nil, err
	}
	if checks == nil {
		checks = []datacopy.Check{}
	}
	return &dataCheckResult{Location: data.String(), Snapshots: checks}, nil
}

// dataGC removes the data objects no remaining snapshot references, when
// the backup location has a data copy (nil result when it has none).
// without: snapshots a dry run treats as deleted.
func dataGC(ctx context.Context, c *cli.Context, st *metasnap.Storage, dryRun bool, without []uint64) (*datacopy.GCResult, error) {
	data, closeData, err := openData(ctx, c, st)
	if err != nil {
		return nil, err
	}
	defer closeData()
	if _, err := data.ReadOwner(ctx); errors.Is(err, objstore.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	r, err := datacopy.GC(ctx, data, st, dryRun, without, slog.Default())
	if err != nil {
		return nil, fmt.Errorf("snapshots deleted, but the data copy's garbage collection failed (nothing referenced was touched; the next delete or prune retries): %w", err)
	}
	return r, nil
}

func writeGC(w io.Writer, r *datacopy.GCResult) {
	if r == nil {
		return
	}
	verb := "deleted"
	if r.DryRun {
		verb = "would delete"
	}
	fmt.Fprintf(w, "data copy: %s %d objects (%s) and %d indexes no remaining snapshot references; %d objects (%s) kept\n",
		verb, len(r.Objects), progress.Bytes(r.Bytes), len(r.Indexes), r.Kept, progress.Bytes(r.ProtectedBytes))
}

func readClusterID(ctx context.Context, cl *cluster) (string, error) {
	resp, err := cl.etcd.Get(ctx, string(metastore.EtcdKey(metastore.CFClusterID, []byte(metastore.ClusterIDKey))))
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", errors.New("no cf/cluster_id in etcd")
	}
	return string(resp.Kvs[0].Value), nil
}
