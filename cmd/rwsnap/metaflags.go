package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/metaclient"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

const catMeta = "live meta node"

// metaNodeFlags are the flags of every command that changes or lists a
// backup location (backup-meta, list/delete-meta-snapshots, prune,
// schedule): how to reach a live meta node, and whether to.
func metaNodeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "meta-addr", Category: catMeta,
			Usage:   "the meta node's gRPC address, as risectl's RW_META_ADDR (http://HOST:PORT, HOST:PORT, or a comma-separated list tried in order); default: the live leader's address recorded in etcd, else " + metaclient.DefaultAddr,
			EnvVars: append([]string{metaclient.EnvAddr}, env("meta-addr")...)},
		&cli.StringFlag{Name: "mode", Category: catMeta, Value: string(metaclient.ModeAuto),
			Usage:   "auto: through the meta node when a leader is live and the location is the cluster's own, else directly; direct: etcd + storage only; meta: through the meta node",
			EnvVars: env("mode")},
	}
}

// operatorFor picks how a command works on the backup location target
// (metaclient.Choose): through the live meta node or directly. use says
// what the command does (metaclient.UseRead, UseWrite, UseBackup; a backup
// on the direct path needs the hummock state store: pass it as hs, or it
// is opened here and closed with the Choice). It reads the --mode,
// --meta-addr (metaNodeFlags) and, if the command has it, --force flags,
// logs the path on stderr, and the caller closes the returned Choice.
//
// The choice holds for one operation: a daemon (schedule) calls it per
// job, since a meta node may start or stop in between. Commands print
// Choice.Path in their JSON output so scripts know which path was taken.
func operatorFor(ctx context.Context, c *cli.Context, cl *cluster, target *metasnap.Storage, use metaclient.Use, hs ...objstore.Store) (*metaclient.Choice, error) {
	mode, err := metaclient.ParseMode(c.String("mode"))
	if err != nil {
		return nil, usageFrom(err)
	}
	rwv, err := rwVersionFrom(c)
	if err != nil {
		return nil, err
	}
	d := &metasnap.Direct{Opts: metasnap.BackupOptions{
		Etcd: cl.etcd, DataDir: cl.loc.DataDir, Target: target,
		OwnLocation: cl.loc.OwnLocation, Force: c.Bool("force"), Logger: slog.Default(),
		RWVersion: rwv,
	}}
	if cl.pin != nil {
		d.Opts.RWRelease = cl.pin.Release
	}
	var opened objstore.Store // closed with the Choice
	switch {
	case len(hs) > 0 && hs[0] != nil:
		d.Opts.Hummock = hs[0]
	case use == metaclient.UseBackup && mode != metaclient.ModeMeta:
		if opened, err = objstore.Open(ctx, cl.loc.HummockURL); err != nil {
			return nil, fmt.Errorf("open hummock storage: %w", err)
		}
		d.Opts.Hummock = opened
	}
	ch, err := metaclient.Choose(ctx, metaclient.ChooseOptions{
		Mode: mode, Etcd: cl.etcd, Locations: cl.loc, Direct: d,
		MetaAddr: c.String("meta-addr"), Force: c.Bool("force"), Use: use, Logger: slog.Default(),
	})
	if err != nil {
		if opened != nil {
			opened.Close()
		}
		if errors.Is(err, metaclient.ErrUsage) {
			return nil, usageFrom(err)
		}
		return nil, err
	}
	if d.Opts.Hummock != nil && ch.Path == string(metaclient.ModeDirect) {
		slog.Info("hummock storage", "url", d.Opts.Hummock.String(), "data_directory", cl.loc.DataDir)
	}
	if opened != nil {
		ch.OnClose(opened.Close)
	}
	return ch, nil
}

// usageFrom turns a metaclient.ErrUsage error into the CLI's usage error
// (exit 2), without the sentinel's "usage: " prefix.
func usageFrom(err error) error {
	return usagef("%s", strings.TrimPrefix(err.Error(), metaclient.ErrUsage.Error()+": "))
}
