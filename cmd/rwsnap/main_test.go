package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"

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
		{"rwsnap --cluster prod meta delete-meta-snapshots 3 -o json", "rwsnap --cluster prod meta delete-meta-snapshots -o json -- 3"},
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

// TestExitCodesAndMessages: usage errors exit 2 with rwsnap's own words
// (never urfave's "No help topic" / Go flag messages), runtime errors 1.
func TestExitCodesAndMessages(t *testing.T) {
	corrupt := t.TempDir()
	if err := os.MkdirAll(filepath.Join(corrupt, "backup"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corrupt, "backup", "manifest.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	loc := []string{"--backup-storage-url", "fs://" + corrupt, "--backup-storage-directory", "backup"}
	tests := []struct {
		args []string
		code int
		want string
		env  map[string]string
	}{
		{args: []string{"nosuch"}, code: 2, want: `unknown command "nosuch" for rwsnap; commands: meta, params`},
		{args: []string{"meta", "lst-meta-snapshots"}, code: 2, want: `unknown command "lst-meta-snapshots" for rwsnap meta (did you mean list-meta-snapshots?)`},
		{args: []string{"help", "nosuch"}, code: 2, want: `unknown command "nosuch" for rwsnap`},
		{args: []string{"--log-level", "debug", "meta", "nosuch"}, code: 2, want: `unknown command "nosuch" for rwsnap meta`},
		{args: []string{"params", "gte"}, code: 2, want: "did you mean get?"},
		{args: []string{"meta", "backup-meta", "--etcd-endpoint", "x"}, code: 2, want: "unknown flag --etcd-endpoint for rwsnap meta backup-meta (did you mean --etcd-endpoints?)"},
		{args: []string{"--nosuch", "meta"}, code: 2, want: "unknown flag --nosuch for rwsnap"},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints"}, code: 2, want: "--etcd-endpoints needs a value"},
		{args: []string{"schedule", "--every", "soon"}, code: 2, want: `--every "soon": want a duration such as 90s, 15m or 1h`},
		{args: []string{"meta", "prune", "--keep-last", "x"}, code: 2, want: `--keep-last "x": want a whole number`},
		{args: append([]string{"meta", "list-meta-snapshots", "-o", "yaml"}, loc...), code: 2, want: `--output "yaml": want table or json`},
		{args: append([]string{"meta", "verify-meta-snapshot", "--all", "--output=xml"}, loc...), code: 2, want: `--output "xml": want table or json`},
		{args: []string{"meta", "list-meta-snapshots", "--backup-storage-url", "gcs://b", "--backup-storage-directory", "d"}, code: 2, want: "--backup-storage-url: gcs:// (in \"gcs://b\") is a RisingWave object store rwsnap does not support"},
		{args: []string{"meta", "copy-meta-snapshots", "--all", "--to-url", "ftp://x", "--to-directory", "d", "--backup-storage-url", "fs:///x", "--backup-storage-directory", "d"}, code: 2, want: `--to-url: unknown scheme "ftp"`},
		{args: []string{"params", "get", "no_such_param", "--etcd-endpoints", "127.0.0.1:1"}, code: 2, want: `unknown system parameter "no_such_param"`},
		{args: []string{"params", "set", "barrier_interval_mss", "5", "--etcd-endpoints", "127.0.0.1:1"}, code: 2, want: `did you mean "barrier_interval_ms"?`},
		{args: []string{"schedule", "--every", "1m", "--jitter", "5m", "--etcd-endpoints", "127.0.0.1:1"}, code: 2, want: "--jitter 5m0s is longer than --every 1m0s"},
		{args: append([]string{"meta", "list-meta-snapshots"}, loc...), code: 1, want: "manifest"},
		// Bad values (empty, blank, control characters, not UTF-8,
		// negative, malformed, repeated; on the command line, in RWSNAP_*
		// and ETCDCTL_* variables): exit 2 naming the flag, before anything
		// is opened.
		{args: append([]string{"meta", "list-meta-snapshots", "--backup-storage-url", ""}, "--etcd-endpoints", "127.0.0.1:1"), code: 2, want: "--backup-storage-url is empty"},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", "127.0.0.1:1", "--backup-storage-directory", "   "}, code: 2, want: `--backup-storage-directory is blank ("   ")`},
		{args: append([]string{"meta", "backup-data", "--all", "--data-storage-url", ""}, append(loc, "--etcd-endpoints", "127.0.0.1:1")...), code: 2, want: "--data-storage-url is empty"},
		{args: append([]string{"meta", "backup-data", "--all", "--dry-run", "--data-storage-directory", "   "}, append(loc, "--etcd-endpoints", "127.0.0.1:1")...), code: 2, want: `--data-storage-directory is blank ("   ")`},
		{args: append([]string{"meta", "backup-meta", "--with-data", "--data-storage-directory", "d\x1bx"}, append(loc, "--etcd-endpoints", "127.0.0.1:1")...), code: 2, want: "--data-storage-directory"},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", "127.0.0.1:1", "--hummock-storage-directory", "a\x1b[31m"}, code: 2, want: `--hummock-storage-directory "a\x1b[31m" holds a control character`},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", "127.0.0.1:1", "--remarks", "ok\x1b[2J"}, code: 2, want: "--remarks"},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", "127.0.0.1:1", "--remarks", "ok\xff"}, code: 2, want: "--remarks is not valid UTF-8"},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", "127.0.0.1:1", "--meta-addr", "\xff\xfe"}, code: 2, want: "--meta-addr is not valid UTF-8"},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", "127.0.0.1:1", "--etcd-password", "\xffpw-SEKRIT", "--etcd-username", "root"}, code: 2, want: "--etcd-password is not valid UTF-8"},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", "a b:2379"}, code: 2, want: `--etcd-endpoints: endpoint "a b:2379"`},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", "h:99999"}, code: 2, want: `port "99999" is not 1-65535`},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", "h:0"}, code: 2, want: `port "0" is not 1-65535`},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", "ftp://h:2379"}, code: 2, want: `scheme "ftp"`},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", ",, ,"}, code: 2, want: "names no endpoint"},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", "127.0.0.1:1", "--mode", "NaN"}, code: 2, want: `--mode: "NaN": want auto, direct or meta`},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", "127.0.0.1:1", "--mode", " "}, code: 2, want: "--mode is blank"},
		{args: []string{"meta", "list-meta-snapshots", "--etcd-endpoints", "127.0.0.1:1", "--etcd-cert", "/x.pem"}, code: 2, want: "--etcd-cert and --etcd-key go together"},
		{args: []string{"meta", "list-meta-snapshots", "--etcd-endpoints", "127.0.0.1:1", "--etcd-cacert", ""}, code: 2, want: "--etcd-cacert is empty"},
		{args: []string{"meta", "list-meta-snapshots", "--etcd-endpoints", "127.0.0.1:1", "--connect-timeout", "-1s"}, code: 2, want: "--connect-timeout -1s: want a positive duration"},
		{args: []string{"meta", "list-meta-snapshots", "--etcd-endpoints", "127.0.0.1:1", "--io-timeout", "0s"}, code: 2, want: "--io-timeout 0s: want a positive duration"},
		{args: []string{"meta", "prune", "--etcd-endpoints", "127.0.0.1:1", "--keep-last", "1", "--orphans", "--orphans-min-age", "-1s"}, code: 2, want: "--orphans-min-age -1s: cannot be negative"},
		{args: []string{"schedule", "--once", "--etcd-endpoints", "127.0.0.1:1", "--max-jobs", "-1"}, code: 2, want: "--max-jobs -1: cannot be negative"},
		{args: []string{"schedule", "--once", "--etcd-endpoints", "127.0.0.1:1", "--retries", "-1"}, code: 2, want: "--retries -1: cannot be negative"},
		{args: []string{"schedule", "--once", "--etcd-endpoints", "127.0.0.1:1", "--stop-timeout", "-1s"}, code: 2, want: "--stop-timeout -1s: cannot be negative"},
		{args: []string{"schedule", "--once", "--etcd-endpoints", "127.0.0.1:1", "--job-timeout", "-5s"}, code: 2, want: "--job-timeout -5s: cannot be negative"},
		{args: []string{"schedule", "--once", "--etcd-endpoints", "127.0.0.1:1", "--mode", "sideways"}, code: 2, want: `--mode: "sideways"`},
		{args: []string{"schedule", "--once", "--etcd-endpoints", "127.0.0.1:1", "--metrics-addr", "NaN"}, code: 2, want: `--metrics-addr: "NaN": want [HOST]:PORT`},
		{args: []string{"schedule", "--once", "--etcd-endpoints", "127.0.0.1:1", "--metrics-addr", ":99999"}, code: 2, want: `--metrics-addr: ":99999"`},
		{args: []string{"timetravel", "list", "--pg-url", "NaN"}, code: 2, want: "--pg-url: not a PostgreSQL connection string"},
		{args: []string{"timetravel", "list", "--pg-url", "postgres://u:SEKRIT@h:99999/db"}, code: 2, want: "--pg-url: not a PostgreSQL connection string"},
		{args: []string{"meta", "restore-meta", "--meta-snapshot-id", "1003", "--meta-snapshot-id", "1002", "--etcd-endpoints", "127.0.0.1:1", "--backup-storage-url", "fs:///x", "--hummock-storage-url", "fs:///y"}, code: 2, want: `--meta-snapshot-id is given twice, as "1003" and as "1002"`},
		{args: []string{"meta", "list-meta-snapshots", "--endpoints", "a:1", "--etcd-endpoints", "b:1"}, code: 2, want: `--etcd-endpoints is given twice, as "a:1" and as "b:1"`},
		{args: []string{"--log-format", "json", "meta", "list-meta-snapshots", "--log-format", "text", "--etcd-endpoints", "127.0.0.1:1"}, code: 2, want: `--log-format is given twice`},
		{args: []string{"meta", "list-meta-snapshots", "--etcd-endpoints", "127.0.0.1:1", "--etcd-username", "u", "--etcd-password", "SEKRIT1", "--etcd-password", "SEKRIT2"}, code: 2, want: "--etcd-password is given twice, with different values"},
		// An empty variable is an unset one (FOO= clears an inherited
		// value): it passes, to the next check.
		{args: []string{"meta", "list-meta-snapshots", "--etcd-endpoints", "127.0.0.1:1", "--backup-storage-url", "gcs://b"}, code: 2, want: "--backup-storage-url: gcs://", env: map[string]string{"RWSNAP_ETCD_CACERT": "", "RWSNAP_OUTPUT": ""}},
		{args: []string{"meta", "list-meta-snapshots", "--etcd-endpoints", "127.0.0.1:1", "--backup-storage-url", "gcs://b"}, code: 2, want: "--backup-storage-url: gcs://", env: map[string]string{"RWSNAP_LOG_LEVEL": "", "RWSNAP_LOG_FORMAT": "", "RWSNAP_MAX_SNAPSHOT_SIZE": ""}},
		{args: []string{"meta", "list-meta-snapshots", "--etcd-endpoints", "127.0.0.1:1", "--log-level", ""}, code: 2, want: `--log-level "": want debug, info, warn or error`},
		{args: []string{"meta", "list-meta-snapshots"}, code: 2, want: "--etcd-endpoints (from ETCDCTL_ENDPOINTS) \"a\\x1b\" holds a control character", env: map[string]string{"ETCDCTL_ENDPOINTS": "a\x1b"}},
		{args: []string{"meta", "list-meta-snapshots", "--etcd-endpoints", "127.0.0.1:1"}, code: 2, want: "--backup-storage-directory (from RWSNAP_BACKUP_STORAGE_DIRECTORY) is blank", env: map[string]string{"RWSNAP_BACKUP_STORAGE_DIRECTORY": "\t"}},
		{args: []string{"schedule", "--once", "--etcd-endpoints", "127.0.0.1:1"}, code: 2, want: "--retry-backoff (from RWSNAP_RETRY_BACKOFF) -1m0s: cannot be negative", env: map[string]string{"RWSNAP_RETRY_BACKOFF": "-1m"}},
		// Free text may span lines, and an empty remark is no remark: they
		// pass, to the next check (the URL's, which runs after).
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", "127.0.0.1:1", "--remarks", "line one\nline two", "--backup-storage-url", "gcs://b"}, code: 2, want: "--backup-storage-url: gcs://"},
		{args: []string{"meta", "backup-meta", "--etcd-endpoints", "127.0.0.1:1", "--remarks", "", "--backup-storage-url", "gcs://b"}, code: 2, want: "--backup-storage-url: gcs://"},
	}
	for _, tt := range tests {
		restore := setEnv(tt.env)
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"rwsnap"}, tt.args...), &out, &errb)
		restore()
		if strings.Contains(out.String()+errb.String(), "SEKRIT") {
			t.Errorf("rwsnap %s: a secret is shown:\n%s", strings.Join(tt.args, " "), errb.String())
		}
		if code != tt.code || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("rwsnap %s: exit %d, want %d with %q\nstdout: %s\nstderr: %s", strings.Join(tt.args, " "), code, tt.code, tt.want, out.String(), errb.String())
		}
		for _, bad := range []string{"No help topic", "flag provided but not defined", "Incorrect Usage", "invalid value"} {
			if strings.Contains(out.String()+errb.String(), bad) {
				t.Errorf("rwsnap %s: urfave's message %q:\n%s%s", strings.Join(tt.args, " "), bad, out.String(), errb.String())
			}
		}
	}
}

// setEnv sets variables for one in-process run; the returned func puts
// back what was there.
func setEnv(env map[string]string) func() {
	type old struct {
		v   string
		had bool
	}
	saved := map[string]old{}
	for k, v := range env {
		o, had := os.LookupEnv(k)
		saved[k] = old{o, had}
		os.Setenv(k, v)
	}
	return func() {
		for k, o := range saved {
			if o.had {
				os.Setenv(k, o.v)
			} else {
				os.Unsetenv(k)
			}
		}
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"etcd-endpoints", "etcd-auth", "backup-storage-url", "backup-storage-directory", "output", "o"}
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"etcd-endpoint", []string{"etcd-endpoints"}},
		{"backup-storage-dir", []string{"backup-storage-directory"}},
		{"outptu", []string{"output"}},
		{"zzzzzz", nil},
	} {
		if got := suggest(tt.in, names); !slices.Equal(got, tt.want) {
			t.Errorf("suggest(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestRestoreDefaultDirectorySuggestsTheRightOne: restore-meta's default
// --backup-storage-directory (backup, as risectl) against a cluster whose
// snapshots are in hummock_001/backup says so.
func TestRestoreDefaultDirectorySuggestsTheRightOne(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := objstore.Open(ctx, "fs://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	st := metasnap.NewStorage(store, "hummock_001/backup")
	st.MayBeNew = true
	if _, err := st.UpdateManifest(ctx, func(m *metasnap.Manifest, _ bool) error { return nil }); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(ctx, []string{"rwsnap", "meta", "restore-meta", "--meta-snapshot-id", "7", "--etcd-endpoints", "127.0.0.1:1",
		"--backup-storage-url", "fs://" + dir, "--hummock-storage-url", "fs://" + dir}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "no manifest.json at") || !strings.Contains(errb.String(), "pass --backup-storage-directory hummock_001/backup") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// With --log-format json (flag before or after the command, or
// RWSNAP_LOG_FORMAT) the error that ends rwsnap is one JSON log record on
// stderr, redacted, with the exit code; and stderr holds nothing but JSON
// records. Text stays "rwsnap: ...". Exit codes do not change.
func TestFatalErrorFollowsLogFormat(t *testing.T) {
	corrupt := t.TempDir()
	if err := os.MkdirAll(filepath.Join(corrupt, "backup"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corrupt, "backup", "manifest.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	loc := []string{"--backup-storage-url", "fs://" + corrupt, "--backup-storage-directory", "backup"}
	for _, tt := range []struct {
		name string
		env  string // RWSNAP_LOG_FORMAT
		args []string
		json bool
		code int
		want string
	}{
		{"runtime, global flag", "", append([]string{"--log-format", "json", "meta", "list-meta-snapshots"}, loc...), true, 1, "manifest"},
		{"runtime, leaf flag", "", append([]string{"meta", "list-meta-snapshots", "--log-format=json"}, loc...), true, 1, "manifest"},
		{"runtime, env", "json", append([]string{"meta", "list-meta-snapshots"}, loc...), true, 1, "manifest"},
		{"runtime, flag beats env", "json", append([]string{"meta", "list-meta-snapshots", "--log-format", "text"}, loc...), false, 1, "manifest"},
		{"unknown flag", "", []string{"--log-format", "json", "meta", "backup-meta", "--etcd-endpoint", "x"}, true, 2, "unknown flag --etcd-endpoint"},
		{"unknown flag after", "", []string{"meta", "backup-meta", "--log-format", "json", "--nosuch"}, true, 2, "unknown flag --nosuch"},
		{"unknown command", "", []string{"--log-format", "json", "meta", "nosuch"}, true, 2, `unknown command \"nosuch\"`},
		{"bad integer", "", []string{"--log-format", "json", "meta", "prune", "--keep-last", "x"}, true, 2, "--keep-last"},
		{"secret redacted", "", []string{"--log-format", "json", "meta", "list-meta-snapshots", "--backup-storage-url", "minio:/AK:SEKRIT@127.0.0.1:1/b", "--backup-storage-directory", "d"}, true, 2, "--backup-storage-url"},
		{"secret redacted, text", "", []string{"meta", "list-meta-snapshots", "--backup-storage-url", "minio:/AK:SEKRIT@127.0.0.1:1/b", "--backup-storage-directory", "d"}, false, 2, "--backup-storage-url"},
		{"hummock+ note as JSON", "", []string{"--log-format", "json", "meta", "list-meta-snapshots", "--backup-storage-url", "hummock+fs://" + corrupt, "--backup-storage-directory", "backup"}, true, 1, "manifest"},
		{"bad log format stays text", "", []string{"--log-format", "xml", "meta", "list-meta-snapshots"}, false, 2, `--log-format \"xml\"`},
		{"text", "", append([]string{"meta", "list-meta-snapshots"}, loc...), false, 1, "manifest"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("RWSNAP_LOG_FORMAT", tt.env)
			if tt.env == "" {
				os.Unsetenv("RWSNAP_LOG_FORMAT")
			}
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"rwsnap"}, tt.args...), &out, &errb)
			stderr := errb.String()
			if code != tt.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.code, stderr)
			}
			if strings.Contains(stderr, "SEKRIT") {
				t.Errorf("stderr shows the secret:\n%s", stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if !tt.json {
				if !strings.HasPrefix(last, "rwsnap: ") || !strings.Contains(last, strings.ReplaceAll(tt.want, `\"`, `"`)) {
					t.Errorf("want a text error line with %q:\n%s", tt.want, stderr)
				}
				return
			}
			for _, l := range lines {
				if !json.Valid([]byte(l)) {
					t.Errorf("stderr line is not JSON: %q", l)
				}
			}
			var rec struct {
				Level    string `json:"level"`
				Msg      string `json:"msg"`
				Err      string `json:"err"`
				ExitCode *int   `json:"exit_code"`
			}
			if err := json.Unmarshal([]byte(last), &rec); err != nil {
				t.Fatalf("the final error is not one JSON record: %v\n%s", err, stderr)
			}
			want := strings.ReplaceAll(tt.want, `\"`, `"`)
			if rec.Level != "ERROR" || !strings.Contains(rec.Msg, want) || !strings.Contains(rec.Err, want) || rec.ExitCode == nil || *rec.ExitCode != tt.code {
				t.Errorf("record %+v, want level ERROR, msg and err with %q, exit_code %d:\n%s", rec, want, tt.code, stderr)
			}
		})
	}
}

// A read-path variable naming no path is refused before the command
// touches anything (backup-meta allocates its snapshot id in etcd before
// it reads), as a usage error naming the variable.
func TestBadReadPathEnvRefusedFirst(t *testing.T) {
	for _, tt := range []struct{ env, val, want string }{
		{"RWSNAP_ETCD_READ", "bogus", `RWSNAP_ETCD_READ="bogus": want snapshot, range or auto`},
		{"RWSNAP_ETCD_READ", " snapshot", `RWSNAP_ETCD_READ=" snapshot"`},
		{"RWSNAP_ETCD_READ", "paged", `RWSNAP_ETCD_READ="paged"`},
		{"RWSNAP_ETCD_RANGE", "streamed", `RWSNAP_ETCD_RANGE="streamed": want stream, paged or auto`},
	} {
		t.Run(tt.env+"="+tt.val, func(t *testing.T) {
			t.Setenv(tt.env, tt.val)
			var out, errb bytes.Buffer
			// Port 1: a command that went on would fail to reach etcd (exit 1).
			code := run(context.Background(), []string{"rwsnap", "meta", "backup-meta", "--etcd-endpoints", "127.0.0.1:1",
				"--backup-storage-url", "fs://" + t.TempDir(), "--backup-storage-directory", "b"}, &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), tt.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s%s", code, tt.want, out.String(), errb.String())
			}
		})
	}
}
