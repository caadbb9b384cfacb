package main

import (
	"fmt"
	"os"
	"runtime/pprof"
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
