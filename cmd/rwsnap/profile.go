package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

// cpuProfileEnv names a file to write a CPU profile of the whole run to
// (`go tool pprof -top bin/rwsnap FILE`): how docs/performance.md finds
// where the time goes.
const cpuProfileEnv = "RWSNAP_CPUPROFILE"

// startProfile starts the CPU profile if asked for; the returned function
// writes it out.
func startProfile() func() {
	path := os.Getenv(cpuProfileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rwsnap: %s: %v\n", cpuProfileEnv, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// memProfileEnv names a file to write the heap profile taken when the heap
// was largest (sampled every 100 ms): what holds the peak.
const memProfileEnv = "RWSNAP_MEMPROFILE"

func startMemProfile() func() {
	path := os.Getenv(memProfileEnv)
	if path == "" {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var peak uint64
		var best bytes.Buffer
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak {
				peak = ms.HeapInuse
				best.Reset()
				pprof.Lookup("heap").WriteTo(&best, 0)
			}
			select {
			case <-done:
				os.WriteFile(path, best.Bytes(), 0o644)
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
