package hummock

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/rwversion"
	"google.golang.org/protobuf/proto"
)

// ErrInvalidDelta is wrapped by every ApplyDelta error: the delta breaks an
// invariant RisingWave asserts (a meta node would panic on it).
var ErrInvalidDelta = errors.New("invalid hummock version delta")

// maxLevelLimit bounds CompactionConfig.max_level of a new group. RisingWave
// allocates whatever it is told (the default is 6); a corrupt delta must not
// make rwsnap allocate gigabytes.
const maxLevelLimit = 64

// Static compaction group ids (compaction_group/mod.rs StaticCompactionGroupId).
const (
	newCompactionGroupID = 0
	stateDefaultGroupID  = 2
	mvGroupID            = 3
)

// defaultMaxLevel is MAX_LEVEL of RisingWave v1.7's CompactionConfigBuilder
// (src/meta/src/hummock/compaction/compaction_config.rs).
const defaultMaxLevel = 6

// groupSummary is GroupDeltasSummary: one group's list of GroupDelta folded
// into what apply_version_delta acts on.
type groupSummary struct {
	deleteLevels     []uint32 // sorted, deduplicated
	deleteIDs        map[uint64]struct{}
	insertLevel      uint32
	insertSubLevelID uint64
	inserts          []*pb.SstableInfo
	construct        *pb.GroupConstruct
	destroy          bool
	metaChanges      []*pb.GroupMetaChange
	tableChange      *pb.GroupTableChange
	vnodeCount       uint32
}

func summarize(gd *pb.HummockVersionDelta_GroupDeltas) (*groupSummary, error) {
	s := &groupSummary{
		deleteIDs:        map[uint64]struct{}{},
		insertLevel:      math.MaxUint32,
		insertSubLevelID: math.MaxUint64,
	}
	for i, d := range gd.GetGroupDeltas() {
		switch t := d.GetDeltaType().(type) {
		case *pb.GroupDelta_IntraLevel:
			il := t.IntraLevel
			if len(il.GetRemovedTableIds()) > 0 {
				s.deleteLevels = append(s.deleteLevels, il.GetLevelIdx())
				for _, id := range il.GetRemovedTableIds() {
					s.deleteIDs[id] = struct{}{}
				}
			}
			if len(il.GetInsertedTableInfos()) > 0 {
				s.insertLevel = il.GetLevelIdx()
				s.insertSubLevelID = il.GetL0SubLevelId()
				for _, sst := range il.GetInsertedTableInfos() {
					if sst == nil {
						return nil, fmt.Errorf("group delta %d: nil inserted sstable", i)
					}
					s.inserts = append(s.inserts, proto.Clone(sst).(*pb.SstableInfo))
				}
			}
			// Every intra-level delta sets it, with inserts or not.
			s.vnodeCount = il.GetVnodePartitionCount()
		case *pb.GroupDelta_GroupConstruct:
			if s.construct != nil {
				return nil, fmt.Errorf("more than one group_construct")
			}
			if t.GroupConstruct == nil {
				return nil, fmt.Errorf("group delta %d: empty group_construct", i)
			}
			s.construct = t.GroupConstruct
		case *pb.GroupDelta_GroupDestroy:
			if s.destroy {
				return nil, fmt.Errorf("more than one group_destroy")
			}
			s.destroy = true
		case *pb.GroupDelta_GroupMetaChange:
			s.metaChanges = append(s.metaChanges, t.GroupMetaChange)
		case *pb.GroupDelta_GroupTableChange:
			s.tableChange = t.GroupTableChange
		default:
			// get_delta_type().unwrap() on an unset (or unknown) oneof.
			return nil, fmt.Errorf("group delta %d has no delta_type", i)
		}
	}
	slices.Sort(s.deleteLevels)
	s.deleteLevels = slices.Compact(s.deleteLevels)
	return s, nil
}

// ApplyDelta applies one delta to v exactly as the RisingWave release
// line whose rules are r does in HummockVersion::apply_version_delta
// (rwversion.For(line).Replay; the differences are listed there). Groups are
// visited in ascending id order; RisingWave's order is a HashMap's, which
// meta's output does not depend on.
//
// On error, which wraps ErrInvalidDelta and names the delta id, v may be
// partly updated: RisingWave would have panicked. Replay works on a copy.
func ApplyDelta(v *pb.HummockVersion, d *pb.HummockVersionDelta, r rwversion.Replay) error {
	if v == nil || d == nil {
		return fmt.Errorf("%w: nil version or delta", ErrInvalidDelta)
	}
	if err := applyDelta(v, d, r); err != nil {
		return fmt.Errorf("%w: apply delta %d (prev %d) to version %d: %w", ErrInvalidDelta, d.GetId(), d.GetPrevId(), v.GetId(), err)
	}
	return nil
}

func applyDelta(v *pb.HummockVersion, d *pb.HummockVersionDelta, r rwversion.Replay) error {
	if err := checkWellFormed(v); err != nil {
		return err
	}
	if r.AssertPrevID && v.GetId() != d.GetPrevId() {
		return fmt.Errorf("prev_id %d is not the version's id %d", d.GetPrevId(), v.GetId())
	}
	// RisingWave decodes new watermarks eagerly (TableWatermarks::from_protobuf).
	for _, tid := range sortedKeys(d.GetNewTableWatermarks()) {
		if err := checkTableWatermarks(d.NewTableWatermarks[tid]); err != nil {
			return fmt.Errorf("new watermarks of table %d: %w", tid, err)
		}
	}
	prevMCE := v.GetMaxCommittedEpoch()

	// Lines before v1.10 do not know state_table_info_delta (field 11):
	// prost drops it, so it changes nothing there.
	var changedInfo map[uint32]*pb.StateTableInfo
	bumped := false
	if r.StateTableInfo {
		var err error
		if changedInfo, bumped, err = applyStateTableInfo(v, d); err != nil {
			return err
		}
	}
	isCommit := prevMCE < d.GetMaxCommittedEpoch()
	if r.Commit == rwversion.CommitByTableEpoch && bumped {
		isCommit = true
	}

	for _, gid := range sortedKeys(d.GetGroupDeltas()) {
		if err := applyGroupDeltas(v, d, gid, d.GroupDeltas[gid], r, isCommit); err != nil {
			return fmt.Errorf("compaction group %d: %w", gid, err)
		}
	}

	v.Id = d.GetId()
	v.MaxCommittedEpoch = d.GetMaxCommittedEpoch()

	var err error
	switch r.Watermarks {
	case rwversion.WatermarksV17:
		err = watermarksV17(v, d)
	case rwversion.WatermarksV19:
		err = watermarksV19(v, d)
	default:
		err = watermarksV110(v, d)
	}
	if err != nil {
		return err
	}

	switch r.ChangeLogs {
	case rwversion.NoChangeLogs:
		// Field 10 is unknown before v1.9: prost drops it.
		return nil
	case rwversion.DropOnAnyCommit:
		return applyChangeLogs(v, d, func(tid uint32) bool { return prevMCE < d.GetMaxCommittedEpoch() })
	default:
		return applyChangeLogs(v, d, func(tid uint32) bool {
			nd, inDelta := d.GetStateTableInfoDelta()[tid]
			prev := changedInfo[tid]
			return inDelta && prev != nil && nd.GetCommittedEpoch() > prev.GetCommittedEpoch()
		})
	}
}

// watermarksV17: removed tables first, then the new watermarks, then every
// table cleared at a raised global safe epoch (asserted monotonic).
func watermarksV17(v *pb.HummockVersion, d *pb.HummockVersionDelta) error {
	for _, tid := range d.GetRemovedTableIds() {
		delete(v.TableWatermarks, tid)
	}
	for _, tid := range sortedKeys(d.GetNewTableWatermarks()) {
		add := d.NewTableWatermarks[tid]
		if cur, ok := v.TableWatermarks[tid]; ok && cur != nil {
			if err := applyNewTableWatermarks(cur, add); err != nil {
				return fmt.Errorf("table %d watermarks: %w", tid, err)
			}
			continue
		}
		if v.TableWatermarks == nil {
			v.TableWatermarks = map[uint32]*pb.TableWatermarks{}
		}
		v.TableWatermarks[tid] = cloneTableWatermarks(add)
	}
	if d.GetSafeEpoch() != v.GetSafeEpoch() {
		if d.GetSafeEpoch() < v.GetSafeEpoch() {
			return fmt.Errorf("safe epoch goes back from %d to %d", v.GetSafeEpoch(), d.GetSafeEpoch())
		}
		for _, tid := range sortedKeys(v.TableWatermarks) {
			if tw := v.TableWatermarks[tid]; tw != nil {
				if err := clearStaleEpochWatermark(tw, d.GetSafeEpoch()); err != nil {
					return fmt.Errorf("table %d watermarks: %w", tid, err)
				}
			}
		}
		v.SafeEpoch = d.GetSafeEpoch()
	}
	return nil
}

// watermarksV19 is v1.9's order: new watermarks merged into copies of the
// pre-delta ones, the pre-delta tables cleared at a raised global safe
// epoch (tables new in this delta are not), then the removed tables
// deleted, new watermarks or not.
func watermarksV19(v *pb.HummockVersion, d *pb.HummockVersionDelta) error {
	modified := map[uint32]*pb.TableWatermarks{}
	for _, tid := range sortedKeys(d.GetNewTableWatermarks()) {
		add := d.NewTableWatermarks[tid]
		if cur, ok := v.TableWatermarks[tid]; ok && cur != nil {
			c := cloneTableWatermarks(cur)
			if err := applyNewTableWatermarks(c, add); err != nil {
				return fmt.Errorf("table %d watermarks: %w", tid, err)
			}
			modified[tid] = c
		} else {
			modified[tid] = cloneTableWatermarks(add)
		}
	}
	if d.GetSafeEpoch() != v.GetSafeEpoch() {
		if d.GetSafeEpoch() < v.GetSafeEpoch() {
			return fmt.Errorf("safe epoch goes back from %d to %d", v.GetSafeEpoch(), d.GetSafeEpoch())
		}
		for _, tid := range sortedKeys(v.TableWatermarks) {
			tw, ok := modified[tid]
			if !ok {
				if v.TableWatermarks[tid] == nil {
					continue
				}
				tw = cloneTableWatermarks(v.TableWatermarks[tid])
				modified[tid] = tw
			}
			if err := clearStaleEpochWatermark(tw, d.GetSafeEpoch()); err != nil {
				return fmt.Errorf("table %d watermarks: %w", tid, err)
			}
		}
		v.SafeEpoch = d.GetSafeEpoch()
	}
	if len(modified) > 0 && v.TableWatermarks == nil {
		v.TableWatermarks = map[uint32]*pb.TableWatermarks{}
	}
	for tid, tw := range modified {
		v.TableWatermarks[tid] = tw
	}
	for _, tid := range d.GetRemovedTableIds() {
		delete(v.TableWatermarks, tid)
	}
	return nil
}

// watermarksV110 is v1.10's (and v2.0's): the safe epoch is set as is; a
// removed table loses its watermarks only when the delta also brings new
// ones for it; each pre-delta table is cleared at its own state_table_info
// safe epoch once that passed its oldest watermark epoch.
func watermarksV110(v *pb.HummockVersion, d *pb.HummockVersionDelta) error {
	v.SafeEpoch = d.GetSafeEpoch()
	type staged struct{ tw *pb.TableWatermarks } // tw nil: delete
	modified := map[uint32]*staged{}
	removed := tableSet(d.GetRemovedTableIds())
	for _, tid := range sortedKeys(d.GetNewTableWatermarks()) {
		add := d.NewTableWatermarks[tid]
		if cur, ok := v.TableWatermarks[tid]; ok && cur != nil {
			if _, gone := removed[tid]; gone {
				modified[tid] = &staged{}
				continue
			}
			c := cloneTableWatermarks(cur)
			if err := applyNewTableWatermarks(c, add); err != nil {
				return fmt.Errorf("table %d watermarks: %w", tid, err)
			}
			modified[tid] = &staged{c}
		} else {
			modified[tid] = &staged{cloneTableWatermarks(add)}
		}
	}
	for _, tid := range sortedKeys(v.TableWatermarks) {
		cur := v.TableWatermarks[tid]
		info, ok := v.GetStateTableInfo()[tid]
		es := cur.GetEpochWatermarks()
		if !ok || info == nil || len(es) == 0 || info.GetSafeEpoch() <= es[0].GetEpoch() {
			continue // safe epoch not progressed, or the table was removed
		}
		st, ok := modified[tid]
		if !ok {
			st = &staged{cloneTableWatermarks(cur)}
			modified[tid] = st
		}
		if st.tw != nil {
			if err := clearStaleEpochWatermark(st.tw, info.GetSafeEpoch()); err != nil {
				return fmt.Errorf("table %d watermarks: %w", tid, err)
			}
		}
	}
	for tid, st := range modified {
		if st.tw == nil {
			delete(v.TableWatermarks, tid)
			continue
		}
		if v.TableWatermarks == nil {
			v.TableWatermarks = map[uint32]*pb.TableWatermarks{}
		}
		v.TableWatermarks[tid] = st.tw
	}
	return nil
}

// cloneTableWatermarks copies the fields RisingWave's TableWatermarks keeps.
func cloneTableWatermarks(tw *pb.TableWatermarks) *pb.TableWatermarks {
	return proto.Clone(tw).(*pb.TableWatermarks)
}

// members is the group's member tables for apply_compact_ssts, ascending.
func members(v *pb.HummockVersion, levels *pb.HummockVersion_Levels, gid uint64, r rwversion.Replay) []uint32 {
	if r.Members == rwversion.MembersFromLevels {
		return levels.MemberTableIds
	}
	var out []uint32
	for tid, info := range v.GetStateTableInfo() {
		if info.GetCompactionGroupId() == gid {
			out = append(out, tid)
		}
	}
	slices.Sort(out)
	return out
}

func applyGroupDeltas(v *pb.HummockVersion, d *pb.HummockVersionDelta, gid uint64, gd *pb.HummockVersionDelta_GroupDeltas, r rwversion.Replay, isCommit bool) error {
	s, err := summarize(gd)
	if err != nil {
		return err
	}
	if c := s.construct; c != nil {
		if c.GetGroupConfig() == nil {
			return fmt.Errorf("group_construct without group_config")
		}
		nl, err := newGroupLevels(gid, c.GetGroupConfig().GetMaxLevel())
		if err != nil {
			return err
		}
		nl.ParentGroupId = c.GetParentGroupId()
		nl.MemberTableIds = slices.Clone(c.GetTableIds())
		if v.Levels == nil {
			v.Levels = map[uint64]*pb.HummockVersion_Levels{}
		}
		v.Levels[gid] = nl // replaces an existing group, as HashMap::insert does
		members := tableSet(c.GetTableIds())
		var allowTrivial bool
		switch r.Split {
		case rwversion.SplitV17:
			// v1.7's prost getter maps values it does not know (2 and up)
			// to VERSION_UNSPECIFIED.
			allowTrivial = c.GetVersion() != pb.CompatibilityVersion_NO_TRIVIAL_SPLIT
		case rwversion.SplitV110:
			allowTrivial = c.GetVersion() < pb.CompatibilityVersion_NO_TRIVIAL_SPLIT
		}
		// NO_MEMBER_TABLE_IDS (v1.10+): the members are the group's tables in
		// the already-updated state_table_info.
		if r.StateTableInfo && c.GetVersion() >= pb.CompatibilityVersion_NO_MEMBER_TABLE_IDS {
			members = map[uint32]struct{}{}
			for tid, info := range v.GetStateTableInfo() {
				if info.GetCompactionGroupId() == gid {
					members[tid] = struct{}{}
				}
			}
		}
		if err := initWithParentGroup(v, c.GetParentGroupId(), gid, members, c.GetNewSstStartId(), allowTrivial); err != nil {
			return fmt.Errorf("split from parent group %d: %w", c.GetParentGroupId(), err)
		}
	} else if tc := s.tableChange; tc != nil {
		var allowTrivial bool
		switch r.Split {
		case rwversion.SplitV17:
			// Only NO_TRIVIAL_SPLIT disables it (unknown values read as 0).
			allowTrivial = tc.GetVersion() != pb.CompatibilityVersion_NO_TRIVIAL_SPLIT
		default:
			if tc.GetVersion() > pb.CompatibilityVersion_NO_TRIVIAL_SPLIT {
				return fmt.Errorf("DeltaType::GroupTableChange is not used anymore after CompatibilityVersion::NoMemberTableIds is added")
			}
			allowTrivial = r.Split == rwversion.SplitV110 && tc.GetVersion() == pb.CompatibilityVersion_VERSION_UNSPECIFIED
		}
		if err := initWithParentGroup(v, tc.GetOriginGroupId(), tc.GetTargetGroupId(), tableSet(tc.GetTableIds()), tc.GetNewSstStartId(), allowTrivial); err != nil {
			return fmt.Errorf("table change from group %d to %d: %w", tc.GetOriginGroupId(), tc.GetTargetGroupId(), err)
		}
		origin := v.Levels[tc.GetOriginGroupId()]
		if origin == nil {
			return fmt.Errorf("table change: origin compaction group %d does not exist", tc.GetOriginGroupId())
		}
		moving := tableSet(tc.GetTableIds())
		var moved, kept []uint32
		for _, t := range origin.MemberTableIds {
			if _, ok := moving[t]; ok {
				moved = append(moved, t)
			} else {
				kept = append(kept, t)
			}
		}
		origin.MemberTableIds = kept
		// RisingWave appends to the group the delta is keyed by, not to
		// target_group_id, and does not sort.
		target := v.Levels[gid]
		if target == nil {
			return fmt.Errorf("compaction group should exist")
		}
		target.MemberTableIds = append(target.MemberTableIds, moved...)
	}

	levels := v.Levels[gid]
	if levels == nil {
		return fmt.Errorf("compaction group should exist")
	}
	for _, mc := range s.metaChanges {
		levels.MemberTableIds = append(levels.MemberTableIds, mc.GetTableIdsAdd()...)
		remove := tableSet(mc.GetTableIdsRemove())
		levels.MemberTableIds = slices.DeleteFunc(levels.MemberTableIds, func(t uint32) bool {
			_, ok := remove[t]
			return ok
		})
		slices.Sort(levels.MemberTableIds)
	}

	// The pre-delta max_committed_epoch decides, for every group alike.
	if v.GetMaxCommittedEpoch() > d.GetMaxCommittedEpoch() {
		return fmt.Errorf("new max commit epoch %d is older than the current max commit epoch %d", d.GetMaxCommittedEpoch(), v.GetMaxCommittedEpoch())
	}
	switch {
	case isCommit && r.Commit == rwversion.CommitByTableEpoch:
		if err := applyCommitEach(levels, gd, s); err != nil {
			return err
		}
	case isCommit:
		if err := applyCommit(levels, s); err != nil {
			return err
		}
	default:
		if err := applyCompactSSTs(levels, s, members(v, levels, gid, r)); err != nil {
			return err
		}
	}
	if s.destroy {
		delete(v.Levels, gid)
	}
	return nil
}

// applyCommitEach is v2.0's commit branch: every intra-level delta must
// target L0 and each one with inserts becomes its own sub-level.
func applyCommitEach(levels *pb.HummockVersion_Levels, gd *pb.HummockVersionDelta_GroupDeltas, s *groupSummary) error {
	if (len(s.deleteLevels) > 0 || len(s.deleteIDs) > 0) && !s.destroy {
		return fmt.Errorf("no sst should be deleted when committing an epoch")
	}
	for _, g := range gd.GetGroupDeltas() {
		il := g.GetIntraLevel()
		if il == nil {
			continue
		}
		if il.GetLevelIdx() != 0 {
			return fmt.Errorf("we should only add to L0 when we commit an epoch, inserting into level %d", il.GetLevelIdx())
		}
		if len(il.GetInsertedTableInfos()) == 0 {
			continue
		}
		if levels.L0 == nil {
			return fmt.Errorf("group has no l0")
		}
		ssts := make([]*pb.SstableInfo, 0, len(il.GetInsertedTableInfos()))
		for _, sst := range il.GetInsertedTableInfos() {
			if sst == nil {
				return fmt.Errorf("nil inserted sstable")
			}
			ssts = append(ssts, proto.Clone(sst).(*pb.SstableInfo))
		}
		if err := insertNewSubLevel(levels.L0, il.GetL0SubLevelId(), pb.LevelType_LEVEL_TYPE_OVERLAPPING, ssts, -1); err != nil {
			return err
		}
	}
	return nil
}

// applyCommit is the commit_epoch branch: only new L0 sub-levels.
func applyCommit(levels *pb.HummockVersion_Levels, s *groupSummary) error {
	if s.insertLevel != 0 && len(s.inserts) > 0 {
		return fmt.Errorf("we should only add to L0 when we commit an epoch, inserting into level %d", s.insertLevel)
	}
	if (len(s.deleteLevels) > 0 || len(s.deleteIDs) > 0) && !s.destroy {
		return fmt.Errorf("no sst should be deleted when committing an epoch")
	}
	if len(s.inserts) == 0 {
		return nil
	}
	if levels.L0 == nil {
		return fmt.Errorf("group has no l0")
	}
	return insertNewSubLevel(levels.L0, s.insertSubLevelID, pb.LevelType_LEVEL_TYPE_OVERLAPPING, s.inserts, -1)
}

// applyCompactSSTs is Levels::apply_compact_ssts, the compaction branch;
// members are the group's tables by the line's rule.
func applyCompactSSTs(levels *pb.HummockVersion_Levels, s *groupSummary, members []uint32) error {
	found, err := deletedSSTsExist(levels, s.deleteLevels, s.deleteIDs)
	if err != nil {
		return err
	}
	if !found {
		// RisingWave only warns: "This VersionDelta may be committed by an
		// expired compact task." The group is left alone.
		return nil
	}
	for _, li := range s.deleteLevels {
		if li == 0 {
			for _, sl := range levels.L0.SubLevels {
				levelDeleteSSTs(sl, s.deleteIDs)
			}
		} else {
			levelDeleteSSTs(levels.Levels[li-1], s.deleteIDs)
		}
	}

	if len(s.inserts) > 0 {
		if s.insertLevel == 0 {
			l0 := levels.L0
			if l0 == nil {
				return fmt.Errorf("group has no l0")
			}
			idx := sort.Search(len(l0.SubLevels), func(i int) bool {
				return l0.SubLevels[i].GetSubLevelId() >= s.insertSubLevelID
			})
			if idx >= len(l0.SubLevels) || l0.SubLevels[idx].GetSubLevelId() != s.insertSubLevelID {
				return fmt.Errorf("should find the level to insert into when applying compaction generated delta: sub level %d not in %v", s.insertSubLevelID, subLevelIDs(l0))
			}
			target := l0.SubLevels[idx]
			// Only a single-table group may change a sub-level's vnode
			// partition, and only when the task rewrote the whole sub-level.
			if len(target.TableInfos) == 0 && len(members) == 1 && allSingleTable(s.inserts, members[0], true) {
				target.VnodePartitionCount = s.vnodeCount
			}
			if err := levelInsertSSTs(target, s.inserts); err != nil {
				return fmt.Errorf("insert into l0 sub level %d: %w", s.insertSubLevelID, err)
			}
		} else {
			if int(s.insertLevel) > len(levels.Levels) {
				return fmt.Errorf("insert into level %d, the group has %d levels", s.insertLevel, len(levels.Levels))
			}
			target := levels.Levels[s.insertLevel-1]
			if len(target.TableInfos) == 0 && allSingleTable(s.inserts, 0, false) {
				target.VnodePartitionCount = s.vnodeCount
			} else if target.VnodePartitionCount != 0 && s.vnodeCount == 0 && len(members) > 1 {
				target.VnodePartitionCount = 0
			}
			if err := levelInsertSSTs(target, s.inserts); err != nil {
				return fmt.Errorf("insert into level %d: %w", s.insertLevel, err)
			}
		}
	}

	if slices.Contains(s.deleteLevels, 0) {
		l0 := levels.L0
		l0.SubLevels = slices.DeleteFunc(l0.SubLevels, func(sl *pb.Level) bool { return len(sl.TableInfos) == 0 })
		l0.TotalFileSize, l0.UncompressedFileSize = 0, 0
		for _, sl := range l0.SubLevels {
			l0.TotalFileSize += sl.GetTotalFileSize()
			l0.UncompressedFileSize += sl.GetUncompressedFileSize()
		}
	}
	return nil
}

// allSingleTable reports whether every SST has exactly one table id (and,
// when matchID is set, that it is table).
func allSingleTable(ssts []*pb.SstableInfo, table uint32, matchID bool) bool {
	for _, s := range ssts {
		if len(s.GetTableIds()) != 1 || (matchID && s.GetTableIds()[0] != table) {
			return false
		}
	}
	return true
}

// deletedSSTsExist is check_deleted_sst_exist: every id to delete is the
// sst_id of some SST in the listed levels (0 = all L0 sub-levels).
func deletedSSTsExist(levels *pb.HummockVersion_Levels, deleteLevels []uint32, ids map[uint64]struct{}) (bool, error) {
	missing := make(map[uint64]struct{}, len(ids))
	for id := range ids {
		missing[id] = struct{}{}
	}
	for _, li := range deleteLevels {
		var ls []*pb.Level
		if li == 0 {
			if levels.L0 == nil {
				return false, fmt.Errorf("group has no l0")
			}
			ls = levels.L0.SubLevels
		} else {
			if int(li) > len(levels.Levels) {
				return false, fmt.Errorf("delete from level %d, the group has %d levels", li, len(levels.Levels))
			}
			ls = []*pb.Level{levels.Levels[li-1]}
		}
		for _, l := range ls {
			for _, sst := range l.TableInfos {
				delete(missing, sst.GetSstId())
			}
		}
	}
	return len(missing) == 0, nil
}

// levelDeleteSSTs is level_delete_ssts: drop by sst_id (never object_id:
// branched copies share an object) and recompute the level's sizes.
func levelDeleteSSTs(l *pb.Level, ids map[uint64]struct{}) {
	l.TableInfos = slices.DeleteFunc(l.TableInfos, func(s *pb.SstableInfo) bool {
		_, ok := ids[s.GetSstId()]
		return ok
	})
	l.TotalFileSize, l.UncompressedFileSize = 0, 0
	for _, s := range l.TableInfos {
		l.TotalFileSize += s.GetFileSize()
		l.UncompressedFileSize += s.GetUncompressedFileSize()
	}
}

// levelInsertSSTs is level_insert_ssts: add sizes, append, sort by key
// range, the level becomes non-overlapping, and must concatenate.
func levelInsertSSTs(l *pb.Level, ssts []*pb.SstableInfo) error {
	for _, s := range ssts {
		l.TotalFileSize += s.GetFileSize()
		l.UncompressedFileSize += s.GetUncompressedFileSize()
	}
	l.TableInfos = append(l.TableInfos, ssts...)
	if err := sortByKeyRange(l.TableInfos); err != nil {
		return err
	}
	if l.LevelType == pb.LevelType_LEVEL_TYPE_OVERLAPPING {
		l.LevelType = pb.LevelType_LEVEL_TYPE_NONOVERLAPPING
	}
	return assertConcat(l.TableInfos)
}

// newSubLevel is new_sub_level.
func newSubLevel(id uint64, lt pb.LevelType, ssts []*pb.SstableInfo) *pb.Level {
	l := &pb.Level{LevelIdx: 0, LevelType: lt, TableInfos: ssts, SubLevelId: id}
	for _, s := range ssts {
		l.TotalFileSize += s.GetFileSize()
		l.UncompressedFileSize += s.GetUncompressedFileSize()
	}
	return l
}

// insertNewSubLevel is insert_new_sub_level; pos < 0 means append, which
// must keep sub-level ids increasing. A sub-level id of u64::MAX is
// silently ignored, as in RisingWave.
func insertNewSubLevel(l0 *pb.OverlappingLevel, id uint64, lt pb.LevelType, ssts []*pb.SstableInfo, pos int) error {
	if id == math.MaxUint64 {
		return nil
	}
	if pos < 0 {
		if n := len(l0.SubLevels); n > 0 && l0.SubLevels[n-1].GetSubLevelId() >= id {
			return fmt.Errorf("inserted new level is not the newest: prev newest: %d, insert: %d", l0.SubLevels[n-1].GetSubLevelId(), id)
		}
		pos = len(l0.SubLevels)
	}
	l := newSubLevel(id, lt, ssts)
	l0.TotalFileSize += l.TotalFileSize
	l0.UncompressedFileSize += l.UncompressedFileSize
	l0.SubLevels = slices.Insert(l0.SubLevels, pos, l)
	return nil
}

// addSSTsToSubLevel is add_ssts_to_sub_level.
func addSSTsToSubLevel(l0 *pb.OverlappingLevel, idx int, ssts []*pb.SstableInfo) error {
	sl := l0.SubLevels[idx]
	for _, s := range ssts {
		sl.TotalFileSize += s.GetFileSize()
		sl.UncompressedFileSize += s.GetUncompressedFileSize()
		l0.TotalFileSize += s.GetFileSize()
		l0.UncompressedFileSize += s.GetUncompressedFileSize()
	}
	sl.TableInfos = append(sl.TableInfos, ssts...)
	if sl.LevelType == pb.LevelType_LEVEL_TYPE_NONOVERLAPPING {
		if err := sortByKeyRange(sl.TableInfos); err != nil {
			return err
		}
		if err := assertConcat(sl.TableInfos); err != nil {
			return fmt.Errorf("sub level %d: %w", sl.GetSubLevelId(), err)
		}
	}
	return nil
}

// newGroupLevels is build_initial_compaction_group_levels: max_level empty
// non-overlapping levels and an empty (but present) L0.
func newGroupLevels(gid, maxLevel uint64) (*pb.HummockVersion_Levels, error) {
	if maxLevel > maxLevelLimit {
		return nil, fmt.Errorf("group config max_level %d exceeds %d", maxLevel, maxLevelLimit)
	}
	nl := &pb.HummockVersion_Levels{
		Levels:        make([]*pb.Level, 0, maxLevel),
		L0:            &pb.OverlappingLevel{},
		GroupId:       gid,
		ParentGroupId: newCompactionGroupID,
	}
	for l := uint64(0); l < maxLevel; l++ {
		nl.Levels = append(nl.Levels, &pb.Level{LevelIdx: uint32(l + 1), LevelType: pb.LevelType_LEVEL_TYPE_NONOVERLAPPING})
	}
	return nl, nil
}

// levelType is prost's Level::level_type() getter: unknown values read as
// the default.
func levelType(l *pb.Level) pb.LevelType {
	switch lt := l.GetLevelType(); lt {
	case pb.LevelType_LEVEL_TYPE_NONOVERLAPPING, pb.LevelType_LEVEL_TYPE_OVERLAPPING:
		return lt
	default:
		return pb.LevelType_LEVEL_TYPE_UNSPECIFIED
	}
}

// initWithParentGroup is HummockVersion::init_with_parent_group: the SSTs of
// parent that hold any table of members are branched into child (same
// object, new sst ids from startID: the child copy takes n, the parent copy
// n+1 unless the split is trivial, which moves the SST out of the parent).
func initWithParentGroup(v *pb.HummockVersion, parentID, childID uint64, members map[uint32]struct{}, startID uint64, allowTrivial bool) error {
	parent := v.Levels[parentID]
	if parentID == newCompactionGroupID || parent == nil {
		return nil
	}
	if parentID == childID {
		return fmt.Errorf("parent group %d is the group itself", parentID)
	}
	child := v.Levels[childID]
	if child == nil {
		return fmt.Errorf("group %d to split into does not exist", childID)
	}
	next := startID
	if pl0 := parent.L0; pl0 != nil {
		for _, sub := range pl0.SubLevels {
			tl0 := child.L0
			if tl0 == nil {
				return fmt.Errorf("group %d has no l0", childID)
			}
			// Where the copies go: the child's sub-level with the same id,
			// else a new sub-level at the sorted position.
			hint, exists := len(tl0.SubLevels), false
			for i, o := range tl0.SubLevels {
				if o.GetSubLevelId() == sub.GetSubLevelId() {
					hint, exists = i, true
					break
				}
				if o.GetSubLevelId() > sub.GetSubLevelId() {
					hint = i
					break
				}
			}
			copies := splitSSTsForLevel(sub, members, allowTrivial, &next)
			// Sub-levels emptied here are kept until a compaction of L0
			// purges them.
			sub.TableInfos = slices.DeleteFunc(sub.TableInfos, func(s *pb.SstableInfo) bool {
				if len(s.GetTableIds()) != 0 {
					return false
				}
				sub.TotalFileSize -= s.GetFileSize()
				sub.UncompressedFileSize -= s.GetUncompressedFileSize()
				pl0.TotalFileSize -= s.GetFileSize()
				pl0.UncompressedFileSize -= s.GetUncompressedFileSize()
				return true
			})
			if len(copies) == 0 {
				continue
			}
			var err error
			if exists {
				err = addSSTsToSubLevel(tl0, hint, copies)
			} else {
				err = insertNewSubLevel(tl0, sub.GetSubLevelId(), levelType(sub), copies, hint)
			}
			if err != nil {
				return fmt.Errorf("l0 sub level %d: %w", sub.GetSubLevelId(), err)
			}
		}
	}
	for idx, level := range parent.Levels {
		copies := splitSSTsForLevel(level, members, allowTrivial, &next)
		if idx >= len(child.Levels) {
			return fmt.Errorf("group %d has %d levels, fewer than parent group %d", childID, len(child.Levels), parentID)
		}
		cl := child.Levels[idx]
		for _, s := range copies {
			cl.TotalFileSize += s.GetFileSize()
			cl.UncompressedFileSize += s.GetUncompressedFileSize()
		}
		cl.TableInfos = append(cl.TableInfos, copies...)
		// RisingWave sorts and checks the child level even with no copies.
		if err := sortByKeyRange(cl.TableInfos); err != nil {
			return fmt.Errorf("level %d: %w", idx+1, err)
		}
		if err := assertConcat(cl.TableInfos); err != nil {
			return fmt.Errorf("level %d: %w", idx+1, err)
		}
		level.TableInfos = slices.DeleteFunc(level.TableInfos, func(s *pb.SstableInfo) bool {
			if len(s.GetTableIds()) != 0 {
				return false
			}
			level.TotalFileSize -= s.GetFileSize()
			level.UncompressedFileSize -= s.GetUncompressedFileSize()
			return true
		})
	}
	return nil
}

// splitSSTsForLevel is split_sst_info_for_level: returns the branch copies
// (full clones, table_ids not partitioned) and renumbers the parent copies.
func splitSSTsForLevel(l *pb.Level, members map[uint32]struct{}, allowTrivial bool, next *uint64) []*pb.SstableInfo {
	var copies []*pb.SstableInfo
	for _, s := range l.TableInfos {
		hit := 0
		for _, t := range s.GetTableIds() {
			if _, ok := members[t]; ok {
				hit++
			}
		}
		if hit == 0 {
			continue
		}
		branch := proto.Clone(s).(*pb.SstableInfo)
		branch.SstId = *next
		*next++
		if allowTrivial && hit == len(s.GetTableIds()) {
			// The parent copy is dropped by the caller; it keeps its id.
			s.TableIds = nil
		} else {
			s.SstId = *next
			*next++
		}
		copies = append(copies, branch)
	}
	return copies
}

func tableSet(ids []uint32) map[uint32]struct{} {
	m := make(map[uint32]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	return m
}

func subLevelIDs(l0 *pb.OverlappingLevel) []uint64 {
	ids := make([]uint64, len(l0.GetSubLevels()))
	for i, sl := range l0.GetSubLevels() {
		ids[i] = sl.GetSubLevelId()
	}
	return ids
}

func sortedKeys[K uint32 | uint64, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// checkWellFormed rejects nil entries a decoded version never has but a
// constructed one might, so the replay code can index freely.
func checkWellFormed(v *pb.HummockVersion) error {
	for gid, g := range v.GetLevels() {
		if g == nil {
			return fmt.Errorf("compaction group %d is nil", gid)
		}
		check := func(what string, l *pb.Level) error {
			if l == nil {
				return fmt.Errorf("compaction group %d: nil %s", gid, what)
			}
			for _, s := range l.TableInfos {
				if s == nil {
					return fmt.Errorf("compaction group %d: nil sstable in %s", gid, what)
				}
			}
			return nil
		}
		for _, sl := range g.GetL0().GetSubLevels() {
			if err := check("l0 sub level", sl); err != nil {
				return err
			}
		}
		for _, l := range g.GetLevels() {
			if err := check("level", l); err != nil {
				return err
			}
		}
	}
	return nil
}
