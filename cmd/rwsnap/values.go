package main

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/metaclient"
	"github.com/rwsnap/rwsnap/metastore"
)

// Text flags whose value is free text, not a name, a path or an address.
var (
	// passwords may be anything printable or not, blank included; an
	// empty one has its own message (etcdConfig) or means "none".
	passwordFlags = []string{"etcd-password", "sql-password", "user"}
	// multiLine free text may hold newlines and tabs (SQL, remarks).
	multiLineFlags = []string{"remarks", "command"}
	// emptyOK may be given empty on purpose: no remarks, no password.
	emptyOK = []string{"remarks", "sql-password", "etcd-password"}
	// ownChecks are checked by their own parsers (other owners' flags:
	// the release and the snapshot ids, parsed as risectl does; the data
	// parallelism, bounded by its command), not here.
	ownChecks = []string{"rw-version", "snapshot-ids", "data-parallelism"}
)

// checkFlagValues refuses, before anything is opened, a text flag set (on
// the command line, in its RWSNAP_* variable or from the config file) to
// a value that cannot be what was meant: empty on the command line
// (`--backup-storage-url "$URL"` with URL unset would otherwise mean "the
// cluster's own location", `--etcd-cacert "$CA"` "no TLS"; an empty
// variable is taken as unset), blank, not UTF-8 (RisingWave's names and
// parameters are Rust strings), or holding control characters (a pasted
// escape sequence or a line break in an address or a path). The error
// names the flag and where its value came from; exit 2.
//
// Numbers and durations are refused negative (no count or wait of rwsnap
// means anything below zero), and the flags with a fixed shape are parsed
// here too (--mode, --etcd-endpoints, --pg-url), so that a daemon does not
// retry a typo as if it were a failure.
func checkFlagValues(c *cli.Context) error {
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if slices.Contains(ownChecks, name) || !c.IsSet(name) {
			continue
		}
		from := valueSource(c, name)
		switch f := f.(type) {
		case *cli.StringFlag:
			v := c.String(name)
			if v == "" && strings.HasPrefix(sourceOf(c, name), "env ") {
				// An empty variable is an unset one (RWSNAP_PG_URL= clears
				// an inherited value), as shells and container runtimes
				// treat it; the flag keeps its default.
				if f.Value != "" {
					if err := c.Set(name, f.Value); err != nil {
						return err
					}
				}
				continue
			}
			if err := checkText(name, v); err != nil {
				return usagef("--%s%s %v", name, from, err)
			}
			if check := shapeChecks[name]; check != nil {
				if err := check(v); err != nil {
					return usagef("--%s%s: %v", name, from, err)
				}
			}
		case *cli.DurationFlag:
			if d := c.Duration(name); d < 0 {
				return usagef("--%s%s %s: cannot be negative", name, from, d)
			}
		case *cli.IntFlag:
			if n := c.Int(name); n < 0 {
				return usagef("--%s%s %d: cannot be negative", name, from, n)
			}
		}
	}
	return nil
}

// shapeChecks parse the text flags whose values have a fixed shape.
var shapeChecks = map[string]func(string) error{
	"etcd-endpoints": checkEndpoints,
	"metrics-addr": func(v string) error {
		_, port, err := net.SplitHostPort(v)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%q: want [HOST]:PORT, e.g. :9464 or 127.0.0.1:9464", v)
		}
		return nil
	},
	"mode": func(v string) error {
		_, err := metaclient.ParseMode(v)
		if err != nil {
			return fmt.Errorf("%q: want auto, direct or meta", v)
		}
		return nil
	},
	"pg-url": func(v string) error {
		if _, err := pgx.ParseConfig(v); err != nil {
			// pgx masks a password in what it quotes.
			return fmt.Errorf("not a PostgreSQL connection string (postgres://USER@HOST:PORT/DB or host=HOST port=PORT ...): %w", err)
		}
		return nil
	},
}

// checkText says what is wrong with a text flag's value, or nil.
func checkText(name, v string) error {
	password := slices.Contains(passwordFlags, name)
	switch {
	case v == "" && !slices.Contains(emptyOK, name):
		return fmt.Errorf("is empty: give a value, or leave the flag (and its variable) out for the default")
	case !utf8.ValidString(v) && password:
		return fmt.Errorf("is not valid UTF-8")
	case !utf8.ValidString(v):
		return fmt.Errorf("is not valid UTF-8 (%q)", v)
	case password:
		return nil
	case v != "" && strings.TrimSpace(v) == "" && !slices.Contains(multiLineFlags, name):
		return fmt.Errorf("is blank (%q): give a value, or leave the flag out for the default", v)
	}
	multiLine := slices.Contains(multiLineFlags, name)
	for _, r := range v {
		if (r == '\n' || r == '\t' || r == '\r') && multiLine {
			continue
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("%q holds a control character (%U): retype it without", v, r)
		}
	}
	return nil
}

// checkEndpoints checks each comma-separated etcd endpoint's shape: an
// optional http:// or https://, a host, an optional port 1-65535, and
// nothing else (no spaces inside, no path).
func checkEndpoints(v string) error {
	eps := metastore.ParseEndpoints(v)
	if len(eps) == 0 {
		return fmt.Errorf("%q names no endpoint; want HOST:PORT[,HOST:PORT...], e.g. 127.0.0.1:2379", v)
	}
	for _, e := range eps {
		hostPort := e
		if scheme, rest, ok := strings.Cut(e, "://"); ok {
			if scheme != "http" && scheme != "https" && scheme != "unix" && scheme != "unixs" {
				return fmt.Errorf("endpoint %q: scheme %q: want http:// or https:// (or none)", e, scheme)
			}
			hostPort = strings.TrimSuffix(rest, "/")
			if scheme == "unix" || scheme == "unixs" {
				continue
			}
		}
		if strings.ContainsAny(hostPort, " /?#@") {
			return fmt.Errorf("endpoint %q: want HOST:PORT, e.g. 127.0.0.1:2379", e)
		}
		host, port, err := net.SplitHostPort(hostPort)
		if err != nil {
			// No port: a bare host ("etcd-0"), or an IPv6 literal.
			if strings.Count(hostPort, ":") > 1 && !strings.HasPrefix(hostPort, "[") || strings.HasSuffix(hostPort, ":") {
				return fmt.Errorf("endpoint %q: want HOST:PORT, e.g. 127.0.0.1:2379 ([::1]:2379 for IPv6)", e)
			}
			host, port = hostPort, ""
		}
		if host == "" {
			return fmt.Errorf("endpoint %q has no host; want HOST:PORT, e.g. 127.0.0.1:2379", e)
		}
		if port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("endpoint %q: port %q is not 1-65535", e, port)
			}
		}
	}
	return nil
}

// valueSource says, for an error, where a flag's value came from when it
// was not the command line: " (from RWSNAP_X)", " (from config file F, key K)".
func valueSource(c *cli.Context, name string) string {
	src := sourceOf(c, name)
	switch {
	case strings.HasPrefix(src, "env "):
		return " (from " + strings.TrimPrefix(src, "env ") + ")"
	case strings.HasPrefix(src, "file "):
		rest := strings.TrimPrefix(src, "file ")
		if i := strings.LastIndex(rest, " ("); i >= 0 && strings.HasSuffix(rest, ")") {
			return fmt.Sprintf(" (from config file %s, key %s)", rest[:i], rest[i+2:len(rest)-1])
		}
		return " (from config " + src + ")"
	}
	return ""
}

// checkRepeatedFlags refuses a flag given twice with different values
// (`--meta-snapshot-id 1003 ... --meta-snapshot-id 1002`): urfave/cli
// would silently keep the last, and a restore of the wrong snapshot, or a
// backup to the wrong place, is not a typo to guess about. Aliases count as
// the flag (--endpoints and --etcd-endpoints), and so does the same flag
// before and after the command. The same value twice is harmless and
// passes; list flags (--snapshot-ids) may repeat.
func checkRepeatedFlags(app *cli.App, args []string) error {
	flags := commandFlags(app, args)
	canonical := map[string]cli.Flag{}
	for _, f := range flags {
		for _, n := range f.Names() {
			canonical[n] = f
		}
	}
	seen := map[string]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := canonical[name]
		if f == nil {
			continue // unknown: urfave's parser names it
		}
		if slices.Contains(ownChecks, f.Names()[0]) {
			continue // their own parsers decide (--snapshot-ids repeats, as clap's)
		}
		switch f.(type) {
		case *cli.StringSliceFlag, *cli.IntSliceFlag, *cli.GenericFlag:
			continue
		case *cli.BoolFlag:
			if !hasValue {
				value = "true"
			}
		default:
			if !hasValue {
				if i+1 >= len(args) {
					continue
				}
				i++
				value = args[i]
			}
		}
		main := f.Names()[0]
		prev, dup := seen[main]
		if !dup {
			seen[main] = value
			continue
		}
		if prev == value {
			continue
		}
		if slices.Contains(passwordFlags, main) {
			return usagef("--%s is given twice, with different values: give it once", main)
		}
		return usagef("--%s is given twice, as %q and as %q: give it once", main, prev, value)
	}
	return nil
}
