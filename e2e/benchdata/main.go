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
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/internal/progress"
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
	par := flag.Int("parallelism", 8, "rwsnap --data-parallelism")
	flag.Parse()
	exitOn(run(*objects, *totalMiB, *newPct, *bin, *mc, *par))
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchdata:", err)
		os.Exit(1)
	}
}

func run(objects, totalMiB, newPct int, bin, mc string, par int) error {
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
	hsURL, drURL := srv.URL("hummock"), srv.URL("datacopy")
	hs, err := objstore.Open(ctx, hsURL)
	if err != nil {
		return err
	}
	size := int64(totalMiB) << 20 / int64(objects)
	nOld := objects - objects*newPct/100
	fmt.Printf("rwsnap data bench: %d SST objects of %s (%s), then %d new; MinIO %s; --data-parallelism %d\n",
		objects, progress.Bytes(size), progress.Bytes(size*int64(objects)), objects-nOld, srv.Endpoint, par)
	ids := make([]uint64, objects)
	for i := range ids {
		ids[i] = uint64(1000 + i)
	}
	if err := upload(ctx, hs, ids[:nOld], size); err != nil {
		return err
	}
	bk := metasnap.NewStorage(mustOpen(ctx, drURL), "bk")
	fsBk := metasnap.NewStorage(mustOpen(ctx, "fs://"+filepath.Join(dir, "fsbk")), "bk")
	for _, st := range []*metasnap.Storage{bk, fsBk} {
		if err := addSnapshot(ctx, st, 1, ids[:nOld]); err != nil {
			return err
		}
	}
	env := append(os.Environ(), "MC_HOST_b=http://"+srv.AccessKey+":"+srv.SecretKey+"@"+srv.Endpoint, "MC_CONFIG_DIR="+filepath.Join(dir, "mc"))
	rw := func(st string, data ...string) (time.Duration, string, error) {
		args := []string{"meta", "backup-data", "--all", "-q", "-o", "json", "--data-parallelism", fmt.Sprint(par),
			"--backup-storage-url", st, "--backup-storage-directory", "bk",
			"--hummock-storage-url", hsURL, "--hummock-storage-directory", "hummock_001"}
		return timed(exec.Command(bin, append(args, data...)...), env)
	}
	mirror := func(dst string) (time.Duration, string, error) {
		return timed(exec.Command(mc, "mirror", "--quiet", "--overwrite", "b/hummock/hummock_001", dst), env)
	}
	type row struct {
		what           string
		rwsnap, mirror time.Duration
		note           string
	}
	var rows []row
	fsData := "fs://" + filepath.Join(dir, "fsdata")
	phase := func(label string) error {
		d1, o1, err := rw(drURL)
		if err != nil {
			return err
		}
		m1, _, err := mirror("b/mirror/hummock_001")
		if err != nil {
			return err
		}
		rows = append(rows, row{label + ", one MinIO (server-side copy)", d1, m1, summary(o1)})
		d2, o2, err := rw("fs://"+filepath.Join(dir, "fsbk"), "--data-storage-url", fsData)
		if err != nil {
			return err
		}
		m2, _, err := mirror(filepath.Join(dir, "mirror-fs"))
		if err != nil {
			return err
		}
		rows = append(rows, row{label + ", MinIO -> fs (streamed)", d2, m2, summary(o2)})
		return nil
	}
	if err := phase("full copy"); err != nil {
		return err
	}
	if err := upload(ctx, hs, ids[nOld:], size); err != nil {
		return err
	}
	for _, st := range []*metasnap.Storage{bk, fsBk} {
		if err := addSnapshot(ctx, st, 2, ids); err != nil {
			return err
		}
	}
	if err := phase(fmt.Sprintf("incremental (+%d objects)", objects-nOld)); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "copy\trwsnap backup-data\tmc mirror\tratio\trwsnap did")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2fx\t%s\n", r.what, r.rwsnap.Round(time.Millisecond), r.mirror.Round(time.Millisecond), r.rwsnap.Seconds()/r.mirror.Seconds(), r.note)
	}
	return tw.Flush()
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
func upload(ctx context.Context, hs objstore.Store, ids []uint64, size int64) error {
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
				if err := hs.Put(ctx, hummock.SSTPath("hummock_001", id, true), b); err != nil {
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
