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
