package e2e

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/rwsnap/rwsnap/rwsim"
)

// silentListener accepts connections and never says a word (a port that
// is open but not the server expected, or a hung one).
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestSilentEndpointsDoNotHang points every network client rwsnap has
// (etcd, S3/MinIO, pgwire, the meta node's gRPC) at a port that accepts
// and never answers: each command fails (exit 1) with an error naming the
// endpoint, within runLimited's minute, instead of hanging: with short
// --connect-timeout/--io-timeout, and with the defaults.
func TestSilentEndpointsDoNotHang(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 83})
	mustRun(t, nil, append([]string{"meta", "backup-meta", "-q"}, f.etcdArgs()...)...)
	hung := silentListener(t)
	short := []string{"--connect-timeout", "2s", "--io-timeout", "2s"}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"etcd", []string{"meta", "list-meta-snapshots", "--etcd-endpoints", hung}},
		{"etcd, restore target", []string{"meta", "restore-meta", "--meta-snapshot-id", "1001", "--etcd-endpoints", hung,
			"--backup-storage-url", f.bucketURL, "--backup-storage-directory", liveBackupDir, "--hummock-storage-url", f.bucketURL}},
		{"minio", []string{"meta", "list-meta-snapshots", "--backup-storage-url", "minio://ak:sk123456@" + hung + "/b", "--backup-storage-directory", "backup"}},
		{"minio, backup", append([]string{"meta", "backup-meta", "--backup-storage-url", "minio://ak:sk123456@" + hung + "/b"}, f.etcdArgs()...)},
		{"pgwire", []string{"timetravel", "list", "--pg-url", "postgres://root@" + hung + "/dev"}},
		{"pgwire, query", []string{"timetravel", "query", "--pg-url", "postgres://root@" + hung + "/dev", "--at", "-1s", "-c", "SELECT 1"}},
		{"meta gRPC", append([]string{"meta", "backup-meta", "--mode", "meta", "--meta-addr", "http://" + hung}, f.etcdArgs()...)},
	} {
		for _, limits := range [][]string{short, nil} {
			// The defaults too for the example (timetravel) and
			// etcd: connect-bounded, so quick.
			if limits == nil && (testing.Short() || (tc.name != "pgwire" && tc.name != "etcd")) {
				continue
			}
			r := runLimited(t, nil, append(tc.args, limits...)...)
			if r.code != 1 || !strings.Contains(r.stderr, hung) {
				t.Errorf("%s against a silent port (%v): want exit 1 naming %s:\n%s", tc.name, limits, hung, r)
			}
		}
	}
}
