package objstore

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The lock-file fallback (used where a directory cannot be flocked)
// excludes concurrent holders and breaks locks left by a crash.
func TestLockFile(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var mu sync.Mutex
	inside, maxInside := 0, 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				unlock, err := lockFile(ctx, dir)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inside++
				maxInside = max(maxInside, inside)
				mu.Unlock()
				time.Sleep(100 * time.Microsecond)
				mu.Lock()
				inside--
				mu.Unlock()
				unlock()
			}
		})
	}
	wg.Wait()
	if maxInside != 1 {
		t.Fatalf("%d holders at once", maxInside)
	}

	// A stale lock is broken; a fresh one makes the waiter honour ctx.
	name := filepath.Join(dir, ".rwsnap.lock")
	if err := os.WriteFile(name, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := lockFile(short, dir); err == nil {
		t.Fatal("took a lock that is held")
	}
	old := time.Now().Add(-2 * lockFileStale)
	if err := os.Chtimes(name, old, old); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockFile(ctx, dir)
	if err != nil {
		t.Fatalf("stale lock not broken: %v", err)
	}
	unlock()
}
