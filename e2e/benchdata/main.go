// Command benchdata is make bench's data section: a full and an
// incremental copy of a hummock location's SST objects by
// `rwsnap meta backup-data`, against `mc mirror` of the same objects, on
// one MinIO (server-side copy) and from MinIO to a local directory
// (streamed). Figures, not assertions; see docs/performance.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/internal/progress"
	"github.com/rwsnap/rwsnap/internal/testinfra/s3count"
	"github.com/rwsnap/rwsnap/internal/testinfra/testminio"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

func main() {
	objects := flag.Int("objects", 10000, "SST objects in the hummock location")
	totalMiB := flag.Int("mib", 4096, "their total size in MiB")
	newPct := flag.Int("new-percent", 10, "share of objects added before the incremental copy")
	bin := flag.String("rwsnap", "bin/rwsnap", "the rwsnap binary")
	mc := flag.String("mc", ".cache/bin/mc", "the mc binary (MinIO's client)")
	par := flag.Int("parallelism", 0, "rwsnap --data-parallelism (0: rwsnap's default)")
	repeat := flag.Int("repeat", 1, "run everything this many times, interleaved, and print the medians (a shared machine's noise)")
	count := flag.Bool("count-requests", false, "send every request (rwsnap's and mc's) through a proxy that counts them by S3 operation, and print the counts per copied object (the proxy costs time: use it for counts, not timings)")
	flag.Parse()
	exitOn(run(*objects, *totalMiB, *newPct, *bin, *mc, *par, *count, max(*repeat, 1)))
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchdata:", err)
		os.Exit(1)
	}
}

func run(objects, totalMiB, newPct int, bin, mc string, par int, count bool, repeat int) error {
	ctx := context.Background()
	var err error
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	if mc, err = filepath.Abs(mc); err != nil {
		return err
	}
	if _, err := os.Stat(mc); err != nil {
		return fmt.Errorf("mc: %w (make bench builds it into .cache/bin)", err)
	}
	dir, err := os.MkdirTemp("", "rwsnap-benchdata-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, stop, err := testminio.StartProcess(filepath.Join(dir, "minio"))
	if err != nil {
		return err
	}
	defer stop()
	for _, b := range []string{"hummock", "datacopy", "mirror"} {
		if err := srv.CreateBucketErr(ctx, b); err != nil {
			return err
		}
	}
	endpoint := srv.Endpoint
	var proxy *s3count.Proxy
	if count {
		if proxy, err = s3count.Start(srv.Endpoint); err != nil {
			return err
		}
		defer proxy.Close()
		endpoint = proxy.Endpoint
	}
	url := func(bucket string) string {
		return "minio://" + srv.AccessKey + ":" + srv.SecretKey + "@" + endpoint + "/" + bucket
	}
	hsURL, drURL := url("hummock"), url("datacopy")
	hs, err := objstore.Open(ctx, hsURL)
	if err != nil {
		return err
	}
	size := int64(totalMiB) << 20 / int64(objects)
	nOld := objects - objects*newPct/100
	parNote := "rwsnap's default --data-parallelism"
	if par > 0 {
		parNote = fmt.Sprintf("--data-parallelism %d", par)
	}
	fmt.Printf("rwsnap data bench: %d SST objects of %s (%s), then %d new; MinIO %s; %s\n",
		objects, progress.Bytes(size), progress.Bytes(size*int64(objects)), objects-nOld, srv.Endpoint, parNote)
	env := append(os.Environ(), "MC_HOST_b=http://"+srv.AccessKey+":"+srv.SecretKey+"@"+endpoint, "MC_CONFIG_DIR="+filepath.Join(dir, "mc"))
	counted := func(d time.Duration, out string, err error) (time.Duration, string, error) {
		if proxy != nil && err == nil {
			c := proxy.Reset()
			fmt.Printf("  requests: %s\n", s3count.Format(c, 0))
		}
		return d, out, err
	}
	type row struct {
		what           string
		rwsnap, mirror time.Duration
		note           string
	}
	// One repetition: its own hummock directory, copies and mirrors,
	// removed afterwards (a 4 GiB run holds about 18 GiB at its peak).
	once := func(rep int) ([]row, error) {
		hdir := fmt.Sprintf("hummock_%03d", rep+1)
		ids := make([]uint64, objects)
		for i := range ids {
			ids[i] = uint64(1000 + i)
		}
		if err := upload(ctx, hs, hdir, ids[:nOld], size); err != nil {
			return nil, err
		}
		bkDir := fmt.Sprintf("bk%d", rep)
		fsRoot := filepath.Join(dir, fmt.Sprint("rep", rep))
		bk := metasnap.NewStorage(mustOpen(ctx, drURL), bkDir)
		fsBk := metasnap.NewStorage(mustOpen(ctx, "fs://"+filepath.Join(fsRoot, "fsbk")), "bk")
		for _, st := range []*metasnap.Storage{bk, fsBk} {
			if err := addSnapshot(ctx, st, 1, ids[:nOld]); err != nil {
				return nil, err
			}
		}
		rw := func(st, stDir string, data ...string) (time.Duration, string, error) {
			args := []string{"meta", "backup-data", "--all", "-q", "-o", "json",
				"--backup-storage-url", st, "--backup-storage-directory", stDir,
				"--hummock-storage-url", hsURL, "--hummock-storage-directory", hdir}
			if par > 0 {
				args = append(args, "--data-parallelism", fmt.Sprint(par))
			}
			if proxy != nil {
				proxy.Reset()
				fmt.Printf("rwsnap backup-data to %s:\n", objstore.Redact(st))
			}
			return counted(timed(exec.Command(bin, append(args, data...)...), env))
		}
		mirror := func(dst string) (time.Duration, string, error) {
			if proxy != nil {
				proxy.Reset()
				fmt.Printf("mc mirror to %s:\n", dst)
			}
			return counted(timed(exec.Command(mc, "mirror", "--quiet", "--overwrite", "b/hummock/"+hdir, dst), env))
		}
		var rows []row
		fsData := "fs://" + filepath.Join(fsRoot, "fsdata")
		phase := func(label string) error {
			d1, o1, err := rw(drURL, bkDir)
			if err != nil {
				return err
			}
			m1, _, err := mirror("b/mirror/" + hdir)
			if err != nil {
				return err
			}
			rows = append(rows, row{label + ", one MinIO (server-side copy)", d1, m1, summary(o1)})
			d2, o2, err := rw("fs://"+filepath.Join(fsRoot, "fsbk"), "bk", "--data-storage-url", fsData)
			if err != nil {
				return err
			}
			m2, _, err := mirror(filepath.Join(fsRoot, "mirror-fs"))
			if err != nil {
				return err
			}
			rows = append(rows, row{label + ", MinIO -> fs (streamed)", d2, m2, summary(o2)})
			return nil
		}
		if err := phase("full copy"); err != nil {
			return nil, err
		}
		if err := upload(ctx, hs, hdir, ids[nOld:], size); err != nil {
			return nil, err
		}
		for _, st := range []*metasnap.Storage{bk, fsBk} {
			if err := addSnapshot(ctx, st, 2, ids); err != nil {
				return nil, err
			}
		}
		if err := phase(fmt.Sprintf("incremental (+%d objects)", objects-nOld)); err != nil {
			return nil, err
		}
		if repeat > 1 {
			for _, b := range []string{"hummock", "datacopy", "mirror"} {
				if err := emptyBucket(ctx, mustOpen(ctx, url(b))); err != nil {
					return nil, err
				}
			}
			if err := os.RemoveAll(fsRoot); err != nil {
				return nil, err
			}
		}
		return rows, nil
	}
	var all [][]row
	for rep := 0; rep < repeat; rep++ {
		rows, err := once(rep)
		if err != nil {
			return err
		}
		all = append(all, rows)
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	if repeat > 1 {
		fmt.Fprintf(tw, "medians of %d interleaved runs\n", repeat)
	}
	fmt.Fprintln(tw, "copy\trwsnap backup-data\tmc mirror\tratio\tratios\trwsnap did")
	for i := range all[0] {
		var rs, ms, qs []float64
		var qtxt []string
		for _, rows := range all {
			r := rows[i]
			rs, ms = append(rs, r.rwsnap.Seconds()), append(ms, r.mirror.Seconds())
			qs = append(qs, r.rwsnap.Seconds()/r.mirror.Seconds())
			qtxt = append(qtxt, fmt.Sprintf("%.2f", r.rwsnap.Seconds()/r.mirror.Seconds()))
		}
		fmt.Fprintf(tw, "%s\t%.3fs\t%.3fs\t%.2fx\t%s\t%s\n", all[0][i].what, median(rs), median(ms), median(qs), strings.Join(qtxt, " "), all[0][i].note)
	}
	return tw.Flush()
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if n := len(v); n%2 == 1 {
		return v[n/2]
	} else {
		return (v[n/2-1] + v[n/2]) / 2
	}
}

// emptyBucket deletes every object of a bucket.
func emptyBucket(ctx context.Context, s objstore.Store) error {
	objs, err := s.List(ctx, "")
	if err != nil {
		return err
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return s.Delete(ctx, keys...)
}

func mustOpen(ctx context.Context, url string) objstore.Store {
	s, err := objstore.Open(ctx, url)
	exitOn(err)
	return s
}

func timed(c *exec.Cmd, env []string) (time.Duration, string, error) {
	c.Env = env
	start := time.Now()
	out, err := c.Output()
	d := time.Since(start)
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		return d, "", fmt.Errorf("%s: %w\n%s%s", strings.Join(c.Args, " "), err, out, msg)
	}
	return d, string(out), nil
}

func summary(out string) string {
	var r struct {
		Copied     int   `json:"objects_copied"`
		ServerSide int   `json:"objects_copied_server_side"`
		Skipped    int   `json:"objects_already_there"`
		Bytes      int64 `json:"bytes_copied"`
	}
	if json.Unmarshal([]byte(out), &r) != nil {
		return "?"
	}
	return fmt.Sprintf("%d copied (%d server side, %s), %d already there", r.Copied, r.ServerSide, progress.Bytes(r.Bytes), r.Skipped)
}

// upload writes incompressible objects where RisingWave's S3 backend puts
// them, 16 at a time.
func upload(ctx context.Context, hs objstore.Store, hdir string, ids []uint64, size int64) error {
	work := make(chan uint64)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, size)
			for id := range work {
				rand.Read(b)
				if err := hs.Put(ctx, hummock.SSTPath(hdir, id, true), b); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

// addSnapshot stores a minimal snapshot whose manifest entry references
// ids (the data copy reads only the entry and the cluster id).
func addSnapshot(ctx context.Context, st *metasnap.Storage, id uint64, ids []uint64) error {
	snap := &metasnap.MetaSnapshot{FormatVersion: metasnap.FormatV1, ID: id, Metadata: &metasnap.ClusterMetadata{ClusterID: "bench-cluster"}}
	_, err := st.Create(ctx, snap.Encode(), metasnap.SnapshotMetadata{ID: id, SSTs: ids})
	return err
}
