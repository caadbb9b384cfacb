// Package e2e runs the rwsnap binary against real components: embedded
// etcd servers, a MinIO server, and rwsim's simulated RisingWave.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/internal/testinfra/testminio"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
)

var rwsnapBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rwsnap-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rwsnapBin = filepath.Join(dir, "rwsnap")
	build := exec.Command("go", "build", "-o", rwsnapBin, "../cmd/rwsnap")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build rwsnap:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one finished rwsnap process.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run executes the rwsnap binary with extra environment variables.
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rwsnapBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run rwsnap %v: %v", args, err)
	}
	return r
}

// mustRun runs rwsnap and fails the test unless it exits 0.
func mustRun(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := run(t, env, args...)
	if r.code != 0 {
		t.Fatalf("rwsnap %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// fixture is a simulated RisingWave cluster on real etcd and MinIO.
type fixture struct {
	etcd      *embedetcd.Cluster
	cli       *clientv3.Client
	minio     *testminio.Server
	hummock   objstore.Store
	sim       *rwsim.Cluster
	endpoints string
	bucketURL string
}

func newFixture(t *testing.T, opts rwsim.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{}
	f.etcd = etcdtest.StartT(t, embedetcd.Config{})
	f.cli = etcdtest.ClientT(t, f.etcd)
	f.endpoints = strings.Join(f.etcd.Endpoints(), ",")
	f.minio = testminio.Start(t)
	f.minio.CreateBucket(t, "hummock001")
	f.bucketURL = f.minio.URL("hummock001")
	hs, err := objstore.Open(ctx, f.bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.Close() })
	f.hummock = hs
	if opts.StateStore == "" {
		opts.StateStore = "hummock+" + f.bucketURL
	}
	if opts.DataDir == "" {
		opts.DataDir = "hummock_001"
	}
	sim, err := rwsim.Seed(ctx, f.cli, hs, opts)
	if err != nil {
		t.Fatalf("seed rwsim: %v", err)
	}
	f.sim = sim
	return f
}

func (f *fixture) etcdArgs() []string { return []string{"--etcd-endpoints", f.endpoints} }
