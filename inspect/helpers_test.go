package inspect

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// env is a seeded rwsim cluster with a backup location, on a fixed clock
// so that every output is deterministic.
type env struct {
	ctx     context.Context
	cli     *clientv3.Client
	sim     *rwsim.Cluster
	hummock objstore.Store
	st      *metasnap.Storage
	now     time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{ctx: ctx, now: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	e.cli = etcdtest.ClientT(t, etcdtest.StartT(t, embedetcd.Config{}))
	e.hummock = objstore.NewMemory()
	e.st = metasnap.NewStorage(objstore.NewMemory(), "backup")
	sim, err := rwsim.Seed(ctx, e.cli, e.hummock, rwsim.Options{Seed: 7, FragmentSize: 2048, Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	e.sim = sim
	return e
}

// backup takes a snapshot the way rwsnap does.
func (e *env) backup(t *testing.T) uint64 {
	t.Helper()
	res, err := metasnap.Backup(e.ctx, metasnap.BackupOptions{Etcd: e.cli, Hummock: e.hummock, DataDir: e.sim.Options().DataDir, Target: e.st})
	if err != nil {
		t.Fatal(err)
	}
	return res.Entry.ID
}

func (e *env) inspect(t *testing.T, id uint64) *Document {
	t.Helper()
	d, err := Inspect(e.ctx, e.st, id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// golden compares got with testdata/name (rewritten with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./inspect -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from the golden file (go test ./inspect -run %s -update rewrites it after a review):\n%s", name, t.Name(), firstDiff(string(want), string(got)))
	}
}

func firstDiff(a, b string) string {
	la, lb := splitLines(a), splitLines(b)
	for i := 0; i < len(la) || i < len(lb); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return "line " + itoa(i+1) + ":\n want: " + x + "\n  got: " + y
		}
	}
	return ""
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for i > 0 {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
	}
	return string(b)
}
