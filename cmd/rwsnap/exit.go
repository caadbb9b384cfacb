package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/rwsnap/rwsnap/internal/textdist"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/rwversion"
	"github.com/rwsnap/rwsnap/timetravel"
)

// Exit codes scripts can trust (README "Exit codes").
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
	exitSIGINT  = 128 + int(syscall.SIGINT)  // 130
	exitSIGTERM = 128 + int(syscall.SIGTERM) // 143
)

// usageError marks errors caused by how rwsnap was called (exit 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// childOwnsSignals is set while a child (psql) runs in the foreground: the
// terminal sends Ctrl-C to the child too, which handles it (cancels the
// query), so rwsnap must not stop; the child's status is the exit code.
var childOwnsSignals atomic.Bool

// signalContext is cancelled by the first SIGINT or SIGTERM; code then
// returns the exit code the signal calls for (130, 143), or 0 when none
// came. A second signal exits at once.
func signalContext() (ctx context.Context, code func() int, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	var got atomic.Int32
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				if childOwnsSignals.Load() {
					continue
				}
				n := signalExit(s)
				if !got.CompareAndSwap(0, int32(n)) {
					// As the final error: a JSON record under JSON logs.
					printFatal(os.Stderr, fatalFormat(os.Args), errors.New("second signal: stopping now"), n)
					os.Exit(n)
				}
				cancel()
			}
		}
	}()
	return ctx, func() int { return int(got.Load()) }, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

func signalExit(s os.Signal) int {
	if s == syscall.SIGTERM {
		return exitSIGTERM
	}
	return exitSIGINT
}

// exitCode maps a command's error to the process status.
func exitCode(err error) int {
	var ue usageError
	var pe *timetravel.PsqlExitError
	var ee *exec.ExitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, rwversion.ErrContradiction):
		// --rw-version that the store or snapshot contradicts, wherever
		// the check ran.
		return exitUsage
	case errors.As(err, &pe):
		return pe.Code
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
	}
	return exitRuntime
}

// checkCommand walks args the way urfave/cli will and refuses an unknown
// command with rwsnap's own message and suggestions (urfave says "No help
// topic for 'X'" and exits 3).
func checkCommand(app *cli.App, args []string) error {
	cmds := app.Commands
	path := app.Name
	takesValue := valueFlags(app.Flags)
	helping := false
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return nil
		}
		if strings.HasPrefix(a, "-") {
			if takesValue[strings.TrimLeft(a, "-")] && !strings.Contains(a, "=") {
				i++
			}
			continue
		}
		if a == "help" || a == "h" {
			if helping {
				return nil
			}
			helping = true
			continue
		}
		found := subcommand(cmds, a)
		if found == nil {
			return unknownCommand(path, a, cmds)
		}
		path += " " + found.Name
		if len(found.Subcommands) == 0 {
			return nil
		}
		cmds = found.Subcommands
		takesValue = valueFlags(found.Flags)
	}
	return nil
}

func unknownCommand(path, name string, cmds []*cli.Command) error {
	var names []string
	for _, c := range cmds {
		if !c.Hidden && c.Name != "help" {
			names = append(names, c.Name)
		}
	}
	msg := fmt.Sprintf("unknown command %q for %s", name, path)
	if s := suggest(name, names); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(quoteAll(s, ""), " or "))
	}
	return usagef("%s; commands: %s (see: %s --help)", msg, strings.Join(names, ", "), path)
}

func valueFlags(flags []cli.Flag) map[string]bool {
	m := map[string]bool{}
	for _, f := range flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			m[n] = !isBool
		}
	}
	return m
}

// flagError rewrites the Go flag package's messages ("flag provided but
// not defined: -etcd-endpoint") into rwsnap's, with suggestions.
func flagError(c *cli.Context, err error) error {
	path := c.App.Name
	flags := c.App.Flags
	if c.Command != nil && c.Command.Name != "" {
		path = c.Command.HelpName
		flags = c.Command.Flags
	}
	var names []string
	for _, f := range flags {
		names = append(names, f.Names()...)
	}
	msg := err.Error()
	dash := func(n string) string {
		if len(n) == 1 {
			return "-" + n
		}
		return "--" + n
	}
	see := fmt.Sprintf(" (see: %s --help)", path)
	switch {
	case strings.HasPrefix(msg, "flag provided but not defined: "):
		name := strings.TrimLeft(strings.TrimPrefix(msg, "flag provided but not defined: "), "-")
		out := fmt.Sprintf("unknown flag %s for %s", dash(name), path)
		if s := suggest(name, names); len(s) > 0 {
			out += fmt.Sprintf(" (did you mean %s?)", strings.Join(quoteAll(s, "--"), " or "))
		}
		return usagef("%s%s", out, see)
	case strings.HasPrefix(msg, "flag needs an argument: "):
		name := strings.TrimLeft(strings.TrimPrefix(msg, "flag needs an argument: "), "-")
		return usagef("%s needs a value%s", dash(name), see)
	case strings.HasPrefix(msg, "invalid value ") || strings.HasPrefix(msg, "invalid boolean value "):
		// invalid value "x" for flag -every: parse error
		rest := strings.TrimPrefix(strings.TrimPrefix(msg, "invalid boolean value "), "invalid value ")
		val, rest, _ := strings.Cut(rest, " for ")
		rest = strings.TrimPrefix(rest, "flag ")
		name, _, _ := strings.Cut(rest, ":")
		name = strings.TrimLeft(name, "-")
		return usagef("%s %s: %s%s", dash(name), val, wantFor(flags, name), see)
	}
	return usagef("%s%s", msg, see)
}

// wantFor says what a flag's value must look like.
func wantFor(flags []cli.Flag, name string) string {
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		switch f.(type) {
		case *cli.DurationFlag:
			return "want a duration such as 90s, 15m or 1h"
		case *cli.IntFlag, *cli.Int64Flag:
			return "want a whole number"
		case *cli.UintFlag, *cli.Uint64Flag:
			return "want a non-negative whole number"
		case *cli.BoolFlag:
			return "a switch: give it alone, or as --" + name + "=true|false"
		case *cli.Float64Flag:
			return "want a number"
		}
	}
	return "not a valid value"
}

func quoteAll(s []string, prefix string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		if prefix != "" && len(v) == 1 {
			out[i] = "-" + v
		} else {
			out[i] = prefix + v
		}
	}
	return out
}

// suggest returns the candidates close to name: a prefix either way, or
// within a few edits (more for longer names).
func suggest(name string, candidates []string) []string {
	type scored struct {
		s string
		d int
	}
	var out []scored
	limit := max(2, len(name)/3)
	for _, c := range candidates {
		if len(c) < 2 {
			continue
		}
		d := textdist.Distance(name, c)
		if strings.HasPrefix(c, name) || strings.HasPrefix(name, c) {
			d = min(d, 1)
		}
		if d <= limit {
			out = append(out, scored{c, d})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].d < out[j].d })
	var res []string
	for _, s := range out {
		// Only the closest: two equally good guesses are both shown.
		if s.d == out[0].d && !slices.Contains(res, s.s) && len(res) < 3 {
			res = append(res, s.s)
		}
	}
	return res
}
