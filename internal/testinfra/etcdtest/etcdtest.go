// Package etcdtest starts embedded etcd clusters for tests. It is separate
// from package embedetcd so that "testing" stays out of the rwsnap binary.
package etcdtest

import (
	"context"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
)

// StartT starts a cluster in a fresh t.TempDir (unless cfg.Dir is set) and
// stops it when the test ends. It fails the test if etcd cannot start.
func StartT(t testing.TB, cfg embedetcd.Config) *embedetcd.Cluster {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	c, err := embedetcd.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// ClientT returns a client of c (as root with auth) closed when the test ends.
func ClientT(t testing.TB, c *embedetcd.Cluster) *clientv3.Client {
	t.Helper()
	cli, err := c.Client(context.Background())
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}
