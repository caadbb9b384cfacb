package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
	"github.com/rwsnap/rwsnap/rwsim/frontend"
	"github.com/rwsnap/rwsnap/rwsim/metanode"
	"github.com/rwsnap/rwsnap/rwversion"
)

func playgroundCommand() *cli.Command {
	return &cli.Command{
		Name:  "playground",
		Usage: "try rwsnap on a simulated RisingWave cluster: embedded etcd + local directories, nothing to install",
		Description: `Starts an embedded etcd, fills it with a simulated RisingWave meta store
(v1.7 by default; --rw-version 1.9, 1.10 or 2.0 for those releases' layouts:
subscriptions and change logs, state_table_info, secrets; 1.2 or 1.5 for v1.7's
layout under an older meta node, which drops remarks, and on 1.2 reports a failed
job as NOT_FOUND)
with catalogs, fragments, users, compaction groups, a hummock checkpoint and a chain
of version deltas, SST objects in a local directory), then runs what an operator
would: backup-meta while the cluster keeps committing epochs, list, verify, and
delete; then loses the meta store and restores the newest snapshot into a
fresh etcd, moving the cluster to a new data directory. Each command is printed
as you would type it.

Without --keep everything it made is removed at the end. With --keep the
restored cluster keeps running (etcd, a simulated meta node, the frontend) until
Ctrl-C, and every endpoint is printed with a line of environment variables to
paste into a shell. A rerun with the same --dir starts afresh.

Examples:
  rwsnap playground                       # the walk-through, then clean up
  rwsnap playground --dir /tmp/rw --keep  # keep it running; prints every endpoint`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "where to keep etcd data and the storage (default: a new temporary directory)"},
			&cli.BoolFlag{Name: "keep", Usage: "keep the restored cluster running after the walk-through, until Ctrl-C, and print its endpoints"},
			&cli.StringFlag{Name: "rw-version", Value: "1.7", Usage: "the RisingWave release to simulate: the line 1.2, 1.5, 1.7, 1.9, 1.10 or 2.0, or one of its releases (e.g. 1.10.1); its meta node writes that release as rw_version (v1.10+)"},
		},
		Action: runPlayground,
	}
}

func runPlayground(c *cli.Context) error {
	ctx := c.Context
	w := c.App.Writer
	dir := c.String("dir")
	keep := c.Bool("keep")
	pin, err := rwversion.ParsePin(c.String("rw-version"))
	if err != nil {
		return usagef("--rw-version: %v", err)
	}
	mode := pin.Line
	if !slices.Contains(rwsim.Modes, mode) {
		return usagef("--rw-version %q: the playground simulates the lines 1.2, 1.5, 1.7, 1.9, 1.10 and 2.0 (or one of their releases, e.g. 1.10.2)", c.String("rw-version"))
	}
	release := rwsim.ModeRelease(mode)
	if pin.Release != "" {
		release = pin.Release
	}
	created := dir == ""
	if created {
		d, err := os.MkdirTemp("", "rwsnap-playground-")
		if err != nil {
			return err
		}
		dir = d
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	step := func(format string, args ...any) { fmt.Fprintf(w, "\n== "+format+"\n", args...) }
	// What the playground makes in dir: a rerun with the same --dir starts
	// afresh, and without --keep it is all removed at the end (whatever
	// else is in dir stays).
	made := []string{"etcd", "etcd-restored", "etcd-rebuilt", "storage", "dr", "rebuilt", "backups.html"}
	removeMade := func() error {
		if created {
			return os.RemoveAll(dir)
		}
		for _, m := range made {
			if err := os.RemoveAll(filepath.Join(dir, m)); err != nil {
				return err
			}
		}
		return nil
	}
	if !created {
		if err := removeMade(); err != nil {
			return fmt.Errorf("clear the previous playground in %s: %w", dir, err)
		}
	}
	// Registered first, so it runs after every server below has stopped.
	defer func() {
		if keep {
			fmt.Fprintf(w, "\n== stopped; the files stay in %s (a rerun with --dir %s starts afresh)\n", dir, dir)
			return
		}
		if err := removeMade(); err != nil {
			fmt.Fprintf(c.App.ErrWriter, "rwsnap: could not clean up %s: %v\n", dir, err)
			return
		}
		fmt.Fprintf(w, "\n== cleaned up %s (run with --keep to keep the cluster running)\n", dir)
	}()

	step("starting an embedded etcd in %s", filepath.Join(dir, "etcd"))
	etcd, err := embedetcd.Start(ctx, embedetcd.Config{Dir: filepath.Join(dir, "etcd"), UnsafeNoFsync: true})
	if err != nil {
		return err
	}
	defer etcd.Close()
	cli, err := etcd.Client(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	endpoints := strings.Join(etcd.Endpoints(), ",")
	storage := "fs://" + filepath.Join(dir, "storage")
	hs, err := objstore.Open(ctx, storage)
	if err != nil {
		return err
	}
	defer hs.Close()

	step("seeding a simulated RisingWave %s cluster (state_store hummock+%s, data_directory hummock_001)", mode, storage)
	sim, err := rwsim.Seed(ctx, cli, hs, rwsim.Options{StateStore: "hummock+" + storage, DataDir: "hummock_001", Seed: time.Now().UnixNano(), RWVersion: mode})
	if err != nil {
		return fmt.Errorf("seed the simulated cluster: %w", err)
	}
	v := sim.ExpectedVersion()
	fmt.Fprintf(w, "   hummock version %d, %d compaction groups, max committed epoch %d\n", v.GetId(), len(v.GetLevels()), v.GetMaxCommittedEpoch())

	// A RisingWave frontend stand-in serves a demo table whose rows are
	// versioned by epoch, and rw_meta_snapshot from the backup manifest.
	var ordersID uint32 // the demo table is the cluster's first table
	for _, r := range sim.Relations() {
		if r.Kind == rwsim.KindTable && (ordersID == 0 || r.ID < ordersID) {
			ordersID = r.ID
		}
	}
	fe, err := frontend.Start(ctx, frontend.Options{Backup: metasnap.NewStorage(hs, "hummock_001/backup"), Shape: frontend.ShapeFor(mode), Version: release, FirstTableID: ordersID})
	if err != nil {
		return err
	}
	defer fe.Close()
	if _, err := fe.CreateTable("orders", frontend.Column{Name: "id", Type: frontend.Int8}, frontend.Column{Name: "item", Type: frontend.Varchar}); err != nil {
		return err
	}
	items := []string{"apples", "pears", "plums", "figs", "kiwis", "limes", "dates", "grapes"}

	// The cluster keeps committing epochs (one order each) while
	// snapshots are taken.
	bg, stopBG := context.WithCancel(ctx)
	advanced := make(chan int)
	go func() {
		n := 0
		defer func() { advanced <- n }()
		for bg.Err() == nil {
			if sim.Advance(bg) == nil {
				n++
				_ = fe.Insert("orders", sim.LastEpoch(), n, items[n%len(items)])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	sh := func(args ...string) error {
		fmt.Fprintf(w, "\n$ rwsnap %s\n", shellJoin(args))
		app := newApp(w, c.App.ErrWriter)
		return app.RunContext(ctx, flagsFirst(app, append([]string{"rwsnap", "--quiet"}, args...)))
	}
	ep := []string{"--etcd-endpoints", endpoints}
	for i, remarks := range []string{"first", "second", "third"} {
		if err := sh(append([]string{"meta", "backup-meta", "--remarks", remarks}, ep...)...); err != nil {
			stopBG()
			return err
		}
		if i < 2 {
			time.Sleep(300 * time.Millisecond)
		}
	}
	stopBG()
	step("the simulated cluster committed %d epochs during the backups", <-advanced)
	if err := sh(append([]string{"meta", "list-meta-snapshots"}, ep...)...); err != nil {
		return err
	}
	if err := sh(append([]string{"meta", "verify-meta-snapshot", "--all", "--check-ssts"}, ep...)...); err != nil {
		return err
	}
	page := filepath.Join(dir, "backups.html")
	step("what the snapshots hold, from the backup location alone: a diff, and the report page %s (open it in a browser)", page)
	if err := sh(append([]string{"meta", "diff", "1001", "1002"}, ep...)...); err != nil {
		return err
	}
	if err := sh(append([]string{"meta", "report", "--html", page, "--keep-last", "2"}, ep...)...); err != nil {
		return err
	}
	step("time travel: read the orders table as it was when snapshot 1002 was taken")
	pg := []string{"--pg-url", fe.URL()}
	if err := sh(append([]string{"timetravel", "list"}, pg...)...); err != nil {
		return err
	}
	m, _, err := metasnap.NewStorage(hs, "hummock_001/backup").ReadManifest(ctx)
	if err != nil {
		return err
	}
	at := metasnap.SnapshotTime(m.SnapshotMetadata[1]).Format(time.RFC3339Nano)
	if err := sh(append([]string{"timetravel", "query", "--at", at, "-c", "SELECT count(*) AS orders_then FROM orders"}, pg...)...); err != nil {
		return err
	}

	backupDir := filepath.Join(dir, "storage", "hummock_001", "backup")
	step("the objects RisingWave reads, in %s", backupDir)
	entries, _ := os.ReadDir(backupDir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() {
			fmt.Fprintf(w, "   %-20s %8d bytes\n", e.Name(), info.Size())
		}
	}
	if err := sh(append([]string{"meta", "delete-meta-snapshots", "1001"}, ep...)...); err != nil {
		return err
	}

	step("disaster: the meta store is lost (etcd stopped, its data directory removed)")
	etcd.Close()
	cli.Close()
	if err := os.RemoveAll(filepath.Join(dir, "etcd")); err != nil {
		return err
	}
	step("a fresh, empty etcd in %s", filepath.Join(dir, "etcd-restored"))
	fresh, err := embedetcd.Start(ctx, embedetcd.Config{Dir: filepath.Join(dir, "etcd-restored"), UnsafeNoFsync: true})
	if err != nil {
		return err
	}
	defer fresh.Close()
	endpoints = strings.Join(fresh.Endpoints(), ",")
	ep = []string{"--etcd-endpoints", endpoints}
	m, _, err = metasnap.NewStorage(hs, "hummock_001/backup").ReadManifest(ctx)
	if err != nil {
		return err
	}
	latest := fmt.Sprint(m.SnapshotMetadata[len(m.SnapshotMetadata)-1].ID)
	restoreArgs := append([]string{"meta", "restore-meta", "--meta-snapshot-id", latest,
		"--backup-storage-url", storage, "--backup-storage-directory", "hummock_001/backup",
		"--hummock-storage-url", storage, "--hummock-storage-directory", "hummock_002",
		"--overwrite-hummock-storage-endpoint", "--overwrite-backup-storage-url", storage,
		"--overwrite-backup-storage-directory", "hummock_001/backup", "--copy-ssts", "--validate-integrity"}, ep...)
	step("restore the newest snapshot into it, moving the cluster to data directory hummock_002 (SSTs copied)")
	if err := sh(append(restoreArgs, "--dry-run")...); err != nil {
		return err
	}
	if err := sh(restoreArgs...); err != nil {
		return err
	}
	step("the restored cluster's params point at the new location; its snapshots are still listed")
	if err := sh(append([]string{"meta", "list-meta-snapshots"}, ep...)...); err != nil {
		return err
	}
	if err := sh(append([]string{"meta", "verify-meta-snapshot", latest, "--check-ssts", "--hummock-storage-url", storage, "--hummock-storage-directory", "hummock_002"}, ep...)...); err != nil {
		return err
	}

	// The worse disaster: the hummock data itself is lost. A snapshot only
	// names its SST objects, so it is worthless without them, unless its
	// data was copied elsewhere first.
	dr := "fs://" + filepath.Join(dir, "dr")
	drArgs := []string{"--data-storage-url", dr, "--data-storage-directory", "rw-data"}
	step("protect the newest snapshot's data: copy the SST objects it references to a separate location, %s", dr)
	if err := sh(append(append([]string{"meta", "backup-data", latest}, drArgs...), ep...)...); err != nil {
		return err
	}
	if err := sh(append(append([]string{"meta", "list-meta-snapshots"}, drArgs[:2]...), append(drArgs[2:], ep...)...)...); err != nil {
		return err
	}
	if err := sh(append(append([]string{"meta", "verify-meta-snapshot", latest, "--check-data", "--read-data"}, drArgs...), ep...)...); err != nil {
		return err
	}
	step("disaster: the hummock location is gone (%s removed) and the meta store with it", filepath.Join(dir, "storage", "hummock_002"))
	fresh.Close()
	if err := os.RemoveAll(filepath.Join(dir, "storage", "hummock_002")); err != nil {
		return err
	}
	rebuilt, err := embedetcd.Start(ctx, embedetcd.Config{Dir: filepath.Join(dir, "etcd-rebuilt"), UnsafeNoFsync: true})
	if err != nil {
		return err
	}
	defer rebuilt.Close()
	fresh = rebuilt
	endpoints = strings.Join(rebuilt.Endpoints(), ",")
	ep = []string{"--etcd-endpoints", endpoints}
	newStorage := "fs://" + filepath.Join(dir, "rebuilt")
	step("rebuild it in a brand-new location %s from the data copy: every object's checksum verified, the params rewritten, the checkpoint written there", newStorage)
	if err := sh(append(append([]string{"meta", "restore-meta", "--meta-snapshot-id", latest,
		"--backup-storage-url", storage, "--backup-storage-directory", "hummock_001/backup",
		"--hummock-storage-url", newStorage, "--hummock-storage-directory", "hummock_003",
		"--from-backup-data", "--validate-integrity"}, drArgs[:4]...), ep...)...); err != nil {
		return err
	}
	if err := sh(append([]string{"params", "get", "state_store"}, ep...)...); err != nil {
		return err
	}
	if hs, err = objstore.Open(ctx, newStorage); err != nil {
		return err
	}
	defer hs.Close()
	storage, hummockDir := newStorage, "hummock_003"
	if !keep {
		step("done")
		return nil
	}
	// The restored cluster gets a meta node, as after a real restore.
	freshCli, err := fresh.Client(ctx)
	if err != nil {
		return err
	}
	defer freshCli.Close()
	bs, err := objstore.Open(ctx, "fs://"+filepath.Join(dir, "storage"))
	if err != nil {
		return err
	}
	defer bs.Close()
	meta, err := metanode.Start(ctx, metanode.Config{Etcd: freshCli, Hummock: hs, DataDir: hummockDir, Backup: metasnap.NewStorage(bs, "hummock_001/backup"), RWVersion: release})
	if err != nil {
		return fmt.Errorf("start the simulated meta node: %w", err)
	}
	defer meta.Close()
	if err := meta.WaitLeader(ctx); err != nil {
		return err
	}
	step("the restored cluster keeps running (Ctrl-C stops it):")
	for _, l := range [][2]string{
		{"etcd (meta store)", endpoints},
		{"meta node", meta.URL()},
		{"frontend (pgwire)", fe.URL()},
		{"backup location", "fs://" + filepath.Join(dir, "storage") + ", directory hummock_001/backup"},
		{"hummock (state store)", storage + ", data directory " + hummockDir},
		{"data copy", dr + ", directory rw-data"},
		{"files", dir},
	} {
		fmt.Fprintf(w, "   %-22s %s\n", l[0]+":", l[1])
	}
	fmt.Fprintf(w, "paste into a shell, then try: rwsnap meta list-meta-snapshots\n")
	fmt.Fprintf(w, "export RWSNAP_ETCD_ENDPOINTS=%s RW_META_ADDR=%s RWSNAP_PG_URL=%s\n", shellQuote(endpoints), shellQuote(meta.URL()), shellQuote(fe.URL()))
	<-ctx.Done()
	return nil
}

func shellQuote(s string) string { return shellJoin([]string{s}) }

// shellJoin quotes arguments the way a user would type them.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " '\"*?$&;|()<>") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
