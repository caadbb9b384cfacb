package embedetcd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
)

func putGet(t *testing.T, cli *clientv3.Client, key, val string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, val); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != val {
		t.Fatalf("get %s = %v, want %q", key, resp.Kvs, val)
	}
}

func TestSingleMember(t *testing.T) {
	c := etcdtest.StartT(t, embedetcd.Config{})
	if len(c.Endpoints()) != 1 || !strings.HasPrefix(c.Endpoints()[0], "http://127.0.0.1:") {
		t.Fatalf("endpoints %v", c.Endpoints())
	}
	cli := etcdtest.ClientT(t, c)
	putGet(t, cli, "a", "1")

	// A stopped single member comes back with its data.
	if err := c.StopMember(0); err != nil {
		t.Fatal(err)
	}
	if err := c.StartMember(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	cli2 := etcdtest.ClientT(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli2.Get(ctx, "a")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "1" {
		t.Fatalf("after restart: %v %v", resp, err)
	}
}

func TestThreeMembersFaults(t *testing.T) {
	c := etcdtest.StartT(t, embedetcd.Config{Members: 3})
	if len(c.Endpoints()) != 3 {
		t.Fatalf("endpoints %v", c.Endpoints())
	}
	cli := etcdtest.ClientT(t, c)
	putGet(t, cli, "k", "v1")

	ctx := context.Background()
	st, err := cli.Status(ctx, c.MemberEndpoint(0))
	if err != nil {
		t.Fatal(err)
	}
	ml, err := cli.MemberList(ctx)
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("member list %v %v", ml, err)
	}
	_ = st

	// One member down: quorum (2 of 3) still serves writes.
	if err := c.StopMember(2); err != nil {
		t.Fatal(err)
	}
	putGet(t, cli, "k", "v2")

	// Two down: no quorum, a linearizable write cannot complete.
	if err := c.StopMember(1); err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = cli.Put(tctx, "k", "v3")
	cancel()
	if err == nil {
		t.Fatal("write without quorum succeeded")
	}

	// Both back: the cluster heals and kept the committed value.
	if err := c.StartMember(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.StartMember(ctx, 2); err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
	defer gcancel()
	resp, err := cli.Get(gctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) == "v1" {
		t.Fatalf("after heal: %v %v", resp, err)
	}
	putGet(t, cli, "k", "v4")
}

func TestAuth(t *testing.T) {
	c := etcdtest.StartT(t, embedetcd.Config{Auth: true, RootPassword: "s3cret"})
	if !c.AuthEnabled() || c.RootPassword() != "s3cret" {
		t.Fatal("auth config not reported")
	}
	cli := etcdtest.ClientT(t, c)
	putGet(t, cli, "x", "y")

	ctx := context.Background()
	_, err := c.ClientAs(ctx, embedetcd.RootUser, "wrong")
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	if !strings.Contains(err.Error(), "authentication failed") || !strings.Contains(err.Error(), `"root"`) {
		t.Fatalf("unclear error: %v", err)
	}

	// Without credentials, requests are refused.
	anon, err := c.ClientAs(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := anon.Get(tctx, "x"); err == nil {
		t.Fatal("anonymous read allowed with auth enabled")
	}
}

func TestThreeMembersAuth(t *testing.T) {
	c := etcdtest.StartT(t, embedetcd.Config{Members: 3, Auth: true})
	putGet(t, etcdtest.ClientT(t, c), "a", "b")
}
