// Package objstoretest is the behaviour every objstore.Store must share,
// run against each backend (memory, fs, and S3 on a real MinIO).
package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rwsnap/rwsnap/objstore"
)

// RunConformance runs the suite; newStore must return an empty store.
func RunConformance(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s objstore.Store)
	}{
		{"GetMissing", testGetMissing},
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"Stat", testStat},
		{"List", testList},
		{"Delete", testDelete},
		{"DeleteMany", testDeleteMany},
		{"PutIfCreate", testPutIfCreate},
		{"PutIfMatch", testPutIfMatch},
		{"PutIfConcurrent", testPutIfConcurrent},
		{"PutIfCreateConcurrent", testPutIfCreateConcurrent},
		{"CASCounter", testCASCounter},
		{"OpenStream", testOpenStream},
		{"PutChunks", testPutChunks},
		{"PutStream", testPutStream},
		{"Limits", testLimits},
		{"Identity", testIdentity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			tc.fn(t, s)
		})
	}
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustPut(t *testing.T, s objstore.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, data); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func mustGet(t *testing.T, s objstore.Store, key string) ([]byte, objstore.ObjectInfo) {
	t.Helper()
	data, info, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return data, info
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("%s: err = %v, want ErrNotFound", what, err)
	}
}

func wantPrecondition(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, objstore.ErrPreconditionFailed) {
		t.Fatalf("%s: err = %v, want ErrPreconditionFailed", what, err)
	}
}

func testGetMissing(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	_, _, err := s.Get(ctx, "missing/key")
	wantNotFound(t, "Get", err)
	_, err = s.Stat(ctx, "missing/key")
	wantNotFound(t, "Stat", err)
	_, _, err = s.Open(ctx, "missing/key")
	wantNotFound(t, "Open", err)
	// A "directory" holding other objects is not an object.
	mustPut(t, s, "dir/child", []byte("x"))
	_, _, err = s.Get(ctx, "dir")
	wantNotFound(t, "Get of a key prefix", err)
	_, err = s.Stat(ctx, "dir")
	wantNotFound(t, "Stat of a key prefix", err)
}

func testRoundTrip(t *testing.T, s objstore.Store) {
	cases := []struct {
		key  string
		data []byte
	}{
		{"a", []byte("hello")},
		{"backup/manifest.json", []byte(`{"manifest_id":1,"snapshot_metadata":[]}`)},
		{"backup/empty", []byte{}},
		{"hummock_001/17/1234.data", randBytes(5<<20, 1)},
		{"dir with space/x=1+y,z.json", []byte("odd characters")},
	}
	for _, c := range cases {
		mustPut(t, s, c.key, c.data)
	}
	for _, c := range cases {
		got, info := mustGet(t, s, c.key)
		if !bytes.Equal(got, c.data) {
			t.Errorf("Get(%q): %d bytes, want %d bytes equal to what was put", c.key, len(got), len(c.data))
		}
		if info.Key != c.key || info.Size != int64(len(c.data)) || info.ETag == "" {
			t.Errorf("Get(%q) info = %+v, want key, size %d, non-empty ETag", c.key, info, len(c.data))
		}
		if info.ModTime.IsZero() {
			t.Errorf("Get(%q) info has zero ModTime", c.key)
		}
	}
	// nil is an empty object too.
	mustPut(t, s, "nil", nil)
	if got, info := mustGet(t, s, "nil"); len(got) != 0 || info.Size != 0 {
		t.Errorf("Get(nil object) = %d bytes, size %d", len(got), info.Size)
	}
	// The store must not keep the caller's slice.
	buf := []byte("original")
	mustPut(t, s, "alias", buf)
	copy(buf, "CHANGED!")
	if got, _ := mustGet(t, s, "alias"); string(got) != "original" {
		t.Errorf("Get after caller mutated its slice = %q", got)
	}
}

func testOverwrite(t *testing.T, s objstore.Store) {
	mustPut(t, s, "k", []byte("version one"))
	_, i1 := mustGet(t, s, "k")
	mustPut(t, s, "k", []byte("version 2"))
	got, i2 := mustGet(t, s, "k")
	if string(got) != "version 2" || i2.Size != 9 {
		t.Fatalf("after overwrite Get = %q (size %d)", got, i2.Size)
	}
	if i1.ETag == i2.ETag {
		t.Fatalf("ETag unchanged by an overwrite with other bytes: %q", i1.ETag)
	}
}

func testStat(t *testing.T, s objstore.Store) {
	data := randBytes(12345, 2)
	mustPut(t, s, "x/y/z.bin", data)
	_, gi := mustGet(t, s, "x/y/z.bin")
	si, err := s.Stat(context.Background(), "x/y/z.bin")
	if err != nil {
		t.Fatal(err)
	}
	if si.Key != "x/y/z.bin" || si.Size != int64(len(data)) || si.ETag != gi.ETag {
		t.Fatalf("Stat = %+v, Get info = %+v", si, gi)
	}
}

func keysOf(infos []objstore.ObjectInfo) []string {
	keys := make([]string, len(infos))
	for i, o := range infos {
		keys[i] = o.Key
	}
	return keys
}

func testList(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	all := []string{
		"dir/a", "dir/b/c", "dir/b/d/e", "dir/b-x", "dir/z",
		"dir2/x", "dirx", "other", "dir-y/q",
	}
	shuffled := slices.Clone(all)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for i, k := range shuffled {
		mustPut(t, s, k, bytes.Repeat([]byte{'x'}, i))
	}
	sorted := slices.Clone(all)
	slices.Sort(sorted)
	filter := func(prefix string) []string {
		var out []string
		for _, k := range sorted {
			if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
				out = append(out, k)
			}
		}
		return out
	}
	for _, prefix := range []string{"", "dir/", "dir", "dir/b", "dir/b/", "dir/b/d/e", "d", "nothing/", "nothing", "dir/b/d/e/f"} {
		got, err := s.List(ctx, prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		if want := filter(prefix); !slices.Equal(keysOf(got), want) {
			t.Errorf("List(%q) = %q, want %q", prefix, keysOf(got), want)
		}
	}
	got, err := s.List(ctx, "dir/b/")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range got {
		want := int64(slices.Index(shuffled, o.Key))
		if o.Size != want || o.ETag == "" {
			t.Errorf("List entry %+v, want size %d and an ETag", o, want)
		}
		st, err := s.Stat(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		if st.ETag != o.ETag {
			t.Errorf("List ETag %q != Stat ETag %q for %q", o.ETag, st.ETag, o.Key)
		}
	}
}

func testDelete(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	for _, k := range []string{"d/1", "d/2", "d/3", "e/1"} {
		mustPut(t, s, k, []byte(k))
	}
	if err := s.Delete(ctx, "d/1", "d/3", "d/never-existed", "nodir/x"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ctx); err != nil {
		t.Fatalf("Delete(): %v", err)
	}
	if err := s.Delete(ctx, "d/1"); err != nil {
		t.Fatalf("Delete of an already deleted key: %v", err)
	}
	_, _, err := s.Get(ctx, "d/1")
	wantNotFound(t, "Get after Delete", err)
	got, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"d/2", "e/1"}; !slices.Equal(keysOf(got), want) {
		t.Fatalf("List after Delete = %q, want %q", keysOf(got), want)
	}
	// Deleted keys can be written again.
	mustPut(t, s, "d/1", []byte("again"))
	if got, _ := mustGet(t, s, "d/1"); string(got) != "again" {
		t.Fatalf("Get after re-create = %q", got)
	}
}

// testDeleteMany crosses S3's 1000-keys-per-request DeleteObjects limit.
func testDeleteMany(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	const n = 1100
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("many/%04d.data", i)
	}
	parallel(t, 16, n, func(i int) error { return s.Put(ctx, keys[i], []byte(keys[i])) })
	mustPut(t, s, "many-keep", []byte("keep"))
	got, err := s.List(ctx, "many/")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("List = %d objects, want %d", len(got), n)
	}
	if err := s.Delete(ctx, append(keys, "many/missing")...); err != nil {
		t.Fatalf("Delete(%d keys): %v", n+1, err)
	}
	got, err = s.List(ctx, "many")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"many-keep"}; !slices.Equal(keysOf(got), want) {
		t.Fatalf("List after deleting %d keys = %d keys (first %q), want %q", n, len(got), keysOf(got)[:min(3, len(got))], want)
	}
}

// parallel runs fn(0..n-1) on workers goroutines and fails on the first error.
func parallel(t *testing.T, workers, n int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

func testPutIfCreate(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	tag, err := s.PutIf(ctx, "backup/manifest.json", []byte("first"), "")
	if err != nil {
		t.Fatalf("create-only PutIf on a missing key: %v", err)
	}
	if tag == "" {
		t.Fatal("PutIf returned an empty ETag")
	}
	got, info := mustGet(t, s, "backup/manifest.json")
	if string(got) != "first" || info.ETag != tag {
		t.Fatalf("Get = %q tag %q, want \"first\" tag %q", got, info.ETag, tag)
	}
	_, err = s.PutIf(ctx, "backup/manifest.json", []byte("second"), "")
	wantPrecondition(t, "second create-only PutIf", err)
	if got, _ := mustGet(t, s, "backup/manifest.json"); string(got) != "first" {
		t.Fatalf("failed PutIf changed the object to %q", got)
	}
	// An empty object can be created conditionally too.
	if _, err := s.PutIf(ctx, "empty", nil, ""); err != nil {
		t.Fatalf("create-only PutIf of an empty object: %v", err)
	}
}

func testPutIfMatch(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	mustPut(t, s, "m", []byte("v1"))
	_, i1 := mustGet(t, s, "m")
	t2, err := s.PutIf(ctx, "m", []byte("v2 longer"), i1.ETag)
	if err != nil {
		t.Fatalf("PutIf with the current ETag: %v", err)
	}
	if t2 == i1.ETag {
		t.Fatalf("PutIf returned the old ETag %q", t2)
	}
	_, err = s.PutIf(ctx, "m", []byte("v3 from a stale reader"), i1.ETag)
	wantPrecondition(t, "PutIf with a stale ETag", err)
	t3, err := s.PutIf(ctx, "m", []byte("v3"), t2)
	if err != nil {
		t.Fatalf("PutIf with the fresh ETag: %v", err)
	}
	got, info := mustGet(t, s, "m")
	if string(got) != "v3" || info.ETag != t3 {
		t.Fatalf("Get = %q tag %q, want \"v3\" tag %q", got, info.ETag, t3)
	}
	// An ETag from Stat works as well.
	st, err := s.Stat(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutIf(ctx, "m", []byte("v4"), st.ETag); err != nil {
		t.Fatalf("PutIf with Stat's ETag: %v", err)
	}
	// A plain Put in between invalidates the tag.
	_, i4 := mustGet(t, s, "m")
	mustPut(t, s, "m", []byte("v5 by someone else"))
	_, err = s.PutIf(ctx, "m", []byte("v6"), i4.ETag)
	wantPrecondition(t, "PutIf after a concurrent Put", err)
	// If-Match on a missing object fails: it changed (was deleted).
	_, err = s.PutIf(ctx, "never", []byte("x"), i4.ETag)
	wantPrecondition(t, "PutIf with an ETag on a missing key", err)
	_, i5 := mustGet(t, s, "m")
	if err := s.Delete(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	_, err = s.PutIf(ctx, "m", []byte("v7"), i5.ETag)
	wantPrecondition(t, "PutIf with an ETag on a deleted key", err)
	if _, _, err := s.Get(ctx, "m"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("failed PutIf re-created the deleted key: %v", err)
	}
}

// testPutIfConcurrent: 8 writers holding the same ETag, exactly one wins.
func testPutIfConcurrent(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	for round := range 5 {
		key := "race/" + strconv.Itoa(round)
		mustPut(t, s, key, []byte("start"))
		_, start := mustGet(t, s, key)
		winners := runRace(t, 8, func(i int) (string, error) {
			return s.PutIf(ctx, key, []byte("writer "+strconv.Itoa(i)), start.ETag)
		})
		checkOneWinner(t, s, key, winners)
	}
}

func testPutIfCreateConcurrent(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	for round := range 5 {
		key := "create-race/" + strconv.Itoa(round)
		winners := runRace(t, 8, func(i int) (string, error) {
			return s.PutIf(ctx, key, []byte("writer "+strconv.Itoa(i)), "")
		})
		checkOneWinner(t, s, key, winners)
	}
}

type win struct {
	writer int
	etag   string
}

func runRace(t *testing.T, n int, put func(i int) (string, error)) []win {
	t.Helper()
	var (
		mu      sync.Mutex
		winners []win
		wg      sync.WaitGroup
		startGo = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-startGo
			tag, err := put(i)
			switch {
			case err == nil:
				mu.Lock()
				winners = append(winners, win{i, tag})
				mu.Unlock()
			case !errors.Is(err, objstore.ErrPreconditionFailed):
				t.Errorf("writer %d: %v", i, err)
			}
		})
	}
	close(startGo)
	wg.Wait()
	return winners
}

func checkOneWinner(t *testing.T, s objstore.Store, key string, winners []win) {
	t.Helper()
	if len(winners) != 1 {
		t.Fatalf("%s: %d PutIf calls won, want exactly 1: %+v", key, len(winners), winners)
	}
	got, info := mustGet(t, s, key)
	if want := "writer " + strconv.Itoa(winners[0].writer); string(got) != want || info.ETag != winners[0].etag {
		t.Fatalf("%s: Get = %q tag %q, want the winner's %q tag %q", key, got, info.ETag, want, winners[0].etag)
	}
}

// testCASCounter: read-modify-PutIf loops from 8 goroutines lose no update.
func testCASCounter(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	const workers, each = 8, 5
	if _, err := s.PutIf(ctx, "counter", []byte("0"), ""); err != nil {
		t.Fatal(err)
	}
	parallel(t, workers, workers*each, func(int) error {
		return Increment(ctx, s, "counter")
	})
	got, _ := mustGet(t, s, "counter")
	if string(got) != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %s, want %d", got, workers*each)
	}
}

// Increment adds one to a decimal counter object with compare-and-swap,
// retrying on ErrPreconditionFailed. Exported for cross-process tests.
func Increment(ctx context.Context, s objstore.Store, key string) error {
	for attempt := 0; ; attempt++ {
		data, info, err := s.Get(ctx, key)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(string(data))
		if err != nil {
			return fmt.Errorf("counter %q holds %q: %w", key, data, err)
		}
		_, err = s.PutIf(ctx, key, []byte(strconv.Itoa(n+1)), info.ETag)
		if err == nil {
			return nil
		}
		if !errors.Is(err, objstore.ErrPreconditionFailed) || attempt > 1000 {
			return err
		}
	}
}

func testOpenStream(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	data := randBytes(3<<20+17, 3)
	mustPut(t, s, "stream/obj", data)
	rc, info, err := s.Open(ctx, "stream/obj")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if info.Size != int64(len(data)) || info.ETag == "" || info.Key != "stream/obj" {
		t.Fatalf("Open info = %+v", info)
	}
	// Read in small pieces, as a streaming consumer would.
	var got bytes.Buffer
	buf := make([]byte, 4093)
	for {
		n, err := rc.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read after %d bytes: %v", got.Len(), err)
		}
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("streamed %d bytes, differing from the %d put", got.Len(), len(data))
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The tag seen by Open is the one Get and PutIf use.
	if _, err := s.PutIf(ctx, "stream/obj", []byte("next"), info.ETag); err != nil {
		t.Fatalf("PutIf with Open's ETag: %v", err)
	}
}

func testIdentity(t *testing.T, s objstore.Store) {
	switch s.Scheme() {
	case "fs", "s3", "minio", "memory":
	default:
		t.Errorf("Scheme() = %q", s.Scheme())
	}
	if s.String() == "" {
		t.Error("String() is empty")
	}
	if got := objstore.Redact(s.String()); got != s.String() {
		t.Errorf("String() = %q holds a secret (redacted: %q)", s.String(), got)
	}
}

// testPutChunks: an object written from many buffers (empty ones, tiny
// ones, a large one) reads back as their concatenation.
func testPutChunks(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	chunks := [][]byte{[]byte("head"), {}, randBytes(3<<20, 7), []byte("x"), {}, randBytes(1000, 8)}
	for i := 0; i < 500; i++ {
		chunks = append(chunks, []byte{byte(i)})
	}
	if err := objstore.PutChunks(ctx, s, "chunks/obj", chunks); err != nil {
		t.Fatal(err)
	}
	got, info, err := s.Get(ctx, "chunks/obj")
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Join(chunks, nil)
	if !bytes.Equal(got, want) || info.Size != int64(len(want)) {
		t.Fatalf("read back %d bytes (size %d), want %d", len(got), info.Size, len(want))
	}
}

// testPutStream: an object written as a stream (in small and odd-sized
// writes, past one S3 part) reads back whole; a stream that fails, before
// or after its first part went out, stores nothing and leaves the old
// object in place.
func testPutStream(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	for _, size := range []int{0, 1000, 20<<20 + 17} {
		want := randBytes(size, uint64(size))
		err := objstore.PutStream(ctx, s, "stream/obj", func(w io.Writer) error {
			for b := want; len(b) > 0; {
				n := min(len(b), 1+len(b)%70001)
				if _, err := w.Write(b[:n]); err != nil {
					return err
				}
				b = b[n:]
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		got, info, err := s.Get(ctx, "stream/obj")
		if err != nil || !bytes.Equal(got, want) || info.Size != int64(size) {
			t.Fatalf("%d bytes: read back %d bytes (size %d): %v", size, len(got), info.Size, err)
		}
	}
	before, _, _ := s.Get(ctx, "stream/obj")
	boom := errors.New("the source failed")
	for _, after := range []int{10, 9 << 20} {
		err := objstore.PutStream(ctx, s, "stream/obj", func(w io.Writer) error {
			if _, err := w.Write(randBytes(after, 3)); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("failed stream after %d bytes: err = %v", after, err)
		}
		if got, _, err := s.Get(ctx, "stream/obj"); err != nil || !bytes.Equal(got, before) {
			t.Fatalf("failed stream after %d bytes replaced the object (%d bytes, %v)", after, len(got), err)
		}
		err = objstore.PutStream(ctx, s, "stream/new", func(w io.Writer) error {
			w.Write(randBytes(after, 4))
			return boom
		})
		if _, _, gerr := s.Get(ctx, "stream/new"); !errors.Is(err, boom) || !errors.Is(gerr, objstore.ErrNotFound) {
			t.Fatalf("failed stream after %d bytes stored an object: %v, %v", after, err, gerr)
		}
	}
	objs, err := s.List(ctx, "stream/")
	if err != nil || len(objs) != 1 {
		t.Fatalf("list after failed streams: %v %v", objs, err)
	}
}

// testLimits: an object over a limit is refused by its size, before it is
// read, with ErrTooLarge naming it.
func testLimits(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	mustPut(t, s, "lim/obj", randBytes(5000, 9))
	if _, _, err := objstore.GetLimited(ctx, s, "lim/obj", 4999); !errors.Is(err, objstore.ErrTooLarge) || !strings.Contains(err.Error(), "lim/obj") {
		t.Fatalf("GetLimited over the limit: %v", err)
	}
	if rc, _, err := objstore.OpenLimited(ctx, s, "lim/obj", 4096); !errors.Is(err, objstore.ErrTooLarge) {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("OpenLimited over the limit: %v", err)
	}
	b, _, err := objstore.GetLimited(ctx, s, "lim/obj", 5000)
	if err != nil || len(b) != 5000 {
		t.Fatalf("GetLimited at the limit: %d bytes, %v", len(b), err)
	}
	old := objstore.MaxGetBytes
	objstore.MaxGetBytes = 4000
	defer func() { objstore.MaxGetBytes = old }()
	if _, _, err := s.Get(ctx, "lim/obj"); !errors.Is(err, objstore.ErrTooLarge) {
		t.Fatalf("Get past MaxGetBytes: %v", err)
	}
}
