package hummock

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/rwversion"
	"google.golang.org/protobuf/proto"
)

// ErrInconsistentVersion is wrapped by Replay when the delta log does not
// lead to its newest delta (a gap, or a checkpoint newer than the log), the
// condition RisingWave's backup builder reports as "inconsistent hummock
// version: expected {max delta id}, actual {replayed id}".
var ErrInconsistentVersion = errors.New("inconsistent hummock version")

// Replay rebuilds the current version from a checkpoint version and the
// delta log, as meta startup (load_meta_store_state_impl) and the backup
// builder do: deltas in ascending id order, each applied only if its prev_id
// is the running version's id, others skipped (so deltas older than the
// checkpoint are ignored). Unlike meta startup, and like the backup builder,
// it fails when the result is not the newest delta's id. r is the rule set
// of the cluster's release line (rwversion). base is not modified.
func Replay(base *pb.HummockVersion, deltas []*pb.HummockVersionDelta, r rwversion.Replay) (*pb.HummockVersion, error) {
	if base == nil {
		return nil, fmt.Errorf("replay hummock version deltas: nil base version")
	}
	v := proto.Clone(base).(*pb.HummockVersion)
	sorted := make([]*pb.HummockVersionDelta, 0, len(deltas))
	for _, d := range deltas {
		if d != nil {
			sorted = append(sorted, d)
		}
	}
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].GetId() < sorted[j].GetId() })
	for _, d := range sorted {
		if d.GetPrevId() != v.GetId() {
			continue
		}
		if err := ApplyDelta(v, d, r); err != nil {
			return nil, fmt.Errorf("replay hummock version deltas onto version %d: %w", base.GetId(), err)
		}
	}
	if n := len(sorted); n > 0 {
		if maxID := sorted[n-1].GetId(); maxID != v.GetId() {
			return nil, fmt.Errorf("%w: expected %d, actual %d", ErrInconsistentVersion, maxID, v.GetId())
		}
	}
	return v, nil
}

// InitVersion is the version a v1.7 meta node creates when the state store
// holds no checkpoint (versioning.rs create_init_version): id 1, epochs 0,
// the static groups 2 (StateDefault) and 3 (MaterializedView) built by
// build_initial_compaction_group_levels with the default max_level of 6.
func InitVersion() *pb.HummockVersion {
	v := &pb.HummockVersion{Id: 1, Levels: map[uint64]*pb.HummockVersion_Levels{}}
	for _, gid := range []uint64{stateDefaultGroupID, mvGroupID} {
		l, err := newGroupLevels(gid, defaultMaxLevel)
		if err != nil {
			panic(err) // defaultMaxLevel is a constant within the limit
		}
		v.Levels[gid] = l
	}
	return v
}

// ObjectIDs is the manifest's `ssts`: the deduplicated object ids (not sst
// ids: branched copies share an object) of every SST in every group's L0
// sub-levels and levels, ascending. RisingWave's order is a HashSet's, so
// order carries no meaning there. Table change-log SSTs (v1.9+) are included
// as v1.10's HummockVersion::get_object_ids does; v1.7 versions have none.
func ObjectIDs(v *pb.HummockVersion) []uint64 {
	seen := map[uint64]struct{}{}
	add := func(ssts []*pb.SstableInfo) {
		for _, s := range ssts {
			if s != nil {
				seen[s.GetObjectId()] = struct{}{}
			}
		}
	}
	for _, g := range v.GetLevels() {
		for _, sl := range g.GetL0().GetSubLevels() {
			add(sl.GetTableInfos())
		}
		for _, l := range g.GetLevels() {
			add(l.GetTableInfos())
		}
	}
	for _, cl := range v.GetTableChangeLogs() {
		for _, e := range cl.GetChangeLogs() {
			add(e.GetOldValue())
			add(e.GetNewValue())
		}
	}
	ids := make([]uint64, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// applyStateTableInfo is v1.10's HummockVersionStateTableInfo::apply_delta,
// step 0 of apply_version_delta: drop removed tables, then set each other
// changed table to its new absolute value, which must not regress. It returns
// the previous value of every changed table (nil for a new one). v1.7 deltas
// carry no state_table_info_delta and v1.7 versions hold no state_table_info,
// so for them this does nothing.
func applyStateTableInfo(v *pb.HummockVersion, d *pb.HummockVersionDelta) (map[uint32]*pb.StateTableInfo, bool, error) {
	if len(d.GetStateTableInfoDelta()) == 0 && len(d.GetRemovedTableIds()) == 0 {
		return nil, false, nil
	}
	bumped := false
	changed := map[uint32]*pb.StateTableInfo{}
	removed := tableSet(d.GetRemovedTableIds())
	for _, tid := range d.GetRemovedTableIds() {
		if prev, ok := v.StateTableInfo[tid]; ok {
			changed[tid] = prev
			delete(v.StateTableInfo, tid)
		} // else RisingWave warns "table to remove does not exist"
	}
	for _, tid := range sortedKeys(d.GetStateTableInfoDelta()) {
		if _, ok := removed[tid]; ok {
			continue
		}
		nd := d.StateTableInfoDelta[tid]
		next := &pb.StateTableInfo{
			CommittedEpoch:    nd.GetCommittedEpoch(),
			SafeEpoch:         nd.GetSafeEpoch(),
			CompactionGroupId: nd.GetCompactionGroupId(),
		}
		prev, ok := v.StateTableInfo[tid]
		if ok && prev != nil && (next.SafeEpoch < prev.GetSafeEpoch() || next.CommittedEpoch < prev.GetCommittedEpoch()) {
			return nil, false, fmt.Errorf("state table info regress. table id: %d, prev: {committed %d, safe %d}, new: {committed %d, safe %d}",
				tid, prev.GetCommittedEpoch(), prev.GetSafeEpoch(), next.CommittedEpoch, next.SafeEpoch)
		}
		if ok {
			changed[tid] = prev
			// v2.0 commits when an existing table's epoch rose (version.rs
			// apply_delta has_bumped_committed_epoch).
			if prev != nil && next.CommittedEpoch > prev.GetCommittedEpoch() {
				bumped = true
			}
		} else {
			changed[tid] = nil
		}
		if v.StateTableInfo == nil {
			v.StateTableInfo = map[uint32]*pb.StateTableInfo{}
		}
		v.StateTableInfo[tid] = next
	}
	return changed, bumped, nil
}

// applyChangeLogs is the table change-log part of apply_version_delta
// (v1.9+): append each new log, drop the logs of removed tables and, of the
// tables that committed (committed(tid): v1.9 any max_committed_epoch rise,
// v1.10 the table's own epoch rose), those without a new log, then truncate.
func applyChangeLogs(v *pb.HummockVersion, d *pb.HummockVersionDelta, committed func(tid uint32) bool) error {
	for _, tid := range sortedKeys(d.GetChangeLogDelta()) {
		nl := d.ChangeLogDelta[tid].GetNewLog()
		if nl == nil {
			return fmt.Errorf("change log delta of table %d has no new_log", tid)
		}
		nl = proto.Clone(nl).(*pb.EpochNewChangeLog)
		cur, ok := v.TableChangeLogs[tid]
		if !ok || cur == nil {
			if v.TableChangeLogs == nil {
				v.TableChangeLogs = map[uint32]*pb.TableChangeLog{}
			}
			v.TableChangeLogs[tid] = &pb.TableChangeLog{ChangeLogs: []*pb.EpochNewChangeLog{nl}}
			continue
		}
		if n := len(cur.ChangeLogs); n > 0 {
			prev := cur.ChangeLogs[n-1]
			if len(prev.GetEpochs()) == 0 || len(nl.GetEpochs()) == 0 {
				return fmt.Errorf("change log of table %d: empty epoch list", tid)
			}
			if prev.Epochs[len(prev.Epochs)-1] >= nl.Epochs[0] {
				return fmt.Errorf("change log of table %d: new epoch %d is not after %d", tid, nl.Epochs[0], prev.Epochs[len(prev.Epochs)-1])
			}
		}
		cur.ChangeLogs = append(cur.ChangeLogs, nl)
	}
	if len(v.TableChangeLogs) > 0 {
		removed := tableSet(d.GetRemovedTableIds())
		for tid := range v.TableChangeLogs {
			if _, ok := removed[tid]; ok {
				delete(v.TableChangeLogs, tid)
				continue
			}
			if !committed(tid) {
				continue
			}
			if _, ok := d.GetChangeLogDelta()[tid]; !ok {
				// "table change log dropped due to no further change log at
				// newly committed epoch"
				delete(v.TableChangeLogs, tid)
			}
		}
	}
	for _, tid := range sortedKeys(d.GetChangeLogDelta()) {
		cl := v.TableChangeLogs[tid]
		if cl == nil {
			continue
		}
		te := d.ChangeLogDelta[tid].GetTruncateEpoch()
		kept := cl.ChangeLogs[:0]
		for _, e := range cl.ChangeLogs {
			if len(e.GetEpochs()) == 0 {
				return fmt.Errorf("change log of table %d: empty epoch list", tid)
			}
			if e.Epochs[len(e.Epochs)-1] > te {
				kept = append(kept, e)
			}
		}
		cl.ChangeLogs = kept
		if len(kept) > 0 {
			kept[0].Epochs = slices.DeleteFunc(kept[0].Epochs, func(ep uint64) bool { return ep <= te })
		}
	}
	return nil
}
