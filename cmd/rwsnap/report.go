package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/report"
)

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:  "report",
		Usage: "write one self-contained HTML page that shows the backup location at a glance",
		Description: `Reads the backup location (manifest, every snapshot object, verified once) and
writes one HTML file that renders offline (no scripts, fonts or images from
anywhere; its Content-Security-Policy forbids loading any): the snapshots on a
time axis with the time-travel window each serves, size and SST count over
time, data-protection state (whether the SSTs each snapshot pins are still in
hummock storage, when it is known: from the cluster's params or
--hummock-storage-url; and whether they are copied into the backup location
by backup-data: complete, partial or none), which snapshots the --keep-* rules would keep (the same
rules as prune and schedule), and the problems: orphan objects, entries that
do not verify, the snapshot cap. Credentials never appear in it.

'rwsnap schedule --metrics-addr ADDR' serves the same page at / and rebuilds it
after every job.

Examples:
  rwsnap meta report --html backups.html --backup-storage-url s3://bkp --backup-storage-directory backup
  rwsnap meta report --html backups.html --keep-last 24 --keep-daily 7 --etcd-endpoints 127.0.0.1:2379`,
		Flags: withFlags(etcdFlags(), locationFlags(), pruneFlags(), []cli.Flag{
			mayBeNewFlag(),
			&cli.StringFlag{Name: "html", Usage: "the file to write (- for stdout); required", EnvVars: env("html")},
		}),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("report takes no arguments, got %q", c.Args().Slice())
			}
			if c.String("html") == "" {
				return usagef("--html FILE is required: where to write the page (- for stdout)")
			}
			policy := prunePolicy(c)
			if policy != (metasnap.PrunePolicy{}) {
				if err := policy.Validate(); err != nil {
					return usageError{err}
				}
			}
			ctx := c.Context
			cl, st, err := openLocation(ctx, c, false)
			if err != nil {
				return err
			}
			defer cl.Close()
			opts, closeHummock := reportOptions(ctx, cl, policy)
			defer closeHummock()
			r, err := report.Build(ctx, st, opts)
			if err != nil {
				return err
			}
			b, err := r.HTML()
			if err != nil {
				return err
			}
			path := c.String("html")
			if path == "-" {
				_, err := c.App.Writer.Write(b)
				return err
			}
			if err := writeFileAtomic(path, b); err != nil {
				return err
			}
			slog.Info("report written", "file", path, "snapshots", len(r.Snapshots), "problems", len(r.Problems))
			return nil
		},
	}
}

// reportOptions opens the hummock storage when its location is known, so
// the page can tell whether each snapshot's SSTs are still there.
func reportOptions(ctx context.Context, cl *cluster, policy metasnap.PrunePolicy) (report.Options, func()) {
	opts := report.Options{Policy: policy, DataDir: cl.loc.DataDir}
	if cl.loc.HummockURL == "" {
		return opts, func() {}
	}
	hs, err := objstore.Open(ctx, cl.loc.HummockURL)
	if err != nil {
		slog.Warn("cannot open hummock storage: the report will not say whether the pinned SSTs exist", "err", err)
		return opts, func() {}
	}
	opts.Hummock = hs
	return opts, func() { hs.Close() }
}

// writeFileAtomic writes through a temporary file and a rename, so a
// reader (a web server, a browser) never sees half a page.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// schedulePage is the report schedule serves at / on --metrics-addr: built
// in the background at start, rebuilt after every job.
func schedulePage(ctx context.Context, st *metasnap.Storage, opts report.Options) *report.Page {
	p := report.NewPage(st, opts)
	go refreshPage(ctx, p)
	return p
}

func refreshPage(ctx context.Context, p *report.Page) {
	if p == nil {
		return
	}
	if err := p.Refresh(ctx); err != nil && ctx.Err() == nil {
		slog.Warn("cannot refresh the backup report served at /", "err", err)
	}
}
