package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/metaclient"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwversion"
)

// rwVersionFlag is --rw-version: the cluster's RisingWave release, when the
// meta store alone does not tell (rwsnap refuses to guess) or to pin it.
func rwVersionFlag() cli.Flag {
	return &cli.StringFlag{Name: "rw-version", Category: catStorage,
		Usage: "the cluster's RisingWave release, `VERSION`: a line (1.0 to 1.10, 2.0) or a release (1.0.0 to 2.0.7, e.g. 1.10.2; a leading v is allowed); " +
			"default: recognised from the meta store (column families, system params, hummock delta kinds, the manifest's rw_version). " +
			"It must agree with what the store shows, or nothing is done (exit 2). New manifest entries of v1.10+ record a release given here as rw_version " +
			"(with only the line, rw_version is null); entries of older lines have no rw_version, as RisingWave writes them",
		EnvVars: env("rw-version")}
}

// rwPinFrom parses --rw-version (nil when not given) strictly: only the
// etcd-era lines and releases (rwversion.ParsePin), wherever it came from.
func rwPinFrom(c *cli.Context) (*rwversion.Pin, error) {
	s := c.String("rw-version")
	if s == "" && !c.IsSet("rw-version") {
		return nil, nil
	}
	p, err := rwversion.ParsePin(s)
	if err != nil {
		from := "--rw-version"
		if src := provenance(c)["rw-version"]; src != "" {
			from += " (from " + src + ")"
		} else if v, ok := os.LookupEnv(env("rw-version")[0]); ok && v == s {
			from += " (or " + env("rw-version")[0] + ")"
		}
		return nil, usagef("%s: %v", from, err)
	}
	return &p, nil
}

// rwVersionFrom is the release line of --rw-version (nil when not given).
func rwVersionFrom(c *cli.Context) (*rwversion.Version, error) {
	p, err := rwPinFrom(c)
	if p == nil || err != nil {
		return nil, err
	}
	return &p.Line, nil
}

// checkRWVersion refuses, before any path is chosen and before anything is
// written (dry runs included), a --rw-version that the cluster contradicts.
// What the cluster shows comes from what the command can reach: the meta
// store (system params, column families, hummock deltas and checkpoint)
// when etcd endpoints are given, and the newest rw_version of the cluster's
// own manifest entries, stored or as the live meta node reports them
// (GetMetaSnapshotManifest). It also refuses --remarks for a release whose
// meta node drops them (before v1.6). The pin is kept in cl.
func checkRWVersion(ctx context.Context, c *cli.Context, cl *cluster, target *metasnap.Storage) error {
	pin, err := rwPinFrom(c)
	if err != nil || pin == nil {
		return err
	}
	cl.pin = pin
	if c.IsSet("remarks") && c.String("remarks") != "" && !rwversion.For(pin.Line).Manifest.Remarks {
		return usagef("--remarks %q: RisingWave %s stores no remarks (MetaSnapshotMetadata has them from v1.6; a %s meta node drops them and rewrites the manifest without them), and --rw-version is %s: drop --remarks, or give the cluster's real release",
			c.String("remarks"), pin.Line, pin.Line, pin)
	}
	in := metasnap.ReleaseInput{Etcd: cl.etcd, DataDir: cl.loc.DataDir, Logger: slog.Default()}
	switch {
	case cl.etcd != nil && target != nil && cl.loc.OwnLocation:
		m, _, err := target.ReadManifest(ctx)
		if err != nil && !errors.Is(err, objstore.ErrNotFound) {
			return err
		}
		if m != nil {
			in.ManifestRWVersion = metasnap.NewestRWVersion(m)
		}
	case cl.etcd == nil && c.String("mode") == string(metaclient.ModeMeta):
		// No meta store to read: what the meta node wrote is the evidence.
		addr := c.String("meta-addr")
		if addr == "" {
			addr = metaclient.DefaultAddr
		}
		mc, err := metaclient.Dial(ctx, metaclient.DialOptions{Addr: addr, Source: "--meta-addr / " + metaclient.EnvAddr, Logger: slog.Default()})
		if err != nil {
			return err
		}
		m, err := (&metaclient.Operator{Client: mc}).Manifest(ctx)
		mc.Close()
		if err != nil {
			return err
		}
		in.ManifestRWVersion = metasnap.NewestRWVersion(m)
	}
	if cl.etcd != nil && cl.loc.HummockURL != "" {
		hs, err := objstore.Open(ctx, cl.loc.HummockURL)
		if err != nil {
			slog.Warn("the hummock storage cannot be opened; the release is told from etcd alone", "err", err)
		} else {
			defer hs.Close()
			in.Hummock = hs
		}
	}
	r, err := metasnap.DetectRelease(ctx, in)
	if err != nil {
		return err
	}
	if err := rwversion.CheckPin(r, *pin, in.ManifestRWVersion); err != nil {
		return usageError{err}
	}
	slog.Debug("--rw-version agrees with the cluster", "rw_version", pin.String(), "cluster_looks_like", r.String(), "why", r.Why())
	return nil
}

// risectlRestoreFlags are the restore-meta flags of every v1.x/v2.0 risectl
// that rwsnap accepts for scripts' sake (src/meta/src/backup_restore/
// restore.rs RestoreOpts at v1.0.0 through v2.0.7).
func risectlRestoreFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "sql-endpoint", Category: catRisectl, Usage: "risectl v1.9+: the SQL meta store to restore into; rwsnap restores etcd only (--meta-store-type etcd ignores it, as risectl does)", EnvVars: env("sql-endpoint")},
		&cli.StringFlag{Name: "sql-username", Category: catRisectl, Usage: "risectl v1.10+: SQL meta store user (ignored for etcd)", EnvVars: env("sql-username")},
		&cli.StringFlag{Name: "sql-password", Category: catRisectl, Usage: "risectl v1.10+: SQL meta store password (ignored for etcd)", EnvVars: env("sql-password")},
		&cli.StringFlag{Name: "sql-database", Category: catRisectl, Usage: "risectl v1.10+: SQL meta store database (ignored for etcd)", EnvVars: env("sql-database")},
		&cli.Uint64Flag{Name: "read-attempt-timeout-ms", Category: catRisectl, Value: 600000, Usage: "risectl v1.10.2+: how long one attempt to read the manifest and snapshots may take, in ms", EnvVars: env("read-attempt-timeout-ms")},
		&cli.Uint64Flag{Name: "read-retry-attempts", Category: catRisectl, Value: 3, Usage: "risectl v1.10.2+: how many times a failed or timed-out read is retried", EnvVars: env("read-retry-attempts")},
	}
}

const catRisectl = "risectl compatibility"

// readRetry returns --read-attempt-timeout-ms and --read-retry-attempts, and
// says when SQL flags are given to an etcd restore.
func readRetry(c *cli.Context) (time.Duration, int) {
	for _, f := range []string{"sql-endpoint", "sql-username", "sql-password", "sql-database"} {
		if c.IsSet(f) && c.String("meta-store-type") == "etcd" {
			slog.Warn("ignored for --meta-store-type etcd, as risectl does", "flag", "--"+f)
		}
	}
	return time.Duration(c.Uint64("read-attempt-timeout-ms")) * time.Millisecond, int(c.Uint64("read-retry-attempts"))
}

// backupDirVerbatim decides how the cluster's release puts
// backup_storage_directory into S3/MinIO keys (metasnap.DirVerbatim); the
// release comes from --rw-version, else the cluster's system params (v2.0's
// are there or not).
func backupDirVerbatim(ctx context.Context, c *cli.Context, cl *cluster, store objstore.Store, dir string) (bool, error) {
	v, err := rwVersionFrom(c)
	if err != nil {
		return false, err
	}
	if v == nil && cl.etcd != nil {
		params, err := metastore.ReadSystemParams(ctx, cl.etcd)
		if err != nil {
			return false, err
		}
		line := rwversion.V1_10
		if _, ok := params[rwversion.V20Params[0]]; ok {
			line = rwversion.V2_0
		}
		v = &line
	}
	verbatim, err := metasnap.DirVerbatim(ctx, store, dir, v)
	if errors.Is(err, metasnap.ErrAmbiguousDir) {
		return false, usageError{err}
	}
	return verbatim, err
}
