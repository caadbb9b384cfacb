package objstore

import (
	"context"
	"strings"
	"testing"
	"unicode"
)

// minioSecret is the secret key RisingWave would read from a minio:// URL:
// after "minio://", the credentials end at the first '@' and the secret
// starts after their first ':'.
func minioSecret(raw string) (prefix, secret, rest string, ok bool) {
	s := strings.TrimSpace(raw)
	body, found := strings.CutPrefix(s, "minio://")
	if !found {
		return "", "", "", false
	}
	cred, after, found := strings.Cut(body, "@")
	if !found {
		return "", "", "", false
	}
	ak, sk, found := strings.Cut(cred, ":")
	if !found || sk == "" {
		return "", "", "", false
	}
	return "minio://" + ak + ":", sk, "@" + after, true
}

// FuzzOpenURL: Open of any string returns a store or an error, never
// panics, and neither its error, the store's name nor Redact ever holds
// the secret key of a minio:// URL.
func FuzzOpenURL(f *testing.F) {
	for _, s := range []string{
		"minio://hummockadmin:hummockadmin@127.0.0.1:9301/hummock001",
		"minio://AK:S3cr3t/With+Slash@https://127.0.0.1:9000/bkt",
		"minio://AK:sec:ret@127.0.0.1:9000/a/b",
		"minio://AK:s3cret@/bucket",
		"minio://AK:s3cret@127.0.0.1:9000",
		"minio://:s3cret@h:1/b",
		"minio://AKs3cret@h:1/b",
		"minio://AK:s3cret@h:1/b/",
		" minio://AK:s e c@h:1/b ",
		"s3://bucket", "s3://", "s3://a/b", "fs://", "fs:///tmp/x", "fs://rel/dir",
		"memory", "memory-shared", "", "gcs://b", "hdfs://u:p@h/b", "x:y@z", "://",
	} {
		f.Add(s)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, raw string) {
		// s3:// would read the AWS configuration of the machine; parse only.
		if strings.HasPrefix(strings.TrimSpace(raw), "s3://") {
			_, _ = parseURL(raw)
			return
		}
		st, err := Open(ctx, raw)
		var texts []string
		if err != nil {
			texts = append(texts, err.Error())
		} else {
			texts = append(texts, st.String())
			st.Close()
		}
		texts = append(texts, Redact(raw), RedactText(raw))
		prefix, secret, rest, ok := minioSecret(raw)
		if !ok {
			return
		}
		// The same URL with another secret: text that holds `secret` there
		// too comes from elsewhere (the template, the host, the bucket).
		other := prefix + "Q" + rest
		var otherTexts []string
		if st2, err2 := Open(ctx, other); err2 != nil {
			otherTexts = append(otherTexts, err2.Error())
		} else {
			otherTexts = append(otherTexts, st2.String())
			st2.Close()
		}
		otherTexts = append(otherTexts, Redact(other), RedactText(other))
		for i, s := range texts {
			// RedactText finds URLs in free text, where whitespace ends
			// them; credentials with whitespace are beyond it (Redact, for
			// a whole URL, must still hide them).
			ak := strings.TrimSuffix(strings.TrimPrefix(prefix, "minio://"), ":")
			if i == len(texts)-1 && strings.ContainsFunc(ak+secret, unicode.IsSpace) {
				continue
			}
			if strings.Contains(s, secret) && !strings.Contains(otherTexts[i], secret) {
				t.Fatalf("secret %q of %q leaked: %q", secret, raw, s)
			}
		}
	})
}
