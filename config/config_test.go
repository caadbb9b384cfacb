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
		{"clusters:\n  a: {schedule: {every: -1h}}\n", "clusters.a.schedule.every -1h0m0s: must be positive"},
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

// Every key that can carry a secret is checked, with every spelling the
// redaction hides: malformed URLs, data locations, DSNs, endpoints, pasted
// keys. References and secret-free values pass in a readable file.
func TestInlineSecretsEveryKey(t *testing.T) {
	cluster := func(kv string) string {
		return "clusters:\n  a:\n    etcd: {endpoints: [x:2379]}\n    " + kv + "\n"
	}
	repo := func(kv string) string { return "repositories:\n  r: {url: s3://b, " + kv + "}\n" }
	for _, tc := range []struct{ body, want string }{
		{repo(`data_url: "minio://AK:SEKRIT@127.0.0.1:9000/data"`), "repositories.r has credentials inline in its data_url"},
		{"repositories:\n  r: {url: \"minio:/AK:SEKRIT@h:9000/b\"}\n", "repositories.r has credentials inline in its url"},
		{"repositories:\n  r: {url: \"s3:AK:SEKRIT@x\"}\n", "repositories.r has credentials inline in its url"},
		{"repositories:\n  r: {url: \"minio//AK:SEKRIT@h:9000/b\"}\n", "in its url"},
		{"repositories:\n  r: {url: \"minio://AK:SEKRIT\"}\n", "in its url"},
		{"repositories:\n  r: {url: \"hummock+minio://AK:SEKRIT@h:9000/b\"}\n", "in its url"},
		{repo(`data_url: "minio://AK:SK@h:9000/b"`), "in its data_url"}, // a real key "SK" is no placeholder
		{cluster(`pg_url: "postgres://u:SEKRIT@h:4566/dev"`), "clusters.a has credentials inline in its pg_url"},
		{cluster(`pg_url: "host=h user=u password=SEKRIT"`), "in its pg_url"},
		{cluster(`pg_url: "postgres://u@h:4566/dev?password=SEKRIT"`), "in its pg_url"},
		{cluster(`meta_addr: "http://u:SEKRIT@meta:5690"`), "in its meta_addr"},
		{"clusters:\n  a:\n    etcd: {endpoints: [x:2379, \"https://u:SEKRIT@y:2379\"]}\n", "in its etcd.endpoints[1]"},
		{"clusters:\n  a:\n    etcd: {endpoints: [x:2379], key: \"-----BEGIN PRIVATE KEY-----\\nSEKRIT\\n-----END PRIVATE KEY-----\"}\n", "in its etcd.key"},
		{"clusters:\n  a:\n    etcd: {endpoints: [x:2379], password: SEKRIT}\n", "clusters.a.etcd.password is written inline"},
	} {
		_, err := Load(write(t, tc.body, 0o640))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("%q in a 0640 file: %v, want %q", tc.body, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "SEKRIT") {
			t.Errorf("the refusal shows the secret: %v", err)
		}
		if _, err := Load(write(t, tc.body, 0o600)); err != nil {
			t.Errorf("%q in a 0600 file: %v", tc.body, err)
		}
	}
	for _, ok := range []string{
		repo(`data_url: env:DATA_URL, data_directory: data`),
		repo(`data_url: "file:/run/secrets/data-url"`),
		repo(`data_url: "minio://ACCESS_KEY:SECRET_KEY@HOST:9000/BUCKET"`),
		repo(`data_url: "minio://h:9000/b"`),
		cluster(`pg_url: "postgres://root@h:4566/dev"`),
		cluster(`meta_addr: "http://meta:5690"`),
		"clusters:\n  a:\n    etcd: {endpoints: [x:2379], username: root, password: env:PW, cacert: /etc/ca.pem, cert: /etc/c.pem, key: /etc/c.key}\n",
	} {
		if _, err := Load(write(t, ok, 0o644)); err != nil {
			t.Errorf("%q in a 0644 file: %v", ok, err)
		}
	}
}
