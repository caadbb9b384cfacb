package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwversion"
)

// rwVersionFlag is --rw-version: the cluster's RisingWave release, when the
// meta store alone does not tell (rwsnap refuses to guess) or to pin it.
func rwVersionFlag() cli.Flag {
	return &cli.StringFlag{Name: "rw-version", Category: catStorage,
		Usage: "the cluster's RisingWave release (`MAJOR.MINOR[.PATCH]`, v1.0 to v2.0.7), e.g. 1.10 or 2.0.7; default: recognised from the meta store " +
			"(column families, system params, hummock delta kinds, the manifest's rw_version); it must agree with what the store shows",
		EnvVars: env("rw-version")}
}

// rwVersionFrom parses --rw-version (nil when not given).
func rwVersionFrom(c *cli.Context) (*rwversion.Version, error) {
	s := c.String("rw-version")
	if s == "" {
		return nil, nil
	}
	v, err := rwversion.ParseKnown(s)
	if err != nil {
		return nil, usagef("--rw-version: %v", err)
	}
	return &v, nil
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
