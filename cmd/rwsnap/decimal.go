package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// urfave/cli parses integer flags with strconv's base 0, so "01011" would
// be octal 521, and "0x3f3" or "1_011" 1011: a snapshot id typed with a
// leading zero could restore another snapshot. rwsnap's numbers are
// decimal; anything else is refused before the command runs.
var decimal = regexp.MustCompile(`^[+-]?(0|[1-9][0-9]*)$`)

// notDecimal is a value strconv's base 0 reads as a number though it is
// not plain decimal; other bad values are left to the flag's own message.
func notDecimal(v string) bool {
	if decimal.MatchString(v) {
		return false
	}
	_, errS := strconv.ParseInt(v, 0, 64)
	_, errU := strconv.ParseUint(v, 0, 64)
	return errS == nil || errU == nil
}

func isIntFlag(f cli.Flag) bool {
	switch f.(type) {
	case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
		return true
	}
	return false
}

// checkDecimalFlags refuses a non-decimal value of an integer flag of the
// command args name, given on the command line or in its environment
// variable.
func checkDecimalFlags(app *cli.App, args []string) error {
	flags := commandFlags(app, args)
	ints := map[string]bool{}
	for _, f := range flags {
		if !isIntFlag(f) {
			continue
		}
		for _, n := range f.Names() {
			ints[n] = true
		}
		if ev, ok := f.(interface{ GetEnvVars() []string }); ok {
			for _, e := range ev.GetEnvVars() {
				if v, set := os.LookupEnv(e); set && notDecimal(strings.TrimSpace(v)) {
					return usagef("%s=%q: give a decimal number (a leading 0, 0x, 0o, 0b or _ is not read as decimal)", e, v)
				}
			}
		}
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !ints[name] {
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				continue
			}
			i++
			value = args[i]
		}
		if notDecimal(value) {
			return usagef("--%s %q: give a decimal number (a leading 0, 0x, 0o, 0b or _ is not read as decimal)", name, value)
		}
	}
	return nil
}

// commandFlags is every flag the command args name can take: the global
// ones and those of each command on its path (read before urfave/cli
// parses, so that the checks run before anything is opened).
func commandFlags(app *cli.App, args []string) []cli.Flag {
	flags := append([]cli.Flag{}, app.Flags...)
	cmds := app.Commands
	for _, a := range args[min(1, len(args)):] {
		if strings.HasPrefix(a, "-") {
			continue
		}
		found := subcommand(cmds, a)
		if found == nil {
			break
		}
		flags = append(flags, found.Flags...)
		cmds = found.Subcommands
	}
	return flags
}

// subcommand is the command of cmds that name (or one of its aliases) is,
// nil if none.
func subcommand(cmds []*cli.Command, name string) *cli.Command {
	var found *cli.Command
	for _, c := range cmds {
		if c.HasName(name) {
			found = c
		}
	}
	return found
}
