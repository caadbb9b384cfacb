package etcdsnap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
)

// history writes a store with every kind of history: overwrites, deletes,
// re-creates, multi-op transactions, values that overflow a page, and a
// compaction; it returns the revision to compare at.
func history(t *testing.T, cli *clientv3.Client, keys int, compact bool) int64 {
	t.Helper()
	ctx := context.Background()
	put := func(k, v string) int64 {
		r, err := cli.Put(ctx, k, v)
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision
	}
	del := func(k string, opts ...clientv3.OpOption) {
		if _, err := cli.Delete(ctx, k, opts...); err != nil {
			t.Fatal(err)
		}
	}
	for i := range keys {
		put(fmt.Sprintf("cf/catalog_table/%06d", i), strings.Repeat("v", i%300))
	}
	for i := 0; i < keys; i += 3 {
		put(fmt.Sprintf("cf/catalog_table/%06d", i), fmt.Sprintf("overwritten %d", i))
	}
	del("cf/catalog_table/000001")
	del("cf/catalog_table/00002", clientv3.WithPrefix()) // 000020..000029
	put("cf/catalog_table/000021", "re-created")
	put("big/overflow", strings.Repeat("x", 70000)) // several pages
	put("big/overflow2", strings.Repeat("y", 9000))
	if _, err := cli.Txn(ctx).Then(
		clientv3.OpPut("txn/a", "1"), clientv3.OpPut("txn/b", "2"), clientv3.OpDelete("cf/catalog_table/000004"), clientv3.OpPut("txn/empty", ""),
	).Commit(); err != nil {
		t.Fatal(err)
	}
	rev := put("last/put", "x")
	if compact {
		// Compaction drops old revisions and the deleted keys' tombstones.
		put("gone", "soon")
		del("gone")
		r, err := cli.Get(ctx, "last/put")
		if err != nil {
			t.Fatal(err)
		}
		rev = r.Header.Revision
		if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
			t.Fatal(err)
		}
	}
	return rev
}

func snapshot(t *testing.T, cli *clientv3.Client, opts Options) *State {
	t.Helper()
	rc, err := cli.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	st, err := Read(context.Background(), rc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestStateEqualsRange compares a snapshot's state with etcd's own range
// at the same revision, with and without compaction, in memory and with
// the sorter spilling runs.
func TestStateEqualsRange(t *testing.T) {
	for _, tt := range []struct {
		name    string
		compact bool
		budget  int
	}{
		{"in memory", false, 0},
		{"spilled runs", false, 64 << 10},
		{"compacted, spilled", true, 32 << 10},
		{"compacted, in memory", true, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := etcdtest.StartT(t, embedetcd.Config{Dir: t.TempDir(), UnsafeNoFsync: true})
			cli := etcdtest.ClientT(t, c)
			rev := history(t, cli, 3000, tt.compact)
			st := snapshot(t, cli, Options{Dir: t.TempDir(), Budget: tt.budget})
			if st.Revision != rev {
				t.Fatalf("snapshot revision %d, etcd at %d", st.Revision, rev)
			}
			resp, err := cli.Get(context.Background(), "\x00", clientv3.WithFromKey(), clientv3.WithRev(rev))
			if err != nil {
				t.Fatal(err)
			}
			i := 0
			err = st.Range([]byte{0}, nil, func(k, v []byte) error {
				if i >= len(resp.Kvs) {
					return fmt.Errorf("extra key %q", k)
				}
				if want := resp.Kvs[i]; !bytes.Equal(k, want.Key) || !bytes.Equal(v, want.Value) {
					return fmt.Errorf("key %d: %q=%.20q, etcd has %q=%.20q", i, k, v, want.Key, want.Value)
				}
				i++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if i != len(resp.Kvs) || st.Keys != i {
				t.Fatalf("%d keys from the snapshot (%d indexed), etcd has %d", i, st.Keys, len(resp.Kvs))
			}
			n, err := st.Count([]byte("cf/catalog_table/"), []byte("cf/catalog_table0"))
			if err != nil {
				t.Fatal(err)
			}
			cr, err := cli.Get(context.Background(), "cf/catalog_table/", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(rev))
			if err != nil {
				t.Fatal(err)
			}
			if int64(n) != cr.Count {
				t.Fatalf("count %d, etcd %d", n, cr.Count)
			}
			v, ok, err := st.Get([]byte("cf/catalog_table/000021"))
			if err != nil || !ok || string(v) != "re-created" {
				t.Fatalf("Get = %q %v %v", v, ok, err)
			}
			if _, ok, _ := st.Get([]byte("cf/catalog_table/000001")); ok {
				t.Fatal("a deleted key is in the snapshot's state")
			}
		})
	}
}

// TestChecksumRefused flips one byte of the stream, cuts it, and garbles
// its sha256: each is refused before anything is indexed.
func TestChecksumRefused(t *testing.T) {
	c := etcdtest.StartT(t, embedetcd.Config{Dir: t.TempDir(), UnsafeNoFsync: true})
	cli := etcdtest.ClientT(t, c)
	history(t, cli, 50, false)
	rc, err := cli.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"flipped byte": flip(raw, 5000),
		"garbled sum":  flip(raw, len(raw)-1),
		"cut":          raw[:len(raw)-512],
		"no sum":       raw[:len(raw)-sha256.Size],
	} {
		_, err := Read(context.Background(), bytes.NewReader(b), Options{Dir: t.TempDir()})
		if !errors.Is(err, ErrChecksum) {
			t.Errorf("%s: %v, want ErrChecksum", name, err)
		}
	}
	st, err := Read(context.Background(), iotestOneByte(raw), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("the stream read a byte at a time: %v", err)
	}
	st.Close()
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0xff
	return c
}

type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) > 7 {
		p = p[:7]
	}
	return o.r.Read(p)
}

func iotestOneByte(b []byte) io.Reader { return oneByte{bytes.NewReader(b)} }

// A spool directory that cannot be written says what to do about it.
func TestTempFileErrorSaysWhatToDo(t *testing.T) {
	_, err := tempFile(filepath.Join(t.TempDir(), "missing"), "spool-*")
	if err == nil || !strings.Contains(err.Error(), "TMPDIR") || !strings.Contains(err.Error(), "RWSNAP_ETCD_READ=range") {
		t.Fatalf("tempFile in a missing directory: %v", err)
	}
}

// A full disk under the spool (/dev/full answers every write with ENOSPC)
// is an error naming the spool, ENOSPC and what to do about it.
func TestSpoolOnFullDisk(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	_, err = spoolChecked(context.Background(), bytes.NewReader(make([]byte, 4<<20)), full)
	if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "/dev/full") || !strings.Contains(err.Error(), "TMPDIR") {
		t.Fatalf("spool to a full disk: %v", err)
	}
}
