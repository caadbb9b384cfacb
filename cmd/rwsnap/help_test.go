package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestHelpTeaches: every command's --help has examples, flags in the
// order they are declared (the retention flags read as a sentence), and
// no "(default: 0)" / "(default: false)" / "(required) (default: ...)".
func TestHelpTeaches(t *testing.T) {
	var walk func(path []string, cmds []*cli.Command)
	n := 0
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Name == "help" {
				continue
			}
			p := append(append([]string{}, path...), c.Name)
			if len(c.Subcommands) > 0 {
				walk(p, c.Subcommands)
			}
			var out, errb bytes.Buffer
			if code := run(context.Background(), append(append([]string{"rwsnap"}, p...), "--help"), &out, &errb); code != 0 {
				t.Errorf("%s --help: exit %d %s", strings.Join(p, " "), code, errb.String())
			}
			h := out.String()
			n++
			if !strings.Contains(h, "Example") {
				t.Errorf("rwsnap %s --help has no example", strings.Join(p, " "))
			}
			if m := regexp.MustCompile(`.*\(default: (0|0s|false)\).*|.*\(required\) \(default.*`).FindString(h); m != "" {
				t.Errorf("rwsnap %s --help: %q", strings.Join(p, " "), strings.TrimSpace(m))
			}
			_, opts, _ := strings.Cut(h, "OPTIONS:")
			if i, j := strings.Index(opts, "--keep-hourly"), strings.Index(opts, "--keep-daily"); i >= 0 && (j < i) {
				t.Errorf("rwsnap %s --help: --keep-daily (\"... of the last N days\") before --keep-hourly", strings.Join(p, " "))
			}
		}
	}
	walk(nil, newApp(nil, nil).Commands)
	if n < 20 {
		t.Fatalf("only %d commands", n)
	}
}
