package timetravel

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Hand computations (epoch = (unix_ms - 1617235200000) << 16):
//
//	2024-01-01T00:00:00Z     = 1704067200000 ms -> 86832000000 << 16 = 5690621952000000
//	2024-01-01T00:00:00.001Z = 86832000001 << 16 = 5690621952000000 + 65536 = 5690621952065536
//	2024-01-01T00:00:00+02   = 1704060000000 ms -> 86824800000 << 16 = 5690150092800000
//	2024-01-01T01:30:00Z     = 1704072600000 ms -> 86837400000 << 16 = 5690975846400000
const (
	jan1     = uint64(5690621952000000)
	jan1ms   = uint64(5690621952065536)
	jan1Plus = uint64(5690150092800000)
	jan1h130 = uint64(5690975846400000)
)

func TestParseTime(t *testing.T) {
	now := time.Date(2024, 1, 1, 2, 0, 0, 0, time.UTC)
	plus2 := time.FixedZone("EET", 2*3600)
	tests := []struct {
		in    string
		loc   *time.Location
		epoch uint64
	}{
		{"2024-01-01T00:00:00Z", time.UTC, jan1},
		{"2024-01-01T02:00:00+02:00", time.UTC, jan1},
		{"2024-01-01T00:00:00.001Z", time.UTC, jan1ms},
		{"2024-01-01 00:00:00+00", plus2, jan1},        // psql's timestamptz output
		{"2024-01-01 00:00+00:00", plus2, jan1},        // no seconds
		{"2024-01-01 01:00:00+0100", plus2, jan1},      // compact offset
		{"2024-01-01 05:30+05:30", plus2, jan1},        // half-hour zone
		{"2024-01-01 00:00:00.001 UTC", plus2, jan1ms}, // fraction and a zone name
		{"2023-12-31 19:00-05", plus2, jan1},
		{"2024-01-01 00:00", time.UTC, jan1},     // local = UTC
		{"2024-01-01 00:00", plus2, jan1Plus},    // local = UTC+2
		{"2024-01-01 00:00:00", plus2, jan1Plus}, // ditto with seconds
		{"2024-01-01", plus2, jan1Plus},          // local midnight
		{"2024-01-01T00:00", time.UTC, jan1},
		{"  2024-01-01 00:00Z  ", plus2, jan1},
		{"-2h", plus2, jan1},
		{"now-2h", plus2, jan1},
		{"now - 30m", plus2, jan1h130},
		{"2h ago", plus2, jan1},
		{"-1h30m30s", plus2, jan1 + 1_770_000<<16}, // 02:00 - 1:30:30 = 00:29:30
		{"-0.5h", plus2, jan1h130},
		{"now", plus2, jan1 + 7_200_000<<16},
		{"NOW", plus2, jan1 + 7_200_000<<16},
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.in, now, tt.loc)
		if err != nil {
			t.Errorf("ParseTime(%q): %v", tt.in, err)
			continue
		}
		if e := FromTime(got); e != tt.epoch {
			t.Errorf("ParseTime(%q) = %s, epoch %d, want %d", tt.in, got, e, tt.epoch)
		}
	}
	// -1d and -1w from 2024-01-08: one day is 86400000 << 16 = 5662310400000.
	week := time.Date(2024, 1, 8, 0, 0, 0, 0, time.UTC)
	if got, _ := ParseTime("-1w", week, time.UTC); FromTime(got) != jan1 {
		t.Errorf("-1w = %s", got)
	}
	if got, _ := ParseTime("-1d", week, time.UTC); FromTime(got) != jan1+6*5662310400000 {
		t.Errorf("-1d = %s", got)
	}
}

func TestParseTimeErrors(t *testing.T) {
	for _, in := range []string{"", "yesterday", "2024-13-01", "2024-02-30 10:00", "10:00", "2024-01-01 25:00",
		"2024/01/01", "-2x", "-", "now+2h", "2024-01-01 10:00 +99"} {
		_, err := ParseTime(in, time.Now(), time.UTC)
		if !errors.Is(err, ErrTimeFormat) {
			t.Errorf("ParseTime(%q) = %v, want ErrTimeFormat", in, err)
			continue
		}
		for _, want := range []string{"RFC 3339", "YYYY-MM-DD HH:MM", "-2h"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error for %q does not list format %q: %v", in, want, err)
			}
		}
	}
	before, err := ParseTime("2021-03-31 23:59:59Z", time.Now(), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EpochAt(before); !errors.Is(err, ErrBeforeRisingWave) {
		t.Errorf("EpochAt(before 2021-04-01) = %v", err)
	}
}

func TestParseEpoch(t *testing.T) {
	if e, err := ParseEpoch(" 5690621952000000 "); err != nil || e != jan1 {
		t.Fatalf("ParseEpoch = %d, %v", e, err)
	}
	tests := []struct {
		in      string
		nearest uint64
	}{
		{"5690621952000001", jan1},         // +1: rounds down
		{"5690621952032767", jan1},         // just below half
		{"5690621952032768", jan1},         // exactly half: down, to the epoch that was certainly committed
		{"5690621952032769", jan1ms},       // above half: up
		{"5690621952065535", jan1ms},       // one below the next
		{"18446744073709551615", MaxEpoch}, // u64::MAX: down to MAX_EPOCH, nothing above
		{"18446744073709486081", 18446744073709486080},
	}
	for _, tt := range tests {
		_, err := ParseEpoch(tt.in)
		var se *SpillError
		if !errors.As(err, &se) || se.Nearest != tt.nearest {
			t.Errorf("ParseEpoch(%s) = %v, want nearest %d", tt.in, err, tt.nearest)
			continue
		}
		if !strings.Contains(err.Error(), "not a committed epoch") {
			t.Errorf("message: %v", err)
		}
	}
	for _, in := range []string{"abc", "-1", "0", "18446744073709551616", "1e6"} {
		if _, err := ParseEpoch(in); err == nil {
			t.Errorf("ParseEpoch(%q) accepted", in)
		}
	}
}

func TestFormatTime(t *testing.T) {
	ts := ToTime(jan1ms)
	if got := FormatTime(ts, nil); got != "2024-01-01 00:00:00.001 UTC" {
		t.Errorf("FormatTime = %q", got)
	}
	if got := FormatTime(ts, time.UTC); got != "2024-01-01 00:00:00.001 UTC" {
		t.Errorf("FormatTime(UTC) = %q", got)
	}
	if got := FormatTime(ts, time.FixedZone("EET", 7200)); got != "2024-01-01 00:00:00.001 UTC (2024-01-01 02:00:00.001 EET)" {
		t.Errorf("FormatTime(EET) = %q", got)
	}
}
