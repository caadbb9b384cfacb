// Package timetravel turns wall-clock times into RisingWave epochs that some
// meta snapshot can serve, and runs queries pinned to them.
package timetravel

import "time"

// RisingWave's epoch (src/common/src/util/epoch.rs): milliseconds since
// 2021-04-01T00:00:00Z in the high 48 bits, a spill counter in the low 16.
const (
	unixRisingWaveDateMillis = 1_617_235_200_000
	physicalShift            = 16
	// SpillMask covers the low bits that are zero in committed epochs.
	SpillMask = 0xFFFF
	// MaxEpoch is u64::MAX with the spill bits cleared.
	MaxEpoch = ^uint64(0) &^ SpillMask
)

// FromTime returns the committed epoch of t (ms precision). Times before
// 2021-04-01 have no epoch; they map to 0 (INVALID_EPOCH).
func FromTime(t time.Time) uint64 {
	ms := t.UnixMilli()
	if ms < unixRisingWaveDateMillis {
		return 0
	}
	return uint64(ms-unixRisingWaveDateMillis) << physicalShift
}

// ToTime returns the wall-clock time of an epoch (UTC, ms precision).
func ToTime(epoch uint64) time.Time {
	return time.UnixMilli(int64(epoch>>physicalShift) + unixRisingWaveDateMillis).UTC()
}

// IsCommitted says whether the spill bits are zero, as in committed epochs.
func IsCommitted(epoch uint64) bool { return epoch&SpillMask == 0 }
