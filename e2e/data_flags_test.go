package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/internal/testinfra/s3count"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
)

// TestDataParallelismRefusedInDryRun: every command that takes
// --data-parallelism refuses a value outside 1..256 with exit 2 and the
// same message whether or not it is a dry run (flag or RWSNAP_DRY_RUN),
// and nothing changes. A dry run used to accept -1 that the real run
// refused (and restore accepted it in both).
func TestDataParallelismRefusedInDryRun(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 47})
	dir := t.TempDir()
	root := filepath.Join(dir, "backups")
	loc := []string{"--backup-storage-url", "fs://" + root, "--backup-storage-directory", "rw"}
	id, _ := backupIDArgs(t, f, loc)
	mustRun(t, nil, append(append([]string{"meta", "backup-data", "--all"}, loc...), f.etcdArgs()...)...)
	b := etcdtest.StartT(t, embedetcd.Config{})
	bcli := etcdtest.ClientT(t, b)
	f.minio.CreateBucket(t, "fresh")
	stores := []objstore.Store{mustOpen(t, "fs://"+root), f.hummock, mustOpen(t, f.minio.URL("fresh"))}
	clis := []*clientv3.Client{f.cli, bcli}
	commands := map[string][]string{
		"backup-data":           append(append([]string{"meta", "backup-data", "--all"}, loc...), f.etcdArgs()...),
		"backup-meta":           append(append([]string{"meta", "backup-meta", "--with-data"}, loc...), f.etcdArgs()...),
		"schedule":              append(append([]string{"schedule", "--once", "--with-data"}, loc...), f.etcdArgs()...),
		"restore-meta":          append([]string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(id), "--etcd-endpoints", strings.Join(b.Endpoints(), ","), "--hummock-storage-url", f.minio.URL("fresh"), "--hummock-storage-directory", "h", "--from-backup-data"}, loc...),
		"backup-meta (no data)": append(append([]string{"meta", "backup-meta"}, loc...), f.etcdArgs()...),
	}
	before := worldState(t, clis, stores)
	for name, args := range commands {
		for _, v := range []string{"-1", "0", "257", "1000000000"} {
			a := append(append([]string{}, args...), "--data-parallelism", v)
			real := run(t, nil, a...)
			dry := run(t, nil, append(a, "--dry-run")...)
			env := run(t, []string{"RWSNAP_DRY_RUN=true"}, a...)
			for _, r := range []result{real, dry, env} {
				if r.code != 2 || !strings.Contains(r.stderr, "--data-parallelism "+v+": give 1 to 256") {
					t.Fatalf("%s --data-parallelism %s: want exit 2 naming the flag:\n%s", name, v, r)
				}
			}
			if real.stderr != dry.stderr || real.stderr != env.stderr {
				t.Fatalf("%s --data-parallelism %s: the dry run says something else than the real run:\nreal: %s\ndry: %s\nenv: %s", name, v, real.stderr, dry.stderr, env.stderr)
			}
		}
		// The same through the environment variable.
		if r := run(t, []string{"RWSNAP_DATA_PARALLELISM=-1"}, append(append([]string{}, args...), "--dry-run")...); r.code != 2 {
			t.Fatalf("%s with RWSNAP_DATA_PARALLELISM=-1 in a dry run:\n%s", name, r)
		}
	}
	if d := stateDiff(before, worldState(t, clis, stores)); len(d) > 0 {
		t.Fatalf("refused commands changed something: %v", d)
	}
	// A dry run of --with-data checks the data location as the real run
	// does: a data copy of another backup location is refused in both.
	other := append([]string{"meta", "backup-meta", "--with-data", "--backup-storage-url", "fs://" + filepath.Join(dir, "other"), "--backup-storage-directory", "rw",
		"--data-storage-url", "fs://" + root, "--data-storage-directory", "rw/data", "--mode", "direct"}, f.etcdArgs()...)
	dry := run(t, nil, append(other, "--dry-run")...)
	if dry.code != 1 || !strings.Contains(dry.stderr, "belongs to another backup location") {
		t.Fatalf("dry run with another location's data copy:\n%s", dry)
	}
	if r := run(t, nil, other...); r.code != 1 || !strings.Contains(r.stderr, "belongs to another backup location") {
		t.Fatalf("real run with another location's data copy:\n%s", r)
	}
}

// TestDataServerCopyRequestsPerObject: a full data backup on one MinIO
// costs one CopyObject per object and a constant number of other
// requests (listings, the index, markers), like `mc mirror`: the size and
// ETag come from one listing of the source, the copy's ETag from the
// CopyObject response. It was a CopyObject and a HEAD per object.
func TestDataServerCopyRequestsPerObject(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 48})
	for range 4 {
		if err := f.sim.Advance(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	f.minio.CreateBucket(t, "backups")
	p, err := s3count.Start(f.minio.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	via := func(bucket string) string {
		return "minio://" + f.minio.AccessKey + ":" + f.minio.SecretKey + "@" + p.Endpoint + "/" + bucket
	}
	loc := []string{"--backup-storage-url", via("backups"), "--backup-storage-directory", "rw"}
	mustRun(t, nil, append(append([]string{"meta", "backup-meta"}, loc...), f.etcdArgs()...)...)
	n := len(hummock.ObjectIDs(f.sim.ExpectedVersion()))
	p.Reset()
	r := mustRun(t, nil, append(append([]string{"meta", "backup-data", "--all", "--hummock-storage-url", via("hummock001"), "--hummock-storage-directory", "hummock_001"}, loc...), f.etcdArgs()...)...)
	c := p.Reset()
	other := 0
	for k, v := range c {
		if !strings.HasPrefix(k, "CopyObject ") {
			other += v
		}
	}
	if c["CopyObject backups"] != n || c["HeadObject hummock001"] != 0 || c["HeadObject backups"] > 2 || other > 20 {
		t.Fatalf("backup-data of %d objects made %s; want %d CopyObject, no HEAD per object, a few other requests\n%s", n, s3count.Format(c, n), n, r)
	}
	t.Logf("%d objects: %s", n, s3count.Format(c, n))
}
