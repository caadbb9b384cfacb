package objstore

import (
	"strings"
	"testing"
)

// A secret key holding '@' is hidden whole, in URLs and in free text.
func TestRedactSecretWithAt(t *testing.T) {
	u := "minio://AK:p@SEKRIT@127.0.0.1:1/b"
	for _, got := range []string{Redact(u), RedactText("open " + u + ": refused"), RedactText(`url="` + u + `"`)} {
		if strings.Contains(got, "SEKRIT") || !strings.Contains(got, "127.0.0.1:1/b") {
			t.Errorf("redacted %q", got)
		}
	}
}

// A mistyped or hostless URL quoted in an error keeps its secret hidden.
func TestRedactMalformedURLs(t *testing.T) {
	for _, u := range []string{"minio:/AK:SEKRIT@127.0.0.1:1/b", "minio:AK:SEKRIT@127.0.0.1:1/b", "minio//AK:SEKRIT@127.0.0.1:1/b", "minio://AK:SEKRIT"} {
		if got := Redact(u); strings.Contains(got, "SEKRIT") {
			t.Errorf("Redact(%q) = %q", u, got)
		}
		if _, err := Open(t.Context(), u); err == nil || strings.Contains(err.Error(), "SEKRIT") {
			t.Errorf("Open(%q): %v", u, err)
		}
	}
}
