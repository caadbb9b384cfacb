package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/config"
	"github.com/rwsnap/rwsnap/schedule"
)

// clusterFlags are the schedule flags a fleet's config sets per cluster;
// the daemon's own command line gives the others (--retries, --mode,
// --stop-timeout, --dry-run, ...) to every cluster.
var clusterFlags = map[string]bool{
	"etcd-endpoints": true, "etcd-username": true, "etcd-password": true, "user": true, "etcd-auth": true,
	"etcd-cacert": true, "etcd-cert": true, "etcd-key": true, "meta-addr": true, "rw-version": true,
	"data-storage-url": true, "data-storage-directory": true,
	"backup-storage-url": true, "backup-storage-directory": true, "hummock-storage-url": true, "hummock-storage-directory": true,
	"every": true, "jitter": true, "remarks": true, "metrics-addr": true, "cluster": true, "repo": true, "config": true,
	"keep-last": true, "keep-within": true, "keep-hourly": true, "keep-daily": true, "keep-weekly": true, "keep-monthly": true,
}

// runFleet runs the schedule of every cluster in f that has one, each in
// its own goroutine with its own connections, retention and metrics
// labels: a cluster that fails, or hangs, delays no other.
func runFleet(c *cli.Context, f *config.File) error {
	ctx := c.Context
	names := f.Scheduled()
	root := schedule.NewMetrics()
	var maxEvery time.Duration
	for _, n := range names {
		maxEvery = max(maxEvery, time.Duration(f.Clusters[n].Schedule.Every))
	}
	if addr := c.String("metrics-addr"); addr != "" {
		bound, err := schedule.Serve(ctx, addr, root, 3*maxEvery)
		if err != nil {
			return err
		}
		slog.Info("serving metrics", "addr", bound.String(), "paths", "/metrics /healthz", "clusters", strings.Join(names, ","))
	}
	slog.Info("fleet scheduler started", "config", f.Path, "clusters", strings.Join(names, ","))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	fail := func(name string, err error) {
		mu.Lock()
		defer mu.Unlock()
		failed = append(failed, fmt.Sprintf("%s: %v", name, err))
	}
	for _, name := range names {
		m := root.For(name)
		cc, err := clusterContext(c, f, name)
		if err != nil {
			// A cluster whose entry cannot be used (a secret reference
			// that does not resolve) fails alone.
			slog.Error("cluster not scheduled", "cluster", name, "err", err)
			m.Add(schedule.MetricFailures, 1)
			fail(name, err)
			continue
		}
		every := time.Duration(f.Clusters[name].Schedule.Every)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				err := scheduleOne(cc, m, name, false)
				if err == nil || c.Bool("once") || ctx.Err() != nil {
					if err != nil {
						fail(name, err)
					}
					return
				}
				// The daemon could not start for this cluster (etcd or
				// storage unreachable): try again at the next interval.
				slog.Error("cluster schedule stopped; retrying", "cluster", name, "in", every, "err", err)
				m.Add(schedule.MetricFailures, 1)
				select {
				case <-ctx.Done():
					return
				case <-time.After(every):
				}
			}
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		return errors.New("clusters failed: " + strings.Join(failed, "; "))
	}
	return nil
}

// clusterContext is the schedule command's context for one cluster of the
// fleet: the daemon's flags, with the cluster's entry in place of the
// per-cluster ones. Environment variables do not reach these, so one
// RWSNAP_ETCD_ENDPOINTS cannot point every cluster at one etcd.
func clusterContext(c *cli.Context, f *config.File, name string) (*cli.Context, error) {
	set := flag.NewFlagSet("schedule "+name, flag.ContinueOnError)
	for _, fl := range c.Command.Flags {
		fl = withoutEnv(fl, clusterFlags[fl.Names()[0]])
		if err := fl.Apply(set); err != nil {
			return nil, err
		}
	}
	cc := cli.NewContext(c.App, set, c)
	cc.Command = c.Command
	for _, n := range c.LocalFlagNames() {
		if !clusterFlags[n] && set.Lookup(n) != nil {
			if err := cc.Set(n, c.String(n)); err != nil {
				return nil, err
			}
		}
	}
	cl := f.Clusters[name]
	s := cl.Schedule
	repoName := cl.Repository
	if s.Repository != "" {
		repoName = s.Repository
	}
	values := []struct{ flag, value string }{
		{"etcd-endpoints", strings.Join(cl.Etcd.Endpoints, ",")},
		{"etcd-username", cl.Etcd.Username}, {"etcd-password", cl.Etcd.Password},
		{"etcd-cacert", cl.Etcd.CACert}, {"etcd-cert", cl.Etcd.Cert}, {"etcd-key", cl.Etcd.Key},
		{"meta-addr", cl.MetaAddr}, {"remarks", s.Remarks}, {"rw-version", cl.RisingWaveVersion},
		{"every", time.Duration(s.Every).String()},
	}
	if s.Jitter > 0 {
		values = append(values, struct{ flag, value string }{"jitter", time.Duration(s.Jitter).String()})
	}
	if s.Timeout > 0 {
		values = append(values, struct{ flag, value string }{"job-timeout", time.Duration(s.Timeout).String()})
	}
	if s.WithData {
		values = append(values, struct{ flag, value string }{"with-data", "true"})
	}
	if s.Retries != nil {
		values = append(values, struct{ flag, value string }{"retries", strconv.Itoa(*s.Retries)})
	}
	if s.Keep.Within > 0 {
		values = append(values, struct{ flag, value string }{"keep-within", time.Duration(s.Keep.Within).String()})
	}
	for flag, n := range map[string]int{"keep-last": s.Keep.Last, "keep-hourly": s.Keep.Hourly, "keep-daily": s.Keep.Daily, "keep-weekly": s.Keep.Weekly, "keep-monthly": s.Keep.Monthly} {
		if n != 0 {
			values = append(values, struct{ flag, value string }{flag, strconv.Itoa(n)})
		}
	}
	if repoName != "" {
		r := f.Repositories[repoName]
		values = append(values, struct{ flag, value string }{"backup-storage-url", r.URL}, struct{ flag, value string }{"backup-storage-directory", r.Directory},
			struct{ flag, value string }{"data-storage-url", r.DataURL}, struct{ flag, value string }{"data-storage-directory", r.DataDirectory})
	}
	for _, v := range values {
		if v.value == "" || set.Lookup(v.flag) == nil {
			continue
		}
		val, err := config.Resolve(v.value)
		if err != nil {
			return nil, fmt.Errorf("config file %s, cluster %s: %w", f.Path, name, err)
		}
		if err := cc.Set(v.flag, val); err != nil {
			return nil, fmt.Errorf("cluster %s: --%s: %w", name, v.flag, err)
		}
	}
	// The same checks as a command's own flags get: a bad entry (a blank
	// address, a control character) fails that cluster alone, named.
	if err := checkFlagValues(cc); err != nil {
		return nil, fmt.Errorf("config file %s, cluster %s: %w", f.Path, name, err)
	}
	return cc, nil
}

// withoutEnv copies a flag without its environment variables (when drop),
// so Apply reads none.
func withoutEnv(fl cli.Flag, drop bool) cli.Flag {
	if !drop {
		return fl
	}
	switch f := fl.(type) {
	case *cli.StringFlag:
		c := *f
		c.EnvVars, c.HasBeenSet = nil, false
		return &c
	case *cli.BoolFlag:
		c := *f
		c.EnvVars, c.HasBeenSet = nil, false
		return &c
	case *cli.IntFlag:
		c := *f
		c.EnvVars, c.HasBeenSet = nil, false
		return &c
	case *cli.DurationFlag:
		c := *f
		c.EnvVars, c.HasBeenSet = nil, false
		return &c
	}
	return fl
}
