// Package faultpoint lets crash tests kill rwsnap at a named point, the
// way a power cut or `kill -9` would: no deferred cleanup runs.
//
// RWSNAP_CRASH_AT=name kills the process the first time Hit(name) runs;
// RWSNAP_CRASH_AT=name#N kills it the N-th time. Unset, Hit costs one
// string comparison.
package faultpoint

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Env is the environment variable naming the crash point.
const Env = "RWSNAP_CRASH_AT"

var (
	once   sync.Once
	target string
	nth    = 1
	mu     sync.Mutex
	counts = map[string]int{}
)

func load() {
	v := os.Getenv(Env)
	if name, n, ok := strings.Cut(v, "#"); ok {
		if k, err := strconv.Atoi(n); err == nil && k > 0 {
			v, nth = name, k
		}
	}
	target = v
}

// Hit marks a crash point.
func Hit(name string) {
	pause(name)
	once.Do(load)
	if target == "" || name != target {
		return
	}
	mu.Lock()
	counts[name]++
	c := counts[name]
	mu.Unlock()
	if c == nth {
		// SIGKILL ourselves: nothing deferred runs, buffers are not flushed.
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}
