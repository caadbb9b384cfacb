package datacopy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/objstore"
)

// hookStore calls before on every Delete of SST objects (and records
// them), and can make PutIf of one key fail (a lock that cannot be
// refreshed).
type hookStore struct {
	objstore.Store
	mu       sync.Mutex
	before   func(keys []string)
	failPut  string
	deleted  []string
	putFails int
}

func (h *hookStore) Delete(ctx context.Context, keys ...string) error {
	h.mu.Lock()
	before := h.before
	h.mu.Unlock()
	if before != nil && len(keys) > 0 && strings.HasSuffix(keys[0], ".data") {
		before(keys)
	}
	err := h.Store.Delete(ctx, keys...)
	h.mu.Lock()
	for _, k := range keys {
		if strings.HasSuffix(k, ".data") {
			h.deleted = append(h.deleted, k)
		}
	}
	h.mu.Unlock()
	return err
}

func (h *hookStore) PutIf(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	h.mu.Lock()
	fail := h.failPut != "" && key == h.failPut && ifMatch != ""
	if fail {
		h.putFails++
	}
	h.mu.Unlock()
	if fail {
		return "", errors.New("injected: the bucket refuses writes")
	}
	return h.Store.PutIf(ctx, key, data, ifMatch)
}

// gcFixture: snapshot 1 references objects 1..3; objects 10..14 are in
// the copy, referenced by nothing (an earlier, deleted snapshot's).
func gcFixture(t *testing.T) (*fixture, *hookStore) {
	t.Helper()
	ctx := context.Background()
	f := newFixture(t, 1, 2, 3)
	hs := &hookStore{Store: f.backup.Store}
	f.data = NewLocation(hs, "backup/data")
	f.addEntry(t, 1, 1, 2, 3)
	m, _, err := f.backup.ReadManifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Backup(ctx, f.opts(), m.SnapshotMetadata); err != nil {
		t.Fatal(err)
	}
	for id := uint64(10); id < 15; id++ {
		if err := hs.Put(ctx, f.data.ObjectKey(id), sst(id)); err != nil {
			t.Fatal(err)
		}
	}
	return f, hs
}

func shortLockWindow(t *testing.T, d time.Duration) {
	old := gcLockStale
	gcLockStale = d
	t.Cleanup(func() { gcLockStale = old })
}

// A GC that runs longer than the lock's staleness window keeps its lock
// by refreshing it: another cleaner trying meanwhile is refused, and the
// GC completes. Without the heartbeat the second cleaner took the lock
// over as a dead process's.
func TestGCHeartbeatKeepsLockPastStaleWindow(t *testing.T) {
	shortLockWindow(t, 800*time.Millisecond)
	ctx := context.Background()
	f, hs := gcFixture(t)
	var other error
	first := true
	hs.before = func([]string) {
		if !first {
			return
		}
		first = false
		// Outlive the staleness window three times over, then let a
		// second cleaner try.
		time.Sleep(3 * gcLockStale)
		_, other = f.data.lockGC(ctx)
	}
	g, err := GC(ctx, f.data, f.backup, false, nil, nil)
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if !errors.Is(other, ErrGCRunning) {
		t.Fatalf("a second cleaner during a long GC got %v, want ErrGCRunning (the lock went stale)", other)
	}
	if fmt.Sprint(g.Objects) != "[10 11 12 13 14]" {
		t.Fatalf("GC deleted %v", g.Objects)
	}
	if _, err := hs.Stat(ctx, f.data.gcLockKey()); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("the lock is still there after the GC: %v", err)
	}
}

// A GC whose lock was taken over stops before its next delete, with an
// error naming the lost lock, and leaves the new holder's lock alone.
func TestGCStopsWhenLockTakenOver(t *testing.T) {
	shortLockWindow(t, time.Hour)
	ctx := context.Background()
	f, hs := gcFixture(t)
	first := true
	hs.before = func([]string) {
		if first {
			first = false
			// Another cleaner replaces the lock (as if it had judged it stale).
			if err := hs.Store.Put(ctx, f.data.gcLockKey(), []byte(`{"host":"other","pid":1}`)); err != nil {
				t.Error(err)
			}
		}
	}
	_, err := GC(ctx, f.data, f.backup, false, nil, nil)
	if !errors.Is(err, ErrGCLockLost) || !strings.Contains(err.Error(), "stopped before deleting objects") {
		t.Fatalf("GC after a takeover: %v, want ErrGCLockLost stopping before the next delete", err)
	}
	if n := len(hs.deleted); n != 1 {
		t.Fatalf("GC deleted %d objects after losing its lock: %v", n, hs.deleted)
	}
	if b, _, err := hs.Get(ctx, f.data.gcLockKey()); err != nil || !strings.Contains(string(b), "other") {
		t.Fatalf("the new holder's lock was touched: %q %v", b, err)
	}
	for id := uint64(1); id <= 3; id++ {
		if _, err := hs.Stat(ctx, f.data.ObjectKey(id)); err != nil {
			t.Fatalf("referenced object %d: %v", id, err)
		}
	}
}

// A GC that cannot refresh its lock for half the staleness window stops
// before its next delete.
func TestGCStopsWhenLockCannotBeRefreshed(t *testing.T) {
	shortLockWindow(t, 400*time.Millisecond)
	ctx := context.Background()
	f, hs := gcFixture(t)
	first := true
	hs.before = func([]string) {
		if first {
			first = false
			hs.mu.Lock()
			hs.failPut = f.data.gcLockKey()
			hs.mu.Unlock()
			// Heartbeats fail meanwhile: wait for one to have failed, then
			// for the window to pass.
			for {
				hs.mu.Lock()
				n := hs.putFails
				hs.mu.Unlock()
				if n > 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(gcLockStale)
		}
	}
	_, err := GC(ctx, f.data, f.backup, false, nil, nil)
	if !errors.Is(err, ErrGCLockLost) || !strings.Contains(err.Error(), "could not be refreshed") || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("GC with a lock it cannot refresh: %v", err)
	}
	if n := len(hs.deleted); n != 1 {
		t.Fatalf("GC deleted %d objects after its lock went unrefreshed: %v", n, hs.deleted)
	}
}

// A GC lock left by a killed process of this host is taken over at once
// (the rerun after a kill -9 need not wait out the window); one of a live
// process, or of another host, is not.
func TestGCLockOfDeadProcessIsTakenOver(t *testing.T) {
	ctx := context.Background()
	f, hs := gcFixture(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	for _, c := range []struct {
		host string
		pid  int
		free bool
	}{
		{host, dead.Process.Pid, true},
		{host, os.Getppid(), false},
		{"another-host", dead.Process.Pid, false},
	} {
		b, _ := json.Marshal(gcLockBody{Host: c.host, PID: c.pid, Started: time.Now()})
		if err := hs.Put(ctx, f.data.gcLockKey(), b); err != nil {
			t.Fatal(err)
		}
		g, err := f.data.lockGC(ctx)
		if c.free != (err == nil) {
			t.Fatalf("lock of %s pid %d: took it %v (%v), want %v", c.host, c.pid, err == nil, err, c.free)
		}
		if err == nil {
			g.release(ctx)
		} else if !errors.Is(err, ErrGCRunning) {
			t.Fatalf("lock of %s pid %d: %v", c.host, c.pid, err)
		}
	}
}
