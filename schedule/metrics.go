package schedule

import (
	"fmt"
	"io"
	"sort"
	"sync"
)

// Metrics is a small Prometheus text-format registry: the few gauges and
// counters a backup daemon exposes need no client library.
type Metrics struct {
	mu     sync.Mutex
	values map[string]float64
	help   map[string][2]string // name -> {type, help}
}

// Metric names (documented in docs/operations.md).
const (
	MetricLastSuccess = "rwsnap_backup_last_success_timestamp_seconds"
	MetricDuration    = "rwsnap_backup_duration_seconds"
	MetricBytes       = "rwsnap_backup_bytes"
	MetricFailures    = "rwsnap_backup_failures_total"
	MetricSuccesses   = "rwsnap_backup_success_total"
	MetricSkipped     = "rwsnap_backup_skipped_total"
	MetricSnapshots   = "rwsnap_snapshots"
	MetricPruned      = "rwsnap_prune_deleted_total"
	MetricRunning     = "rwsnap_backup_running"
)

// NewMetrics registers rwsnap's metrics at zero.
func NewMetrics() *Metrics {
	m := &Metrics{values: map[string]float64{}, help: map[string][2]string{}}
	for _, d := range []struct{ name, typ, help string }{
		{MetricLastSuccess, "gauge", "Unix time of the last successful backup."},
		{MetricDuration, "gauge", "Duration of the last successful backup in seconds."},
		{MetricBytes, "gauge", "Size of the last snapshot in bytes."},
		{MetricFailures, "counter", "Backup jobs that failed after all retries."},
		{MetricSuccesses, "counter", "Backup jobs that succeeded."},
		{MetricSkipped, "counter", "Scheduled runs skipped because a job was still running."},
		{MetricSnapshots, "gauge", "Snapshots in the backup location's manifest after the last job."},
		{MetricPruned, "counter", "Snapshots deleted by retention."},
		{MetricRunning, "gauge", "1 while a backup job runs."},
	} {
		m.help[d.name] = [2]string{d.typ, d.help}
		m.values[d.name] = 0
	}
	return m
}

// Set sets a gauge.
func (m *Metrics) Set(name string, v float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.values[name] = v
}

// Add adds to a counter.
func (m *Metrics) Add(name string, v float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.values[name] += v
}

// Get reads a value (tests, health).
func (m *Metrics) Get(name string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.values[name]
}

// WriteTo renders the Prometheus text exposition format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	m.mu.Lock()
	names := make([]string, 0, len(m.values))
	for n := range m.values {
		names = append(names, n)
	}
	sort.Strings(names)
	var total int64
	for _, n := range names {
		h := m.help[n]
		k, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %g\n", n, h[1], n, h[0], n, m.values[n])
		total += int64(k)
		if err != nil {
			m.mu.Unlock()
			return total, err
		}
	}
	m.mu.Unlock()
	return total, nil
}
