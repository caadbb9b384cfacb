package rwversion

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrUnknownLayout means the meta store matches no etcd-era release line.
var ErrUnknownLayout = errors.New("meta store layout matches no RisingWave release rwsnap knows")

// ErrContradiction means --rw-version disagrees with the meta store.
var ErrContradiction = errors.New("--rw-version contradicts the meta store")

// Evidence is what a meta store shows about the release that wrote it.
// Everything is a fact read from etcd (and the cluster's manifest), never a
// guess.
type Evidence struct {
	// CFs are the column families that hold at least one key, e.g.
	// "cf/catalog_subscription".
	CFs map[string]bool
	// SystemParams are the names under cf/system_params/.
	SystemParams map[string]bool
	// ChangeLogs: a delta carries change_log_delta or the version holds
	// table_change_logs (v1.9+).
	ChangeLogs bool
	// StateTableInfo: a delta carries state_table_info_delta, the version
	// holds state_table_info, or a GroupConstruct has version
	// NO_MEMBER_TABLE_IDS (v1.10+).
	StateTableInfo bool
	// LegacyMembers: groups list member tables (Levels.member_table_ids, or
	// deltas that change them) while no state_table_info exists. A v1.10
	// meta node backfills state_table_info from those at startup
	// (versioning.rs@v1.10.0:249 may_fill_backward_state_table_info), so
	// such a store was last run by v1.9 or older.
	LegacyMembers bool
	// ManifestRWVersion is the newest rw_version a format-1 entry of the
	// cluster's own backup location records ("" if none): the cluster ran
	// at least that release (RisingWave writes RW_VERSION there).
	ManifestRWVersion string
}

// Range is the set of release lines consistent with the evidence, with the
// facts that bound it.
type Range struct {
	Lo, Hi   Version
	LoReason string
	HiReason string
}

func (r Range) String() string {
	if r.Lo == r.Hi {
		return r.Lo.String()
	}
	return r.Lo.String() + "–" + r.Hi.String()
}

// Contains reports whether v is in the range.
func (r Range) Contains(v Version) bool { return v.AtLeast(r.Lo) && !r.Hi.Less(v) }

// Lines lists the release lines in the range.
func (r Range) Lines() []Version {
	var out []Version
	for _, v := range Lines {
		if r.Contains(v) {
			out = append(out, v)
		}
	}
	return out
}

// Why says which facts bound the range, for messages.
func (r Range) Why() string {
	var parts []string
	if r.LoReason != "" {
		parts = append(parts, "at least "+r.Lo.String()+" ("+r.LoReason+")")
	}
	if r.HiReason != "" {
		parts = append(parts, "at most "+r.Hi.String()+" ("+r.HiReason+")")
	}
	if len(parts) == 0 {
		return "nothing in the meta store narrows the release"
	}
	return strings.Join(parts, ", ")
}

type bound struct {
	v      Version
	reason string
}

// Detect narrows the release lines that could have written the meta store.
func Detect(e Evidence) (Range, error) {
	var lows []bound
	if e.CFs["cf/catalog_subscription"] {
		lows = append(lows, bound{V1_8, "cf/catalog_subscription holds subscriptions"})
	}
	if e.ChangeLogs {
		lows = append(lows, bound{V1_9, "hummock deltas or version carry table change logs"})
	}
	if e.StateTableInfo {
		lows = append(lows, bound{V1_10, "hummock deltas or version carry state_table_info"})
	}
	if e.CFs["cf/catalog_secret"] {
		lows = append(lows, bound{V1_10, "cf/catalog_secret holds secrets"})
	}
	var v20 []string
	for _, p := range V20Params {
		if e.SystemParams[p] {
			v20 = append(v20, p)
		}
	}
	if len(v20) > 0 && len(v20) < len(V20Params) {
		return Range{}, fmt.Errorf("%w: cf/system_params/ has %s but not all of %s, which RisingWave v2.0 writes together",
			ErrUnknownLayout, strings.Join(v20, ", "), strings.Join(V20Params, ", "))
	}
	r := Range{Lo: Oldest, Hi: Newest}
	if e.LegacyMembers && !e.StateTableInfo {
		r.Hi, r.HiReason = V1_9, "compaction groups list member tables but there is no state_table_info, which v1.10 backfills at startup"
	}
	if len(v20) == len(V20Params) {
		lows = append(lows, bound{V2_0, "cf/system_params/ has v2.0's " + strings.Join(V20Params, ", ")})
	} else if len(e.SystemParams) > 0 && V1_10.Less(r.Hi) {
		r.Hi, r.HiReason = V1_10, "cf/system_params/ lacks v2.0's "+strings.Join(V20Params, ", ")
	}
	if e.ManifestRWVersion != "" {
		if v, err := Parse(e.ManifestRWVersion); err == nil {
			if !Known(v) {
				return Range{}, fmt.Errorf("%w: the backup manifest's newest format-1 entry says rw_version %q, outside %s–%s", ErrUnknownLayout, e.ManifestRWVersion, Oldest, Newest)
			}
			lows = append(lows, bound{v, fmt.Sprintf("the backup manifest's newest entry was written by rw_version %q", e.ManifestRWVersion)})
		}
	}
	sort.SliceStable(lows, func(i, j int) bool { return lows[j].v.Less(lows[i].v) })
	if len(lows) > 0 {
		// Every fact is named, strongest first: a contradiction message
		// then says all the store shows.
		reasons := make([]string, len(lows))
		for i, l := range lows {
			reasons[i] = l.reason
		}
		r.Lo, r.LoReason = lows[0].v, strings.Join(reasons, "; ")
	}
	if r.Hi.Less(r.Lo) {
		return Range{}, fmt.Errorf("%w: %s, yet %s", ErrUnknownLayout, r.LoReason, r.HiReason)
	}
	return r, nil
}

// Resolve picks the release line to follow: the override when given (it must
// lie in the detected range), else the range itself, which the caller
// narrows by Distinct.
func Resolve(r Range, override *Version) (Range, error) {
	if override == nil {
		return r, nil
	}
	if !r.Contains(*override) {
		return Range{}, fmt.Errorf("%w: --rw-version %s, but the meta store looks like %s: %s", ErrContradiction, override, r, r.Why())
	}
	return Range{Lo: *override, Hi: *override, LoReason: "--rw-version", HiReason: "--rw-version"}, nil
}

// CheckPin refuses a --rw-version the meta store contradicts: its line must
// lie in the detected range, and an exact release must not be older than
// the newest rw_version the cluster's own manifest records (RisingWave
// writes RW_VERSION there, and a cluster is not downgraded). The error
// wraps ErrContradiction and says what the store looks like.
func CheckPin(r Range, pin Pin, manifestRWVersion string) error {
	if !r.Contains(pin.Line) {
		return fmt.Errorf("%w: --rw-version %s, but the meta store looks like %s: %s", ErrContradiction, pin, r, r.Why())
	}
	if pin.Release == "" || manifestRWVersion == "" {
		return nil
	}
	if cmp, ok := CompareReleases(pin.Release, manifestRWVersion); ok && cmp < 0 {
		return fmt.Errorf("%w: --rw-version %s, but the cluster's backup manifest has an entry written by RisingWave %s (rw_version), so the cluster ran %s or newer: RisingWave is not downgraded; pass --rw-version %s or newer, or only the line (%s)",
			ErrContradiction, pin, manifestRWVersion, manifestRWVersion, manifestRWVersion, pin.Line)
	}
	return nil
}

// DistinctReplay returns the distinct replay rule sets of the lines in r,
// newest line first, each with the lines that use it.
func DistinctReplay(r Range) []ReplayChoice {
	var out []ReplayChoice
	lines := r.Lines()
	for i := len(lines) - 1; i >= 0; i-- {
		rules := For(lines[i]).Replay
		found := false
		for j := range out {
			if out[j].Rules == rules {
				out[j].Lines = append([]Version{lines[i]}, out[j].Lines...)
				found = true
			}
		}
		if !found {
			out = append(out, ReplayChoice{Rules: rules, Lines: []Version{lines[i]}})
		}
	}
	return out
}

// ReplayChoice is one replay rule set and the lines that follow it.
type ReplayChoice struct {
	Rules Replay
	Lines []Version
}

// Name is "v1.0–v1.8" style.
func (c ReplayChoice) Name() string {
	if len(c.Lines) == 1 {
		return c.Lines[0].String()
	}
	return c.Lines[0].String() + "–" + c.Lines[len(c.Lines)-1].String()
}
