// Package faultpoint lets crash tests kill rwsnap at a named point, the
// way a power cut or `kill -9` would: no deferred cleanup runs.
//
// RWSNAP_CRASH_AT=name kills the process the first time Hit(name) runs;
// RWSNAP_CRASH_AT=name#N kills it the N-th time.
//
// RWSNAP_CRASH_STEP=prefix#N kills it at the N-th Hit of any point whose
// name starts with prefix (empty: every point): a test raises N from 1
// until the run completes, and so kills the process once at every step it
// takes, however many times each named point is passed. Unset, Hit costs
// one string comparison.
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

// StepEnv is the environment variable naming the crash step (prefix#N).
const StepEnv = "RWSNAP_CRASH_STEP"

var (
	once   sync.Once
	target string
	nth    = 1
	mu     sync.Mutex
	counts = map[string]int{}

	stepOn     bool
	stepPrefix string
	stepNth    int
	steps      int
)

func load() {
	v := os.Getenv(Env)
	if name, n, ok := strings.Cut(v, "#"); ok {
		if k, err := strconv.Atoi(n); err == nil && k > 0 {
			v, nth = name, k
		}
	}
	target = v
	if p, n, ok := strings.Cut(os.Getenv(StepEnv), "#"); ok {
		if k, err := strconv.Atoi(n); err == nil && k > 0 {
			stepOn, stepPrefix, stepNth = true, p, k
		}
	}
}

// Hit marks a crash point.
func Hit(name string) {
	pause(name)
	once.Do(load)
	if stepOn && strings.HasPrefix(name, stepPrefix) {
		mu.Lock()
		steps++
		c := steps
		mu.Unlock()
		if c == stepNth {
			kill()
		}
	}
	if target == "" || name != target {
		return
	}
	mu.Lock()
	counts[name]++
	c := counts[name]
	mu.Unlock()
	if c == nth {
		kill()
	}
}

// kill SIGKILLs the process: nothing deferred runs, buffers are not
// flushed.
func kill() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
