package metastore

import (
	"bytes"
	"context"
	"testing"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
)

// A value as large as the server accepts goes through rwsnap's client: a
// store whose etcd runs with --max-request-bytes 8 MiB holds values of
// several MiB, and restore must write them back.
func TestConnectSendsWhatTheServerAccepts(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.StartT(t, embedetcd.Config{MaxRequestBytes: 8 << 20})
	cli, err := Connect(ctx, Config{Endpoints: c.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	big := bytes.Repeat([]byte("f"), 3<<20)
	if _, err := cli.Put(ctx, "cf/table_fragments/big", string(big)); err != nil {
		t.Fatalf("put of a 3 MiB value into an etcd accepting 8 MiB: %v", err)
	}
	got, err := cli.Get(ctx, "cf/table_fragments/big")
	if err != nil || len(got.Kvs) != 1 || !bytes.Equal(got.Kvs[0].Value, big) {
		t.Fatalf("read back: %v", err)
	}
}
