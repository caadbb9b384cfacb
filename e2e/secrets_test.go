package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/rwsim"
	"github.com/rwsnap/rwsnap/rwsim/frontend"
)

// helpCommands returns the names listed under "COMMANDS:" in help text.
func helpCommands(help string) []string {
	var out []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(help))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "COMMANDS:"):
			in = true
		case in && strings.TrimSpace(line) == "":
		case in && !strings.HasPrefix(line, " "):
			in = false
		case in:
			name := strings.TrimSuffix(strings.Fields(line)[0], ",")
			if name != "help" {
				out = append(out, name)
			}
		}
	}
	return out
}

var flagRE = regexp.MustCompile(`(?m)^\s+--([a-z0-9-]+)`)

// leafCommands walks `rwsnap --help` down to every command that runs
// something, with the flags each accepts: the test follows the CLI as it
// grows instead of a list that goes stale.
func leafCommands(t *testing.T) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	var walk func(path []string)
	walk = func(path []string) {
		r := mustRun(t, nil, append(slices.Clone(path), "--help")...)
		subs := helpCommands(r.stdout)
		if len(subs) == 0 {
			flags := map[string]bool{}
			for _, m := range flagRE.FindAllStringSubmatch(r.stdout, -1) {
				flags[m[1]] = true
			}
			out[strings.Join(path, " ")] = flags
			return
		}
		for _, s := range subs {
			walk(append(slices.Clone(path), s))
		}
	}
	walk(nil)
	return out
}

// TestNoSecretInOutput runs every rwsnap command with secrets in flags,
// in the environment and in URLs (the MinIO secret key, the etcd password,
// the pgwire password), successful and failing runs, with text and JSON
// logs at debug level, and looks for the secrets in everything printed.
func TestNoSecretInOutput(t *testing.T) {
	const (
		etcdPW      = "etcdPW-Kq7Zs1x"
		wrongEtcdPW = "wrongEtcdPW-Vv3Hn8"
		pgPW        = "pgPW-Rt5Lm2w"
		wrongMinio  = "wrongMinioSK-Yb6Pc4"
	)
	f := newFixtureOn(t, embedetcd.Config{Auth: true, RootPassword: etcdPW}, rwsim.Options{Seed: 71})
	minioSK := f.minio.SecretKey
	secrets := []string{etcdPW, wrongEtcdPW, pgPW, wrongMinio, minioSK}
	// Snapshots to list, verify, restore, copy and travel to.
	auth := []string{"--etcd-auth", "--etcd-username", "root", "--etcd-password", etcdPW}
	for range 2 {
		mustRun(t, nil, append(append([]string{"meta", "backup-meta", "-q"}, f.etcdArgs()...), auth...)...)
	}
	m := manifestNow(t, f.minioLoc())
	snapID := fmt.Sprint(m.IDs()[len(m.IDs())-1])
	f.minio.CreateBucket(t, "copies")
	copyURL := f.minio.URL("copies")
	target := etcdtest.StartT(t, embedetcd.Config{Auth: true, RootPassword: etcdPW})
	srv, err := frontend.Start(context.Background(), frontend.Options{Backup: f.minioLoc().st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	pgURL := fmt.Sprintf("postgres://root:%s@%s/dev", pgPW, srv.Addr())
	badMinioURL := strings.Replace(f.bucketURL, minioSK, wrongMinio, 1)

	// values for the flags a command accepts; secret-bearing ones come
	// from the variant.
	type variant struct {
		name              string
		global            []string
		etcdPW, minio, pg string
		viaEnv            bool
		wantOK            bool
	}
	variants := []variant{
		{name: "flags, text log", global: []string{"--log-format", "text", "--log-level", "debug"}, etcdPW: etcdPW, minio: f.bucketURL, pg: pgURL, wantOK: true},
		{name: "env, json log", global: []string{"--log-format", "json", "--log-level", "debug"}, etcdPW: etcdPW, minio: f.bucketURL, pg: pgURL, viaEnv: true, wantOK: true},
		{name: "wrong etcd password", global: []string{"--log-format", "json", "--log-level", "debug"}, etcdPW: wrongEtcdPW, minio: f.bucketURL, pg: pgURL},
		{name: "wrong minio secret", global: []string{"--log-format", "text", "--log-level", "debug"}, etcdPW: etcdPW, minio: badMinioURL,
			pg: fmt.Sprintf("postgres://root:%s@%s/dev", pgPW, closedLoopback(t))},
		{name: "unreachable minio, env", global: []string{"--log-format", "json", "--log-level", "debug"}, etcdPW: etcdPW,
			minio: strings.Replace(f.bucketURL, f.minio.Endpoint, closedLoopback(t), 1), pg: pgURL, viaEnv: true},
	}
	// Commands that must succeed with good secrets, so the test proves
	// it exercised them and not only their argument checks.
	mustPass := map[string]bool{
		"meta backup-meta": true, "meta list-meta-snapshots": true, "meta verify-meta-snapshot": true, "meta restore-meta": true,
		"meta copy-meta-snapshots": true, "meta prune": true, "params list": true, "params get": true, "schedule": true,
		"timetravel list": true, "timetravel epoch": true, "timetravel query": true,
	}
	positional := map[string][]string{
		"meta delete-meta-snapshots": {"999999"},
		"params get":                 {"backup_storage_url"},
		"params set":                 {"backup_storage_url", copyURL},
		"timetravel psql":            {"--", "-c", "SELECT 1"},
	}
	leaves := leafCommands(t)
	if len(leaves) < 10 {
		t.Fatalf("only %d commands found in --help: %v", len(leaves), leaves)
	}
	_, havePsql := exec.LookPath("psql")
	runs, failing := 0, 0
	for _, path := range slices.Sorted(func(yield func(string) bool) {
		for k := range leaves {
			if !yield(k) {
				return
			}
		}
	}) {
		flags := leaves[path]
		if path == "playground" {
			// No secret goes in; its output is still checked once.
			r := runLimited(t, nil, "--log-level", "debug", "playground")
			checkNoSecret(t, path, r, secrets)
			runs++
			continue
		}
		if path == "timetravel psql" && havePsql != nil {
			t.Logf("%s: skipped, no psql", path)
			continue
		}
		help := mustRun(t, nil, append(strings.Fields(path), "--help")...).stdout
		// --help with every secret in the environment: defaults shown
		// there must not echo them.
		hr := runLimited(t, []string{envName("etcd-password") + "=" + etcdPW, envName("backup-storage-url") + "=" + f.bucketURL,
			envName("hummock-storage-url") + "=" + f.bucketURL, envName("pg-url") + "=" + pgURL, envName("to-url") + "=" + copyURL, "PGPASSWORD=" + pgPW},
			append(strings.Fields(path), "--help")...)
		checkNoSecret(t, path+" --help", hr, secrets)
		for vi, v := range variants {
			for _, format := range outputFormats(flags, help, vi) {
				var args, env []string
				if v.viaEnv {
					env = append(env, "PGPASSWORD="+pgPW) // psql's own variable too
				}
				// timetravel list/epoch read snapshots from the frontend or
				// from a backup location, not both: the manifest for the env
				// variants, the frontend for the others.
				either := flags["pg-url"] && flags["backup-storage-url"]
				set := func(flag, value string, secret bool) {
					if !flags[flag] {
						return
					}
					if either && (flag == "pg-url") == v.viaEnv && (flag == "pg-url" || strings.HasPrefix(flag, "backup-storage-")) {
						return
					}
					if secret && v.viaEnv {
						env = append(env, envName(flag)+"="+value)
						return
					}
					args = append(args, "--"+flag, value)
				}
				set("etcd-endpoints", f.endpoints, false)
				if path == "meta restore-meta" {
					args = nil // the restore target, not the source
					set("etcd-endpoints", strings.Join(target.Endpoints(), ","), false)
					set("meta-snapshot-id", snapID, false)
					set("backup-storage-directory", "hummock_001/backup", false)
					if flags["dry-run"] {
						args = append(args, "--dry-run")
					}
				}
				if flags["etcd-auth"] {
					args = append(args, "--etcd-auth")
				}
				set("etcd-username", "root", false)
				set("etcd-password", v.etcdPW, true)
				set("backup-storage-url", v.minio, true)
				if path != "meta restore-meta" {
					set("backup-storage-directory", "hummock_001/backup", false)
				}
				set("hummock-storage-url", v.minio, true)
				set("pg-url", v.pg, true)
				set("to-url", strings.Replace(copyURL, minioSK, secretOf(v.minio, minioSK), 1), true)
				set("to-directory", "copied", false)
				set("keep-last", "100", false)
				set("retries", "0", false)
				set("snapshot", snapID, false)
				set("command", "SELECT 1", false)
				for _, b := range []string{"all", "once"} {
					if flags[b] {
						args = append(args, "--"+b)
					}
				}
				if path == "params set" && flags["dry-run"] {
					args = append(args, "--dry-run")
				}
				if format != "" {
					args = append(args, "--output", format)
				}
				argv := append(append(slices.Clone(v.global), strings.Fields(path)...), args...)
				argv = append(argv, positional[path]...)
				r := runLimited(t, env, argv...)
				runs++
				what := path + " (" + v.name + ", -o " + format + ")"
				checkNoSecret(t, what, r, secrets)
				if slices.Contains(v.global, "json") {
					// With JSON logs, stderr holds nothing but JSON records
					// (the final error included).
					jsonRecords(t, what, r)
				}
				if v.wantOK && mustPass[path] && r.code != 0 {
					t.Errorf("%s failed with good secrets, so it was not exercised:\n%s", what, r)
				}
				if r.code != 0 {
					failing++
					last := strings.TrimSpace(r.stderr)
					if i := strings.LastIndex(last, "\n"); i >= 0 {
						last = last[i+1:]
					}
					t.Logf("%s: exit %d: %.160s", what, r.code, last)
				}
			}
		}
	}
	checkMetricsNoSecret(t, f, auth, etcdPW, secrets)
	t.Logf("%d commands, %d runs (%d failing), no secret printed", len(leaves), runs, failing)
}

// outputFormats are the --output values variant vi runs a command with:
// every format the command takes (from its --help: table, json, csv
// where offered) is covered by the two good-secret variants, table (and
// csv) with flags and text logs, json with the environment and JSON logs;
// the failing variants print tables.
func outputFormats(flags map[string]bool, help string, vi int) []string {
	if !flags["output"] {
		return []string{""}
	}
	switch vi {
	case 0:
		out := []string{"table"}
		for _, line := range strings.Split(help, "\n") {
			if strings.Contains(line, "--output") && strings.Contains(line, "csv") {
				out = append(out, "csv")
			}
		}
		return out
	case 1:
		return []string{"json"}
	}
	return []string{"table"}
}

// checkMetricsNoSecret runs schedule with secrets in flags and the
// environment and metrics on, and greps what it serves (/metrics,
// /healthz, the report at /) for them.
func checkMetricsNoSecret(t *testing.T, f *fixture, auth []string, etcdPW string, secrets []string) {
	t.Helper()
	addr := freeAddr(t)
	args := append(append([]string{"schedule", "--every", "1h", "--metrics-addr", addr, "--log-format", "json", "--log-level", "debug"}, f.etcdArgs()...), "--etcd-auth", "--etcd-username", "root")
	cmd := exec.Command(rwsnapBin, args...)
	cmd.Env = append(os.Environ(), envName("etcd-password")+"="+etcdPW, envName("backup-storage-url")+"="+f.bucketURL, envName("hummock-storage-url")+"="+f.bucketURL)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		checkNoSecret(t, "schedule with metrics", result{stdout: out.String(), stderr: errb.String()}, secrets)
	}()
	deadline := time.Now().Add(time.Minute)
	for scrape(addr, "rwsnap_backup_last_success_timestamp_seconds") <= 0 {
		if time.Now().After(deadline) {
			t.Fatalf("schedule never reported a backup:\n%s", errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, path := range []string{"/metrics", "/healthz", "/"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		checkNoSecret(t, "schedule serving "+path, result{stdout: string(body)}, secrets)
	}
}

// secretOf is the secret the URL carries (to reuse the variant's secret
// in a second URL).
func secretOf(url, fallback string) string {
	_, rest, ok := strings.Cut(strings.TrimPrefix(url, "minio://"), ":")
	if !ok {
		return fallback
	}
	sk, _, _ := strings.Cut(rest, "@")
	return sk
}

func envName(flag string) string {
	return "RWSNAP_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func checkNoSecret(t *testing.T, what string, r result, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		for name, out := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
			if i := strings.Index(out, s); i >= 0 {
				lo, hi := max(0, i-200), min(len(out), i+len(s)+100)
				t.Errorf("%s printed the secret %q on %s (exit %d):\n...%s...", what, s, name, r.code, out[lo:hi])
			}
		}
	}
}

// closedLoopback is a 127.0.0.1 port nobody listens on.
func closedLoopback(t *testing.T) string {
	t.Helper()
	srv, err := frontend.Start(context.Background(), frontend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	srv.Close()
	return addr
}

// runLimited runs rwsnap with a one-minute limit: a command that turns
// into a daemon must not hang the test.
func runLimited(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rwsnapBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader("")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("rwsnap %s did not finish within a minute:\n%s", strings.Join(args, " "), r)
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run rwsnap %v: %v", args, err)
	}
	return r
}
