package schedule

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var quiet = slog.New(slog.DiscardHandler)

func TestRunsJobsAndRecordsMetrics(t *testing.T) {
	m := NewMetrics()
	var n atomic.Int32
	err := Run(context.Background(), Config{Every: time.Millisecond, MaxJobs: 3, Metrics: m, Logger: quiet}, func(ctx context.Context) (Result, error) {
		i := n.Add(1)
		return Result{SnapshotID: uint64(i), Bytes: 100 * int(i), Snapshots: int(i), Pruned: 1}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// MaxJobs counts scheduled runs; a run may be skipped if the previous
	// one still ran, so 1..3 jobs ran.
	ran := m.Get(MetricSuccesses)
	if ran < 1 || ran > 3 || ran != float64(n.Load()) || m.Get(MetricSkipped)+ran != 3 {
		t.Fatalf("successes %v, skipped %v, jobs %d", ran, m.Get(MetricSkipped), n.Load())
	}
	if m.Get(MetricLastSuccess) == 0 || m.Get(MetricBytes) != 100*ran || m.Get(MetricPruned) != ran || m.Get(MetricRunning) != 0 {
		t.Fatalf("metrics not updated: bytes %v pruned %v", m.Get(MetricBytes), m.Get(MetricPruned))
	}
}

func TestSkipsWhileAJobRuns(t *testing.T) {
	m := NewMetrics()
	release := make(chan struct{})
	var jobs atomic.Int32
	go func() {
		// Let the first job run until two scheduled runs were skipped.
		for m.Get(MetricSkipped) < 2 {
			time.Sleep(time.Millisecond)
		}
		close(release)
	}()
	err := Run(context.Background(), Config{Every: time.Millisecond, MaxJobs: 3, Metrics: m, Logger: quiet}, func(ctx context.Context) (Result, error) {
		jobs.Add(1)
		<-release
		return Result{}, nil
	})
	if err != nil || jobs.Load() != 1 || m.Get(MetricSkipped) != 2 {
		t.Fatalf("err %v, jobs %d, skipped %v", err, jobs.Load(), m.Get(MetricSkipped))
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		failures  int32
		retries   int
		wantErr   bool
		wantCalls int32
	}{
		{"succeeds after two failures", 2, 3, false, 3},
		{"gives up", 10, 2, true, 3},
		{"no retries", 1, 0, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics()
			var calls atomic.Int32
			err := Run(context.Background(), Config{Once: true, Retries: tt.retries, Backoff: time.Millisecond, Metrics: m, Logger: quiet},
				func(ctx context.Context) (Result, error) {
					if calls.Add(1) <= tt.failures {
						return Result{}, errors.New("storage unreachable")
					}
					return Result{}, nil
				})
			if (err != nil) != tt.wantErr || calls.Load() != tt.wantCalls {
				t.Fatalf("err %v, calls %d", err, calls.Load())
			}
			if want := map[bool]float64{true: 1, false: 0}[tt.wantErr]; m.Get(MetricFailures) != want {
				t.Fatalf("failures metric %v", m.Get(MetricFailures))
			}
		})
	}
}

func TestStopLetsTheJobFinish(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	m := NewMetrics()
	started := make(chan struct{})
	go func() { <-started; stop() }()
	err := Run(ctx, Config{Every: time.Hour, Metrics: m, Logger: quiet}, func(jctx context.Context) (Result, error) {
		close(started)
		time.Sleep(20 * time.Millisecond) // still running when the stop comes
		return Result{}, jctx.Err()
	})
	if err != nil || m.Get(MetricSuccesses) != 1 {
		t.Fatalf("err %v, successes %v", err, m.Get(MetricSuccesses))
	}
}

func TestStopCancelsAJobThatOverruns(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	m := NewMetrics()
	started := make(chan struct{})
	go func() { <-started; stop() }()
	var sawCancel atomic.Bool
	err := Run(ctx, Config{Every: time.Hour, StopTimeout: 10 * time.Millisecond, Metrics: m, Logger: quiet}, func(jctx context.Context) (Result, error) {
		close(started)
		<-jctx.Done()
		sawCancel.Store(true)
		return Result{}, jctx.Err()
	})
	if err != nil || !sawCancel.Load() || m.Get(MetricFailures) != 1 {
		t.Fatalf("err %v, cancelled %v, failures %v", err, sawCancel.Load(), m.Get(MetricFailures))
	}
}

func TestConfigRefusals(t *testing.T) {
	job := func(context.Context) (Result, error) { return Result{}, nil }
	for _, c := range []Config{{}, {Every: -time.Second}, {Every: time.Second, Jitter: -1}, {Once: true, Retries: -1}} {
		c.Logger = quiet
		if err := Run(context.Background(), c, job); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := NewMetrics()
	addr, err := Serve(ctx, "127.0.0.1:0", m, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	m.Add(MetricFailures, 2)
	m.Set(MetricBytes, 12345)
	code, body := get("/metrics")
	for _, want := range []string{"# TYPE rwsnap_backup_failures_total counter\nrwsnap_backup_failures_total 2\n", "rwsnap_backup_bytes 12345\n", "# HELP rwsnap_backup_last_success_timestamp_seconds"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("/metrics %d lacks %q:\n%s", code, want, body)
		}
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("young daemon unhealthy: %d", code)
	}
	m.Set(MetricLastSuccess, float64(time.Now().Add(-2*time.Hour).Unix()))
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "no successful backup") {
		t.Fatalf("stale: %d %s", code, body)
	}
	if _, err := Serve(ctx, addr.String(), m, time.Hour); err == nil || !strings.Contains(err.Error(), "cannot listen on --metrics-addr") {
		t.Fatalf("port in use: %v", err)
	}
}

func TestFleetMetrics(t *testing.T) {
	m := NewMetrics()
	a, b := m.For("a"), m.For("b")
	a.Set(MetricLastSuccess, 5)
	b.Add(MetricFailures, 2)
	var out strings.Builder
	m.WriteTo(&out)
	s := out.String()
	for _, want := range []string{
		"rwsnap_backup_last_success_timestamp_seconds{cluster=\"a\"} 5\n",
		"rwsnap_backup_last_success_timestamp_seconds{cluster=\"b\"} 0\n",
		"rwsnap_backup_failures_total{cluster=\"b\"} 2\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("metrics lack %q:\n%s", want, s)
		}
	}
	if strings.Count(s, "# TYPE rwsnap_backup_failures_total ") != 1 || strings.Contains(s, "rwsnap_backup_failures_total 0") {
		t.Errorf("one TYPE line per metric, no unlabelled series in a fleet:\n%s", s)
	}
	if v, series := m.Oldest(MetricLastSuccess); v != 0 || series != `rwsnap_backup_last_success_timestamp_seconds{cluster="b"}` {
		t.Errorf("Oldest = %v %s", v, series)
	}
}

// A job stuck on a hung store (it returns only when its context ends) is
// cut by JobTimeout, so the next scheduled jobs still run and succeed.
func TestJobTimeoutUnblocksLaterJobs(t *testing.T) {
	m := NewMetrics()
	var n atomic.Int32
	hung := func(ctx context.Context) (Result, error) {
		if n.Add(1) == 1 {
			<-ctx.Done() // the first job hangs until cut
			return Result{}, ctx.Err()
		}
		return Result{SnapshotID: 7}, nil
	}
	err := Run(context.Background(), Config{Every: 20 * time.Millisecond, MaxJobs: 6, JobTimeout: 50 * time.Millisecond, Metrics: m, Logger: quiet}, hung)
	if err != nil {
		t.Fatal(err)
	}
	if m.Get(MetricFailures) != 1 || m.Get(MetricSuccesses) < 1 {
		t.Fatalf("failures %v, successes %v: the hung job must fail alone and later jobs succeed", m.Get(MetricFailures), m.Get(MetricSuccesses))
	}
	// With --once, the retry after a timed-out attempt succeeds.
	n.Store(0)
	if err := Run(context.Background(), Config{Once: true, Retries: 1, Backoff: time.Millisecond, JobTimeout: 50 * time.Millisecond, Logger: quiet}, hung); err != nil {
		t.Fatalf("once with a retry after a timeout: %v", err)
	}
	n.Store(0)
	err = Run(context.Background(), Config{Once: true, JobTimeout: 50 * time.Millisecond, Logger: quiet}, hung)
	if err == nil || !strings.Contains(err.Error(), "--job-timeout") {
		t.Fatalf("a timed-out attempt must say so: %v", err)
	}
}
