// Package memlimit keeps rwsnap's memory near what its streaming needs.
//
// Go's collector lets the heap grow to twice the live data before it runs
// (GOGC=100). A backup or restore streams: its live data is a few fixed
// buffers (S3 parts, etcd chunks, the read-ahead budget), so that doubling
// is most of its peak RSS. A soft memory limit makes the collector run
// before the heap passes it, but a limit below the live data would make it
// run continuously; after every collection the limit is therefore raised to
// one and a half times the live heap when that is higher than the base, so
// a process that legitimately holds more (a large hummock version or
// manifest) collects at about GOGC=50's pace, never in a loop. GOMEMLIMIT,
// when set, is the operator's choice and is left alone.
package memlimit

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Base is the default limit: with the binary's own pages it keeps a
// streaming command's peak RSS under 128 MiB.
const Base = 88 << 20

// Start sets the soft limit to base (raised with the live heap, see the
// package comment) unless GOMEMLIMIT is set. stop restores no limit.
func Start(base int64) (stop func()) {
	if os.Getenv("GOMEMLIMIT") != "" || base <= 0 {
		return func() {}
	}
	t := &tuner{base: base}
	debug.SetMemoryLimit(base)
	t.arm()
	return func() {
		t.stopped.Store(true)
		debug.SetMemoryLimit(math.MaxInt64)
	}
}

type tuner struct {
	base    int64
	stopped atomic.Bool
	sample  [1]metrics.Sample
}

// sentinel is allocated so that the collector finds it unreachable at the
// next cycle: its finalizer runs once per collection. It holds a pointer so
// the tiny allocator cannot batch it with other objects.
type sentinel struct{ t *tuner }

func (t *tuner) arm() {
	runtime.SetFinalizer(&sentinel{t: t}, func(s *sentinel) {
		if s.t.stopped.Load() {
			return
		}
		s.t.adjust()
		s.t.arm()
	})
}

// adjust sets the limit for the live heap just measured.
func (t *tuner) adjust() {
	debug.SetMemoryLimit(LimitFor(t.base, t.live()))
}

func (t *tuner) live() int64 {
	t.sample[0].Name = "/gc/heap/live:bytes"
	metrics.Read(t.sample[:])
	if t.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(t.sample[0].Value.Uint64())
}

// LimitFor is the limit for a live heap of live bytes: base, or one and a
// half times live when that is higher.
func LimitFor(base, live int64) int64 {
	return max(base, live+live/2)
}
