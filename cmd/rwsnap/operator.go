package main

import (
	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/metasnap"
)

// pruneOperator is the path prune and schedule change a location through.
func pruneOperator(c *cli.Context, cl *cluster, st *metasnap.Storage) (metasnap.Operator, error) {
	return &metasnap.Direct{Opts: metasnap.BackupOptions{Etcd: cl.etcd, Target: st, OwnLocation: cl.loc.OwnLocation, Force: c.Bool("force")}}, nil
}
