package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestFlagsFirst(t *testing.T) {
	app := newApp(nil, nil)
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	tests := []struct{ in, want string }{
		{"rwsnap meta delete-meta-snapshots 3 4 --etcd-endpoints x", "rwsnap meta delete-meta-snapshots --etcd-endpoints x -- 3 4"},
		{"rwsnap -q meta delete-meta-snapshots 3 --output=json -q", "rwsnap -q meta delete-meta-snapshots --output=json -q -- 3"},
		{"rwsnap meta verify-meta-snapshot --all --check-ssts", "rwsnap meta verify-meta-snapshot --all --check-ssts"},
		{"rwsnap meta verify-meta-snapshot 1 -- -2", "rwsnap meta verify-meta-snapshot -- 1 -2"},
		{"rwsnap meta backup-meta --remarks 'x' --force", "rwsnap meta backup-meta --remarks 'x' --force"},
		{"rwsnap nosuch 1 --x", "rwsnap nosuch 1 --x"},
		{"rwsnap meta", "rwsnap meta"},
	}
	for _, tt := range tests {
		got := strings.Join(flagsFirst(app, strings.Fields(tt.in)), " ")
		if got != tt.want {
			t.Errorf("flagsFirst(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func TestEnvNames(t *testing.T) {
	if got := env("etcd-password")[0]; got != "RWSNAP_ETCD_PASSWORD" {
		t.Fatal(got)
	}
}

// TestEveryFlagFromTheEnvironment walks the whole command tree: the README
// promises that every flag can come from RWSNAP_<FLAG>, so each one must
// list that variable, and setting it must reach the command.
func TestEveryFlagFromTheEnvironment(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	var walk func(path string, cmds []*cli.Command)
	n := 0
	check := func(path string, flags []cli.Flag) {
		for _, f := range flags {
			want := env(f.Names()[0])[0]
			ev, ok := f.(interface{ GetEnvVars() []string })
			if !ok || !slices.Contains(ev.GetEnvVars(), want) {
				t.Errorf("%s --%s: not settable as %s", path, f.Names()[0], want)
			}
			n++
		}
	}
	check("rwsnap", app.Flags)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := path + " " + c.Name
			if len(c.Subcommands) > 0 {
				walk(p, c.Subcommands)
				continue
			}
			check(p, c.Flags)
		}
	}
	walk("rwsnap", app.Commands)
	if n < 50 {
		t.Fatalf("only %d flags found", n)
	}
}

// TestDryRunFromTheEnvironment: RWSNAP_DRY_RUN reaches every command that
// has --dry-run.
func TestDryRunFromTheEnvironment(t *testing.T) {
	t.Setenv("RWSNAP_DRY_RUN", "true")
	app := newApp(io.Discard, io.Discard)
	var found []string
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := path + " " + c.Name
			if len(c.Subcommands) > 0 {
				walk(p, c.Subcommands)
				continue
			}
			for _, f := range c.Flags {
				if f.Names()[0] != "dry-run" {
					continue
				}
				found = append(found, p)
				set := flag.NewFlagSet(p, flag.ContinueOnError)
				if err := f.Apply(set); err != nil {
					t.Fatal(err)
				}
				if v := set.Lookup("dry-run").Value.String(); v != "true" {
					t.Errorf("%s: RWSNAP_DRY_RUN=true gives --dry-run %s", p, v)
				}
			}
		}
	}
	walk("rwsnap", app.Commands)
	for _, want := range []string{"meta prune", "params set", "meta backup-meta", "meta delete-meta-snapshots", "meta restore-meta", "meta copy-meta-snapshots", "schedule"} {
		if !slices.ContainsFunc(found, func(s string) bool { return strings.HasSuffix(s, " "+want) }) {
			t.Errorf("%s has no --dry-run (found on %v)", want, found)
		}
	}
}
