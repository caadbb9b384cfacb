// Command bench measures rwsnap against the bare minimum the same work
// needs, on meta stores of growing size, and prints the ratios:
//
//	backup-meta  vs  a bare one-revision paginated range scan of every key
//	restore-meta vs  bare batched puts of the same KVs into a fresh etcd
//	verify       vs  reading the snapshot object's bytes
//
// Each measured step runs as its own process (so peak RSS is that step's
// alone) against embedded etcd servers in this process. Figures, not
// assertions: `make bench` prints them; docs/performance.md records them.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/restore"
	"github.com/rwsnap/rwsnap/rwsim"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "scan":
			exitOn(bareScan(os.Args[2]))
			return
		case "puts":
			id, _ := strconv.ParseUint(os.Args[4], 10, 64)
			exitOn(barePuts(os.Args[2], os.Args[3], id, os.Args[5]))
			return
		case "readsnap":
			exitOn(readSnapshot(os.Args[2], os.Args[3]))
			return
		}
	}
	keys := flag.String("keys", "10000,100000", "meta store sizes in keys, comma-separated")
	runs := flag.Int("runs", 3, "runs per measurement (the median is shown)")
	bin := flag.String("rwsnap", "bin/rwsnap", "the rwsnap binary to measure")
	fragKB := flag.Int("fragment-kb", 100, "size of each table-fragments value in KiB")
	flag.Parse()
	var sizes []int
	for _, s := range strings.Split(*keys, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		exitOn(err)
		sizes = append(sizes, n)
	}
	self, err := os.Executable()
	exitOn(err)
	rw, err := filepath.Abs(*bin)
	exitOn(err)
	fmt.Printf("rwsnap bench: %d runs each, median shown; etcd embedded (fsync off), storage on local fs\n", *runs)
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "keys\tsnapshot\tstep\trwsnap\tbaseline\tratio\trwsnap RSS\tbaseline RSS\tRSS/snapshot\t")
	for _, n := range sizes {
		exitOn(benchSize(tw, self, rw, n, *runs, *fragKB))
		tw.Flush()
	}
	tw.Flush()
}

type sample struct {
	d   time.Duration
	rss int64 // bytes
}

func measure(runs int, setup func() error, cmd func() *exec.Cmd) (sample, []byte, error) {
	var ds []time.Duration
	var rss int64
	var out []byte
	for i := 0; i < runs; i++ {
		if setup != nil {
			if err := setup(); err != nil {
				return sample{}, nil, err
			}
		}
		c := cmd()
		c.Stderr = os.Stderr
		// Output goes to a file, not a pipe, so no copying goroutine needs
		// exec's Wait: wait4 here returns the child's own rusage.
		f, err := os.CreateTemp("", "bench-out-")
		if err != nil {
			return sample{}, nil, err
		}
		c.Stdout = f
		start := time.Now()
		if err := c.Start(); err != nil {
			f.Close()
			return sample{}, nil, err
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
			return sample{}, nil, fmt.Errorf("%s: exit %d %v", strings.Join(c.Args, " "), ws.ExitStatus(), err)
		}
		ds = append(ds, d)
		rss = max(rss, peak)
		out = b
	}
	slices.Sort(ds)
	return sample{d: ds[len(ds)/2], rss: rss}, out, nil
}

func benchSize(tw *tabwriter.Writer, self, rw string, n, runs, fragKB int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "rwsnap-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src, err := embedetcd.Start(ctx, embedetcd.Config{Dir: filepath.Join(dir, "src"), UnsafeNoFsync: true, QuotaBackendBytes: 8 << 30})
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
		FragmentSize: fragKB << 10, ExtraKeys: n, Seed: 42}); err != nil {
		return fmt.Errorf("seed %d keys: %w", n, err)
	}
	ep := strings.Join(src.Endpoints(), ",")
	scan, _, err := measure(runs, nil, func() *exec.Cmd { return exec.Command(self, "scan", ep) })
	if err != nil {
		return err
	}
	var last struct {
		ID    uint64 `json:"id"`
		Keys  int    `json:"keys"`
		Bytes int    `json:"bytes"`
	}
	backup, out, err := measure(runs, nil, func() *exec.Cmd {
		return exec.Command(rw, "-q", "meta", "backup-meta", "--etcd-endpoints", ep, "-o", "json", "--force")
	})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, &last); err != nil {
		return err
	}
	row := func(step string, a, b sample) {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%.2f\t\n", last.Keys, mib(int64(last.Bytes)), step,
			a.d.Round(time.Millisecond), b.d.Round(time.Millisecond), float64(a.d)/float64(b.d), mib(a.rss), mib(b.rss), float64(a.rss)/float64(last.Bytes))
	}
	row("backup-meta vs range scan", backup, scan)

	// Restore into a fresh etcd each run; baseline puts into another one.
	var target *embedetcd.Cluster
	fresh := func() error {
		if target != nil {
			target.Close()
		}
		t, err := embedetcd.Start(ctx, embedetcd.Config{Dir: filepath.Join(dir, fmt.Sprintf("t%d", time.Now().UnixNano())), UnsafeNoFsync: true, QuotaBackendBytes: 8 << 30})
		target = t
		return err
	}
	defer func() {
		if target != nil {
			target.Close()
		}
	}()
	id := strconv.FormatUint(last.ID, 10)
	bdir := "hummock_001/backup"
	rest, _, err := measure(runs, fresh, func() *exec.Cmd {
		return exec.Command(rw, "-q", "meta", "restore-meta", "--meta-snapshot-id", id, "--etcd-endpoints", strings.Join(target.Endpoints(), ","),
			"--backup-storage-url", storage, "--backup-storage-directory", bdir, "--hummock-storage-url", storage)
	})
	if err != nil {
		return err
	}
	puts, _, err := measure(runs, fresh, func() *exec.Cmd {
		return exec.Command(self, "puts", storage, bdir, id, strings.Join(target.Endpoints(), ","))
	})
	if err != nil {
		return err
	}
	row("restore-meta vs batched puts", rest, puts)
	ver, _, err := measure(runs, nil, func() *exec.Cmd {
		return exec.Command(rw, "-q", "meta", "verify-meta-snapshot", id, "--backup-storage-url", storage, "--backup-storage-directory", bdir)
	})
	if err != nil {
		return err
	}
	read, _, err := measure(runs, nil, func() *exec.Cmd { return exec.Command(self, "readsnap", storage, bdir+"/"+id+".snapshot") })
	if err != nil {
		return err
	}
	row("verify vs reading the object", ver, read)
	return nil
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

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// bareScan reads every key at one revision in pages of the largest size
// rwsnap uses: the least any consistent backup must do.
func bareScan(endpoints string) error {
	ctx := context.Background()
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(endpoints, ","), MaxCallRecvMsgSize: 512 << 20})
	if err != nil {
		return err
	}
	defer cli.Close()
	var rev int64
	key, n, size := "\x00", 0, 0
	for {
		opts := []clientv3.OpOption{clientv3.WithRange("\x00"), clientv3.WithLimit(metastore.MaxPageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := cli.Get(ctx, key, opts...)
		if err != nil {
			return err
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			n++
			size += len(kv.Value)
		}
		if !resp.More {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	fmt.Println(n, size)
	return nil
}

// barePuts loads the snapshot and writes its KVs in 128-op transactions:
// the least any restore must do.
func barePuts(url, dir string, id uint64, endpoints string) error {
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
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(endpoints, ",")})
	if err != nil {
		return err
	}
	defer cli.Close()
	kvs, err := plan.All()
	if err != nil {
		return err
	}
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
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return err
		}
		kvs = kvs[len(ops):]
	}
	return nil
}

func readSnapshot(url, key string) error {
	st, err := objstore.Open(context.Background(), url)
	if err != nil {
		return err
	}
	b, _, err := st.Get(context.Background(), key)
	fmt.Println(len(b))
	return err
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
