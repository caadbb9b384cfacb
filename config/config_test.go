package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

const good = `
clusters:
  prod:
    etcd:
      endpoints: [etcd-0:2379, etcd-1:2379]
      username: root
      password: env:PROD_ETCD_PW
    meta_addr: http://meta:5690
    risingwave_version: v1.10.1
    repository: main
    schedule:
      every: 1h
      jitter: 5m
      keep: {last: 24, daily: 7, within: 72h}
  staging:
    etcd: {endpoints: [10.0.0.9:2379]}
repositories:
  main: {url: s3://rw-backups, directory: prod/backup}
  offsite: {url: "file:SECRETFILE", directory: backup}
`

func TestLoad(t *testing.T) {
	f, err := Load(write(t, good, 0o644))
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Cluster("prod")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Etcd.Endpoints, ",") != "etcd-0:2379,etcd-1:2379" || c.MetaAddr != "http://meta:5690" || c.Repository != "main" {
		t.Errorf("prod: %+v", c)
	}
	s := c.Schedule
	if time.Duration(s.Every) != time.Hour || time.Duration(s.Jitter) != 5*time.Minute || s.Keep.Last != 24 || time.Duration(s.Keep.Within) != 72*time.Hour {
		t.Errorf("schedule: %+v", s)
	}
	if got := f.Scheduled(); len(got) != 1 || got[0] != "prod" {
		t.Errorf("Scheduled = %v", got)
	}
	if _, err := f.Cluster("nope"); err == nil || !strings.Contains(err.Error(), `no cluster "nope" (it names: prod, staging)`) {
		t.Errorf("unknown cluster: %v", err)
	}
	if _, err := f.Repository("nope"); err == nil || !strings.Contains(err.Error(), "it names: main, offsite") {
		t.Errorf("unknown repository: %v", err)
	}
}

func TestInlineSecretsNeedAPrivateFile(t *testing.T) {
	inline := `
clusters:
  a: {etcd: {endpoints: [x:2379], username: root, password: hunter2}}
repositories:
  r: {url: "minio://ak:sk@127.0.0.1:9000/bucket", directory: backup}
`
	_, err := Load(write(t, inline, 0o644))
	if err == nil {
		t.Fatal("inline secrets in a 0644 file were accepted")
	}
	for _, want := range []string{"clusters.a.etcd.password is written inline", "repositories.r has credentials inline", "mode 0644", "env:NAME or file:/path", "chmod 600"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), ":sk@") {
		t.Errorf("the error shows the secret: %v", err)
	}
	if _, err := Load(write(t, inline, 0o600)); err != nil {
		t.Fatalf("a 0600 file may hold secrets: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tt := range []struct{ body, want string }{
		{"clusters:\n  a: {etcd: {endpoint: [x]}}\n", "field endpoint not found"},
		{"clusters:\n  a: {repository: nope}\n", `clusters.a.repository "nope" is not under repositories`},
		{"clusters:\n  a: {schedule: {every: soon}}\n", `"soon" is not a duration`},
		{"clusters:\n  a: {schedule: {jitter: 1m}}\n", "clusters.a.schedule.every is required"},
		{"clusters:\n  a: {schedule: {every: 1m, jitter: 1h}}\n", "jitter is longer than its every"},
		{"repositories:\n  r: {directory: x}\n", "repositories.r has no url"},
	} {
		_, err := Load(write(t, tt.body, 0o600))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.body, err, tt.want)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: %v", err)
	}
	if f, err := Load(write(t, "", 0o644)); err != nil || len(f.Clusters) != 0 {
		t.Errorf("empty file: %v", err)
	}
}

func TestResolve(t *testing.T) {
	t.Setenv("RWSNAP_TEST_SECRET", "s3cr3t")
	secret := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(secret, []byte("from-file\n"), 0o600)
	for _, tt := range []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"env:RWSNAP_TEST_SECRET", "s3cr3t", ""},
		{"file:" + secret, "from-file", ""},
		{"env:RWSNAP_TEST_UNSET_X", "", "environment variable RWSNAP_TEST_UNSET_X (referenced as env:RWSNAP_TEST_UNSET_X) is not set"},
		{"file:/nonexistent/pw", "", "read secret file /nonexistent/pw"},
	} {
		got, err := Resolve(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("Resolve(%q) = %q, %v", tt.in, got, err)
		}
	}
	if !HasInlineCredentials("minio://a:b@h:1/x") || HasInlineCredentials("s3://bucket") || HasInlineCredentials("env:X") || !HasInlineCredentials("postgres://u:p@h/db") || HasInlineCredentials("postgres://u@h/db") {
		t.Error("HasInlineCredentials")
	}
}
