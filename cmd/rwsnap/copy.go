package main

import (
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/metaclient"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

func copyCommand() *cli.Command {
	return &cli.Command{
		Name:      "copy-meta-snapshots",
		Usage:     "copy snapshots and their manifest entries to another backup location",
		ArgsUsage: "[ID...]",
		Description: `Copies snapshot objects (checksummed when read and again after writing) and then
adds their manifest entries at the target in one compare-and-swap. A rerun copies
nothing. Use it before changing backup_storage_url/backup_storage_directory (which
hides the old location's snapshots from RisingWave), or to keep a copy in another
region.

Examples:
  rwsnap meta copy-meta-snapshots --all --to-url s3://dr-bucket --to-directory backup --etcd-endpoints 127.0.0.1:2379
  rwsnap meta copy-meta-snapshots 1001 1002 --backup-storage-url fs:///bk --backup-storage-directory backup --to-url fs:///bk2 --to-directory backup`,
		Flags: withFlags(etcdFlags(), locationFlags(), []cli.Flag{
			&cli.BoolFlag{Name: "all", Usage: "copy every snapshot in the manifest"},
			&cli.StringFlag{Name: "to-url", Category: catStorage, Usage: "target backup storage URL (required)", EnvVars: env("to-url")},
			&cli.StringFlag{Name: "to-directory", Category: catStorage, Usage: "target directory (required)", EnvVars: env("to-directory")},
			&cli.BoolFlag{Name: "force", Usage: "copy into a live cluster's own backup location directly (only when its meta node is certainly stopped)", EnvVars: env("force")},
			dryRunFlag("read both locations and print what would be copied"),
			outputFlag(),
		}),
		Action: func(c *cli.Context) error {
			ids, err := idsOrAll(c)
			if err != nil {
				return err
			}
			switch {
			case c.String("to-url") == "" || c.String("to-directory") == "":
				return usagef("--to-url and --to-directory are required")
			}
			ctx := c.Context
			cl, err := openCluster(ctx, c, false)
			if err != nil {
				return err
			}
			defer cl.Close()
			if metasnap.SameLocation(cl.loc.BackupURL, cl.loc.BackupDir, c.String("to-url"), c.String("to-directory")) {
				return usagef("the copy target is the source location (%s, %q)", objstore.Redact(c.String("to-url")), c.String("to-directory"))
			}
			src, err := openBackup(ctx, cl.loc)
			if err != nil {
				return err
			}
			defer src.Store.Close()
			if err := checkRWVersion(ctx, c, cl, src); err != nil {
				return err
			}
			dst, err := openBackup(ctx, metasnap.Locations{BackupURL: c.String("to-url"), BackupDir: c.String("to-directory")})
			if err != nil {
				return err
			}
			defer dst.Store.Close()
			if cl.etcd != nil {
				// The copy writes the target's manifest directly: refused
				// when the target is the live cluster's own location
				// (however spelled), as for every manifest writer.
				ch, err := metaclient.Choose(ctx, metaclient.ChooseOptions{
					Mode: metaclient.ModeDirect, Etcd: cl.etcd, Use: metaclient.UseCopy, Force: c.Bool("force"), Logger: slog.Default(),
					Locations: metasnap.Locations{BackupURL: c.String("to-url"), BackupDir: c.String("to-directory"),
						ClusterBackupURL: cl.loc.ClusterBackupURL, ClusterBackupDir: cl.loc.ClusterBackupDir, OwnLocation: true},
					Direct: &metasnap.Direct{Opts: metasnap.BackupOptions{Etcd: cl.etcd, Target: dst}},
				})
				if err != nil {
					return err
				}
				ch.Close()
			}
			if c.Bool("dry-run") {
				res, err := metasnap.PlanCopy(ctx, src, dst, ids)
				if err != nil {
					return err
				}
				return print(c, &copyResult{DryRun: true, Copied: []uint64{}, WouldCopy: res.Copied, AlreadyPresent: res.Present, Bytes: res.Bytes, TargetManifestID: res.Manifest, To: dst.String()})
			}
			res, err := metasnap.Copy(ctx, src, dst, ids)
			if err != nil {
				return err
			}
			return print(c, &copyResult{Copied: res.Copied, WouldCopy: res.Copied, AlreadyPresent: res.Present, Bytes: res.Bytes, TargetManifestID: res.Manifest, To: dst.String()})
		},
	}
}
