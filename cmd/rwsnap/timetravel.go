package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/internal/timeouts"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/output"
	"github.com/rwsnap/rwsnap/timetravel"
)

const (
	catPgwire = "pgwire (RisingWave frontend)"
	catPoint  = "point in time (exactly one)"
)

func timetravelCommand() *cli.Command {
	return &cli.Command{
		Name:  "timetravel",
		Usage: "read data as it was at a past time: valid QUERY_EPOCH values, one-off queries, pinned psql sessions",
		Description: `RisingWave v1.x can read a table as of a past epoch with SET QUERY_EPOCH = n,
but only inside the epoch range of one of its meta snapshots
([safe_epoch, max_committed_epoch]; on v1.10, per table in state_table_info).
It does not check the value at SET time: the first query fails later with
"Read backup error backup include epoch n not found". These commands turn a
wall-clock time into an epoch some snapshot serves, say which ranges exist when
none does, and keep the session clean afterwards.

  epoch = (unix milliseconds - 1617235200000) << 16    (2021-04-01 UTC is 0)

Times (--at), as people type them into psql or a shell:
  2026-11-20T10:00:00Z, 2026-11-20T11:00:00+01:00     RFC 3339
  '2026-11-20 10:00', '2026-11-20 10:00:00.250+00'    psql style; no zone = local time
  2026-11-20                                           local midnight
  now, -2h, -30m, -1d12h, now-90s, '2h ago'            relative (ms s m h d w)

Snapshots come from rw_catalog.rw_meta_snapshot over pgwire (--pg-url, or the
PGHOST/PGPORT/PGUSER/PGDATABASE/PGPASSWORD variables with RisingWave's defaults
localhost:4566, user root, database dev), or for list and epoch straight from
the backup manifest (--backup-storage-url and --backup-storage-directory).

Examples:
  rwsnap timetravel list --pg-url postgres://root@localhost:4566/dev
  rwsnap timetravel epoch --at '2026-11-20 10:00:00+00'
  rwsnap timetravel query --at '2026-11-20 10:00' -c 'SELECT count(*) FROM t'
  rwsnap timetravel psql --at -2h`,
		Subcommands: []*cli.Command{ttListCommand(), ttEpochCommand(), ttQueryCommand(), ttPsqlCommand()},
	}
}

func pgFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "pg-url", Category: catPgwire, EnvVars: env("pg-url"),
			Usage: "frontend connection, as psql takes it: postgres://USER[:PASSWORD]@HOST:PORT/DB (default: PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, else localhost:4566 root dev)"},
	}
}

func manifestFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "backup-storage-url", Category: catStorage, EnvVars: env("backup-storage-url"),
			Usage: "read snapshots from this backup location's manifest instead of a cluster: s3://BUCKET, minio://AK:SK@HOST:PORT/BUCKET, fs://PATH"},
		&cli.StringFlag{Name: "backup-storage-directory", Category: catStorage, EnvVars: env("backup-storage-directory"),
			Usage: "directory inside the backup storage (the cluster's backup_storage_directory, RisingWave's default: backup)"},
	}
}

func tableFlag() cli.Flag {
	return &cli.StringFlag{Name: "table", Category: catPoint, EnvVars: env("table"),
		Usage: "table id for RisingWave v1.10's per-table ranges (state_table_info); find it with SELECT id, name FROM rw_catalog.rw_tables. Without it, v1.10 ranges are those valid for every table"}
}

func pointFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "at", Category: catPoint, Usage: "wall-clock time, e.g. '2026-11-20 10:00', '2026-11-20T10:00:00Z', -2h (zone-less times are local)"},
		&cli.StringFlag{Name: "epoch", Category: catPoint, Usage: "a QUERY_EPOCH value; must be a committed epoch (low 16 bits zero) inside a snapshot's range"},
		&cli.StringFlag{Name: "snapshot", Category: catPoint, Usage: "meta snapshot id: read the data as it was when that snapshot was taken"},
		tableFlag(),
	}
}

// pgConnString is --pg-url, or a URL from the PG* variables with
// RisingWave's defaults (psql's own defaults, port 5432 and the OS user,
// never reach a RisingWave frontend). The password stays in PGPASSWORD,
// which pgx and psql both read.
func pgConnString(c *cli.Context) string {
	if u := c.String("pg-url"); u != "" {
		return u
	}
	get := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	host, port, user, db := get("PGHOST", "localhost"), get("PGPORT", "4566"), get("PGUSER", "root"), get("PGDATABASE", "dev")
	if strings.HasPrefix(host, "/") { // a socket directory
		q := func(s string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'" }
		return fmt.Sprintf("host=%s port=%s user=%s dbname=%s", q(host), q(port), q(user), q(db))
	}
	u := url.URL{Scheme: "postgres", User: url.User(user), Host: net.JoinHostPort(host, port), Path: "/" + db}
	return u.String()
}

// redactConn hides a password for messages.
func redactConn(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return s
}

// ttSource is where snapshots came from, and the session when pgwire.
type ttSource struct {
	cat  *timetravel.Catalog
	conn *pgx.Conn // nil for a manifest
	desc string
	cs   string // connection string
}

func (s *ttSource) Close() {
	if s.conn != nil {
		s.conn.Close(context.Background())
	}
}

func openTTSource(c *cli.Context, allowManifest bool) (*ttSource, error) {
	ctx := c.Context
	bu, bd := c.String("backup-storage-url"), c.String("backup-storage-directory")
	if allowManifest && (bu != "" || bd != "") {
		if bu == "" || bd == "" {
			return nil, usagef("give both --backup-storage-url and --backup-storage-directory to read a backup manifest")
		}
		if c.String("pg-url") != "" {
			return nil, usagef("give --pg-url or the backup location, not both")
		}
		store, err := objstore.Open(ctx, bu)
		if err != nil {
			return nil, fmt.Errorf("open backup storage: %w", err)
		}
		defer store.Close()
		st := metasnap.NewStorage(store, bd)
		m, _, err := st.ReadExistingManifest(ctx)
		if err != nil {
			return nil, err
		}
		return &ttSource{cat: timetravel.FromManifest(m), desc: "backup manifest of " + st.String()}, nil
	}
	cs := pgConnString(c)
	conn, err := timetravel.Connect(ctx, cs)
	if err != nil {
		return nil, err
	}
	// rwsnap's own catalog query: bounded (the user's queries are not).
	rctx, cancel := timeouts.WithOperation(ctx)
	cat, err := timetravel.ReadSnapshots(rctx, conn)
	cancel()
	if err != nil {
		conn.Close(context.Background())
		if errors.Is(err, timetravel.ErrNotRisingWave) {
			return nil, fmt.Errorf("%s: %w", redactConn(cs), err)
		}
		return nil, err
	}
	return &ttSource{cat: cat, conn: conn, cs: cs, desc: cat.Shape.String() + " at " + redactConn(cs)}, nil
}

func tableArg(c *cli.Context) (*uint32, error) {
	s := c.String("table")
	if s == "" {
		return nil, nil
	}
	id, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return nil, usagef("--table %q: want a numeric table id (SELECT id, name FROM rw_catalog.rw_tables)", s)
	}
	v := uint32(id)
	return &v, nil
}

// parsePoint checks the point-in-time flags before any connection, so bad
// input fails fast with exit code 2.
type point struct {
	at       time.Time
	epoch    uint64
	snapshot uint64
	kind     string // "at", "epoch" or "snapshot"
	table    *uint32
}

func parsePoint(c *cli.Context) (*point, error) {
	var set []string
	for _, f := range []string{"at", "epoch", "snapshot"} {
		if c.IsSet(f) {
			set = append(set, "--"+f)
		}
	}
	if len(set) != 1 {
		if len(set) == 0 {
			return nil, usagef("say which point in time: --at TIME, --epoch N or --snapshot ID")
		}
		return nil, usagef("give only one of %s", strings.Join(set, ", "))
	}
	p := &point{kind: strings.TrimPrefix(set[0], "--")}
	var err error
	if p.table, err = tableArg(c); err != nil {
		return nil, err
	}
	switch p.kind {
	case "at":
		t, err := timetravel.ParseTime(c.String("at"), time.Now(), time.Local)
		if err != nil {
			return nil, usagef("--at: %w", err)
		}
		if _, err := timetravel.EpochAt(t); err != nil {
			return nil, usagef("--at: %w", err)
		}
		p.at = t
	case "epoch":
		if p.epoch, err = timetravel.ParseEpoch(c.String("epoch")); err != nil {
			return nil, usagef("--epoch: %w", err)
		}
	case "snapshot":
		if p.snapshot, err = strconv.ParseUint(c.String("snapshot"), 10, 64); err != nil {
			return nil, usagef("--snapshot %q: want a meta snapshot id", c.String("snapshot"))
		}
	}
	return p, nil
}

// choosePoint parses --at/--epoch/--snapshot (usage errors come before any
// connection), opens the snapshot source and picks the epoch. The caller
// closes the source.
func choosePoint(c *cli.Context, allowManifest bool) (*ttSource, *timetravel.Choice, error) {
	p, err := parsePoint(c)
	if err != nil {
		return nil, nil, err
	}
	src, err := openTTSource(c, allowManifest)
	if err != nil {
		return nil, nil, err
	}
	warnTableIgnored(c, src.cat, p.table)
	ch, err := p.choose(src.cat)
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	return src, ch, nil
}

func (p *point) choose(cat *timetravel.Catalog) (*timetravel.Choice, error) {
	switch p.kind {
	case "at":
		return cat.ChooseTime(p.at, p.table, time.Local)
	case "epoch":
		return cat.ChooseEpoch(p.epoch, p.table, time.Local)
	}
	return cat.ChooseSnapshot(p.snapshot, p.table, time.Local)
}

// note prints a remark for people on stderr (not with --quiet).
func note(c *cli.Context, format string, args ...any) {
	if lookup(c, "quiet", func(c *cli.Context, n string) bool { return c.Bool(n) }) {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if lookup(c, "log-format", str) == "json" {
		// With JSON logs, stderr holds only JSON records.
		slog.Info(strings.TrimPrefix(msg, "note: "))
		return
	}
	fmt.Fprintln(c.App.ErrWriter, msg)
}

func warnTableIgnored(c *cli.Context, cat *timetravel.Catalog, table *uint32) {
	if table != nil && !cat.HasPerTable() {
		note(c, "note: --table has no effect: these snapshots have no per-table epochs (RisingWave before v1.10 uses one range per snapshot)")
	}
}

// describeChoice explains a choice in one or two lines.
func describeChoice(ch *timetravel.Choice) []string {
	var lines []string
	lines = append(lines, fmt.Sprintf("as of %s", timetravel.FormatTime(ch.Time(), time.Local)))
	if !ch.Requested.IsZero() && !ch.Exact {
		lines = append(lines, fmt.Sprintf("no snapshot covers %s itself: this is the latest earlier moment one does (data after it is unknown to the backups)",
			timetravel.FormatTime(ch.Requested, time.Local)))
	}
	scope := ""
	if ch.Range.PerTable {
		scope = "; per-table range"
		if ch.Table != nil {
			scope = fmt.Sprintf("; range of table %d", *ch.Table)
		}
	}
	lines = append(lines, fmt.Sprintf("QUERY_EPOCH = %d, read from meta snapshot %d (serves %s .. %s%s)", ch.Epoch, ch.Range.SnapshotID,
		timetravel.FormatTime(timetravel.ToTime(ch.Range.Lo), nil), timetravel.FormatTime(timetravel.ToTime(ch.Range.Hi), nil), scope))
	return lines
}

// epochRange is a range of epochs a snapshot serves, with their times.
type epochRange struct {
	FromEpoch uint64 `json:"from_epoch"`
	FromTime  string `json:"from_time"`
	ToEpoch   uint64 `json:"to_epoch"`
	ToTime    string `json:"to_time"`
	PerTable  bool   `json:"per_table"`
}

func newEpochRange(r timetravel.Range) *epochRange {
	return &epochRange{FromEpoch: r.Lo, FromTime: output.EpochTime(r.Lo), ToEpoch: r.Hi, ToTime: output.EpochTime(r.Hi), PerTable: r.PerTable}
}

// ttChoiceResult is timetravel epoch's.
type ttChoiceResult struct {
	Epoch uint64 `json:"epoch"`
	Time  string `json:"time"`
	// Exact is false when no snapshot covers the requested time and the
	// latest earlier covered moment was taken.
	Exact         bool        `json:"exact"`
	RequestedTime string      `json:"requested_time"` // "" unless --at
	SnapshotID    uint64      `json:"snapshot_id"`
	Table         *uint32     `json:"table"`
	SQL           string      `json:"sql"`
	Range         *epochRange `json:"range"`
	choice        *timetravel.Choice
}

func newChoiceResult(ch *timetravel.Choice) *ttChoiceResult {
	r := &ttChoiceResult{Epoch: ch.Epoch, Time: output.Time(ch.Time()), Exact: ch.Exact, RequestedTime: output.Time(ch.Requested),
		SnapshotID: ch.Range.SnapshotID, Table: ch.Table, SQL: timetravel.SetEpochSQL(ch.Epoch) + ";", Range: newEpochRange(ch.Range), choice: ch}
	return r
}

func (r *ttChoiceResult) WriteTable(w io.Writer) error {
	for _, l := range describeChoice(r.choice) {
		fmt.Fprintf(w, "-- %s\n", l)
	}
	_, err := fmt.Fprintf(w, "%s\n", r.SQL)
	return err
}

// ttListResult is timetravel list's.
type ttListResult struct {
	Source    string       `json:"source"`
	Snapshots []ttSnapshot `json:"snapshots"`
	table     *uint32
}

type ttSnapshot struct {
	ID               uint64      `json:"id"`
	HummockVersionID uint64      `json:"hummock_version_id"`
	Remarks          string      `json:"remarks"`
	RWVersion        string      `json:"rw_version"`
	Range            *epochRange `json:"range"` // null: serves no epoch (for --table)
	Tables           []tableInfo `json:"tables"`
	snap             timetravel.Snapshot
}

func newTTList(src *ttSource, table *uint32) *ttListResult {
	r := &ttListResult{Source: src.desc, Snapshots: []ttSnapshot{}, table: table}
	for _, s := range src.cat.Snapshots {
		e := ttSnapshot{ID: s.ID, HummockVersionID: s.HummockVersionID, Tables: []tableInfo{}, snap: s}
		if s.Remarks != nil {
			e.Remarks = *s.Remarks
		}
		if s.RWVersion != nil {
			e.RWVersion = *s.RWVersion
		}
		if rg, ok := s.Range(table); ok {
			e.Range = newEpochRange(rg)
		}
		for id, t := range s.Tables {
			e.Tables = append(e.Tables, tableInfo{TableID: id, CommittedEpoch: t.CommittedEpoch, CommittedTime: output.EpochTime(t.CommittedEpoch),
				SafeEpoch: t.SafeEpoch, SafeTime: output.EpochTime(t.SafeEpoch)})
		}
		sortTables(e.Tables)
		r.Snapshots = append(r.Snapshots, e)
	}
	return r
}

func (r *ttListResult) WriteTable(w io.Writer) error {
	table := r.table
	fmt.Fprintf(w, "snapshots from %s\n", r.Source)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHUMMOCK VERSION\tFROM (UTC)\tTO (UTC)\tFROM EPOCH\tTO EPOCH\tREMARKS")
	for _, e := range r.Snapshots {
		s := e.snap
		remarks := output.Escape(e.Remarks)
		if len(s.Tables) > 0 && table == nil {
			remarks = strings.TrimSpace(fmt.Sprintf("[%d tables, range valid for all] %s", len(s.Tables), remarks))
		}
		if e.Range == nil {
			why := "(serves no epoch)"
			if table != nil && len(s.Tables) > 0 {
				why = fmt.Sprintf("(no table %d)", *table)
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t\t\t\t%s\n", s.ID, s.HummockVersionID, why, remarks)
			continue
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d\t%d\t%s\n", s.ID, s.HummockVersionID,
			timetravel.ToTime(e.Range.FromEpoch).Format("2006-01-02 15:04:05.000"), timetravel.ToTime(e.Range.ToEpoch).Format("2006-01-02 15:04:05.000"),
			e.Range.FromEpoch, e.Range.ToEpoch, remarks)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d snapshots\n", len(r.Snapshots))
	return err
}

func ttListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list meta snapshots with the time ranges they can serve",
		Description: `One row per meta snapshot, in manifest order (the order RisingWave searches),
with the epochs it serves as UTC times: QUERY_EPOCH works for any committed
epoch inside one of these ranges.

On RisingWave v1.10 the ranges are per table; without --table the range shown
is the one valid for every table in the snapshot.

Examples:
  rwsnap timetravel list --pg-url postgres://root@localhost:4566/dev
  rwsnap timetravel list --backup-storage-url s3://my-bucket --backup-storage-directory backup -o json
  rwsnap timetravel list --table 1001`,
		Flags: withFlags(pgFlags(), manifestFlags(), []cli.Flag{tableFlag(), outputFlag()}),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("list takes no arguments, got %q", c.Args().Slice())
			}
			table, err := tableArg(c)
			if err != nil {
				return err
			}
			src, err := openTTSource(c, true)
			if err != nil {
				return err
			}
			defer src.Close()
			warnTableIgnored(c, src.cat, table)
			return print(c, newTTList(src, table))
		},
	}
}

func ttEpochCommand() *cli.Command {
	return &cli.Command{
		Name:  "epoch",
		Usage: "print a valid SET QUERY_EPOCH for a time, an epoch or a snapshot",
		Description: `Prints the SET statement to paste into psql (with comments saying what it
pins), after checking that a meta snapshot serves it. A time inside a
snapshot's range gives its own epoch; a time between two snapshots' ranges gives
the latest earlier covered moment (with a warning); a time before or after all
of them is refused with the covered ranges listed.

Examples:
  rwsnap timetravel epoch --at '2026-11-20 10:00:00+00'
  rwsnap timetravel epoch --at -1d | psql postgres://root@localhost:4566/dev   # then query in that session
  rwsnap timetravel epoch --snapshot 7 -o json
  rwsnap timetravel epoch --epoch 5690621952000000 --backup-storage-url fs:///backups --backup-storage-directory backup`,
		Flags: withFlags(pgFlags(), manifestFlags(), pointFlags(), []cli.Flag{outputFlag()}),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("epoch takes no arguments, got %q", c.Args().Slice())
			}
			src, ch, err := choosePoint(c, true)
			if err != nil {
				return err
			}
			defer src.Close()
			if !ch.Exact && format(c) == output.Table {
				note(c, "warning: no snapshot covers %s; using %s, the latest earlier covered moment",
					timetravel.FormatTime(ch.Requested, time.Local), timetravel.FormatTime(ch.Time(), time.Local))
			}
			return print(c, newChoiceResult(ch))
		},
	}
}

func ttQueryCommand() *cli.Command {
	return &cli.Command{
		Name:  "query",
		Usage: "run one query as of a past time, then reset the session",
		Description: `Checks the point in time against rw_meta_snapshot, then on one connection runs
SET QUERY_EPOCH = n, the query, and SET QUERY_EPOCH = 0 (also when the query
fails or you press Ctrl-C, which cancels the query on the server). Prints the
rows with their column names. Exits 1 when the query fails.

Tables are read with the current catalog: a table dropped since cannot be
queried, and columns added since are not in the backup.

Examples:
  rwsnap timetravel query --at '2026-11-20 10:00' -c 'SELECT count(*) FROM t'
  rwsnap timetravel query --at -2h -c 'SELECT * FROM orders ORDER BY id' -o csv > orders.csv
  rwsnap timetravel query --snapshot 7 -c 'SELECT * FROM t' -o json
  PGHOST=rw.internal rwsnap timetravel query --epoch 5690621952000000 -c 'SELECT * FROM t'`,
		Flags: withFlags(pgFlags(), pointFlags(), []cli.Flag{
			&cli.StringFlag{Name: "command", Aliases: []string{"c"}, Usage: "the SQL to run (one statement)"},
			outputFlag("csv"),
		}),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("query takes the SQL with -c, got arguments %q", c.Args().Slice())
			}
			sql := strings.TrimSpace(c.String("command"))
			if sql == "" {
				return usagef("give the query with -c 'SELECT ...'")
			}
			out := c.String("output")
			src, ch, err := choosePoint(c, false)
			if err != nil {
				return err
			}
			defer src.Close()
			if !ch.Exact {
				note(c, "warning: no snapshot covers %s; reading %s, the latest earlier covered moment",
					timetravel.FormatTime(ch.Requested, time.Local), timetravel.FormatTime(ch.Time(), time.Local))
			}
			note(c, "-- %s", strings.Join(describeChoice(ch), "\n-- "))
			res, err := timetravel.Query(c.Context, src.conn, ch.Epoch, sql)
			if err != nil {
				return err
			}
			return timetravel.Render(c.App.Writer, res, out)
		},
	}
}

func ttPsqlCommand() *cli.Command {
	return &cli.Command{
		Name:      "psql",
		Usage:     "open psql with QUERY_EPOCH already set to a past time",
		ArgsUsage: "[-- PSQL ARGS...]",
		Description: `Checks the point in time, then runs the system psql with a temporary startup
file (PSQLRC) that runs your own ~/.psqlrc (or $PSQLRC), sets QUERY_EPOCH,
prints a banner saying what the session is pinned to and prefixes the prompt.
The file is removed when psql exits; the setting ends with the session.
Arguments after -- go to psql (not -X, which would skip the startup file).

Examples:
  rwsnap timetravel psql --at '2026-11-20 10:00'
  rwsnap timetravel psql --pg-url postgres://root@rw:4566/dev --snapshot 7
  rwsnap timetravel psql --at -1h -- -f report.sql         # a script, non-interactively
  echo 'SELECT count(*) FROM t;' | rwsnap timetravel psql --at -1h`,
		Flags: withFlags(pgFlags(), pointFlags(), []cli.Flag{
			&cli.StringFlag{Name: "psql", Value: "psql", Usage: "psql binary to run", EnvVars: env("psql")},
		}),
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			for _, a := range args {
				if a == "-X" || a == "--no-psqlrc" {
					return usagef("psql's %s would skip the startup file that sets QUERY_EPOCH", a)
				}
			}
			src, ch, err := choosePoint(c, false)
			if err != nil {
				return err
			}
			// psql opens its own session; this one only validated.
			src.Close()
			var banner []string
			for _, l := range describeChoice(ch) {
				banner = append(banner, "rwsnap: "+l)
			}
			// The prompt is fixed when psql starts and cannot follow a SET
			// typed later, so the banner suggests none: another point in
			// time is another session.
			banner = append(banner, "rwsnap: the prompt shows this point in time for the whole session; for live data or another time, quit and run rwsnap timetravel psql again (or plain psql)")
			return timetravel.RunPsql(timetravel.PsqlOptions{
				Path: c.String("psql"), ConnString: src.cs, Epoch: ch.Epoch, Banner: banner,
				Prompt: "[as of " + ch.Time().UTC().Format("2006-01-02 15:04:05") + " UTC] ",
				Args:   args, Stdin: os.Stdin, Stdout: c.App.Writer, Stderr: c.App.ErrWriter,
			})
		},
	}
}
