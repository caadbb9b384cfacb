package objstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	abs := func(p string) string { return filepath.Clean(filepath.FromSlash(p)) }
	good := []struct {
		url  string
		want location
	}{
		{"s3://my-bucket", location{scheme: "s3", bucket: "my-bucket"}},
		{"s3://my-bucket/", location{scheme: "s3", bucket: "my-bucket"}},
		{"  s3://b.with.dots  ", location{scheme: "s3", bucket: "b.with.dots"}},
		{"minio://hummockadmin:hummockadmin@127.0.0.1:9301/hummock001", location{
			scheme: "minio", bucket: "hummock001", accessKey: "hummockadmin", secretKey: "hummockadmin",
			endpoint: "http://127.0.0.1:9301"}},
		{"minio://AK:SK@http://minio:9000/bkt", location{
			scheme: "minio", bucket: "bkt", accessKey: "AK", secretKey: "SK", endpoint: "http://minio:9000"}},
		{"minio://AK:SK@https://minio.example.com:443/bkt", location{
			scheme: "minio", bucket: "bkt", accessKey: "AK", secretKey: "SK", endpoint: "https://minio.example.com:443"}},
		// AWS-style secrets hold '/' and '+'; RisingWave splits at the first '@'.
		{"minio://AKIA:wJal/rXU+tn:FEMI@host:9000/b", location{
			scheme: "minio", bucket: "b", accessKey: "AKIA", secretKey: "wJal/rXU+tn:FEMI", endpoint: "http://host:9000"}},
		// No percent-decoding, exactly like RisingWave.
		{"minio://a%40b:s%2Fk@host:1/bucket", location{
			scheme: "minio", bucket: "bucket", accessKey: "a%40b", secretKey: "s%2Fk", endpoint: "http://host:1"}},
		{"fs:///var/lib/rw", location{scheme: "fs", path: abs("/var/lib/rw")}},
		{"fs://relative/dir", location{scheme: "fs", path: abs("relative/dir")}},
		{"fs://./x/../y/", location{scheme: "fs", path: abs("y")}},
		{"memory", location{scheme: "memory"}},
		{"memory-shared", location{scheme: "memory"}},
	}
	for _, tc := range good {
		t.Run(tc.url, func(t *testing.T) {
			got, err := parseURL(tc.url)
			if err != nil {
				t.Fatalf("parseURL: %v", err)
			}
			got.raw = ""
			if got != tc.want {
				t.Fatalf("parseURL = %+v, want %+v", got, tc.want)
			}
		})
	}

	bad := []struct {
		url  string
		want string // substring of the error
	}{
		{"", "empty object store URL"},
		{"   ", "empty object store URL"},
		{"s3://", "no bucket"},
		{"s3:///", "no bucket"},
		{"s3://bucket/prefix", "backup_storage_directory"},
		{"minio://host:9000/bucket", "no credentials"},
		{"minio://AKpw0rdXYZ@host:9000/bucket", "ACCESS_KEY:SECRET_KEY"},
		{"minio://:pw0rdXYZ@host:9000/bucket", "empty access key"},
		{"minio://AK:@host:9000/bucket", "empty secret key"},
		{"minio://AK:pw0rdXYZ@host:9000", "no bucket"},
		{"minio://AK:pw0rdXYZ@host:9000/", "no bucket"},
		{"minio://AK:pw0rdXYZ@/bucket", "no HOST:PORT"},
		{"minio://AK:pw0rdXYZ@https:///bucket", "no HOST:PORT"},
		{"minio://AK:pw0rdXYZ@host:9000/bucket/dir", "backup_storage_directory"},
		{"fs://", "empty path"},
		{"gcs://bucket", "RisingWave object store rwsnap does not support"},
		{"obs://bucket", "does not support"},
		{"oss://bucket", "does not support"},
		{"webhdfs://host/path", "does not support"},
		{"azblob://container", "does not support"},
		{"hdfs://nn:8020/x", "does not support"},
		{"s3-compatible://bucket", "does not support"},
		{"ftp://user:pw0rdXYZ@host/x", "unknown scheme \"ftp\""},
		{"hummock+minio://AK:pw0rdXYZ@host:9000/b", "unknown scheme"},
		{"memoryx", "not an object store URL"},
		{"/just/a/path", "not an object store URL"},
		{"S3://bucket", "unknown scheme"},
		// A query pasted after the bucket is no part of its name, and
		// the secret in it is not shown.
		{"s3://b?access_key_id=A&secret_access_key=pw0rdXYZ", `"?" cannot be in a bucket name`},
		{"s3://my bucket", `" " cannot be in a bucket name`},
		{"minio://AK:pw0rdXYZ@host:9000/b#x", `"#" cannot be in a bucket name`},
	}
	for _, tc := range bad {
		t.Run("bad/"+tc.url, func(t *testing.T) {
			_, err := parseURL(tc.url)
			if err == nil {
				t.Fatalf("parseURL(%q) succeeded", tc.url)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not mention %q", msg, tc.want)
			}
			if strings.Contains(msg, "pw0rdXYZ") {
				t.Fatalf("error %q leaks the secret", msg)
			}
			if strings.Contains(tc.url, "://") && !strings.HasPrefix(strings.TrimSpace(tc.url), "fs://") &&
				!strings.Contains(msg, "s3://BUCKET") && !strings.Contains(msg, "minio://") {
				t.Fatalf("error %q does not show the expected URL form", msg)
			}
		})
	}
}

func TestOpenErrorsAreRedacted(t *testing.T) {
	for _, u := range []string{
		"minio://AK:pw0rdXYZ@host:9000",
		"minio://AK:pw0rdXYZ@host:9000/b/c",
		"minio://AKpw0rdXYZ@host:9000/b",
		"gcs://AK:pw0rdXYZ@bucket",
	} {
		_, err := Open(context.Background(), u)
		if err == nil {
			t.Fatalf("Open(%q) succeeded", u)
		}
		if strings.Contains(err.Error(), "pw0rdXYZ") {
			t.Errorf("Open(%q) error leaks the secret: %v", u, err)
		}
	}
}

func TestRedact(t *testing.T) {
	cases := []struct{ in, want string }{
		{"minio://AK:SK@host:9000/bucket", "minio://AK:***@host:9000/bucket"},
		{"minio://AK:SK@https://host:9000/bucket", "minio://AK:***@https://host:9000/bucket"},
		{"minio://AKIA:wJal/rXU+tn:FE@host:9000/b", "minio://AKIA:***@host:9000/b"},
		{"minio://AK:secret with space@host/b", "minio://AK:***@host/b"},
		{"minio://ONLYpw0rdXYZ@host/b", "minio://***@host/b"},
		{"minio://host:9000/b", "minio://host:9000/b"},
		{"s3://bucket", "s3://bucket"},
		{"fs:///tmp/x", "fs:///tmp/x"},
		{"memory", "memory"},
		{"postgres://user:pw@db:5432/x", "postgres://user:***@db:5432/x"},
		{"", ""},
	}
	for _, tc := range cases {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactText(t *testing.T) {
	cases := []struct{ in, want string }{
		{`open "minio://AK:s3cr3tKey@host:9000/bucket": boom`, `open "minio://AK:***@host:9000/bucket": boom`},
		// Hints keep their placeholders readable; they are no secrets.
		{"use minio://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET", "use minio://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET"},
		{"supported: minio://ACCESS_KEY:SECRET_KEY@[http(s)://]HOST:PORT/BUCKET", "supported: minio://ACCESS_KEY:SECRET_KEY@[http(s)://]HOST:PORT/BUCKET"},
		// Only the exact placeholders are kept: a real secret that looks
		// like one (short, or the hint's word under a real access key) is
		// hidden.
		{"open minio://AK:SK@host:9000/b", "open minio://AK:***@host:9000/b"},
		{"open minio://myak:SECRET_KEY@host:9000/b", "open minio://myak:***@host:9000/b"},
		{"open minio://ACCESS_KEY:SK@host:9000/b", "open minio://ACCESS_KEY:***@host:9000/b"},
		{"dsn postgres://USER:PASSWORD@db/x", "dsn postgres://USER:***@db/x"},
		{"dsn postgres://root:PASSWORD@db/x", "dsn postgres://root:***@db/x"},
		// The access key ends at the first ':'; a secret holding ':' is
		// hidden whole.
		{"open minio://AKIA:wJal:rXU@h/b: boom", "open minio://AKIA:***@h/b: boom"},
		{"dsn postgres://u:p:q@host/db", "dsn postgres://u:***@host/db"},
		// Passwords as parameters, and pasted private keys.
		{"connect host=db password=hunter2 user=u", "connect host=db password=*** user=u"},
		{"connect host=db password='hun ter2' sslpassword=x", "connect host=db password=*** sslpassword=***"},
		{"postgres://u@db/x?sslmode=disable&password=hunter2&a=b", "postgres://u@db/x?sslmode=disable&password=***&a=b"},
		{"s3://b?access_key_id=AK&secret_access_key=hunter2", "s3://b?access_key_id=AK&secret_access_key=***"},
		{"AWS_SECRET_ACCESS_KEY=hunter2 aws_session_token=tok", "AWS_SECRET_ACCESS_KEY=*** aws_session_token=***"},
		{"s3://b?secret_key=hunter2", "s3://b?secret_key=***"},
		{"psql ... password=<PASSWORD>", "psql ... password=<PASSWORD>"},
		{"open -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----: no such file",
			"open -----BEGIN EC PRIVATE KEY----- *** -----END EC PRIVATE KEY-----: no such file"},
		{"open -----BEGIN PRIVATE KEY-----MIIEvQIBADAN", "open -----BEGIN PRIVATE KEY----- *** "},
		{"TO 'minio://ak:<SECRET_KEY>@h:9000/b'", "TO 'minio://ak:<SECRET_KEY>@h:9000/b'"},
		{"postgres://root:<PASSWORD>@h/dev", "postgres://root:<PASSWORD>@h/dev"},
		{"a minio://A:S/x+y@h/b and minio://C:D@h2/b2.", "a minio://A:***@h/b and minio://C:***@h2/b2."},
		{"state_store=hummock+minio://hummockadmin:hummockadmin@127.0.0.1:9301/hummock001",
			"state_store=hummock+minio://hummockadmin:***@127.0.0.1:9301/hummock001"},
		{"dsn postgres://u:p@host/db ok", "dsn postgres://u:***@host/db ok"},
		{"http://127.0.0.1:9000/bucket/key?x=1 user@example.com", "http://127.0.0.1:9000/bucket/key?x=1 user@example.com"},
		{"no secrets here", "no secrets here"},
		{"mail me: a@b.c", "mail me: a@b.c"},
	}
	for _, tc := range cases {
		if got := RedactText(tc.in); got != tc.want {
			t.Errorf("RedactText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// HasSecret is true exactly where Redact hides something.
func TestHasSecret(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"minio://AK:SK@host:9000/b", true},
		{"minio:/AK:SK@host/b", true},
		{"s3:AK:SK@x", true},
		{"minio//AK:SK@host/b", true},
		{"minio://AK:SK", true},
		{"hummock+minio://AK:SK@host:9000/b", true},
		{"postgres://u:pw@db/x", true},
		{"host=db password=pw", true},
		{"postgres://u@db/x?password=pw", true},
		{"s3://b?secret_access_key=pw", true},
		{"-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----", true},
		{"http://user:pw@meta:5690", true},
		{"minio://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET", false},
		{"minio://ak:<SECRET_KEY>@h:9000/b", false},
		{"minio://host:9000/b", false},
		{"s3://bucket", false},
		{"fs:///var/lib/rwsnap", false},
		{"postgres://root@db:4566/dev", false},
		{"etcd-0:2379", false},
		{"http://meta:5690", false},
		{"/etc/etcd/client.key", false},
		{"", false},
	} {
		if got := HasSecret(tc.in); got != tc.want {
			t.Errorf("HasSecret(%q) = %v, want %v (Redact: %q)", tc.in, got, tc.want, Redact(tc.in))
		}
	}
}

func TestWithPlaceholders(t *testing.T) {
	cases := []struct{ in, want string }{
		{"ALTER SYSTEM SET backup_storage_url TO 'minio://ak:s3cr3t/x+y@h:9000/b';", "ALTER SYSTEM SET backup_storage_url TO 'minio://ak:<SECRET_KEY>@h:9000/b';"},
		{"hummock+minio://ak:sk123456@https://h:9000/b", "hummock+minio://ak:<SECRET_KEY>@https://h:9000/b"},
		{"psql postgres://root:pw1@h:4566/dev", "psql postgres://root:<PASSWORD>@h:4566/dev"},
		{"s3://bucket", "s3://bucket"},
		{"ALTER SYSTEM SET backup_storage_url TO 'minio://ak:SK@h:9000/b';", "ALTER SYSTEM SET backup_storage_url TO 'minio://ak:<SECRET_KEY>@h:9000/b';"},
		{"psql postgres://root:PASSWORD@h:4566/dev", "psql postgres://root:<PASSWORD>@h:4566/dev"},
		{"TO 'minio://ak:s3:cr3t@h:9000/b'", "TO 'minio://ak:<SECRET_KEY>@h:9000/b'"},
	}
	for _, tc := range cases {
		got := WithPlaceholders(tc.in)
		if got != tc.want {
			t.Errorf("WithPlaceholders(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "***") {
			t.Errorf("a suggested command holds the redaction marker: %q", got)
		}
		if RedactText(got) != got {
			t.Errorf("placeholders must survive redaction: %q -> %q", got, RedactText(got))
		}
	}
}

func TestJoinKey(t *testing.T) {
	cases := []struct{ dir, name, want string }{
		{"backup", "manifest.json", "backup/manifest.json"},
		{"backup/", "1.snapshot", "backup/1.snapshot"},
		{"hummock_001/backup", "manifest.json", "hummock_001/backup/manifest.json"},
		{"", "manifest.json", "manifest.json"},
		{"/", "x", "x"},
		{"a//", "/b", "a/b"},
		{"a", "b/c.data", "a/b/c.data"},
	}
	for _, tc := range cases {
		if got := JoinKey(tc.dir, tc.name); got != tc.want {
			t.Errorf("JoinKey(%q, %q) = %q, want %q", tc.dir, tc.name, got, tc.want)
		}
	}
}

func TestOpenSchemes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct{ url, scheme string }{
		{"memory", "memory"},
		{"memory-shared", "memory"},
		{"fs://" + dir, "fs"},
		{"minio://AK:pw0rdXYZ@127.0.0.1:1/bucket", "minio"},
	} {
		s, err := Open(ctx, tc.url)
		if err != nil {
			t.Fatalf("Open(%q): %v", Redact(tc.url), err)
		}
		if s.Scheme() != tc.scheme {
			t.Errorf("Open(%q).Scheme() = %q, want %q", Redact(tc.url), s.Scheme(), tc.scheme)
		}
		if strings.Contains(s.String(), "pw0rdXYZ") {
			t.Errorf("String() = %q leaks the secret", s.String())
		}
		s.Close()
	}
}

func TestFSOpenOnFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), "fs://"+f); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Open on a file: err = %v", err)
	}
}
