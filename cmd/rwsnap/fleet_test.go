package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/config"
)

// TestFleetClusterContext: a fleet member's schedule flags come from its
// config entry (schedule, retention, timeout, data copy, repository), the
// daemon's own flags from its command line, and not from the environment.
func TestFleetClusterContext(t *testing.T) {
	t.Setenv("RWSNAP_ETCD_ENDPOINTS", "10.9.9.9:2379") // must not reach a member
	p := filepath.Join(t.TempDir(), "fleet.yaml")
	os.WriteFile(p, []byte(`clusters:
  a:
    etcd: {endpoints: [a-0:2379, a-1:2379]}
    repository: r
    schedule: {every: 1h, jitter: 5m, timeout: 30m, with_data: true, retries: 1, keep: {last: 5, daily: 7}}
repositories:
  r: {url: s3://bkp, directory: a/backup, data_url: s3://bkp-data, data_directory: a/data}
`), 0o644)
	f, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	app := newApp(io.Discard, io.Discard)
	var cmd *cli.Command
	for _, c := range app.Commands {
		if c.Name == "schedule" {
			cmd = c
		}
	}
	set := flag.NewFlagSet("schedule", flag.ContinueOnError)
	for _, fl := range cmd.Flags {
		fl.Apply(set)
	}
	if err := set.Parse([]string{"--retry-backoff", "3s"}); err != nil {
		t.Fatal(err)
	}
	c := cli.NewContext(app, set, nil)
	c.Command = cmd
	cc, err := clusterContext(c, f, "a")
	if err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{
		"etcd-endpoints": "a-0:2379,a-1:2379", "every": "1h0m0s", "jitter": "5m0s", "job-timeout": "30m0s", "with-data": "true",
		"retries": "1", "keep-last": "5", "keep-daily": "7", "backup-storage-url": "s3://bkp", "backup-storage-directory": "a/backup",
		"data-storage-url": "s3://bkp-data", "data-storage-directory": "a/data", "retry-backoff": "3s",
	} {
		if got := cc.String(flag); got != want {
			t.Errorf("--%s = %q, want %q", flag, got, want)
		}
	}
}

// A fleet member whose entry holds a bad value fails alone, named, with
// the same checks a command's own flags get.
func TestFleetClusterContextRefusesBadValues(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	var cmd *cli.Command
	for _, c := range app.Commands {
		if c.Name == "schedule" {
			cmd = c
		}
	}
	for _, tc := range []struct{ entry, want string }{
		{`etcd: {endpoints: ["a-0:2379\u001b"]}`, `--etcd-endpoints "a-0:2379\x1b" holds a control character`},
		{`{etcd: {endpoints: [a-0:2379]}, meta_addr: "   "}`, "--meta-addr is blank"},
		{`{etcd: {endpoints: ["a-0:99999"]}}`, `port "99999" is not 1-65535`},
		{`{etcd: {endpoints: [a-0:2379], username: "r\u0007"}}`, "--etcd-username"},
	} {
		p := filepath.Join(t.TempDir(), "fleet.yaml")
		entry := tc.entry
		if entry[0] != '{' {
			entry = "{" + entry + "}"
		}
		body := "clusters:\n  a: " + entry[:len(entry)-1] + ", schedule: {every: 1h}}\n"
		os.WriteFile(p, []byte(body), 0o600)
		f, err := config.Load(p)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		set := flag.NewFlagSet("schedule", flag.ContinueOnError)
		for _, fl := range cmd.Flags {
			fl.Apply(set)
		}
		c := cli.NewContext(app, set, nil)
		c.Command = cmd
		if _, err := clusterContext(c, f, "a"); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "cluster a") {
			t.Errorf("%s: %v, want an error naming cluster a and %q", body, err, tc.want)
		}
	}
}
