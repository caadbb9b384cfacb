package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/internal/timeouts"
)

const catNet = "network"

// timeoutFlags bound every network client (etcd, S3/MinIO, pgwire, the
// meta node's gRPC); accepted before the command and after it.
func timeoutFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "connect-timeout", Category: catNet, Value: timeouts.Connect, Usage: "bound on connecting to etcd, object storage, the meta node or the frontend (TCP, TLS and the first answer)", EnvVars: env("connect-timeout")},
		&cli.DurationFlag{Name: "io-timeout", Category: catNet, Value: timeouts.Operation, Usage: "bound on one request to etcd, the meta node or the frontend, and on the wait for an object store's answer (large transfers are not cut)", EnvVars: env("io-timeout")},
	}
}

func applyTimeouts(c *cli.Context) error {
	dur := func(c *cli.Context, n string) time.Duration { return c.Duration(n) }
	ct, it := lookup(c, "connect-timeout", dur), lookup(c, "io-timeout", dur)
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"connect-timeout", ct}, {"io-timeout", it}} {
		if t.d <= 0 {
			return usagef("--%s %s: want a positive duration (e.g. 10s, 30s)", t.name, t.d)
		}
	}
	timeouts.Connect, timeouts.Operation = ct, it
	return nil
}
