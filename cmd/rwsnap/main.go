// Command rwsnap protects the metadata of RisingWave v1.x clusters whose
// meta store is etcd: consistent meta snapshots in RisingWave's own backup
// format, verified, listed, deleted and restored.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/objstore"
)

// version is set by the linker for releases.
var version = "dev"

// Exit codes scripts can trust.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError marks errors caused by how rwsnap was called.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	// Secrets can hide in URLs inside wrapped errors: redact the final text.
	fmt.Fprintln(stderr, "rwsnap: "+objstore.RedactText(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitRuntime
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
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format on stderr: text or json", EnvVars: []string{"RWSNAP_LOG_FORMAT"}},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"RWSNAP_LOG_LEVEL"}},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "log only warnings and errors", EnvVars: []string{"RWSNAP_QUIET"}},
		},
		Before: func(c *cli.Context) error {
			return setupLogging(c, stderr)
		},
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usageError{err}
		},
		Commands: []*cli.Command{metaCommand(), playgroundCommand(), timetravelCommand()},
	}
}

func setupLogging(c *cli.Context, stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	if c.Bool("quiet") {
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr}
	var h slog.Handler
	switch c.String("log-format") {
	case "text":
		h = slog.NewTextHandler(stderr, opts)
	case "json":
		h = slog.NewJSONHandler(stderr, opts)
	default:
		return usagef("--log-format %q: want text or json", c.String("log-format"))
	}
	slog.SetDefault(slog.New(h))
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
