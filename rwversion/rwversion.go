// Package rwversion is rwsnap's one model of what differs between the
// RisingWave releases that ran on etcd (v1.0 through v2.0.7): the snapshot
// layout, the delta replay rules, the keys a restore writes, the manifest's
// shape, risectl's flags and the texts RisingWave prints. Every other
// package asks this table instead of testing versions itself.
//
// Facts are from RisingWave's source at the tags named in Lines; docs/format.md
// has the same table with the source paths.
package rwversion

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Version is a RisingWave release line, major.minor (patch releases of one
// line share every rule here, except where a rule names a patch).
type Version struct{ Major, Minor int }

func (v Version) String() string { return fmt.Sprintf("v%d.%d", v.Major, v.Minor) }

// Less orders versions.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	return v.Minor < o.Minor
}

// AtLeast reports v >= o.
func (v Version) AtLeast(o Version) bool { return !v.Less(o) }

var (
	V1_0  = Version{1, 0}
	V1_3  = Version{1, 3}
	V1_4  = Version{1, 4}
	V1_6  = Version{1, 6}
	V1_7  = Version{1, 7}
	V1_8  = Version{1, 8}
	V1_9  = Version{1, 9}
	V1_10 = Version{1, 10}
	V2_0  = Version{2, 0}
	// V2_1 is the first line without an etcd meta store (risingwave#18621).
	V2_1 = Version{2, 1}
)

// Lines are the etcd-era release lines, oldest first.
var Lines = []Version{{1, 0}, {1, 1}, {1, 2}, {1, 3}, {1, 4}, {1, 5}, {1, 6}, {1, 7}, {1, 8}, {1, 9}, {1, 10}, {2, 0}}

// Oldest and Newest bound the etcd era.
var (
	Oldest = Lines[0]
	Newest = Lines[len(Lines)-1]
)

var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?$`)

// Parse reads "1.10", "v1.10.2", "2.0.7", "1.9.1-rc.1". It accepts any
// major.minor; Known says whether rwsnap has rules for it.
func Parse(s string) (Version, error) {
	m := versionRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Version{}, fmt.Errorf("RisingWave version %q: want MAJOR.MINOR[.PATCH], e.g. 1.10 or v2.0.7", s)
	}
	maj, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return Version{maj, minor}, nil
}

// ParseKnown is ParsePin's line: a user's version, limited to the etcd-era
// lines and releases (Releases).
func ParseKnown(s string) (Version, error) {
	p, err := ParsePin(s)
	return p.Line, err
}

// Known reports whether v is an etcd-era line.
func Known(v Version) bool { return v.AtLeast(Oldest) && !Newest.Less(v) }

// ---- the rules, one type per concern ----

// SnapshotLayout is which trailing lists a format-1 snapshot
// (ClusterMetadata, src/storage/backup/src/meta_snapshot_v1.rs) carries.
// Decoders of v1.8+ read each trailing list while the 8-byte checksum is
// still attached, so a writer must emit every list the reader's version
// expects, even empty.
type SnapshotLayout struct {
	Subscriptions bool // item 19, v1.8+
	Secrets       bool // item 20, v2.0.x
}

// ChangeLogRule is when a table's change log (v1.9+) is dropped at a commit
// that carries no new log for it.
type ChangeLogRule int

const (
	// NoChangeLogs: before v1.9 versions and deltas have none.
	NoChangeLogs ChangeLogRule = iota
	// DropOnAnyCommit: v1.9 drops every log without an entry whenever
	// max_committed_epoch rises (hummock_version_ext.rs@v1.9.0 :493, :653).
	DropOnAnyCommit
	// DropOnTableCommit: v1.10+ drops a table's log only when that table's
	// committed epoch advanced in state_table_info_delta.
	DropOnTableCommit
)

// WatermarkRule is how table watermarks follow removals and safe epochs.
type WatermarkRule int

const (
	// WatermarksV17: remove removed tables first, then merge new ones, then
	// clear every table at a raised global safe epoch (asserted monotonic).
	WatermarksV17 WatermarkRule = iota
	// WatermarksV19: merge new ones into the pre-delta watermarks, clear the
	// pre-delta tables at a raised global safe epoch, then remove removed
	// tables (hummock_version_ext.rs@v1.9.0).
	WatermarksV19
	// WatermarksV110: a removed table's watermarks go only if the delta also
	// brings new ones for it; stale ones are cleared per table at its
	// state_table_info safe epoch; the global safe epoch is set without
	// assert (hummock_version_ext.rs@v1.10.0 :631-680).
	WatermarksV110
)

// MemberRule is where apply_compact_ssts takes a group's member tables from
// (the vnode_partition_count rule).
type MemberRule int

const (
	MembersFromLevels         MemberRule = iota // Levels.member_table_ids (v1.0-v1.9)
	MembersFromStateTableInfo                   // state_table_info membership (v1.10+)
)

// CommitRule decides the commit path of a delta and how it inserts.
type CommitRule int

const (
	// CommitByMaxEpoch: a delta whose max_committed_epoch rose commits, and
	// its inserts form ONE new L0 sub-level (v1.0-v1.10).
	CommitByMaxEpoch CommitRule = iota
	// CommitByTableEpoch: v2.0 commits when a table's committed epoch rose
	// in state_table_info (or max_committed_epoch rose), and each
	// intra-level delta of the group inserts its own sub-level.
	CommitByTableEpoch
)

// SplitRule is when a group split may keep an SST whole in its parent.
type SplitRule int

const (
	// SplitV17: trivial when GroupConstruct.version is unspecified (prost
	// getter, unknown values count as 0); GroupTableChange unless
	// NO_TRIVIAL_SPLIT.
	SplitV17 SplitRule = iota
	// SplitV110: GroupConstruct trivial when version < NO_TRIVIAL_SPLIT;
	// NO_MEMBER_TABLE_IDS takes members from state_table_info.
	SplitV110
	// SplitNever: v2.0 never splits trivially.
	SplitNever
)

// Replay is the delta replay rule set of one line
// (src/storage/hummock_sdk/src/compaction_group/hummock_version_ext.rs).
type Replay struct {
	ChangeLogs     ChangeLogRule
	Watermarks     WatermarkRule
	Members        MemberRule
	Commit         CommitRule
	Split          SplitRule
	StateTableInfo bool // apply state_table_info_delta (v1.10+)
	AssertPrevID   bool // apply_version_delta asserts prev_id (v1.10+)
}

// Restore is which snapshot parts a restore writes to etcd
// (src/meta/src/backup_restore/restore_impl/v1.rs).
type Restore struct {
	Subscriptions bool // cf/catalog_subscription (v1.8+)
	Secrets       bool // cf/catalog_secret (v2.0.x)
}

// ManifestShape is how the line writes manifest entries
// (src/storage/backup/src/lib.rs MetaSnapshotMetadata).
type ManifestShape struct {
	FormatVersion  bool // v1.4+
	Remarks        bool // v1.6+ (older lines drop remarks)
	StateTableInfo bool // v1.10+: pbjson camelCase, u64 as strings
	RWVersion      bool // v1.10+
}

// Catalog is the shape of what the frontend shows.
type Catalog struct {
	// MetaSnapshotV110: rw_catalog.rw_meta_snapshot has the v1.10 columns
	// (state_table_info jsonb, rw_version) instead of the epoch columns.
	MetaSnapshotV110 bool
	// ReadBackupErrorColon: "Read backup error: {0}" (v1.9+) instead of
	// "Read backup error {0}." (src/storage/src/hummock/error.rs).
	ReadBackupErrorColon bool
	// FailedStatus: BackupJobStatus FAILED exists (v1.3+).
	FailedStatus bool
}

// Risectl is the line's risectl meta flags.
type Risectl struct {
	// HummockDirFlag is the restore flag naming the hummock directory.
	HummockDirFlag string
	// SQLFlags: restore-meta has --sql-endpoint (v1.9) and --sql-username,
	// --sql-password, --sql-database (v1.10).
	SQLEndpoint, SQLCredentials bool
	// ReadRetryFlags: --read-attempt-timeout-ms, --read-retry-attempts
	// (from v1.10.2 on; v1.10.0 and v1.10.1 lack them).
	ReadRetryFlags bool
	// DeleteByFlag: delete-meta-snapshots takes --snapshot-ids a,b (v2.0)
	// instead of positional ids.
	DeleteByFlag bool
	// Remarks: backup-meta --remarks (v1.6+; older lines have no flag).
	Remarks bool
}

// Storage is how the line reaches its backup location.
type Storage struct {
	// OpenDALS3: S3/MinIO go through OpenDAL by default (v2.0: use_opendal()
	// is true), which normalises keys; v1.x's native S3 client uses
	// backup_storage_directory verbatim (backup/ -> backup//manifest.json).
	// fs:// is OpenDAL in every line.
	OpenDALS3 bool
}

// Rules is everything rwsnap does differently for one line.
type Rules struct {
	Version  Version
	Snapshot SnapshotLayout
	Replay   Replay
	Restore  Restore
	Manifest ManifestShape
	Catalog  Catalog
	Risectl  Risectl
	Storage  Storage
	// SystemParams are the params the line writes to cf/system_params/
	// beyond v1.7's set (src/common/src/system_param/mod.rs).
	SystemParams []string
}

// V20Params are the system params v2.0 added (mod.rs@v2.0.1:92-94).
var V20Params = []string{"use_new_object_prefix_strategy", "license_key", "time_travel_retention_ms"}

// For returns the rules of v (which must be Known).
func For(v Version) Rules {
	r := Rules{Version: v}
	at := v.AtLeast
	r.Snapshot = SnapshotLayout{Subscriptions: at(V1_8), Secrets: at(V2_0)}
	r.Replay = Replay{ChangeLogs: NoChangeLogs, Watermarks: WatermarksV17, Members: MembersFromLevels, Commit: CommitByMaxEpoch, Split: SplitV17}
	if at(V1_9) {
		r.Replay.ChangeLogs, r.Replay.Watermarks = DropOnAnyCommit, WatermarksV19
	}
	if at(V1_10) {
		r.Replay = Replay{ChangeLogs: DropOnTableCommit, Watermarks: WatermarksV110, Members: MembersFromStateTableInfo,
			Commit: CommitByMaxEpoch, Split: SplitV110, StateTableInfo: true, AssertPrevID: true}
	}
	if at(V2_0) {
		r.Replay.Commit, r.Replay.Split = CommitByTableEpoch, SplitNever
	}
	r.Restore = Restore{Subscriptions: at(V1_8), Secrets: at(V2_0)}
	r.Manifest = ManifestShape{FormatVersion: at(V1_4), Remarks: at(V1_6), StateTableInfo: at(V1_10), RWVersion: at(V1_10)}
	r.Catalog = Catalog{MetaSnapshotV110: at(V1_10), ReadBackupErrorColon: at(V1_9), FailedStatus: at(V1_3)}
	r.Risectl = Risectl{HummockDirFlag: "hummock-storage-directory", SQLEndpoint: at(V1_9), SQLCredentials: at(V1_10),
		ReadRetryFlags: at(V1_10), DeleteByFlag: at(V2_0), Remarks: at(V1_6)}
	if !at(V1_3) {
		r.Risectl.HummockDirFlag = "hummock-storage-dir"
	}
	r.Storage = Storage{OpenDALS3: at(V2_0)}
	if at(V2_0) {
		r.SystemParams = V20Params
	}
	return r
}

// ReadBackupError is the text a compute node returns for an epoch no
// snapshot serves.
func (c Catalog) ReadBackupError(epoch uint64) string {
	inner := fmt.Sprintf("backup include epoch %d not found", epoch)
	if c.ReadBackupErrorColon {
		return "Read backup error: " + inner
	}
	return "Read backup error " + inner + "."
}
