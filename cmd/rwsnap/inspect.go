package main

import (
	"log/slog"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/inspect"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show what a snapshot holds: header, catalog, users, params, storage (no cluster needed)",
		ArgsUsage: "ID",
		Description: `Reads one snapshot from the backup location and prints its header (id, format
version, RisingWave version, hummock version, epochs as times, size, checksum),
its catalog (databases, schemas, and every table, materialized view, index,
source, sink, view, function, connection, subscription and secret name, with id,
owner, creation time, stored SQL definition and dependencies), users and their
privileges (never password hashes), system parameters, and its hummock version
(compaction groups, levels, SST count and bytes per group and per table,
per-table committed epochs).

Credentials are redacted everywhere: every property whose name or value looks
like one (password, secret, key, token, credentials, sasl, URLs with passwords,
secret values), in properties and inside the stored definitions; the output
says what was redacted.

--ddl instead prints a psql script that recreates the catalog in dependency
order from the stored definitions, credentials replaced by psql variables the
script's header lists: the way back when the SSTs are lost and the data must be
rebuilt from upstream.

Works from the backup location alone (--backup-storage-url and
--backup-storage-directory) or from the cluster's params (--etcd-endpoints), on
snapshots written by rwsnap or by RisingWave. A snapshot rwsnap cannot decode
fully (format_version 2, a newer layout) shows its header and what could be
decoded, and says what could not.

Examples:
  rwsnap meta inspect 1002 --backup-storage-url s3://bkp --backup-storage-directory backup
  rwsnap meta inspect 1002 -o json --etcd-endpoints 127.0.0.1:2379 | jq '.relations[].name'
  rwsnap meta inspect 1002 --ddl --etcd-endpoints 127.0.0.1:2379 > rebuild.sql`,
		Flags: withFlags(etcdFlags(), locationFlags(), []cli.Flag{
			mayBeNewFlag(),
			&cli.BoolFlag{Name: "ddl", Usage: "print a SQL script that recreates the catalog in dependency order"},
			outputFlag(),
		}),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("inspect takes one snapshot id, got %d arguments", c.NArg())
			}
			id, err := strconv.ParseUint(c.Args().First(), 10, 64)
			if err != nil {
				return usagef("snapshot id %q is not a number", c.Args().First())
			}
			ctx := c.Context
			cl, st, err := openLocation(ctx, c, false)
			if err != nil {
				return err
			}
			defer cl.Close()
			doc, err := inspect.Inspect(ctx, st, id)
			if err != nil {
				return err
			}
			// Scripts reading stdout learn it on stderr too.
			if h := doc.Snapshot; h.Decoded != "full" {
				slog.Warn("snapshot decoded only in part", "id", h.ID, "decoded", h.Decoded, "not_decoded", strings.Join(h.NotDecoded, "; "))
			}
			for _, p := range doc.Snapshot.Problems {
				slog.Warn("catalog message not decoded", "key", p.Key, "err", p.Error)
			}
			if c.Bool("ddl") {
				return inspect.DDL(c.App.Writer, doc)
			}
			return print(c, doc)
		},
	}
}

func diffCommand() *cli.Command {
	return &cli.Command{
		Name:      "diff",
		Usage:     "what changed between two snapshots: relations, parameters, storage",
		ArgsUsage: "FROM_ID TO_ID",
		Description: `Compares two snapshots of the backup location: relations added, removed and
changed (name, definition, owner, columns, properties, dependencies), users,
system parameters, and SST count and bytes per table. Credentials are redacted
as in inspect.

Examples:
  rwsnap meta diff 1001 1002 --backup-storage-url s3://bkp --backup-storage-directory backup
  rwsnap meta diff 1001 1002 -o json --etcd-endpoints 127.0.0.1:2379`,
		Flags: withFlags(etcdFlags(), locationFlags(), []cli.Flag{mayBeNewFlag(), outputFlag()}),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("diff takes two snapshot ids, got %d arguments", c.NArg())
			}
			var ids [2]uint64
			for i := range ids {
				id, err := strconv.ParseUint(c.Args().Get(i), 10, 64)
				if err != nil {
					return usagef("snapshot id %q is not a number", c.Args().Get(i))
				}
				ids[i] = id
			}
			ctx := c.Context
			cl, st, err := openLocation(ctx, c, false)
			if err != nil {
				return err
			}
			defer cl.Close()
			var docs [2]*inspect.Document
			for i, id := range ids {
				if docs[i], err = inspect.Inspect(ctx, st, id); err != nil {
					return err
				}
			}
			return print(c, inspect.Diff(docs[0], docs[1]))
		},
	}
}

// inspectCommands are the meta subcommands of this file and report.go.
func inspectCommands() []*cli.Command {
	return []*cli.Command{inspectCommand(), diffCommand(), reportCommand()}
}
