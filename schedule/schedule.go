// Package schedule runs backup jobs on a schedule: one at a time, with
// jitter, retries with backoff, a graceful stop, and Prometheus metrics, so
// no cron script or Airflow DAG has to wrap rwsnap.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what one job reports.
type Result struct {
	SnapshotID uint64
	Bytes      int
	Snapshots  int // in the manifest afterwards
	Pruned     int
}

// DefaultJobTimeout bounds one backup attempt unless Config.JobTimeout says
// otherwise: far above a healthy backup, far below "forever".
const DefaultJobTimeout = 30 * time.Minute

// Job takes one backup (and prunes). It must honour ctx.
type Job func(ctx context.Context) (Result, error)

// Config of the daemon.
type Config struct {
	Every  time.Duration // interval between job starts
	Jitter time.Duration // random extra delay per run, spreads fleets out
	Once   bool          // one job (with retries), then return its error
	// Retries after a failed attempt, waiting Backoff, 2×Backoff, ...
	Retries int
	Backoff time.Duration
	// StopTimeout is how long a running job may finish after a stop
	// request before it is cancelled (its snapshot is then an orphan at
	// worst; the manifest is never torn).
	StopTimeout time.Duration
	// MaxJobs stops the daemon after that many jobs (0: unlimited); tests.
	MaxJobs int
	// JobTimeout bounds each attempt of a job (0: DefaultJobTimeout): a
	// store that hangs fails that attempt, and later jobs still run.
	JobTimeout time.Duration
	Metrics    *Metrics
	Logger     *slog.Logger
	// Done, when set, is called once per run with its final outcome
	// (after the retries), e.g. to print a result line.
	Done func(Report)
}

// Report is the final outcome of one run.
type Report struct {
	Run      int
	Result   Result
	Err      error
	Attempts int
	Duration time.Duration // of the last attempt
}

func (c *Config) defaults() error {
	if c.Every <= 0 && !c.Once {
		return errors.New("--every must be positive (e.g. 1h), or use --once")
	}
	if c.Jitter < 0 || c.Retries < 0 || c.Backoff < 0 {
		return errors.New("--jitter, --retries and --retry-backoff cannot be negative")
	}
	if c.Backoff == 0 {
		c.Backoff = 10 * time.Second
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = time.Minute
	}
	if c.JobTimeout < 0 {
		return errors.New("--job-timeout cannot be negative")
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = DefaultJobTimeout
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Run runs jobs until ctx is done (or after one with Once). It returns nil
// on a graceful stop, the job's error with Once.
func Run(ctx context.Context, cfg Config, job Job) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	log := cfg.Logger
	// Jobs run on their own context: a stop request gives the running job
	// StopTimeout to finish before it is cancelled.
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	var running atomic.Bool
	var wg sync.WaitGroup
	var onceErr error
	finished := func() <-chan struct{} {
		ch := make(chan struct{})
		go func() { wg.Wait(); close(ch) }()
		return ch
	}
	start := func(n int) {
		if !running.CompareAndSwap(false, true) {
			log.Warn("skipping a scheduled backup: the previous job is still running", "run", n)
			cfg.Metrics.Add(MetricSkipped, 1)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer running.Store(false)
			if err := runWithRetries(jobCtx, ctx, cfg, job, n); cfg.Once {
				onceErr = err
			}
		}()
	}
	for n := 1; ; n++ {
		start(n)
		if cfg.Once || (cfg.MaxJobs > 0 && n >= cfg.MaxJobs) {
			select {
			case <-finished():
			case <-ctx.Done():
			}
			break
		}
		// The clock alone starts jobs; a slow one makes the next skip.
		wait := cfg.Every
		if cfg.Jitter > 0 {
			wait += rand.N(cfg.Jitter)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
			continue
		}
		break
	}
	if running.Load() {
		log.Info("stop requested: letting the running backup finish", "timeout", cfg.StopTimeout)
		fin := finished()
		select {
		case <-fin:
		case <-time.After(cfg.StopTimeout):
			log.Warn("the running backup did not finish in time: cancelling it (the manifest stays valid; its snapshot object may be left as an orphan)")
			cancelJobs()
			<-fin
		}
	}
	wg.Wait()
	if cfg.Once {
		return onceErr
	}
	log.Info("scheduler stopped")
	return nil
}

func runWithRetries(jobCtx, stopCtx context.Context, cfg Config, job Job, n int) (err error) {
	rep := Report{Run: n}
	if cfg.Done != nil {
		defer func() { rep.Err = err; cfg.Done(rep) }()
	}
	log, m := cfg.Logger, cfg.Metrics
	m.Set(MetricRunning, 1)
	defer m.Set(MetricRunning, 0)
	for attempt := 0; attempt <= cfg.Retries; attempt++ {
		rep.Attempts = attempt + 1
		if attempt > 0 {
			wait := cfg.Backoff << (attempt - 1)
			log.Warn("backup failed; retrying", "run", n, "attempt", attempt, "of", cfg.Retries, "in", wait, "err", err)
			select {
			case <-stopCtx.Done():
				m.Add(MetricFailures, 1)
				return fmt.Errorf("stopped before retrying: %w", err)
			case <-time.After(wait):
			}
		}
		t0 := time.Now()
		var res Result
		actx, cancel := context.WithTimeout(jobCtx, cfg.JobTimeout)
		res, err = job(actx)
		timedOut := actx.Err() == context.DeadlineExceeded && jobCtx.Err() == nil
		cancel()
		if timedOut {
			err = fmt.Errorf("job attempt exceeded --job-timeout %s (a hung store or meta node?): %w", cfg.JobTimeout, err)
		}
		rep.Result, rep.Duration = res, time.Since(t0)
		if err == nil {
			d := rep.Duration
			m.Set(MetricLastSuccess, float64(time.Now().UnixMilli())/1000)
			m.Set(MetricDuration, d.Seconds())
			m.Set(MetricBytes, float64(res.Bytes))
			m.Set(MetricSnapshots, float64(res.Snapshots))
			m.Add(MetricPruned, float64(res.Pruned))
			m.Add(MetricSuccesses, 1)
			log.Info("scheduled backup succeeded", "run", n, "id", res.SnapshotID, "bytes", res.Bytes, "snapshots", res.Snapshots, "pruned", res.Pruned, "duration", d.Round(time.Millisecond))
			return nil
		}
		if jobCtx.Err() != nil {
			break
		}
	}
	m.Add(MetricFailures, 1)
	log.Error("scheduled backup failed", "run", n, "err", err)
	return err
}

// Route is one more handler Serve mounts, e.g. the backup report at "/".
type Route struct {
	Pattern string
	Handler http.Handler
}

// Serve exposes /metrics, /healthz and routes on addr until ctx is done.
// It fails at once when addr cannot be listened on. Healthy means a backup
// succeeded within maxAge (or the daemon is younger than maxAge).

func Serve(ctx context.Context, addr string, m *Metrics, maxAge time.Duration, routes ...Route) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on --metrics-addr %s: %w", addr, err)
	}
	started := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		m.WriteTo(w)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		// A fleet is as healthy as its worst cluster.
		last, series := m.Oldest(MetricLastSuccess)
		ref := started
		if last > 0 {
			ref = time.UnixMilli(int64(last * 1000))
		}
		if age := time.Since(ref); age > maxAge {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, label, _ := strings.Cut(series, "{")
			if label != "" {
				label = " {" + label
			}
			fmt.Fprintf(w, "no successful backup for %s (limit %s)%s\n", age.Round(time.Second), maxAge, label)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	for _, r := range routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return ln.Addr(), nil
}
