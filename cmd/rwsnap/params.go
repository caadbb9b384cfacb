package main

import (
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/params"
)

func paramsCommand() *cli.Command {
	flags := func() []cli.Flag { return withFlags(etcdFlags(), []cli.Flag{outputFlag()}) }
	return &cli.Command{
		Name:  "params",
		Usage: "read and set RisingWave system parameters in the etcd meta store, with guards",
		Description: `The typed table of RisingWave v1.7-v1.10 system parameters (cf/system_params/ in
etcd). Values are checked against the parameter's type before anything is written.

Guards: immutable parameters (state_store, data_directory, sstable_size_mb, ...)
need --force; moving backup_storage_url/backup_storage_directory away from a
location that holds snapshots is refused unless --force, because RisingWave then
stops listing those snapshots and stops pinning their SSTs; while a meta node is
live, etcd is not written (it caches parameters): rwsnap prints the ALTER SYSTEM
SET statement to run, or runs it with --pg-url.

Examples:
  rwsnap params list --etcd-endpoints 127.0.0.1:2379
  rwsnap params get backup_storage_url --cluster prod
  rwsnap params set barrier_interval_ms 500 --etcd-endpoints 127.0.0.1:2379 --dry-run`,
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "every parameter with its value, type, default and mutability",
				Description: `Every RisingWave system parameter, with its value (URLs redacted), type,
default and whether ALTER SYSTEM may change it; "(default)" marks values etcd
does not store.

Examples:
  rwsnap params list --etcd-endpoints 127.0.0.1:2379
  rwsnap params list --cluster prod -o json | jq -r '.params[] | select(.stored) | .name'`,
				Flags: flags(),
				Action: func(c *cli.Context) error {
					cl, err := openCluster(c.Context, c, true)
					if err != nil {
						return err
					}
					defer cl.Close()
					vals, err := params.List(c.Context, cl.etcd)
					if err != nil {
						return err
					}
					out := &paramsListResult{Params: []paramInfo{}}
					for _, v := range vals {
						out.Params = append(out.Params, newParamInfo(v))
					}
					return print(c, out)
				},
			},
			{
				Name:  "get",
				Usage: "one parameter's value",
				Description: `Prints the value alone (URLs redacted), or the whole parameter with -o json.
An unknown name is a usage error (exit 2) with the closest known one.

Examples:
  rwsnap params get state_store --etcd-endpoints 127.0.0.1:2379
  rwsnap params get backup_storage_directory --cluster prod -o json`,
				ArgsUsage: "NAME",
				Flags:     flags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usagef("params get takes one parameter name")
					}
					if _, err := params.Lookup(c.Args().First()); err != nil {
						return usageError{err}
					}
					cl, err := openCluster(c.Context, c, true)
					if err != nil {
						return err
					}
					defer cl.Close()
					v, err := params.Get(c.Context, cl.etcd, c.Args().First())
					if err != nil {
						return err
					}
					return print(c, paramGetResult(newParamInfo(v)))
				},
			},
			{
				Name:  "set",
				Usage: "change a parameter (checked, guarded)",
				Description: `Checks the value against the parameter's type, then the guards (immutable
parameters and moving a backup location need --force; a live meta node means
ALTER SYSTEM SET through --pg-url instead of writing etcd).

Examples:
  rwsnap params set barrier_interval_ms 500 --etcd-endpoints 127.0.0.1:2379 --dry-run
  rwsnap params set checkpoint_frequency 10 --cluster prod --pg-url postgres://root@frontend:4566/dev`,
				ArgsUsage: "NAME VALUE",
				Flags: append(flags(),
					&cli.BoolFlag{Name: "force", Usage: "allow immutable parameters and moving a backup location that holds snapshots"},
					&cli.StringFlag{Name: "pg-url", Usage: "with a live meta node, run ALTER SYSTEM SET through this frontend (postgres://root@HOST:4566/dev)", EnvVars: env("pg-url")},
					dryRunFlag("check and print what would change"),
				),
				Action: func(c *cli.Context) error {
					if c.NArg() != 2 {
						return usagef("params set takes NAME VALUE")
					}
					name, value := c.Args().Get(0), c.Args().Get(1)
					if _, err := params.Lookup(name); err != nil {
						return usageError{err}
					}
					if err := metastore.ValidateParam(name, value); err != nil {
						return usageError{err}
					}
					cl, err := openCluster(c.Context, c, true)
					if err != nil {
						return err
					}
					defer cl.Close()
					plan, err := params.Check(c.Context, cl.etcd, name, value, params.SetOptions{Force: c.Bool("force")})
					if err != nil {
						return err
					}
					for _, w := range plan.Warnings {
						slog.Warn(w)
					}
					out := &paramSetResult{Name: plan.Name, Old: redactParam(plan.Name, plan.Old), New: redactParam(plan.Name, plan.New),
						DryRun: c.Bool("dry-run"), Warnings: plan.Warnings}
					switch {
					case out.DryRun:
					case plan.LeaderAddr != "" && c.String("pg-url") != "":
						if err := params.ApplySQL(c.Context, c.String("pg-url"), plan); err != nil {
							return err
						}
						out.Via = "sql"
					default:
						if err := params.Apply(c.Context, cl.etcd, plan); err != nil {
							return err
						}
						out.Via = "etcd"
					}
					return print(c, out)
				},
			},
		},
	}
}

// redactParam hides credentials inside URL-valued parameters, and the
// whole value of a secret one (v2.0's license_key).
func redactParam(name, v string) string {
	if p, ok := metastore.LookupParam(name); ok && p.Secret && v != "" {
		return "<redacted>"
	}
	switch name {
	case metastore.ParamStateStore, metastore.ParamBackupStorageURL:
		return objstore.RedactText(v)
	}
	return v
}
