package timetravel

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNoSnapshots means there is nothing to travel to.
var ErrNoSnapshots = errors.New("no meta snapshot serves any epoch (take one first: rwsnap meta backup-meta)")

// Choice is an epoch rwsnap will pin a session to, and why it is valid.
type Choice struct {
	Epoch uint64
	// Requested is the asked-for time (zero for --epoch and --snapshot).
	Requested time.Time
	// Exact is false when Requested fell between two snapshots' ranges and
	// the latest earlier covered epoch was taken instead.
	Exact bool
	// Range is the first snapshot range (manifest order) holding Epoch: the
	// snapshot RisingWave's BackupReader will read.
	Range Range
	Table *uint32
}

// Time is the wall-clock time of the chosen epoch.
func (c *Choice) Time() time.Time { return ToTime(c.Epoch) }

// RangeError lists the covered ranges when a time or epoch has no snapshot.
type RangeError struct {
	What   string // e.g. "2026-11-20 10:00:00.000 UTC (epoch 1166...)"
	Table  *uint32
	Ranges []Range
	Loc    *time.Location
}

func (e *RangeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no meta snapshot covers %s", e.What)
	if e.Table != nil {
		fmt.Fprintf(&b, " for table %d", *e.Table)
	}
	if len(e.Ranges) == 0 {
		b.WriteString("; no snapshot serves any epoch")
		if e.Table != nil {
			b.WriteString(" of that table")
		}
		return b.String()
	}
	b.WriteString("; covered ranges (RisingWave serves QUERY_EPOCH only inside one):")
	for _, r := range e.Ranges {
		b.WriteString("\n  ")
		b.WriteString(FormatRange(r, nil)) // UTC only: one line per range stays readable
	}
	return b.String()
}

// FormatRange renders a range as times, with its epochs.
func FormatRange(r Range, loc *time.Location) string {
	rule := ""
	if r.PerTable {
		rule = ", per-table"
	}
	return fmt.Sprintf("snapshot %d: %s .. %s (epochs %d..%d%s)", r.SnapshotID,
		FormatTime(ToTime(r.Lo), loc), FormatTime(ToTime(r.Hi), loc), r.Lo, r.Hi, rule)
}

// Ranges lists the servable ranges in manifest order.
func (c *Catalog) Ranges(table *uint32) []Range {
	var out []Range
	for _, s := range c.Snapshots {
		if r, ok := s.Range(table); ok {
			out = append(out, r)
		}
	}
	return out
}

// serving returns the first range holding e, as BackupReader picks it.
func (c *Catalog) serving(e uint64, table *uint32) (Range, bool) {
	for _, r := range c.Ranges(table) {
		if r.Contains(e) {
			return r, true
		}
	}
	return Range{}, false
}

// ChooseTime picks the latest committed epoch at or before t that some
// snapshot serves. A time inside a range maps to its own epoch; a time in a
// gap between ranges maps to the end of the latest earlier range (Exact
// false); a time before every range or after all of them is refused,
// because no snapshot knows the data then.
func (c *Catalog) ChooseTime(t time.Time, table *uint32, loc *time.Location) (*Choice, error) {
	target, err := EpochAt(t)
	if err != nil {
		return nil, err
	}
	ranges := c.Ranges(table)
	what := fmt.Sprintf("%s (epoch %d)", FormatTime(t, loc), target)
	if len(ranges) == 0 {
		return nil, c.noRanges(what, table, loc)
	}
	if r, ok := c.serving(target, table); ok {
		return &Choice{Epoch: target, Requested: t, Exact: true, Range: r, Table: table}, nil
	}
	lo, hi := ranges[0].Lo, ranges[0].Hi
	var best uint64
	for _, r := range ranges {
		lo, hi = min(lo, r.Lo), max(hi, r.Hi)
		if r.Hi < target {
			best = max(best, r.Hi)
		}
	}
	if target < lo || target > hi {
		return nil, &RangeError{What: what, Table: table, Ranges: ranges, Loc: loc}
	}
	r, _ := c.serving(best, table)
	return &Choice{Epoch: best, Requested: t, Exact: false, Range: r, Table: table}, nil
}

// ChooseEpoch validates an epoch given as a number.
func (c *Catalog) ChooseEpoch(e uint64, table *uint32, loc *time.Location) (*Choice, error) {
	if err := CheckCommitted(e); err != nil {
		return nil, err
	}
	if r, ok := c.serving(e, table); ok {
		return &Choice{Epoch: e, Exact: true, Range: r, Table: table}, nil
	}
	what := fmt.Sprintf("epoch %d (%s)", e, FormatTime(ToTime(e), loc))
	ranges := c.Ranges(table)
	if len(ranges) == 0 {
		return nil, c.noRanges(what, table, loc)
	}
	return nil, &RangeError{What: what, Table: table, Ranges: ranges, Loc: loc}
}

// ChooseSnapshot picks a snapshot's newest epoch: the data as it was when
// the snapshot was taken.
func (c *Catalog) ChooseSnapshot(id uint64, table *uint32, loc *time.Location) (*Choice, error) {
	s := c.Find(id)
	if s == nil {
		ids := make([]string, 0, len(c.Snapshots))
		for _, s := range c.Snapshots {
			ids = append(ids, fmt.Sprint(s.ID))
		}
		return nil, fmt.Errorf("meta snapshot %d does not exist (snapshots: %s)", id, orNone(strings.Join(ids, ", ")))
	}
	r, ok := s.Range(table)
	if !ok {
		if table != nil {
			return nil, fmt.Errorf("meta snapshot %d has no epochs for table %d (tables: %v)", id, *table, s.TableIDs())
		}
		return nil, fmt.Errorf("meta snapshot %d serves no epoch (it was taken before anything was committed)", id)
	}
	// Another, older snapshot may hold the same epoch; RisingWave reads
	// the first, which has the same data at that epoch.
	serving, _ := c.serving(r.Hi, table)
	return &Choice{Epoch: r.Hi, Exact: true, Range: serving, Table: table}, nil
}

func (c *Catalog) noRanges(what string, table *uint32, loc *time.Location) error {
	if len(c.Snapshots) == 0 || table == nil {
		return fmt.Errorf("%s: %w", what, ErrNoSnapshots)
	}
	return &RangeError{What: what, Table: table, Loc: loc}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
