package main

import (
	"fmt"
	"slices"

	"github.com/urfave/cli/v2"
)

// withEnv gives every flag its RWSNAP_<FLAG> environment variable (README:
// "every flag can also come from the environment"), keeping any other
// variables a flag already reads (RW_META_ADDR, PG*). Done once over the
// whole command tree, so a flag added later cannot forget it.
func withEnv(flags []cli.Flag) []cli.Flag {
	for _, f := range flags {
		name := f.Names()[0]
		want := env(name)[0]
		add := func(vars *[]string) {
			if !slices.Contains(*vars, want) {
				*vars = append(*vars, want)
			}
		}
		switch f := f.(type) {
		case *cli.StringFlag:
			add(&f.EnvVars)
		case *cli.BoolFlag:
			add(&f.EnvVars)
		case *cli.IntFlag:
			add(&f.EnvVars)
		case *cli.Int64Flag:
			add(&f.EnvVars)
		case *cli.UintFlag:
			add(&f.EnvVars)
		case *cli.Uint64Flag:
			add(&f.EnvVars)
		case *cli.DurationFlag:
			add(&f.EnvVars)
		case *cli.Float64Flag:
			add(&f.EnvVars)
		case *cli.StringSliceFlag:
			add(&f.EnvVars)
		case *cli.IntSliceFlag:
			add(&f.EnvVars)
		case *cli.GenericFlag:
			add(&f.EnvVars)
		case *cli.TimestampFlag:
			add(&f.EnvVars)
		default:
			// A new flag type must be listed above: the CLI's promise is
			// every flag, so fail loudly at start rather than silently.
			panic(fmt.Sprintf("rwsnap: flag --%s of type %T gets no RWSNAP_ environment variable; add the type to withEnv", name, f))
		}
	}
	return flags
}

// dryRunFlag is --dry-run (RWSNAP_DRY_RUN) of every command that changes
// anything: it checks and prints what would change, and writes nothing.
func dryRunFlag(what string) cli.Flag {
	return &cli.BoolFlag{Name: "dry-run", Usage: what + "; write nothing", EnvVars: env("dry-run")}
}
