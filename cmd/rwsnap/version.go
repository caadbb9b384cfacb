package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// versionText is what --version prints: the module version, the VCS
// revision and time the binary was built from (from the build info the Go
// toolchain embeds), and the Go version. version, when set by the linker
// for a release, wins over the module version.
func versionText() string {
	v, rev, when, modified, goVersion := version, "", "", false, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	out := "rwsnap " + v
	switch {
	case rev != "":
		out += ", revision " + rev
		if modified {
			out += " (with uncommitted changes)"
		}
		if when != "" {
			out += ", committed " + when
		}
	default:
		out += ", revision unknown (built without VCS information)"
	}
	if goVersion != "" {
		out += ", " + goVersion
	}
	return out
}

func init() {
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, versionText()) }
}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script for bash or zsh",
		ArgsUsage: "bash|zsh",
		Description: `Prints a script that completes rwsnap's commands and flags.

Examples:
  source <(rwsnap completion bash)                        # this shell
  rwsnap completion bash > /etc/bash_completion.d/rwsnap  # every bash
  rwsnap completion zsh > "${fpath[1]}/_rwsnap"           # zsh (then compinit)`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("name the shell: rwsnap completion bash, or rwsnap completion zsh")
			}
			switch sh := c.Args().First(); sh {
			case "bash":
				return writeCompletion(c.App.Writer, c.App, false)
			case "zsh":
				return writeCompletion(c.App.Writer, c.App, true)
			default:
				return usagef("completion for %q: rwsnap completes bash and zsh", sh)
			}
		},
	}
}

// writeCompletion writes a static script: for each command path, its
// subcommands and flags. zsh runs the same function through bashcompinit.
func writeCompletion(w io.Writer, app *cli.App, zsh bool) error {
	type entry struct{ cmds, flags string }
	paths := map[string]entry{}
	flagNames := func(flags []cli.Flag) string {
		var out []string
		for _, f := range flags {
			for _, n := range f.Names() {
				if len(n) == 1 {
					out = append(out, "-"+n)
				} else {
					out = append(out, "--"+n)
				}
			}
		}
		return strings.Join(out, " ")
	}
	var walk func(path string, cmds []*cli.Command, flags []cli.Flag)
	walk = func(path string, cmds []*cli.Command, flags []cli.Flag) {
		var names []string
		for _, c := range cmds {
			if c.Hidden || c.Name == "help" {
				continue
			}
			names = append(names, c.Name)
			walk(strings.TrimSpace(path+" "+c.Name), c.Subcommands, c.Flags)
		}
		paths[path] = entry{strings.Join(names, " "), flagNames(append(flags, cli.HelpFlag))}
	}
	walk("", app.Commands, app.Flags)
	var keys []string
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	if zsh {
		b.WriteString("#compdef rwsnap\n# zsh completion for rwsnap (rwsnap completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n")
	} else {
		b.WriteString("# bash completion for rwsnap (rwsnap completion bash)\n")
	}
	b.WriteString(`_rwsnap() {
  local cur="${COMP_WORDS[COMP_CWORD]}" path="" w i cmds="" flags=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    [[ $w == -* ]] && continue
    _rwsnap_known "${path:+$path }$w" && path="${path:+$path }$w"
  done
  _rwsnap_words "$path"
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
  fi
}
_rwsnap_known() {
  case "$1" in
`)
	for _, k := range keys {
		if k != "" {
			fmt.Fprintf(&b, "    %q) return 0 ;;\n", k)
		}
	}
	b.WriteString("  esac\n  return 1\n}\n_rwsnap_words() {\n  case \"$1\" in\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "    %q) cmds=%q; flags=%q ;;\n", k, paths[k].cmds, paths[k].flags)
	}
	b.WriteString("  esac\n}\ncomplete -o default -F _rwsnap rwsnap\n")
	_, err := io.WriteString(w, b.String())
	return err
}
