// Command bench measures rwsnap against the least the same work needs, on
// meta stores of growing size, on fs:// and on MinIO, and prints the ratios
// of one run:
//
//	backup-meta   vs  etcdctl snapshot save (etcd's own bbolt stream)
//	backup-meta   vs  one unpaged etcdctl get "" --prefix --rev=R
//	restore-meta  vs  bare batched puts with 1 and 4 transactions in flight
//	                  (the faster), into etcd with fsync off and on
//	verify        vs  a streamed read of the object with xxhash64
//	copy          vs  a streamed read and write of the object
//
// Each measured step runs as its own process (so its peak RSS is its own:
// VmHWM of the child) against etcd servers embedded in this process.
// Figures, not assertions: `make bench` prints them; docs/performance.md
// records them.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cespare/xxhash/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/testminio"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/restore"
	"github.com/rwsnap/rwsnap/rwsim"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "puts":
			id, _ := strconv.ParseUint(os.Args[4], 10, 64)
			inflight, _ := strconv.Atoi(os.Args[6])
			exitOn(barePuts(os.Args[2], os.Args[3], id, os.Args[5], inflight))
			return
		case "readsnap":
			exitOn(readSnapshot(os.Args[2], os.Args[3], ""))
			return
		case "copysnap":
			exitOn(readSnapshot(os.Args[2], os.Args[3], os.Args[4]))
			return
		}
	}
	keys := flag.String("keys", "10000,100000", "meta store sizes in keys, comma-separated")
	runs := flag.Int("runs", 3, "runs per measurement below 1M keys (the median is shown)")
	largeRuns := flag.Int("large-runs", 1, "runs per measurement at 1M keys and more")
	bin := flag.String("rwsnap", "bin/rwsnap", "the rwsnap binary to measure")
	etcdctl := flag.String("etcdctl", ".cache/bin/etcdctl", "the etcdctl binary of the baselines")
	fragKB := flag.Int("fragment-kb", 100, "size of each table-fragments value in KiB")
	stores := flag.String("stores", "fs,minio", "backup locations: fs, minio")
	fsyncKeys := flag.Int("fsync-keys", 1000000, "largest store restored into etcd with fsync on (it is slow)")
	profile := flag.String("profile", "", "write CPU profiles (rwsnap's and the etcd server's) of each backup and restore here, and restore's heap at its peak")
	readPaths := flag.String("read-paths", "", "measure backup once per etcd read path (RWSNAP_ETCD_READ), e.g. snapshot,range; default: rwsnap's own choice")
	steps := flag.String("steps", "backup,restore,verify,copy", "steps to measure (a backup always runs: the others need its snapshot)")
	fsyncModes := flag.String("fsync", "off,on", "target etcd fsync modes of the restore step")
	maxReq := flag.Uint("max-request-bytes", 0, "etcd's --max-request-bytes for the source and target etcds (0: etcd's 1.5 MiB); a store of 20,000 tables (10M keys in this mix) has a hummock delta of about 2 MiB")
	flag.Parse()
	var sizes []int
	for _, s := range strings.Split(*keys, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		exitOn(err)
		sizes = append(sizes, n)
	}
	self, err := os.Executable()
	exitOn(err)
	b := &bench{self: self, fragKB: *fragKB, fsyncKeys: *fsyncKeys, profile: *profile, maxRequestBytes: *maxReq}
	b.rwsnap, err = filepath.Abs(*bin)
	exitOn(err)
	b.etcdctl, err = filepath.Abs(*etcdctl)
	exitOn(err)
	if _, err := os.Stat(b.etcdctl); err != nil {
		exitOn(fmt.Errorf("etcdctl: %w (make bench builds it into .cache/bin)", err))
	}
	b.stores = strings.Split(*stores, ",")
	b.steps = strings.Split(*steps, ",")
	b.readPaths = strings.Split(*readPaths, ",")
	for _, m := range strings.Split(*fsyncModes, ",") {
		switch m {
		case "off":
			b.fsync = append(b.fsync, false)
		case "on":
			b.fsync = append(b.fsync, true)
		default:
			exitOn(fmt.Errorf("-fsync %q: want off, on or off,on", *fsyncModes))
		}
	}
	if slices.Contains(b.stores, "minio") {
		dir, err := os.MkdirTemp("", "rwsnap-bench-minio-")
		exitOn(err)
		defer os.RemoveAll(dir)
		srv, stop, err := testminio.StartProcess(dir)
		exitOn(err)
		defer stop()
		b.minio = srv
		exitOn(srv.CreateBucketErr(context.Background(), "bench"))
	}
	limit := "etcd's default --max-request-bytes"
	if *maxReq > 0 {
		limit = fmt.Sprintf("etcd --max-request-bytes %d", *maxReq)
	}
	fmt.Printf("rwsnap bench: median of %d runs (%d at 1M+ keys); etcd embedded in the bench process (%s, --max-txn-ops 128); hummock on fs://; backups on %s\n", *runs, *largeRuns, limit, *stores)
	var tw io.Writer = os.Stdout
	fmt.Fprintf(tw, rowFormat, "store", "keys", "snapshot", "step", "rwsnap", "baseline", "baseline time", "ratio", "rwsnap RSS", "baseline RSS")
	for _, n := range sizes {
		b.runs = *runs
		if n >= 1000000 {
			b.runs = *largeRuns
		}
		exitOn(b.size(tw, n))
	}
	b.fits.print(os.Stdout)
}

type bench struct {
	self, rwsnap, etcdctl string
	fragKB, runs          int
	fsyncKeys             int
	stores, steps         []string
	readPaths             []string
	fsync                 []bool
	minio                 *testminio.Server
	profile               string
	maxRequestBytes       uint
	fits                  fits
}

func (b *bench) step(name string) bool { return slices.Contains(b.steps, name) }

type sample struct {
	d      time.Duration
	rss    int64 // bytes
	out    []byte
	failed string // a baseline that could not run, and why
}

// measure runs cmd runs times (setup before each) and returns the median
// time, the highest peak RSS and the last output.
func measure(runs int, setup func() error, cmd func() *exec.Cmd) (sample, error) {
	var ds []time.Duration
	var s sample
	for i := 0; i < runs; i++ {
		if setup != nil {
			if err := setup(); err != nil {
				return sample{}, err
			}
		}
		c := cmd()
		if c.Stderr == nil && !strings.HasSuffix(c.Path, "etcdctl") {
			c.Stderr = os.Stderr // etcdctl logs every step there
		}
		// Output goes to a file, not a pipe, so no copying goroutine needs
		// exec's Wait: wait4 here returns the child's own rusage.
		f, err := os.CreateTemp("", "bench-out-")
		if err != nil {
			return sample{}, err
		}
		c.Stdout = f
		start := time.Now()
		if err := c.Start(); err != nil {
			f.Close()
			return sample{}, err
		}
		// ru_maxrss is useless here: Linux carries the parent's high-water
		// mark (this process hosts etcd) across fork+exec. VmHWM of the
		// child's own address space is polled instead; it only grows.
		done := make(chan struct{})
		hwm := make(chan int64, 1)
		go func() { hwm <- pollHWM(c.Process.Pid, done) }()
		var ws syscall.WaitStatus
		_, err = syscall.Wait4(c.Process.Pid, &ws, 0, nil)
		d := time.Since(start)
		close(done)
		peak := <-hwm
		b, _ := os.ReadFile(f.Name())
		f.Close()
		os.Remove(f.Name())
		if err != nil || ws.ExitStatus() != 0 {
			return sample{}, fmt.Errorf("%s: exit %d %v", strings.Join(c.Args, " "), ws.ExitStatus(), err)
		}
		ds = append(ds, d)
		s.rss = max(s.rss, peak)
		s.out = b
	}
	slices.Sort(ds)
	s.d = ds[len(ds)/2]
	return s, nil
}

func (b *bench) size(tw io.Writer, n int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "rwsnap-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src, err := embedetcd.Start(ctx, embedetcd.Config{Dir: filepath.Join(dir, "src"), UnsafeNoFsync: true, QuotaBackendBytes: 8 << 30, MaxRequestBytes: b.maxRequestBytes})
	if err != nil {
		return err
	}
	defer src.Close()
	cli, err := src.Client(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	storage := "fs://" + filepath.Join(dir, "storage")
	hs, err := objstore.Open(ctx, storage)
	if err != nil {
		return err
	}
	// One table-fragments value (fragKB) per 500 keys: the rest are small
	// catalog rows, as in a cluster with many internal tables.
	tables := max(6, n/500)
	if _, err := rwsim.Seed(ctx, cli, hs, rwsim.Options{StateStore: "hummock+" + storage, Tables: tables,
		FragmentSize: b.fragKB << 10, ExtraKeys: n, Seed: 42}); err != nil {
		return fmt.Errorf("seed %d keys: %w", n, err)
	}
	ep := strings.Join(src.Endpoints(), ",")
	resp, err := cli.Get(ctx, "cf/cluster_id")
	if err != nil {
		return err
	}
	rev := strconv.FormatInt(resp.Header.Revision, 10)
	save, err := measure(b.runs, nil, func() *exec.Cmd {
		return exec.Command(b.etcdctl, "--endpoints", ep, "--command-timeout", "1h", "snapshot", "save", filepath.Join(dir, "etcd.db"))
	})
	if err != nil {
		return err
	}
	// One unpaged get of a store past ~2 GiB cannot be answered (gRPC and
	// protobuf cap a message at 2 GiB): the row then says it failed and why.
	// Past 2 GiB in use it is not even tried: etcd would build the whole
	// answer in memory first (several GiB more) only to fail sending it.
	st, err := cli.Status(ctx, src.Endpoints()[0])
	if err != nil {
		return err
	}
	var getErr strings.Builder
	get := sample{failed: fmt.Sprintf("not run: %.1f GiB > gRPC's 2 GiB", float64(st.DbSizeInUse)/(1<<30))}
	if st.DbSizeInUse < 2<<30 {
		get, err = measure(b.runs, nil, func() *exec.Cmd {
			getErr.Reset()
			c := exec.Command(b.etcdctl, "--endpoints", ep, "--command-timeout", "1h", "get", "", "--prefix", "--rev", rev)
			c.Stderr = &getErr
			return c
		})
		if err != nil {
			msg := strings.TrimSpace(getErr.String())
			if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
				msg = msg[i+1:]
			}
			fmt.Fprintf(os.Stderr, "bench: %d keys: etcdctl get --prefix --rev failed (%v): %s\n", n, err, msg)
			get = sample{failed: "failed: " + truncate(msg, 60)}
		}
	}
	// Every store's backups first; then the source etcd is closed, so the
	// restores' target etcds and bare puts (which hold the whole store) do
	// not share the machine's memory with it (at 10M keys each etcd holds
	// several GiB).
	var runs []*storeRun
	for _, store := range b.stores {
		r, err := b.backupStore(tw, store, ep, storage, n, save, get)
		if err != nil {
			return fmt.Errorf("%s: %w", store, err)
		}
		runs = append(runs, r)
	}
	cli.Close()
	src.Close()
	for _, r := range runs {
		if err := b.restStore(tw, r, dir, storage, n); err != nil {
			return fmt.Errorf("%s: %w", r.store, err)
		}
	}
	return nil
}

// storeRun is one backup location's snapshot, measured by the steps after
// the backup.
// rowFormat is a row of the table, in fixed columns: rows are printed as
// they are measured, so no tabwriter can align them after the fact.
const rowFormat = "%6s %9s %10s %21s %9s %27s %14s %6s %10s %12s\n"

type storeRun struct {
	store, burl, bdir string
	loc               []string
	last              struct {
		ID    uint64 `json:"id"`
		Keys  int    `json:"keys"`
		Bytes int    `json:"bytes"`
	}
	row func(step, baseline string, a, base sample)
}

// backupStore measures backup-meta to one backup location (each etcd read
// path of -read-paths) and prints its rows.
func (b *bench) backupStore(tw io.Writer, store, ep, hummockURL string, n int, save, get sample) (*storeRun, error) {
	r := &storeRun{store: store, burl: hummockURL, bdir: "hummock_001/backup"}
	if store == "minio" {
		r.burl, r.bdir = b.minio.URL("bench"), fmt.Sprintf("backup-%d", n)
	}
	r.loc = []string{"--backup-storage-url", r.burl, "--backup-storage-directory", r.bdir}
	last := &r.last
	// Each row is printed as soon as it is measured: a long run stopped
	// half way still shows what it measured.
	r.row = func(step, baseline string, a, base sample) {
		b.fits.add(store, step, last.Keys, last.Bytes, a)
		keys, size, took := strconv.Itoa(last.Keys), mib(int64(last.Bytes)), a.d.Round(time.Millisecond).String()
		if base.failed != "" {
			fmt.Fprintf(tw, rowFormat, store, keys, size, step, took, baseline, base.failed, "n/a", mib(a.rss), "n/a")
		} else {
			fmt.Fprintf(tw, rowFormat, store, keys, size, step, took, baseline, base.d.Round(time.Millisecond).String(),
				fmt.Sprintf("%.2f", float64(a.d)/float64(base.d)), mib(a.rss), mib(base.rss))
		}
	}
	row, loc := r.row, r.loc
	// -read-paths measures backup once per etcd read path.
	var backup sample
	var stopProfile func()
	for _, path := range b.readPaths {
		suffix, step := "", "backup"
		if path != "" {
			suffix, step = "-"+path, "backup ("+path+" read)"
		}
		runNo := 0
		var err error
		backup, err = measure(b.runs, func() error {
			runNo++
			if b.profile != "" && runNo == 1 {
				stopProfile = b.profileServer(fmt.Sprintf("etcd-backup%s-%s-%d.pprof", suffix, store, n))
			}
			return nil
		}, func() *exec.Cmd {
			c := exec.Command(b.rwsnap, append([]string{"-q", "meta", "backup-meta", "--etcd-endpoints", ep, "-o", "json", "--force"}, loc...)...)
			c.Env = os.Environ()
			if path != "" {
				c.Env = append(c.Env, metastore.ReadModeEnv+"="+path)
			}
			if b.profile != "" && runNo == 1 {
				name := filepath.Join(b.profile, fmt.Sprintf("rwsnap-backup%s-%s-%d", suffix, store, n))
				c.Env = append(c.Env, "RWSNAP_CPUPROFILE="+name+".pprof", "RWSNAP_MEMPROFILE="+name+".heap")
			}
			return c
		})
		if stopProfile != nil {
			stopProfile()
			stopProfile = nil
		}
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(backup.out, last); err != nil {
			return nil, fmt.Errorf("backup output %q: %w", backup.out, err)
		}
		if b.step("backup") {
			row(step, "etcdctl snapshot save", backup, save)
			row(step, "etcdctl get --prefix --rev", backup, get)
		}
	}

	return r, nil
}

// restStore measures the steps after the backup (restore, verify, copy)
// on one backup location's snapshot.
func (b *bench) restStore(tw io.Writer, r *storeRun, dir, hummockURL string, n int) error {
	ctx := context.Background()
	store, burl, bdir, loc, row := r.store, r.burl, r.bdir, r.loc, r.row
	var stopProfile func()
	id := strconv.FormatUint(r.last.ID, 10)
	for _, fsync := range b.fsync {
		if fsync && n > b.fsyncKeys || !b.step("restore") {
			continue
		}
		mode := "fsync off"
		if fsync {
			mode = "fsync on"
		}
		var target *embedetcd.Cluster
		fresh := func() error {
			if target != nil {
				target.Close()
			}
			t, err := embedetcd.Start(ctx, embedetcd.Config{Dir: filepath.Join(dir, fmt.Sprintf("t%d", time.Now().UnixNano())), UnsafeNoFsync: !fsync, QuotaBackendBytes: 8 << 30, MaxRequestBytes: b.maxRequestBytes})
			target = t
			return err
		}
		runNo := 0
		rest, err := measure(b.runs, func() error {
			runNo++
			if b.profile != "" && runNo == 1 {
				stopProfile = b.profileServer(fmt.Sprintf("etcd-restore-%s-%s-%d.pprof", strings.ReplaceAll(mode, " ", ""), store, n))
			}
			return fresh()
		}, func() *exec.Cmd {
			c := exec.Command(b.rwsnap, append([]string{"-q", "meta", "restore-meta", "--meta-snapshot-id", id, "--etcd-endpoints", strings.Join(target.Endpoints(), ","),
				"--hummock-storage-url", hummockURL}, loc...)...)
			if b.profile != "" && runNo == 1 {
				name := fmt.Sprintf("rwsnap-restore-%s-%s-%d", strings.ReplaceAll(mode, " ", ""), store, n)
				c.Env = append(os.Environ(), "RWSNAP_CPUPROFILE="+filepath.Join(b.profile, name+".pprof"), "RWSNAP_MEMPROFILE="+filepath.Join(b.profile, name+".heap"))
			}
			return c
		})
		if stopProfile != nil {
			stopProfile()
			stopProfile = nil
		}
		if err != nil {
			target.Close()
			return err
		}
		var best sample
		bestName := ""
		for _, inflight := range []int{1, 4} {
			putsRun := 0
			puts, err := measure(b.runs, func() error {
				putsRun++
				if b.profile != "" && putsRun == 1 {
					stopProfile = b.profileServer(fmt.Sprintf("etcd-puts%d-%s-%s-%d.pprof", inflight, strings.ReplaceAll(mode, " ", ""), store, n))
				}
				return fresh()
			}, func() *exec.Cmd {
				return exec.Command(b.self, "puts", burl, bdir, id, strings.Join(target.Endpoints(), ","), strconv.Itoa(inflight))
			})
			if stopProfile != nil {
				stopProfile()
				stopProfile = nil
			}
			if err != nil {
				target.Close()
				return err
			}
			if bestName == "" || puts.d < best.d {
				best, bestName = puts, fmt.Sprintf("bare puts, %d in flight", inflight)
			}
		}
		target.Close()
		row("restore ("+mode+")", bestName, rest, best)
	}
	if b.step("verify") {
		if err := b.verify(row, id, loc, burl, bdir); err != nil {
			return err
		}
	}
	if b.step("copy") {
		return b.copyRows(row, id, loc, burl, bdir, filepath.Join(dir, "copy-"+store))
	}
	return nil
}

// verify is the verify step's row.
func (b *bench) verify(row func(step, baseline string, a, base sample), id string, loc []string, burl, bdir string) error {
	ver, err := measure(b.runs, nil, func() *exec.Cmd {
		return exec.Command(b.rwsnap, append([]string{"-q", "meta", "verify-meta-snapshot", id}, loc...)...)
	})
	if err != nil {
		return err
	}
	read, err := measure(b.runs, nil, func() *exec.Cmd { return exec.Command(b.self, "readsnap", burl, bdir+"/"+id+".snapshot") })
	if err != nil {
		return err
	}
	row("verify", "streamed read + xxhash", ver, read)
	return nil
}

// copyRows is the copy step's rows.
func (b *bench) copyRows(row func(step, baseline string, a, base sample), id string, loc []string, burl, bdir, copyDir string) error {
	cp, err := measure(b.runs, func() error { return os.RemoveAll(copyDir) }, func() *exec.Cmd {
		return exec.Command(b.rwsnap, append(append([]string{"-q", "meta", "copy-meta-snapshots", "--to-url", "fs://" + copyDir, "--to-directory", "backup"}, loc...), id)...)
	})
	if err != nil {
		return err
	}
	bare, err := measure(b.runs, func() error { return os.RemoveAll(copyDir) }, func() *exec.Cmd {
		return exec.Command(b.self, "copysnap", burl, bdir+"/"+id+".snapshot", filepath.Join(copyDir, "x"))
	})
	if err != nil {
		return err
	}
	row("copy to fs", "streamed read + write", cp, bare)
	return nil
}

// profileServer CPU-profiles this process (the embedded etcd server) until
// the returned function is called.
func (b *bench) profileServer(name string) func() {
	if err := os.MkdirAll(b.profile, 0o755); err != nil {
		exitOn(err)
	}
	f, err := os.Create(filepath.Join(b.profile, name))
	exitOn(err)
	exitOn(pprof.StartCPUProfile(f))
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// pollHWM reads the VmHWM (peak RSS) of a running process every 5 ms until
// done, returning the last value seen.
func pollHWM(pid int, done <-chan struct{}) int64 {
	var last int64
	path := fmt.Sprintf("/proc/%d/status", pid)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
					last = max(last, kb*1024)
				}
			}
		}
		select {
		case <-done:
			return last
		case <-t.C:
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// barePuts loads the snapshot and writes its KVs in 128-op transactions
// (at most 1 MiB each), inflight at a time: the least any restore must do
// (read the snapshot, write its keys).
func barePuts(url, dir string, id uint64, endpoints string, inflight int) error {
	ctx := context.Background()
	st, err := objstore.Open(ctx, url)
	if err != nil {
		return err
	}
	snap, _, err := metasnap.NewStorage(st, dir).Load(ctx, id)
	if err != nil {
		return err
	}
	plan, err := restore.BuildPlan(snap, nil, restore.PlanOptions{OverwriteHummockEndpoint: true, HummockURL: url, HummockDir: "x", OverwriteBackupURL: url, OverwriteBackupDir: "y"})
	if err != nil {
		return err
	}
	kvs, err := plan.All()
	if err != nil {
		return err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(endpoints, ",")})
	if err != nil {
		return err
	}
	defer cli.Close()
	var batches [][]clientv3.Op
	for len(kvs) > 0 {
		n := min(len(kvs), 128)
		ops := make([]clientv3.Op, 0, n)
		size := 0
		for _, kv := range kvs[:n] {
			if len(ops) > 0 && size+len(kv.Key)+len(kv.Value) > 1<<20 {
				break
			}
			size += len(kv.Key) + len(kv.Value)
			ops = append(ops, clientv3.OpPut(kv.Key, string(kv.Value)))
		}
		batches = append(batches, ops)
		kvs = kvs[len(ops):]
	}
	start := time.Now()
	work := make(chan []clientv3.Op)
	errs := make(chan error, inflight)
	var wg sync.WaitGroup
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ops := range work {
				if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for _, ops := range batches {
		work <- ops
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Printf("%d transactions in %s\n", len(batches), time.Since(start))
	return nil
}

// readSnapshot streams an object through xxhash64 (and into a local file
// when to is set): what verify and copy cannot do with less.
func readSnapshot(url, key, to string) error {
	ctx := context.Background()
	st, err := objstore.Open(ctx, url)
	if err != nil {
		return err
	}
	rc, _, err := st.Open(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := xxhash.New()
	w := io.Writer(h)
	if to != "" {
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		f, err := os.Create(to)
		if err != nil {
			return err
		}
		defer f.Close()
		w = io.MultiWriter(h, f)
		defer f.Sync()
	}
	n, err := io.Copy(w, rc)
	fmt.Println(n, h.Sum64())
	return err
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// fits collects each step's time and peak RSS per store size and prints a
// least-squares line through them: how a step's cost grows with the keys
// (and, in this mix, the bytes) of the store.
type fits struct {
	order  []string
	points map[string][]fitPoint
}

type fitPoint struct {
	keys, bytes int
	d           time.Duration
	rss         int64
}

func (f *fits) add(store, step string, keys, bytes int, s sample) {
	if f.points == nil {
		f.points = map[string][]fitPoint{}
	}
	k := step + " on " + store
	ps := f.points[k]
	if len(ps) > 0 && ps[len(ps)-1].keys == keys {
		return // a step with two baselines is one point
	}
	if len(ps) == 0 {
		f.order = append(f.order, k)
	}
	f.points[k] = append(ps, fitPoint{keys, bytes, s.d, s.rss})
}

// line is the least-squares fit y = a + b*x.
func line(xs, ys []float64) (a, b float64) {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx, sy, sxx, sxy = sx+xs[i], sy+ys[i], sxx+xs[i]*xs[i], sxy+xs[i]*ys[i]
	}
	if d := n*sxx - sx*sx; d != 0 {
		b = (n*sxy - sx*sy) / d
	}
	return (sy - b*sx) / n, b
}

func (f *fits) print(w io.Writer) {
	if len(f.order) == 0 {
		return
	}
	fmt.Fprintln(w, "\nGrowth (least squares over the sizes above; keys and bytes grow together in this mix):")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "step\tsizes\ttime ≈ fixed + per key\tper byte\tpeak RSS ≈ fixed + per key\tRSS smallest → largest\t")
	for _, k := range f.order {
		ps := f.points[k]
		if len(ps) < 2 {
			continue
		}
		var keys, bytes, secs, rss []float64
		for _, p := range ps {
			keys = append(keys, float64(p.keys))
			bytes = append(bytes, float64(p.bytes))
			secs = append(secs, p.d.Seconds())
			rss = append(rss, float64(p.rss))
		}
		ta, tb := line(keys, secs)
		_, tbb := line(bytes, secs)
		ra, rb := line(keys, rss)
		fmt.Fprintf(tw, "%s\t%d\t%s %+.2f µs/key\t%+.1f ns/B\t%s %+.1f B/key\t%s → %s\t\n", k, len(ps),
			time.Duration(ta*float64(time.Second)).Round(time.Millisecond), tb*1e6, tbb*1e9,
			mib(int64(ra)), rb, mib(ps[0].rss), mib(ps[len(ps)-1].rss))
	}
	tw.Flush()
}
