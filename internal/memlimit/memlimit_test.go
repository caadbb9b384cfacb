package memlimit

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestLimitFor(t *testing.T) {
	for _, tc := range []struct{ base, live, want int64 }{
		{88 << 20, 0, 88 << 20},
		{88 << 20, 50 << 20, 88 << 20},
		{88 << 20, 58 << 20, 88 << 20},
		{88 << 20, 60 << 20, 90 << 20},
		{88 << 20, 1 << 30, 3 << 29},
	} {
		if got := LimitFor(tc.base, tc.live); got != tc.want {
			t.Errorf("LimitFor(%d, %d) = %d, want %d", tc.base, tc.live, got, tc.want)
		}
	}
}

// A live heap larger than the base raises the limit after a collection,
// and stop removes it.
func TestStartFollowsTheLiveHeap(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	base := int64(8 << 20)
	stop := Start(base)
	if got := debug.SetMemoryLimit(-1); got != base {
		t.Fatalf("limit after Start = %d, want %d", got, base)
	}
	hold := make([][]byte, 0, 64)
	for range 64 {
		hold = append(hold, make([]byte, 1<<20)) // 64 MiB live
	}
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) < 64<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("limit %d after collections with 64 MiB live, want at least 64 MiB", debug.SetMemoryLimit(-1))
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(hold)
	stop()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("limit after stop = %d, want none", got)
	}
}

func TestGOMEMLIMITWins(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "1GiB")
	before := debug.SetMemoryLimit(-1)
	stop := Start(8 << 20)
	defer stop()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Fatalf("limit = %d with GOMEMLIMIT set, want it untouched (%d)", got, before)
	}
}
