package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
	"github.com/rwsnap/rwsnap/rwsim/frontend"
)

const schemaDir = "../../docs/schema"

// schemaName is the schema file of a command path: "meta prune" ->
// meta-prune.json.
func schemaName(path string) string { return strings.ReplaceAll(path, " ", "-") + ".json" }

// noSchema lists the commands whose -o json is not one of rwsnap's result
// shapes: timetravel query prints the query's own rows.
var noSchema = map[string]bool{"timetravel query": true}

// TestEveryJSONCommandHasASchema: a command with -o json documents its
// shape in docs/schema (and so in TestJSONSchemas' reach).
func TestEveryJSONCommandHasASchema(t *testing.T) {
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			path := strings.TrimSpace(prefix + " " + c.Name)
			if len(c.Subcommands) > 0 {
				walk(path, c.Subcommands)
				continue
			}
			hasOutput := slices.ContainsFunc(c.Flags, func(f cli.Flag) bool { return slices.Contains(f.Names(), "output") })
			if !hasOutput || noSchema[path] {
				continue
			}
			if _, err := os.Stat(filepath.Join(schemaDir, schemaName(path))); err != nil {
				t.Errorf("%s has -o json but no docs/schema/%s", path, schemaName(path))
			}
		}
	}
	walk("", newApp(nil, nil).Commands)
}

// jsonRunner runs commands in process and checks their JSON output
// against the schemas and the naming conventions of package output.
type jsonRunner struct {
	t       *testing.T
	schemas map[string]*jsonschema.Schema
	checked map[string]bool
}

func newJSONRunner(t *testing.T) *jsonRunner {
	files, err := filepath.Glob(filepath.Join(schemaDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas in %s: %v", schemaDir, err)
	}
	r := &jsonRunner{t: t, schemas: map[string]*jsonschema.Schema{}, checked: map[string]bool{}}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, f := range files {
		abs, _ := filepath.Abs(f)
		s, err := c.Compile(abs)
		if err != nil {
			t.Fatalf("schema %s: %v", f, err)
		}
		r.schemas[filepath.Base(f)] = s
	}
	return r
}

// run runs rwsnap ARGS -o json (wantCode is its exit code) and validates
// every JSON document it printed against the schema of path.
func (r *jsonRunner) run(path string, wantCode int, args ...string) []map[string]any {
	t := r.t
	t.Helper()
	var out, errb bytes.Buffer
	argv := append(append([]string{"rwsnap", "-q"}, strings.Fields(path)...), args...)
	argv = append(argv, "-o", "json")
	if code := run(context.Background(), argv, &out, &errb); code != wantCode {
		t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(argv, " "), code, wantCode, out.String(), errb.String())
	}
	s := r.schemas[schemaName(path)]
	if s == nil {
		t.Fatalf("no schema %s", schemaName(path))
	}
	var docs []map[string]any
	dec := json.NewDecoder(&out)
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", path, err, out.String())
		}
		if err := s.Validate(v); err != nil {
			b, _ := json.MarshalIndent(v, "", "  ")
			t.Errorf("%s: output does not match docs/schema/%s: %v\n%s", path, schemaName(path), err, b)
		}
		checkConventions(t, path, "", v)
		docs = append(docs, v.(map[string]any))
	}
	if len(docs) == 0 {
		t.Fatalf("%s printed no JSON", path)
	}
	r.checked[path] = true
	return docs
}

var rfc3339UTC = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`)

// checkConventions: no null lists (schemas say array), every X_epoch has
// an X_time beside it, and times are RFC 3339 in UTC.
func checkConventions(t *testing.T, path, at string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if base, ok := strings.CutSuffix(k, "epoch"); ok && k != "default_cf_from" {
				if _, has := v[base+"time"]; !has {
					t.Errorf("%s: %s%s has no %stime beside it", path, at, k, base)
				}
			}
			if strings.HasSuffix(k, "time") && k != "runtime" {
				s, _ := x.(string)
				if s != "" && !rfc3339UTC.MatchString(s) {
					t.Errorf("%s: %s%s = %v is not RFC 3339 UTC", path, at, k, x)
				}
			}
			checkConventions(t, path, at+k+".", x)
		}
	case []any:
		for _, x := range v {
			checkConventions(t, path, at+"[].", x)
		}
	}
}

// TestJSONSchemas runs every command with -o json against a simulated
// cluster on a real (embedded) etcd and checks what each prints against
// docs/schema.
func TestJSONSchemas(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	etcd, err := embedetcd.Start(ctx, embedetcd.Config{Dir: filepath.Join(dir, "etcd"), UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	cli, err := etcd.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	storage := "fs://" + filepath.Join(dir, "storage")
	hs, err := objstore.Open(ctx, storage)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rwsim.Seed(ctx, cli, hs, rwsim.Options{StateStore: "hummock+" + storage, DataDir: "hummock_001", Seed: 9}); err != nil {
		t.Fatal(err)
	}
	ep := []string{"--etcd-endpoints", strings.Join(etcd.Endpoints(), ",")}
	r := newJSONRunner(t)

	var ids []uint64
	for i := 0; i < 3; i++ {
		b := r.run("meta backup-meta", 0, append([]string{"--remarks", fmt.Sprint("n", i)}, ep...)...)[0]
		ids = append(ids, uint64(b["id"].(float64)))
		if b["path"] != "direct" || b["revision"] == nil {
			t.Errorf("backup-meta on the direct path: %v", b)
		}
	}
	if d := r.run("meta backup-meta", 0, append([]string{"--dry-run"}, ep...)...)[0]; d["dry_run"] != true || d["snapshots"] != float64(3) {
		t.Errorf("backup-meta --dry-run: %v", d)
	}
	list := r.run("meta list-meta-snapshots", 0, ep...)[0]
	if n := len(list["snapshots"].([]any)); n != 3 {
		t.Errorf("list: %d snapshots", n)
	}
	// The data copy: protect the existing snapshots, then one more with
	// its data; list and verify show it.
	if d := r.run("meta backup-data", 0, append([]string{"--all"}, ep...)...)[0]; d["objects_copied"].(float64) == 0 {
		t.Errorf("backup-data --all copied nothing: %v", d)
	}
	wd := r.run("meta backup-meta", 0, append([]string{"--with-data"}, ep...)...)[0]
	ids = append(ids, uint64(wd["id"].(float64)))
	if d, _ := wd["data"].(map[string]any); d == nil || d["objects_copied"].(float64) != 0 {
		t.Errorf("backup-meta --with-data right after backup-data --all copies nothing new: %v", wd["data"])
	}
	for _, s := range r.run("meta list-meta-snapshots", 0, ep...)[0]["snapshots"].([]any) {
		if st := s.(map[string]any)["data"]; st != "complete" {
			t.Errorf("list: snapshot %v data %v, want complete", s.(map[string]any)["id"], st)
		}
	}
	if v := r.run("meta verify-meta-snapshot", 0, append([]string{"--all", "--check-data", "--read-data"}, ep...)...)[0]; v["data"] == nil {
		t.Errorf("verify --check-data: no data part: %v", v)
	}
	r.run("meta verify-meta-snapshot", 0, append([]string{"--all"}, ep...)...)
	r.run("meta inspect", 0, append([]string{fmt.Sprint(ids[0])}, ep...)...)
	if d := r.run("meta diff", 0, append([]string{fmt.Sprint(ids[0]), fmt.Sprint(ids[2])}, ep...)...)[0]; len(d["added"].([]any)) != 0 {
		t.Errorf("diff of two snapshots of an unchanged catalog: %v", d["added"])
	}
	v := r.run("meta verify-meta-snapshot", 0, append([]string{"--all", "--check-ssts"}, ep...)...)[0]
	if loc := v["sst_location"].(map[string]any); loc["source"] != "cluster" || loc["directory"] != "hummock_001" {
		t.Errorf("verify --check-ssts while connected looks in %v, want the cluster's location", loc)
	}
	// state_store pasted as is: hummock+ is stripped, with a note.
	var out, errb bytes.Buffer
	argv := append([]string{"rwsnap", "meta", "verify-meta-snapshot", "--all", "--check-ssts", "--hummock-storage-url", "hummock+" + storage}, ep...)
	if code := run(ctx, argv, &out, &errb); code != 0 || !strings.Contains(errb.String(), "note: --hummock-storage-url: using "+storage+" (the state_store value without its 'hummock+' prefix)") ||
		!strings.Contains(out.String(), "checking SSTs in "+storage) {
		t.Errorf("hummock+ URL: exit %d\n%s%s", code, out.String(), errb.String())
	}
	r.run("meta prune", 0, append([]string{"--keep-last", "2", "--dry-run"}, ep...)...)
	r.run("meta copy-meta-snapshots", 0, append([]string{"--all", "--to-url", "fs://" + filepath.Join(dir, "copy"), "--to-directory", "backup"}, ep...)...)
	r.run("meta copy-meta-snapshots", 0, append([]string{"--all", "--dry-run", "--to-url", "fs://" + filepath.Join(dir, "copy2"), "--to-directory", "backup"}, ep...)...)
	r.run("meta delete-meta-snapshots", 0, append([]string{fmt.Sprint(ids[0]), "--dry-run"}, ep...)...)
	r.run("meta delete-meta-snapshots", 0, append([]string{fmt.Sprint(ids[0])}, ep...)...)
	r.run("meta prune", 0, append([]string{"--keep-last", "1"}, ep...)...)
	r.run("params list", 0, ep...)
	r.run("params get", 0, append([]string{"barrier_interval_ms"}, ep...)...)
	r.run("params set", 0, append([]string{"barrier_interval_ms", "2000", "--dry-run"}, ep...)...)
	r.run("params set", 0, append([]string{"barrier_interval_ms", "2000"}, ep...)...)
	sched := r.run("schedule", 0, append([]string{"--once", "--keep-last", "5"}, ep...)...)[0]
	if sched["ok"] != true || sched["snapshot_id"].(float64) == 0 {
		t.Errorf("schedule --once: %v", sched)
	}
	// schedule --with-data protects what it takes, and its retention
	// garbage-collects the data copy.
	sd := r.run("schedule", 0, append([]string{"--once", "--with-data", "--keep-last", "2"}, ep...)...)[0]
	found := false
	for _, s := range r.run("meta list-meta-snapshots", 0, ep...)[0]["snapshots"].([]any) {
		if m := s.(map[string]any); m["id"] == sd["snapshot_id"] {
			found = true
			if m["data"] != "complete" {
				t.Errorf("schedule --with-data: snapshot %v data %v, want complete", m["id"], m["data"])
			}
		}
	}
	if !found {
		t.Errorf("schedule --with-data: snapshot %v not listed", sd["snapshot_id"])
	}

	// Time travel, from the manifest and from a frontend.
	bk := metasnap.NewStorage(hs, "hummock_001/backup")
	fe, err := frontend.Start(ctx, frontend.Options{Backup: bk})
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Close()
	r.run("timetravel list", 0, "--pg-url", fe.URL())
	r.run("timetravel list", 0, "--backup-storage-url", storage, "--backup-storage-directory", "hummock_001/backup")
	m, _, err := bk.ReadManifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := m.SnapshotMetadata[len(m.SnapshotMetadata)-1]
	r.run("timetravel epoch", 0, "--pg-url", fe.URL(), "--snapshot", fmt.Sprint(last.ID))
	at := metasnap.SnapshotTime(last).Add(-time.Millisecond).Format(time.RFC3339Nano)
	r.run("timetravel epoch", 0, "--pg-url", fe.URL(), "--at", at)

	// Restore into a fresh etcd: dry run, then for real.
	target, err := embedetcd.Start(ctx, embedetcd.Config{Dir: filepath.Join(dir, "etcd2"), UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	restore := []string{"--meta-snapshot-id", fmt.Sprint(last.ID), "--etcd-endpoints", strings.Join(target.Endpoints(), ","),
		"--backup-storage-url", storage, "--backup-storage-directory", "hummock_001/backup",
		"--hummock-storage-url", storage, "--hummock-storage-directory", "hummock_001"}
	r.run("meta restore-meta", 0, append(restore, "--dry-run")...)
	r.run("meta restore-meta", 0, restore...)

	// A config file naming the cluster and its repository; the password
	// comes from the environment.
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf("clusters:\n  sim:\n    etcd: {endpoints: [%s]}\n    repository: main\n    risingwave_version: v1.7.0\nrepositories:\n  main: {url: %q, directory: hummock_001/backup}\n",
		strings.Join(etcd.Endpoints(), ", "), storage)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	show := r.run("config show", 0, "--config", cfgPath, "--cluster", "sim")[0]
	sources := map[string]string{}
	for _, s := range show["settings"].([]any) {
		s := s.(map[string]any)
		sources[s["name"].(string)] = s["source"].(string)
	}
	for name, want := range map[string]string{
		"etcd-endpoints":      "file " + cfgPath + " (clusters.sim.etcd.endpoints)",
		"backup-storage-url":  "file " + cfgPath + " (repositories.main.url)",
		"hummock-storage-url": "cluster params (etcd ",
		"rw-version":          "file " + cfgPath + " (clusters.sim.risingwave_version)",
		"etcd-username":       "",
	} {
		if got := sources[name]; !strings.HasPrefix(got, want) || (want == "" && got != "") {
			t.Errorf("config show: %s from %q, want %q", name, got, want)
		}
	}
	// A flag wins over the file, and says so.
	show = r.run("config show", 0, "--config", cfgPath, "--cluster", "sim", "--backup-storage-directory", "elsewhere", "--offline")[0]
	for _, s := range show["settings"].([]any) {
		if s := s.(map[string]any); s["name"] == "backup-storage-directory" && (s["value"] != "elsewhere" || s["source"] != "flag --backup-storage-directory") {
			t.Errorf("flag over file: %v", s)
		}
	}
	// --cluster stands for the flags on a command.
	if l := r.run("meta list-meta-snapshots", 0, "--config", cfgPath, "--cluster", "sim")[0]; len(l["snapshots"].([]any)) == 0 {
		t.Errorf("list --cluster sim: %v", l)
	}

	for name := range r.schemas {
		path := strings.ReplaceAll(strings.TrimSuffix(name, ".json"), "-", " ")
		found := false
		for p := range r.checked {
			if schemaName(p) == name {
				found = true
			}
		}
		if !found {
			t.Errorf("docs/schema/%s (%s) was not exercised", name, path)
		}
	}
}
