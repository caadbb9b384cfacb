package faultpoint

import (
	"os"
	"strings"
	"time"
)

// PauseEnv makes Hit sleep at a point: RWSNAP_PAUSE_AT=name=2s. Tests use
// it to hold a job at a known step (e.g. to stop a daemon mid-backup).
const PauseEnv = "RWSNAP_PAUSE_AT"

var pauseName, pauseFor = func() (string, time.Duration) {
	name, d, ok := strings.Cut(os.Getenv(PauseEnv), "=")
	if !ok {
		return "", 0
	}
	dur, err := time.ParseDuration(d)
	if err != nil {
		return "", 0
	}
	return name, dur
}()

func pause(name string) {
	if pauseName != "" && name == pauseName {
		time.Sleep(pauseFor)
	}
}
