// Package progress draws one updating status line on stderr for long work
// (keys written, objects copied) with rate and ETA, only when stderr is a
// terminal: logs and scripts get the summary lines instead.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Enabled turns progress lines on; the CLI sets it from whether stderr is
// a terminal and --quiet.
var Enabled = false

// Output is where lines go.
var Output io.Writer = os.Stderr

// IsTerminal says whether f is a terminal: one with terminal attributes,
// not merely a character device (2>/dev/null is one too).
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Bar tracks one long operation. The zero of Total means unknown.
type Bar struct {
	mu      sync.Mutex
	label   string
	unit    string
	total   int64
	done    int64
	bytes   int64
	start   time.Time
	drawn   time.Time
	enabled bool
}

// New starts a bar; it draws nothing unless Enabled.
func New(label string, total int64, unit string) *Bar {
	now := time.Now()
	// First drawn 200 ms in, like every redraw: a rate (and an ETA) from
	// the first microseconds would be noise (millions of keys/s, ETA 0s).
	return &Bar{label: label, unit: unit, total: total, start: now, drawn: now, enabled: Enabled}
}

// Add records n more units (and optional bytes) and redraws at most 5
// times a second.
func (b *Bar) Add(n, bytes int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	b.bytes += bytes
	if b.enabled && time.Since(b.drawn) > 200*time.Millisecond {
		b.draw(false)
		b.drawn = time.Now()
	}
}

// Finish draws the final state and ends the line.
func (b *Bar) Finish() {
	if b == nil || !b.enabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw(true)
}

// line is the bar line on the terminal now, redrawn after a log record
// (LogWriter) so that records and the bar do not share a line.
var line struct {
	sync.Mutex
	text string
}

func (b *Bar) draw(final bool) {
	elapsed := time.Since(b.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(b.done) / elapsed
	}
	s := fmt.Sprintf("\r%s: %d", b.label, b.done)
	if b.total > 0 {
		s += fmt.Sprintf("/%d %s (%d%%)", b.total, b.unit, b.done*100/b.total)
	} else {
		s += " " + b.unit
	}
	if b.bytes > 0 {
		s += ", " + Bytes(b.bytes)
	}
	s += fmt.Sprintf(", %.0f %s/s", rate, b.unit)
	if b.total > 0 && rate > 0 && b.done < b.total {
		s += ", ETA " + (time.Duration(float64(b.total-b.done)/rate) * time.Second).Round(time.Second).String()
	}
	s += "\x1b[K"
	line.Lock()
	defer line.Unlock()
	if final {
		fmt.Fprintln(Output, s)
		line.text = ""
		return
	}
	fmt.Fprint(Output, s)
	line.text = s
}

// LogWriter wraps the writer log records go to (the same terminal as
// Output): a record written while a bar is drawn clears the bar's line
// first and redraws the bar below it.
func LogWriter(w io.Writer) io.Writer { return logWriter{w} }

type logWriter struct{ w io.Writer }

func (l logWriter) Write(p []byte) (int, error) {
	line.Lock()
	defer line.Unlock()
	if line.text == "" {
		return l.w.Write(p)
	}
	if _, err := io.WriteString(l.w, "\r\x1b[K"); err != nil {
		return 0, err
	}
	n, err := l.w.Write(p)
	if err == nil {
		_, err = io.WriteString(l.w, line.text)
	}
	return n, err
}

// Bytes formats a byte count for people.
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
