// Package timetravel turns wall-clock times into RisingWave epochs that some
// meta snapshot can serve, and runs queries pinned to them.
package timetravel

import (
	"time"

	"github.com/rwsnap/rwsnap/hummock"
)

// RisingWave's epoch (src/common/src/util/epoch.rs): milliseconds since
// 2021-04-01T00:00:00Z in the high 48 bits, a spill counter in the low 16.
const (
	// SpillMask covers the low bits that are zero in committed epochs.
	SpillMask = 0xFFFF
	// MaxEpoch is u64::MAX with the spill bits cleared.
	MaxEpoch = ^uint64(0) &^ SpillMask
)

// FromTime returns the committed epoch of t (ms precision). Times before
// 2021-04-01 have no epoch; they map to 0 (INVALID_EPOCH).
func FromTime(t time.Time) uint64 { return hummock.TimeEpoch(t) }

// ToTime returns the wall-clock time of an epoch (UTC, ms precision).
func ToTime(epoch uint64) time.Time { return hummock.EpochTime(epoch) }

// IsCommitted says whether the spill bits are zero, as in committed epochs.
func IsCommitted(epoch uint64) bool { return epoch&SpillMask == 0 }
