package timetravel

import (
	"testing"
	"time"
)

func TestEpochConversion(t *testing.T) {
	tests := []struct {
		time  string
		epoch uint64
	}{
		// (1704067200000 - 1617235200000) << 16 = 86832000000 * 65536, by hand.
		{"2024-01-01T00:00:00Z", 5690621952000000},
		{"2021-04-01T00:00:00Z", 0},
		{"2021-04-01T00:00:00.001Z", 65536},
		// 2026-11-20T10:00:00Z = 1795168800000 ms; minus base = 177933600000; * 65536:
		{"2026-11-20T10:00:00Z", 11661056409600000},
	}
	for _, tt := range tests {
		ts, err := time.Parse(time.RFC3339Nano, tt.time)
		if err != nil {
			t.Fatal(err)
		}
		if got := FromTime(ts); got != tt.epoch {
			t.Errorf("FromTime(%s) = %d, want %d", tt.time, got, tt.epoch)
		}
		if got := ToTime(tt.epoch); !got.Equal(ts) {
			t.Errorf("ToTime(%d) = %s, want %s", tt.epoch, got, tt.time)
		}
	}
	if FromTime(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) != 0 {
		t.Error("a time before 2021-04-01 must map to 0")
	}
	if IsCommitted(65537) || !IsCommitted(65536) || MaxEpoch != 18446744073709486080 {
		t.Error("spill bits")
	}
}
