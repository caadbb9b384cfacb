// Command rwsnap protects the metadata of RisingWave v1.x clusters whose
// meta store is etcd: consistent meta snapshots in RisingWave's own backup
// format, verified, listed, deleted and restored.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/internal/memlimit"
	"github.com/rwsnap/rwsnap/internal/progress"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/output"
)

// version is set by the linker for releases.
var version = "dev"

func main() {
	ctx, sig, stop := signalContext()
	signalled = sig
	// Streaming commands hold a few fixed buffers: collect before the heap
	// doubles them (internal/memlimit). For the whole process: it ends in
	// os.Exit, so nothing is deferred.
	memlimit.Start(memlimit.Base)
	stopProfile, stopMem := startProfile(), startMemProfile()
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stopMem()
	stopProfile()
	stop()
	// Stopped by a signal: 130 or 143, whatever the command made of it
	// (a daemon's graceful stop returns nil), as shells report it.
	if s := sig(); s != 0 {
		code = s
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	app.Metadata = map[string]any{metaArgs: args}
	err := checkCommand(app, args)
	if err == nil {
		err = checkDecimalFlags(app, args)
	}
	if err == nil {
		err = checkRepeatedFlags(app, args)
	}
	if err == nil {
		err = app.RunContext(ctx, flagsFirst(app, args))
	}
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if signalled != nil {
		if s := signalled(); s != 0 {
			code = s
		}
	}
	printFatal(stderr, fatalFormat(args), err, code)
	return code
}

// signalled, set by main, says which signal stopped rwsnap (0: none), so
// the final error record carries the status the process exits with.
var signalled func() int

// printFatal writes the error that ends rwsnap: a line "rwsnap: ..." for
// people, or, when JSON logs were asked for, one JSON log record (level
// ERROR, msg and err the error, exit_code) so a log pipeline does not meet
// one line of plain text. Secrets in URLs inside wrapped errors are
// redacted either way; in text, stored strings (remarks, names) quoted in
// errors are escaped so they cannot drive the terminal (JSON escapes
// them itself).
func printFatal(stderr io.Writer, format string, err error, code int) {
	msg := objstore.RedactText(err.Error())
	if format != "json" {
		fmt.Fprintln(stderr, "rwsnap: "+output.EscapeLines(msg))
		return
	}
	l := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{ReplaceAttr: redactAttr}))
	l.Error(msg, "err", msg, "exit_code", code)
}

// fatalFormat is the log format the user asked for, as setupLogging
// reads it (the innermost --log-format, i.e. the last on the command line,
// else $RWSNAP_LOG_FORMAT), found from the arguments themselves because
// the error may have come before or while flags were parsed. Anything but
// json is text.
func fatalFormat(args []string) string {
	format := os.Getenv("RWSNAP_LOG_FORMAT")
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "log-format" {
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				break
			}
			i++
			val = args[i]
		}
		format = val
	}
	if format == "json" {
		return format
	}
	return "text"
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:    "rwsnap",
		Usage:   "consistent backups of a RisingWave etcd meta store, in RisingWave's own format",
		Version: version,
		Description: `rwsnap takes meta snapshots of a RisingWave v1.x cluster straight from its etcd
meta store (one etcd revision), stores them where backup_storage_url and
backup_storage_directory point, in the manifest.json + <id>.snapshot format
that RisingWave itself reads; verifies, lists and deletes them; and restores
them into a fresh etcd, pointed at the same or a new hummock location.

Every flag can also be set from the environment: RWSNAP_<FLAG_NAME>, e.g.
RWSNAP_ETCD_ENDPOINTS, RWSNAP_ETCD_PASSWORD, RWSNAP_BACKUP_STORAGE_URL.

Exit codes: 0 success, 1 runtime error, 2 usage error.`,
		Writer:    stdout,
		ErrWriter: stderr,
		Flags:     withEnv(append(logFlags(), configFlags()...)),
		Before: func(c *cli.Context) error {
			return setupLogging(c, stderr)
		},
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return flagError(c, err)
		},
		// Errors are printed and mapped to exit codes by run, never by
		// urfave/cli's os.Exit.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands:       leafSetup(stderr, []*cli.Command{metaCommand(), paramsCommand(), scheduleCommand(), timetravelCommand(), playgroundCommand(), configCommand(), completionCommand()}),
	}
}

// leafSetup gives every leaf command the logging flags and sets logging up
// from the innermost context that named them.
func leafSetup(stderr io.Writer, cmds []*cli.Command) []*cli.Command {
	for _, cmd := range cmds {
		if len(cmd.Subcommands) > 0 {
			leafSetup(stderr, cmd.Subcommands)
			continue
		}
		cmd.Flags = withEnv(append(append(slices.Clone(cmd.Flags), logFlags()...), configFlags()...))
		cmd.Before = func(c *cli.Context) error {
			if err := setupLogging(c, stderr); err != nil {
				return err
			}
			if err := applyConfig(c); err != nil {
				return err
			}
			if err := metastore.CheckEnv(); err != nil {
				return usageError{err}
			}
			if err := checkFlagValues(c); err != nil {
				return err
			}
			return checkURLFlags(c)
		}
		cmd.OnUsageError = func(c *cli.Context, err error, _ bool) error {
			return flagError(c, err)
		}
	}
	return cmds
}

const catLog = "logging"

// logFlags are accepted before the command and after it (rwsnap -q meta
// backup-meta or rwsnap meta backup-meta -q): people type both.
func logFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "log-format", Category: catLog, Value: "text", Usage: "log format on stderr: text or json", EnvVars: []string{"RWSNAP_LOG_FORMAT"}},
		&cli.StringFlag{Name: "log-level", Category: catLog, Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"RWSNAP_LOG_LEVEL"}},
		&cli.BoolFlag{Name: "quiet", Category: catLog, Aliases: []string{"q"}, Usage: "log only warnings and errors", EnvVars: []string{"RWSNAP_QUIET"}},
	}, append(limitFlags(), timeoutFlags()...)...)
}

// lookup returns a flag's value from the innermost context that set it,
// else its default (the same at every level).
func lookup[T any](c *cli.Context, name string, get func(*cli.Context, string) T) T {
	for _, cc := range c.Lineage() {
		if cc.IsSet(name) {
			return get(cc, name)
		}
	}
	return get(c, name)
}

func setupLogging(c *cli.Context, stderr io.Writer) error {
	if err := unsetEmptyEnv(c, append(logFlags(), limitFlags()...)); err != nil {
		return err
	}
	str := func(c *cli.Context, n string) string { return c.String(n) }
	var level slog.Level
	if err := level.UnmarshalText([]byte(lookup(c, "log-level", str))); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", lookup(c, "log-level", str))
	}
	quiet := lookup(c, "quiet", func(c *cli.Context, n string) bool { return c.Bool(n) })
	if quiet {
		level = slog.LevelWarn
	}
	// Progress lines only for a person watching a terminal, and never
	// among JSON records.
	f, isFile := stderr.(*os.File)
	progress.Enabled = isFile && progress.IsTerminal(f) && !quiet && lookup(c, "log-format", str) != "json"
	progress.Output = stderr
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr}
	var h slog.Handler
	switch lookup(c, "log-format", str) {
	case "text":
		logTo := stderr
		if progress.Enabled {
			logTo = progress.LogWriter(stderr) // records never share the bar's line
		}
		h = slog.NewTextHandler(logTo, opts)
	case "json":
		h = slog.NewJSONHandler(stderr, opts)
	default:
		return usagef("--log-format %q: want text or json", lookup(c, "log-format", str))
	}
	slog.SetDefault(slog.New(h))
	if err := applyTimeouts(c); err != nil {
		return err
	}
	return applyLimits(c)
}

// unsetEmptyEnv gives the text flags among flags that an empty variable
// set (RWSNAP_LOG_LEVEL=) their default back: an empty variable is an
// unset one, as checkFlagValues treats every other flag's (these are read
// before it runs). One given on the command line is left alone.
func unsetEmptyEnv(c *cli.Context, flags []cli.Flag) error {
	args, _ := c.App.Metadata[metaArgs].([]string)
	for _, f := range flags {
		sf, ok := f.(*cli.StringFlag)
		if !ok || sf.Value == "" || c.String(sf.Name) != "" || onCommandLine(args, sf.Names()) {
			continue
		}
		for _, e := range sf.EnvVars {
			if v, set := os.LookupEnv(e); set && v == "" {
				if err := c.Set(sf.Name, sf.Value); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// redactAttr keeps secrets out of every log line, whatever logged them.
func redactAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		return slog.String(a.Key, objstore.RedactText(a.Value.String()))
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			return slog.String(a.Key, objstore.RedactText(err.Error()))
		}
	}
	return a
}

// flagsFirst moves a leaf command's flags before its positional arguments,
// so `delete-meta-snapshots 3 4 --etcd-endpoints X` works as people type
// it (urfave/cli stops parsing flags at the first argument).
func flagsFirst(app *cli.App, args []string) []string {
	cmds := app.Commands
	i := 1
	var leaf *cli.Command
	globalValue := valueFlags(app.Flags)
	for i < len(args) && leaf == nil {
		a := args[i]
		i++
		if strings.HasPrefix(a, "-") {
			// a global flag, and its value unless given with =
			if globalValue[strings.TrimLeft(a, "-")] && !strings.Contains(a, "=") {
				i++
			}
			continue
		}
		found := subcommand(cmds, a)
		if found == nil {
			return args
		}
		if len(found.Subcommands) == 0 {
			leaf = found
		}
		cmds = found.Subcommands
	}
	if leaf == nil {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range leaf.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, positional []string
	rest := args[i:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			positional = append(positional, rest[j+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && takesValue[name] && j+1 < len(rest) {
			flags = append(flags, rest[j+1])
			j++
		}
	}
	out := append(append([]string{}, args[:i]...), flags...)
	if len(positional) > 0 {
		out = append(append(out, "--"), positional...)
	}
	return out
}

// urlFlags hold object store URLs; a malformed one is a usage error,
// caught before anything is opened.
var urlFlags = []string{"backup-storage-url", "hummock-storage-url", "to-url", "overwrite-backup-storage-url"}

func checkURLFlags(c *cli.Context) error {
	for _, name := range urlFlags {
		v := c.String(name)
		if v == "" || !c.IsSet(name) {
			continue
		}
		// state_store is hummock+URL; the README says params paste as
		// is, so the prefix is accepted where a plain URL is meant.
		if rest, ok := strings.CutPrefix(v, "hummock+"); ok {
			note(c, "note: --%s: using %s (the state_store value without its 'hummock+' prefix)", name, objstore.Redact(rest))
			if err := c.Set(name, rest); err != nil {
				return err
			}
			v = rest
		}
		if err := objstore.ValidateURL(v); err != nil {
			return usagef("--%s: %s", name, strings.TrimPrefix(err.Error(), "objstore: "))
		}
	}
	return nil
}
