package schedule

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// Metrics is a small Prometheus text-format registry: the few gauges and
// counters a backup daemon exposes need no client library.
type Metrics struct {
	mu     sync.Mutex
	values map[string]float64   // series ("name" or `name{cluster="x"}`) -> value
	help   map[string][2]string // name -> {type, help}
	// root and label are set on a cluster's view (For): its series live in
	// root's registry with that label.
	root  *Metrics
	label string
}

// For returns the view of one cluster of a fleet: the same metrics with a
// cluster="NAME" label, served by m. The unlabelled series are dropped
// once a cluster view exists, so a fleet exposes labelled series only.
func (m *Metrics) For(cluster string) *Metrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	label := fmt.Sprintf("{cluster=%q}", cluster)
	for name := range m.help {
		delete(m.values, name)
		if _, ok := m.values[name+label]; !ok {
			m.values[name+label] = 0
		}
	}
	return &Metrics{root: m, label: label}
}

// registry returns where m's series live and m's label.
func (m *Metrics) registry() (*Metrics, string) {
	if m.root != nil {
		return m.root, m.label
	}
	return m, ""
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
	// Data copy (schedule --with-data).
	MetricDataBytesCopied    = "rwsnap_data_bytes_copied_total"
	MetricDataObjectsCopied  = "rwsnap_data_objects_copied_total"
	MetricDataLastSuccess    = "rwsnap_data_last_success_timestamp_seconds"
	MetricDataProtectedBytes = "rwsnap_data_protected_bytes"
	MetricDataFailures       = "rwsnap_data_failures_total"
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
		{MetricDataBytesCopied, "counter", "Bytes of SST objects copied into the data copy."},
		{MetricDataObjectsCopied, "counter", "SST objects copied into the data copy."},
		{MetricDataLastSuccess, "gauge", "Unix time of the last data copy that completed."},
		{MetricDataProtectedBytes, "gauge", "Bytes of SST objects the last snapshot's complete data copy holds."},
		{MetricDataFailures, "counter", "Data copies that failed or left a snapshot partial."},
	} {
		m.help[d.name] = [2]string{d.typ, d.help}
		m.values[d.name] = 0
	}
	return m
}

// Set sets a gauge.
func (m *Metrics) Set(name string, v float64) {
	r, l := m.registry()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.values[name+l] = v
}

// Add adds to a counter.
func (m *Metrics) Add(name string, v float64) {
	r, l := m.registry()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.values[name+l] += v
}

// Get reads a value (tests, health).
func (m *Metrics) Get(name string) float64 {
	r, l := m.registry()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.values[name+l]
}

// Oldest is the smallest value of name across every series (every cluster
// of a fleet), and the series it is in: health is the worst cluster's.
func (m *Metrics) Oldest(name string) (float64, string) {
	r, _ := m.registry()
	r.mu.Lock()
	defer r.mu.Unlock()
	first, min, series := true, 0.0, ""
	for k, v := range r.values {
		if k == name || strings.HasPrefix(k, name+"{") {
			if first || v < min || (v == min && k < series) {
				first, min, series = false, v, k
			}
		}
	}
	return min, series
}

// WriteTo renders the Prometheus text exposition format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	m, _ = m.registry()
	m.mu.Lock()
	defer m.mu.Unlock()
	series := make([]string, 0, len(m.values))
	for n := range m.values {
		series = append(series, n)
	}
	sort.Strings(series)
	var total int64
	last := ""
	for _, s := range series {
		name, _, _ := strings.Cut(s, "{")
		var k int
		var err error
		if name != last {
			h := m.help[name]
			k, err = fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, h[1], name, h[0])
			total += int64(k)
			last = name
		}
		if err == nil {
			k, err = fmt.Fprintf(w, "%s %g\n", s, m.values[s])
			total += int64(k)
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// DataCopied counts one object copied into the data copy.
func (m *Metrics) DataCopied(bytes int64) {
	m.Add(MetricDataBytesCopied, float64(bytes))
	m.Add(MetricDataObjectsCopied, 1)
}

// DataBackup records the end of a data copy: protected is the bytes the
// snapshot's data copy holds.
func (m *Metrics) DataBackup(ok bool, protected int64) {
	if !ok {
		m.Add(MetricDataFailures, 1)
		return
	}
	m.Set(MetricDataLastSuccess, float64(time.Now().UnixNano())/1e9)
	m.Set(MetricDataProtectedBytes, float64(protected))
}
