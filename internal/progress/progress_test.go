package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBar(t *testing.T) {
	var out bytes.Buffer
	Output, Enabled = &out, true
	defer func() { Enabled = false }()
	b := New("restore", 100, "keys")
	b.Add(50, 2048)
	b.drawn = time.Time{}
	b.Add(0, 0)
	b.Finish()
	s := out.String()
	for _, want := range []string{"restore: 50/100 keys (50%)", "2.0 KiB", "keys/s", "ETA"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
	out.Reset()
	Enabled = false
	b = New("x", 0, "keys")
	b.Add(5, 0)
	b.Finish()
	if out.Len() != 0 {
		t.Errorf("drew while disabled: %q", out.String())
	}
	var nilBar *Bar
	nilBar.Add(1, 1) // a nil bar is a no-op
	if Bytes(3<<20) != "3.0 MiB" {
		t.Error(Bytes(3 << 20))
	}
}
