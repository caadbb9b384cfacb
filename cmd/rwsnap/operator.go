package main

import (
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

// pruneOperator is the path prune and schedule change a location through.
// hs (the hummock store) is needed only to take backups.
func pruneOperator(c *cli.Context, cl *cluster, st *metasnap.Storage, hs ...objstore.Store) (metasnap.Operator, error) {
	o := metasnap.BackupOptions{Etcd: cl.etcd, Target: st, DataDir: cl.loc.DataDir, OwnLocation: cl.loc.OwnLocation,
		Force: c.Bool("force"), Logger: slog.Default()}
	if len(hs) > 0 {
		o.Hummock = hs[0]
	}
	return &metasnap.Direct{Opts: o}, nil
}
