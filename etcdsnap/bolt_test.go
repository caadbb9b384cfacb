package etcdsnap

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// makeBolt writes a database with go.etcd.io/bbolt: a large bucket (branch
// pages, overflow values) and a small inline one, in several transactions.
func makeBolt(t *testing.T) (string, map[string]map[string]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{"big": {}, "small": {}}
	for txn := range 3 {
		err := db.Update(func(tx *bolt.Tx) error {
			big, err := tx.CreateBucketIfNotExists([]byte("big"))
			if err != nil {
				return err
			}
			for i := range 2000 {
				k := fmt.Sprintf("k%05d", i*3+txn)
				v := strings.Repeat(string(rune('a'+i%26)), i%200)
				if i%500 == 7 {
					v = strings.Repeat("o", 3*4096+i) // an overflow page
				}
				if err := big.Put([]byte(k), []byte(v)); err != nil {
					return err
				}
				want["big"][k] = v
			}
			small, err := tx.CreateBucketIfNotExists([]byte("small")) // stays inline
			if err != nil {
				return err
			}
			k := fmt.Sprintf("s%d", txn)
			want["small"][k] = "v" + k
			return small.Put([]byte(k), []byte("v"+k))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path, want
}

func readBucket(t *testing.T, f *boltFile, name string) (map[string]string, error) {
	t.Helper()
	b, ok, err := f.findBucket(name)
	if err != nil || !ok {
		return nil, fmt.Errorf("bucket %s: found %v, %v", name, ok, err)
	}
	got := map[string]string{}
	var last []byte
	w := &walker{f: f}
	err = w.each(b, func(e leafElem) error {
		if last != nil && bytes.Compare(e.key, last) <= 0 {
			return fmt.Errorf("keys out of order: %q after %q", e.key, last)
		}
		last = bytes.Clone(e.key)
		// The value's file offset must point at the value itself.
		v := make([]byte, len(e.value))
		if _, err := f.r.ReadAt(v, e.valueOff); err != nil || !bytes.Equal(v, e.value) {
			return fmt.Errorf("value of %q not at offset %d", e.key, e.valueOff)
		}
		got[string(e.key)] = string(e.value)
		return nil
	})
	return got, err
}

// TestBoltReaderMatchesBbolt reads a database written by bbolt itself:
// branch pages, overflow values, an inline bucket.
func TestBoltReaderMatchesBbolt(t *testing.T) {
	path, want := makeBolt(t)
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	fi, _ := fh.Stat()
	f, err := openBolt(fh, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	for name, kv := range want {
		got, err := readBucket(t, f, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(kv) {
			t.Fatalf("%s: %d keys, bbolt wrote %d", name, len(got), len(kv))
		}
		for k, v := range kv {
			if got[k] != v {
				t.Fatalf("%s/%s: %d bytes, want %d", name, k, len(got[k]), len(v))
			}
		}
	}
	if b, _, _ := f.findBucket("small"); b.root != 0 {
		t.Fatal("the small bucket is not inline: the test does not cover inline buckets")
	}
}

// TestBoltMetaPages: a damaged meta page is skipped for the other (bbolt
// alternates them by txid), two damaged ones refuse the file, and pages
// out of range are refused.
func TestBoltMetaPages(t *testing.T) {
	path, want := makeBolt(t)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	open := func(b []byte) (*boltFile, error) { return openBolt(bytes.NewReader(b), int64(len(b))) }
	good, err := open(raw)
	if err != nil {
		t.Fatal(err)
	}
	ps := int(good.pageSize)
	newest := int(good.meta.txid % 2) // the page that holds the newest meta
	for _, damaged := range []int{0, 1} {
		b := bytes.Clone(raw)
		b[damaged*ps+pageHeaderSize+20] ^= 0xff // inside the meta, under its checksum
		f, err := open(b)
		if err != nil {
			t.Fatalf("meta page %d damaged: %v", damaged, err)
		}
		if damaged == newest && f.meta.txid != good.meta.txid-1 || damaged != newest && f.meta.txid != good.meta.txid {
			t.Fatalf("meta page %d damaged: txid %d, newest %d", damaged, f.meta.txid, good.meta.txid)
		}
		if damaged != newest {
			got, err := readBucket(t, f, "small")
			if err != nil || len(got) != len(want["small"]) {
				t.Fatalf("meta page %d damaged: %v, %v", damaged, got, err)
			}
		}
	}
	b := bytes.Clone(raw)
	b[pageHeaderSize+20] ^= 0xff
	b[ps+pageHeaderSize+20] ^= 0xff
	if _, err := open(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("both meta pages damaged: %v", err)
	}
	if _, err := open(raw[:len(raw)/2]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a truncated file: %v", err)
	}
	if _, err := good.readPage(good.meta.pgid, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a page past the high water mark: %v", err)
	}
}
