package progress

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/internal/testinfra/pty"
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

// Only a terminal is one: not /dev/null (a character device too), not a
// file, not a pipe.
func TestIsTerminal(t *testing.T) {
	_, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, tc := range []struct {
		name string
		f    *os.File
		want bool
	}{{"pty", slave, true}, {os.DevNull, null, false}, {"file", file, false}, {"pipe", w, false}} {
		if got := IsTerminal(tc.f); got != tc.want {
			t.Errorf("IsTerminal(%s) = %v", tc.name, got)
		}
	}
}

// A log record written while a bar is drawn clears the bar's line, lands
// on its own line, and the bar is drawn again below it; once the bar is
// finished, records are written as they are.
func TestLogWriterKeepsRecordsOffTheBar(t *testing.T) {
	var out bytes.Buffer
	Output, Enabled = &out, true
	defer func() { Output, Enabled = os.Stderr, false }()
	log := LogWriter(&out)
	b := New("backup", 10, "keys")
	b.drawn = time.Time{}
	b.Add(4, 0)
	bar := out.String()
	if !strings.HasPrefix(bar, "\rbackup: 4/10 keys (40%)") {
		t.Fatalf("bar drawn as %q", bar)
	}
	out.Reset()
	if _, err := log.Write([]byte("level=INFO msg=x\n")); err != nil {
		t.Fatal(err)
	}
	if want := "\r\x1b[Klevel=INFO msg=x\n" + bar; out.String() != want {
		t.Fatalf("a record under a drawn bar: %q, want %q", out.String(), want)
	}
	b.Finish()
	out.Reset()
	if _, err := log.Write([]byte("after\n")); err != nil || out.String() != "after\n" {
		t.Fatalf("a record after the bar finished: %q %v", out.String(), err)
	}
}
