package timetravel

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// TimeFormats describes what ParseTime accepts, for help texts and errors.
const TimeFormats = `RFC 3339 (2026-11-20T10:00:00Z, 2026-11-20T11:00:00+01:00); ` +
	`'YYYY-MM-DD HH:MM[:SS[.fff]][±TZ]' as psql prints it (2026-11-20 10:00, 2026-11-20 10:00:00+00, ` +
	`2026-11-20 10:00:00.250+05:30; without a zone it is local time); a date (2026-11-20, local midnight); ` +
	`'now'; or relative to now (-2h, -30m, -1d12h, now-90s, '2h ago'; units ms s m h d w)`

// ErrTimeFormat marks a time nobody could parse; the message lists the formats.
var ErrTimeFormat = errors.New("unrecognised time")

// ErrBeforeRisingWave marks times before 2021-04-01T00:00:00Z, which have no epoch.
var ErrBeforeRisingWave = errors.New("time is before RisingWave's epoch origin 2021-04-01 00:00:00 UTC")

// psqlTime matches date [time] [zone]; psql prints timestamptz as
// "2026-11-20 10:00:00+00", so a two-digit offset must work.
var psqlTime = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})` +
	`(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?` +
	`\s*(Z|z|UTC|utc|GMT|[+-]\d{2}(?::?\d{2})?)?$`)

// ParseTime reads a time as people type it into psql or a shell. now anchors
// relative times; loc is the zone of times written without one (time.Local
// for the CLI).
func ParseTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return time.Time{}, fmt.Errorf("%w: empty time; use %s", ErrTimeFormat, TimeFormats)
	}
	if t, ok := parseRelative(in, now); ok {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, in); err == nil {
		return t, nil
	}
	if t, ok := parseWall(in, loc); ok {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w %q; use %s", ErrTimeFormat, s, TimeFormats)
}

func parseWall(in string, loc *time.Location) (time.Time, bool) {
	m := psqlTime.FindStringSubmatch(in)
	if m == nil {
		return time.Time{}, false
	}
	num := func(s string) int {
		if s == "" {
			return 0
		}
		n, _ := strconv.Atoi(s)
		return n
	}
	year, month, day := num(m[1]), num(m[2]), num(m[3])
	hour, minute, sec := num(m[4]), num(m[5]), num(m[6])
	nsec := 0
	if m[7] != "" {
		nsec = num((m[7] + "000000000")[:9])
	}
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	zone := loc
	switch z := m[8]; {
	case z == "":
	case strings.EqualFold(z, "Z") || strings.EqualFold(z, "UTC") || strings.EqualFold(z, "GMT"):
		zone = time.UTC
	default:
		sign := 1
		if z[0] == '-' {
			sign = -1
		}
		digits := strings.ReplaceAll(z[1:], ":", "")
		h := num(digits[:2])
		mm := 0
		if len(digits) == 4 {
			mm = num(digits[2:])
		}
		if h > 15 || mm > 59 {
			return time.Time{}, false
		}
		zone = time.FixedZone(z, sign*(h*3600+mm*60))
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, zone)
	if t.Day() != day { // time.Date normalises Feb 30 to March; refuse instead
		return time.Time{}, false
	}
	return t, true
}

var relativePart = regexp.MustCompile(`^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)`)

// parseRelative handles now, -2h, now-2h, "now - 2h" and "2h ago".
func parseRelative(in string, now time.Time) (time.Time, bool) {
	s := strings.ToLower(strings.Join(strings.Fields(in), ""))
	if s == "now" {
		return now, true
	}
	switch {
	case strings.HasPrefix(s, "now-"):
		s = s[len("now-"):]
	case strings.HasPrefix(s, "-"):
		s = s[1:]
	case strings.HasSuffix(s, "ago"):
		s = strings.TrimSuffix(s, "ago")
	default:
		return time.Time{}, false
	}
	d, ok := parseDuration(s)
	if !ok {
		return time.Time{}, false
	}
	return now.Add(-d), true
}

// parseDuration is time.ParseDuration plus days and weeks, which is how
// people say "yesterday" in a flag.
func parseDuration(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	units := map[string]float64{"ms": float64(time.Millisecond), "s": float64(time.Second), "m": float64(time.Minute),
		"h": float64(time.Hour), "d": float64(24 * time.Hour), "w": float64(7 * 24 * time.Hour)}
	var total float64
	for s != "" {
		m := relativePart.FindStringSubmatch(s)
		if m == nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, false
		}
		total += v * units[m[2]]
		s = s[len(m[0]):]
	}
	if total > math.MaxInt64 {
		return 0, false
	}
	return time.Duration(total), true
}

// EpochAt converts a parsed time to its committed epoch, refusing times
// that have none.
func EpochAt(t time.Time) (uint64, error) {
	e := FromTime(t)
	if e == 0 {
		return 0, fmt.Errorf("%s: %w", FormatTime(t, nil), ErrBeforeRisingWave)
	}
	return e, nil
}

// SpillError says an epoch has non-zero low 16 bits, so it is not an epoch
// any snapshot committed; Nearest is the closest committed epoch.
type SpillError struct {
	Epoch, Nearest uint64
}

func (e *SpillError) Error() string {
	return fmt.Sprintf("epoch %d is not a committed epoch (its low 16 bits are %d, committed epochs have them 0); "+
		"the nearest committed epoch is %d (%s)", e.Epoch, e.Epoch&SpillMask, e.Nearest, FormatTime(ToTime(e.Nearest), nil))
}

// ParseEpoch reads a decimal epoch and refuses ones with spill bits.
func ParseEpoch(s string) (uint64, error) {
	e, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("epoch %q is not an unsigned 64-bit integer: %w", s, err)
	}
	if e == 0 {
		return 0, fmt.Errorf("epoch 0 means \"latest data\" to RisingWave, not a point in time")
	}
	if err := CheckCommitted(e); err != nil {
		return 0, err
	}
	return e, nil
}

// CheckCommitted returns a *SpillError when e is not a committed epoch.
func CheckCommitted(e uint64) error {
	if IsCommitted(e) {
		return nil
	}
	return &SpillError{Epoch: e, Nearest: NearestCommitted(e)}
}

// NearestCommitted rounds e to the closest epoch with zero spill bits
// (halfway rounds down, to the one that certainly existed).
func NearestCommitted(e uint64) uint64 {
	lo := e &^ SpillMask
	if e&SpillMask <= (SpillMask+1)/2 || lo == MaxEpoch {
		return lo
	}
	return lo + SpillMask + 1
}

// FormatTime renders t in UTC, plus in loc when that differs (nil: UTC only).
func FormatTime(t time.Time, loc *time.Location) string {
	const layout = "2006-01-02 15:04:05.000"
	s := t.UTC().Format(layout) + " UTC"
	if loc != nil {
		lt := t.In(loc)
		if name, off := lt.Zone(); off != 0 || name != "UTC" && name != "GMT" {
			s += " (" + lt.Format(layout+" MST") + ")"
		}
	}
	return s
}
