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
)

// Enabled turns progress lines on; the CLI sets it from whether stderr is
// a terminal and --quiet.
var Enabled = false

// Output is where lines go.
var Output io.Writer = os.Stderr

// IsTerminal says whether f is a character device (a terminal).
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
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
	return &Bar{label: label, unit: unit, total: total, start: time.Now(), enabled: Enabled}
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
		b.draw()
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
	b.draw()
	fmt.Fprintln(Output)
}

func (b *Bar) draw() {
	elapsed := time.Since(b.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(b.done) / elapsed
	}
	line := fmt.Sprintf("\r%s: %d", b.label, b.done)
	if b.total > 0 {
		line += fmt.Sprintf("/%d %s (%d%%)", b.total, b.unit, b.done*100/b.total)
	} else {
		line += " " + b.unit
	}
	if b.bytes > 0 {
		line += ", " + Bytes(b.bytes)
	}
	line += fmt.Sprintf(", %.0f %s/s", rate, b.unit)
	if b.total > 0 && rate > 0 && b.done < b.total {
		line += ", ETA " + (time.Duration(float64(b.total-b.done)/rate) * time.Second).Round(time.Second).String()
	}
	fmt.Fprintf(Output, "%s\x1b[K", line)
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
