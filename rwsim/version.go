package rwsim

import (
	"bytes"
	"encoding/binary"
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/hummock/commonpb"
	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
)

// rwsim keeps the current HummockVersion itself and changes it with the
// few operations a v1.7 meta node performs (commit_epoch, report_compact_task
// incl. trivial moves, split_compaction_group, register/unregister tables).
// Each operation edits the version directly, in terms of what RisingWave's
// result is, and records the HummockVersionDelta meta would have written.
// ExpectedVersion is therefore an independent oracle for rwsnap's generic
// delta replay (package hummock), not a second call to it.

// StaticCompactionGroupId (hummock_sdk/src/compaction_group/mod.rs v1.7).
const (
	groupStateDefault = 2
	groupMV           = 3
	groupStaticEnd    = 4
	defaultMaxLevel   = 6
	vnodeCount        = 256
)

// compactionConfig is the v1.7 default CompactionConfig
// (src/meta/src/hummock/compaction/compaction_config.rs). Only max_level is
// declared in rwsnap's proto subset; the other fields are attached as
// unknown fields so the bytes match what RisingWave writes and rwsnap's
// pass-through of unknown fields is exercised.
func compactionConfig() *pb.CompactionConfig {
	cfg := &pb.CompactionConfig{MaxLevel: defaultMaxLevel}
	u := msg(nil).uint(1, 512<<20).uint(3, 5).uint(4, 2<<30).uint(5, 128<<20).uint(6, 0).
		uint(7, 12).uint(8, 1)
	for _, c := range []string{"None", "None", "None", "None", "Lz4", "Lz4", "Zstd"} {
		u = u.strOpt(9, c)
	}
	u = u.uint(10, 32<<20).uint(11, 6).uint(12, 4).uint(13, 512<<20).
		uint(15, 300).uint(16, 100).uint(17, 3).uint(18, 12).uint(19, 40).boolean(20, true)
	cfg.ProtoReflect().SetUnknown([]byte(u))
	return cfg
}

func compactionGroupValue(gid uint64) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&pb.CompactionGroup{Id: gid, CompactionConfig: compactionConfig()})
	if err != nil {
		panic(err)
	}
	return b
}

// newGroupLevels is build_initial_compaction_group_levels: max_level empty
// NONOVERLAPPING levels and an empty (but present) L0.
func newGroupLevels(gid, parent uint64, members []uint32) *pb.HummockVersion_Levels {
	l := &pb.HummockVersion_Levels{
		GroupId:        gid,
		ParentGroupId:  parent,
		L0:             &pb.OverlappingLevel{},
		MemberTableIds: slices.Clone(members),
	}
	for i := range defaultMaxLevel {
		l.Levels = append(l.Levels, &pb.Level{LevelIdx: uint32(i + 1), LevelType: pb.LevelType_LEVEL_TYPE_NONOVERLAPPING})
	}
	return l
}

func initVersion() *pb.HummockVersion {
	return &pb.HummockVersion{
		Id: 1,
		Levels: map[uint64]*pb.HummockVersion_Levels{
			groupStateDefault: newGroupLevels(groupStateDefault, 0, nil),
			groupMV:           newGroupLevels(groupMV, 0, nil),
		},
	}
}

// fullKey is BE u32 table_id ‖ table_key ‖ BE u64 epoch, with table_key =
// BE u16 vnode ‖ 8-byte memcomparable pk (hummock_sdk/src/key.rs).
func fullKey(table uint32, vnode uint16, pk uint64, epoch uint64) []byte {
	b := binary.BigEndian.AppendUint32(nil, table)
	b = binary.BigEndian.AppendUint16(b, vnode)
	b = binary.BigEndian.AppendUint64(b, pk)
	return binary.BigEndian.AppendUint64(b, epoch)
}

// newSST allocates an object id and describes an SST holding keys of tables
// (ascending) written between minEpoch and maxEpoch. Its object is uploaded
// before the delta naming it is committed.
func (c *Cluster) newSST(tables []uint32, minEpoch, maxEpoch uint64) *pb.SstableInfo {
	id := c.gens.sst.alloc(1)
	size := uint64(2048 + c.rng.Intn(6144))
	keys := uint64(20 + c.rng.Intn(500))
	lo := uint64(c.rng.Int63n(1 << 20))
	hi := lo + uint64(1+c.rng.Int63n(1<<40))
	sst := &pb.SstableInfo{
		ObjectId: id,
		SstId:    id,
		KeyRange: &pb.KeyRange{
			// The left bound is the newest version of the smallest key, the
			// right bound the oldest version of the largest one.
			Left:  fullKey(tables[0], 0, lo, maxEpoch),
			Right: fullKey(tables[len(tables)-1], vnodeCount-1, hi, minEpoch),
		},
		FileSize:             size,
		TableIds:             slices.Clone(tables),
		MetaOffset:           size - 256 - uint64(c.rng.Intn(512)),
		StaleKeyCount:        uint64(c.rng.Intn(int(keys / 4))),
		TotalKeyCount:        keys,
		MinEpoch:             minEpoch,
		MaxEpoch:             maxEpoch,
		UncompressedFileSize: size * 3,
		BloomFilterKind:      1, // BloomFilterType::Sstable
	}
	c.newObjects = append(c.newObjects, sstObject{id: id, size: size})
	return sst
}

// beginDelta is build_version_delta_after_version: id+1, prev id, and the
// current epochs copied, so every delta carries absolute epochs.
func (c *Cluster) beginDelta() *pb.HummockVersionDelta {
	v := c.version
	return &pb.HummockVersionDelta{
		Id:                v.Id + 1,
		PrevId:            v.Id,
		MaxCommittedEpoch: v.MaxCommittedEpoch,
		SafeEpoch:         v.SafeEpoch,
		GroupDeltas:       map[uint64]*pb.HummockVersionDelta_GroupDeltas{},
	}
}

func addGroupDelta(d *pb.HummockVersionDelta, gid uint64, gd *pb.GroupDelta) {
	g := d.GroupDeltas[gid]
	if g == nil {
		g = &pb.HummockVersionDelta_GroupDeltas{}
		d.GroupDeltas[gid] = g
	}
	g.GroupDeltas = append(g.GroupDeltas, gd)
}

func intraLevel(level uint32, subLevel uint64, removed []uint64, inserted []*pb.SstableInfo) *pb.GroupDelta {
	return &pb.GroupDelta{DeltaType: &pb.GroupDelta_IntraLevel{IntraLevel: &pb.IntraLevelDelta{
		LevelIdx: level, L0SubLevelId: subLevel, RemovedTableIds: removed, InsertedTableInfos: cloneSSTs(inserted),
	}}}
}

// finishDelta moves the version to the delta's id and epochs and queues the
// delta for writing.
func (c *Cluster) finishDelta(d *pb.HummockVersionDelta) {
	v := c.version
	v.Id = d.Id
	v.MaxCommittedEpoch = d.MaxCommittedEpoch
	c.clearWatermarks(d)
	v.SafeEpoch = d.SafeEpoch
	if len(d.GroupDeltas) == 0 {
		d.GroupDeltas = nil
	}
	// Objects this delta released are the checkpoint's stale objects of
	// this version until full GC.
	if len(c.stale) > 0 {
		c.staleByVer[d.Id] = &pb.HummockVersionCheckpoint_StaleObjects{Id: c.stale, TotalFileSize: c.staleSize}
		c.stale, c.staleSize = nil, 0
	}
	c.newDeltas = append(c.newDeltas, d)
}

func cloneSSTs(ssts []*pb.SstableInfo) []*pb.SstableInfo {
	out := make([]*pb.SstableInfo, len(ssts))
	for i, s := range ssts {
		out[i] = proto.Clone(s).(*pb.SstableInfo)
	}
	return out
}

func sizes(ssts []*pb.SstableInfo) (file, uncompressed uint64) {
	for _, s := range ssts {
		file += s.FileSize
		uncompressed += s.UncompressedFileSize
	}
	return
}

// recomputeSizes sets every level's and L0's totals to the sums of what
// they hold. RisingWave keeps them equal to those sums in every operation
// rwsim performs (adds on insert, recomputes on delete).
func recomputeSizes(l *pb.HummockVersion_Levels) {
	var t, u uint64
	for _, sl := range l.L0.SubLevels {
		sl.TotalFileSize, sl.UncompressedFileSize = sizes(sl.TableInfos)
		t += sl.TotalFileSize
		u += sl.UncompressedFileSize
	}
	l.L0.TotalFileSize, l.L0.UncompressedFileSize = t, u
	for _, lv := range l.Levels {
		lv.TotalFileSize, lv.UncompressedFileSize = sizes(lv.TableInfos)
	}
}

// compareKeyRanges orders SSTs as key_range_cmp!: by left full key, then
// right; a full key compares user keys ascending, then epochs descending.
func compareKeyRanges(a, b *pb.KeyRange) int {
	if c := compareFull(a.Left, b.Left); c != 0 {
		return c
	}
	return compareFull(a.Right, b.Right)
}

func compareFull(a, b []byte) int {
	if c := bytes.Compare(a[:len(a)-8], b[:len(b)-8]); c != 0 {
		return c
	}
	return bytes.Compare(b[len(b)-8:], a[len(a)-8:])
}

func sortSSTs(ssts []*pb.SstableInfo) {
	slices.SortStableFunc(ssts, func(a, b *pb.SstableInfo) int { return compareKeyRanges(a.KeyRange, b.KeyRange) })
}

// --- operations -----------------------------------------------------------

// commit is commit_epoch: one new OVERLAPPING L0 sub-level per group that
// received SSTs, sub_level_id = the epoch, SSTs in the order given.
func (c *Cluster) commit(epoch uint64, perGroup map[uint64][]*pb.SstableInfo, watermarks map[uint32]*pb.TableWatermarks) {
	d := c.beginDelta()
	d.MaxCommittedEpoch = epoch
	for _, gid := range sortedKeys(perGroup) {
		ssts := perGroup[gid]
		if len(ssts) == 0 {
			continue
		}
		addGroupDelta(d, gid, intraLevel(0, epoch, nil, ssts))
		l := c.version.Levels[gid]
		f, u := sizes(ssts)
		l.L0.SubLevels = append(l.L0.SubLevels, &pb.Level{
			LevelIdx: 0, LevelType: pb.LevelType_LEVEL_TYPE_OVERLAPPING, TableInfos: cloneSSTs(ssts),
			TotalFileSize: f, SubLevelId: epoch, UncompressedFileSize: u,
		})
		l.L0.TotalFileSize += f
		l.L0.UncompressedFileSize += u
		c.addTableStats(ssts)
	}
	c.commitTableInfo(d, epoch)
	c.changeLogs(d, epoch, perGroup)
	if len(watermarks) > 0 {
		d.NewTableWatermarks = map[uint32]*pb.TableWatermarks{}
		if c.version.TableWatermarks == nil {
			c.version.TableWatermarks = map[uint32]*pb.TableWatermarks{}
		}
		for t, tw := range watermarks {
			d.NewTableWatermarks[t] = proto.Clone(tw).(*pb.TableWatermarks)
			if cur := c.version.TableWatermarks[t]; cur != nil {
				cur.EpochWatermarks = append(cur.EpochWatermarks, cloneEpochWatermarks(tw.EpochWatermarks)...)
			} else {
				c.version.TableWatermarks[t] = proto.Clone(tw).(*pb.TableWatermarks)
			}
		}
	}
	c.finishDelta(d)
	c.purgeTableStats()
}

// compactL0 is an L0 -> L1 compaction task of group gid as report_compact_task
// writes it: all L0 SSTs plus the L1 SSTs their key span overlaps are
// replaced by one output SST per member table they hold (non-member data is
// dropped), inserted into L1 in key order. The task's watermark advances the
// safe epoch. It does nothing when L0 is empty.
func (c *Cluster) compactL0(gid uint64, watermark uint64) bool {
	l := c.version.Levels[gid]
	var l0 []*pb.SstableInfo
	for _, sl := range l.L0.SubLevels {
		l0 = append(l0, sl.TableInfos...)
	}
	if len(l0) == 0 {
		return false
	}
	lo, hi := l0[0].TableIds[0], l0[0].TableIds[len(l0[0].TableIds)-1]
	var minE, maxE uint64 = ^uint64(0), 0
	tables := map[uint32]bool{}
	for _, s := range l0 {
		lo = min(lo, s.TableIds[0])
		hi = max(hi, s.TableIds[len(s.TableIds)-1])
		minE, maxE = min(minE, s.MinEpoch), max(maxE, s.MaxEpoch)
		for _, t := range s.TableIds {
			tables[t] = true
		}
	}
	l1 := l.Levels[0]
	var l1In []*pb.SstableInfo
	for _, s := range l1.TableInfos {
		if s.TableIds[len(s.TableIds)-1] >= lo && s.TableIds[0] <= hi {
			l1In = append(l1In, s)
			minE = min(minE, s.MinEpoch)
			for _, t := range s.TableIds {
				tables[t] = true
			}
		}
	}
	var outputs []*pb.SstableInfo
	for _, t := range c.membersOf(gid) { // ascending: outputs come sorted
		if tables[t] {
			outputs = append(outputs, c.newSST([]uint32{t}, minE, maxE))
		}
	}
	c.gens.compactTask.alloc(1)

	d := c.beginDelta()
	d.SafeEpoch = max(c.version.SafeEpoch, watermark)
	c.compactTableInfo(d)
	removed := map[uint64]bool{}
	var l0IDs, l1IDs []uint64
	for _, s := range l0 {
		l0IDs = append(l0IDs, s.SstId)
		removed[s.SstId] = true
	}
	for _, s := range l1In {
		l1IDs = append(l1IDs, s.SstId)
		removed[s.SstId] = true
	}
	addGroupDelta(d, gid, intraLevel(0, 0, l0IDs, nil))
	if len(l1IDs) > 0 {
		addGroupDelta(d, gid, intraLevel(1, 0, l1IDs, nil))
	}
	addGroupDelta(d, gid, intraLevel(1, 0, nil, outputs))

	// The version: inputs gone, emptied sub-levels dropped (L0 was a delete
	// level), outputs sorted into L1 (they fit between the untouched SSTs).
	l.L0.SubLevels = nil
	l1.TableInfos = slices.DeleteFunc(l1.TableInfos, func(s *pb.SstableInfo) bool { return removed[s.SstId] })
	l1.TableInfos = append(l1.TableInfos, cloneSSTs(outputs)...)
	sortSSTs(l1.TableInfos)
	recomputeSizes(l)
	gc := c.unreferenced(append(slices.Clone(l0), l1In...))
	if !c.v19() { // reserved since v1.9
		d.GcObjectIds = gc
	}
	c.finishDelta(d)
	return true
}

// trivialMove moves SSTs unchanged from level `from` to `from+1` (same
// object and sst ids): a removal and an insert of the same SstableInfos,
// trivial_move set, no GC.
func (c *Cluster) trivialMove(gid uint64, from uint32, sstIDs []uint64) {
	l := c.version.Levels[gid]
	src, dst := l.Levels[from-1], l.Levels[from]
	move := map[uint64]bool{}
	for _, id := range sstIDs {
		move[id] = true
	}
	var moved []*pb.SstableInfo
	for _, s := range src.TableInfos {
		if move[s.SstId] {
			moved = append(moved, s)
		}
	}
	c.gens.compactTask.alloc(1)
	d := c.beginDelta()
	d.TrivialMove = true
	addGroupDelta(d, gid, intraLevel(from, 0, sstIDs, nil))
	addGroupDelta(d, gid, intraLevel(from+1, 0, nil, moved))
	src.TableInfos = slices.DeleteFunc(src.TableInfos, func(s *pb.SstableInfo) bool { return move[s.SstId] })
	dst.TableInfos = append(dst.TableInfos, moved...)
	sortSSTs(dst.TableInfos)
	recomputeSizes(l)
	c.finishDelta(d)
}

// split is move_state_table_to_compaction_group without a target group
// (v1.7): a GroupConstruct for the new group (version NO_TRIVIAL_SPLIT) and
// a GroupMetaChange removing the tables from the parent. Every parent SST
// holding one of the tables is branched: the child gets a full copy with
// sst_id n, the parent keeps its copy under sst_id n+1 (2 ids reserved per
// SST from the hummock_ss_table_id generator); both share the object.
func (c *Cluster) split(parent uint64, tables []uint32) uint64 {
	p := c.version.Levels[parent]
	moving := map[uint32]bool{}
	for _, t := range tables {
		moving[t] = true
	}
	hit := func(s *pb.SstableInfo) bool {
		return slices.ContainsFunc(s.TableIds, func(t uint32) bool { return moving[t] })
	}
	var count uint64
	for _, sl := range p.L0.SubLevels {
		for _, s := range sl.TableInfos {
			if hit(s) {
				count += 2
			}
		}
	}
	for _, lv := range p.Levels {
		for _, s := range lv.TableInfos {
			if hit(s) {
				count += 2
			}
		}
	}
	start := c.gens.sst.alloc(count)
	gid := c.gens.group.alloc(1)

	d := c.beginDelta()
	construct := &pb.GroupConstruct{
		GroupConfig:   compactionConfig(),
		ParentGroupId: parent,
		TableIds:      slices.Clone(tables),
		GroupId:       gid,
		NewSstStartId: start,
		Version:       pb.CompatibilityVersion_NO_TRIVIAL_SPLIT,
	}
	var childMembers []uint32
	if c.v110() {
		// v1.10: the group's tables move in state_table_info; the
		// construct lists none.
		construct.TableIds, construct.Version = nil, pb.CompatibilityVersion_NO_MEMBER_TABLE_IDS
		for _, t := range tables {
			info := c.version.StateTableInfo[t]
			c.setTableInfo(d, t, info.GetCommittedEpoch(), info.GetSafeEpoch(), gid)
		}
	} else {
		childMembers = tables
	}
	addGroupDelta(d, gid, &pb.GroupDelta{DeltaType: &pb.GroupDelta_GroupConstruct{GroupConstruct: construct}})
	if !c.v110() {
		addGroupDelta(d, parent, &pb.GroupDelta{DeltaType: &pb.GroupDelta_GroupMetaChange{GroupMetaChange: &pb.GroupMetaChange{
			TableIdsRemove: slices.Clone(tables),
		}}})
	}

	child := newGroupLevels(gid, parent, childMembers)
	next := start
	branch := func(ssts []*pb.SstableInfo) []*pb.SstableInfo {
		var copies []*pb.SstableInfo
		for _, s := range ssts {
			if !hit(s) {
				continue
			}
			cp := proto.Clone(s).(*pb.SstableInfo)
			cp.SstId = next
			s.SstId = next + 1
			next += 2
			copies = append(copies, cp)
		}
		return copies
	}
	for _, sl := range p.L0.SubLevels {
		if copies := branch(sl.TableInfos); len(copies) > 0 {
			child.L0.SubLevels = append(child.L0.SubLevels, &pb.Level{
				LevelIdx: 0, LevelType: sl.LevelType, TableInfos: copies, SubLevelId: sl.SubLevelId,
			})
		}
	}
	for i, lv := range p.Levels {
		child.Levels[i].TableInfos = branch(lv.TableInfos)
		sortSSTs(child.Levels[i].TableInfos)
	}
	recomputeSizes(child)
	c.version.Levels[gid] = child
	c.setMembers(gid, slices.Clone(tables))
	c.setMembers(parent, slices.DeleteFunc(slices.Clone(c.membersOf(parent)), func(t uint32) bool { return moving[t] }))
	c.finishDelta(d)
	c.groupsChanged = true
	return gid
}

// registerTables is register_table_ids: one GroupMetaChange adding the
// tables of each group; member lists stay sorted.
func (c *Cluster) registerTables(byGroup map[uint64][]uint32) {
	d := c.beginDelta()
	for _, gid := range sortedKeys(byGroup) {
		add := byGroup[gid]
		if c.v110() {
			// v1.10: a new table enters state_table_info at the current
			// epoch, both epochs equal.
			for _, t := range add {
				c.setTableInfo(d, t, c.version.MaxCommittedEpoch, c.version.MaxCommittedEpoch, gid)
			}
		} else {
			addGroupDelta(d, gid, &pb.GroupDelta{DeltaType: &pb.GroupDelta_GroupMetaChange{GroupMetaChange: &pb.GroupMetaChange{
				TableIdsAdd: slices.Clone(add),
			}}})
		}
		m := append(slices.Clone(c.membersOf(gid)), add...)
		slices.Sort(m)
		c.setMembers(gid, m)
	}
	c.finishDelta(d)
}

// unregisterTables is unregister_table_ids (dropping a streaming job): one
// GroupMetaChange per table, removed_table_ids (drops their watermarks),
// and a GroupDestroy for every non-static group left without members; that
// group's objects no other group references are listed for GC.
func (c *Cluster) unregisterTables(tables []uint32) {
	d := c.beginDelta()
	left := map[uint64]int{}
	for _, t := range tables {
		gid, ok := c.groupOf(t)
		if !ok {
			continue
		}
		if !c.v110() {
			addGroupDelta(d, gid, &pb.GroupDelta{DeltaType: &pb.GroupDelta_GroupMetaChange{GroupMetaChange: &pb.GroupMetaChange{
				TableIdsRemove: []uint32{t},
			}}})
		}
		if _, seen := left[gid]; !seen {
			left[gid] = len(c.membersOf(gid))
		}
		left[gid]--
		d.RemovedTableIds = append(d.RemovedTableIds, t)
		c.setMembers(gid, slices.DeleteFunc(slices.Clone(c.membersOf(gid)), func(x uint32) bool { return x == t }))
		if c.v110() {
			// v1.10 keeps a removed table's watermarks unless the same
			// delta brings new ones for it (hummock_version_ext.rs@v1.10.0
			// :642): they stay in the version.
			delete(c.version.StateTableInfo, t)
		} else {
			delete(c.version.TableWatermarks, t)
		}
		delete(c.version.TableChangeLogs, t)
	}
	for _, gid := range sortedKeys(left) {
		if left[gid] != 0 || gid <= groupStaticEnd {
			continue
		}
		addGroupDelta(d, gid, &pb.GroupDelta{DeltaType: &pb.GroupDelta_GroupDestroy{GroupDestroy: &pb.GroupDestroy{}}})
		ssts := groupSSTs(c.version.Levels[gid])
		delete(c.version.Levels, gid)
		delete(c.members, gid)
		if gc := c.unreferenced(ssts); !c.v19() {
			d.GcObjectIds = append(d.GcObjectIds, gc...)
		}
		c.groupsChanged = true
	}
	if len(c.version.TableWatermarks) == 0 {
		c.version.TableWatermarks = nil
	}
	c.finishDelta(d)
}

// emptyCommit is a barrier that wrote nothing: the delta only bumps the
// version id and max committed epoch.
func (c *Cluster) emptyCommit(epoch uint64) {
	d := c.beginDelta()
	d.MaxCommittedEpoch = epoch
	c.finishDelta(d)
}

func (c *Cluster) groupOf(t uint32) (uint64, bool) {
	for _, gid := range sortedKeys(c.version.Levels) {
		if slices.Contains(c.membersOf(gid), t) {
			return gid, true
		}
	}
	return 0, false
}

func groupSSTs(l *pb.HummockVersion_Levels) []*pb.SstableInfo {
	var out []*pb.SstableInfo
	for i := len(l.L0.SubLevels) - 1; i >= 0; i-- {
		out = append(out, l.L0.SubLevels[i].TableInfos...)
	}
	for _, lv := range l.Levels {
		out = append(out, lv.TableInfos...)
	}
	return out
}

// unreferenced returns the object ids of ssts (already removed from the
// version) that no SST left in the version references: what drop_sst
// reports for GC once the last branch of an object is gone.
func (c *Cluster) unreferenced(ssts []*pb.SstableInfo) []uint64 {
	live := map[uint64]bool{}
	for _, l := range c.version.Levels {
		for _, s := range groupSSTs(l) {
			live[s.ObjectId] = true
		}
	}
	c.liveChangeLogObjects(live)
	var out []uint64
	seen := map[uint64]bool{}
	for _, s := range ssts {
		if !live[s.ObjectId] && !seen[s.ObjectId] {
			seen[s.ObjectId] = true
			out = append(out, s.ObjectId)
			c.stale = append(c.stale, s.ObjectId)
			c.staleSize += s.FileSize
		}
	}
	return out
}

// --- watermarks ---------------------------------------------------------

// fullVnodeBitmap is Bitmap::to_protobuf of 256 set bits: body = [256 % 8]
// followed by 32 bytes, compression NONE.
func fullVnodeBitmap() *commonpb.Buffer {
	body := make([]byte, 1+vnodeCount/8)
	for i := 1; i < len(body); i++ {
		body[i] = 0xff
	}
	return &commonpb.Buffer{Compression: commonpb.Buffer_NONE, Body: body}
}

func newTableWatermark(epoch uint64, value []byte) *pb.TableWatermarks {
	return &pb.TableWatermarks{
		EpochWatermarks: []*pb.TableWatermarks_EpochNewWatermarks{{
			Watermarks: []*pb.VnodeWatermark{{Watermark: value, VnodeBitmap: fullVnodeBitmap()}},
			Epoch:      epoch,
		}},
		IsAscending: true,
	}
}

func cloneEpochWatermarks(es []*pb.TableWatermarks_EpochNewWatermarks) []*pb.TableWatermarks_EpochNewWatermarks {
	out := make([]*pb.TableWatermarks_EpochNewWatermarks, len(es))
	for i, e := range es {
		out[i] = proto.Clone(e).(*pb.TableWatermarks_EpochNewWatermarks)
	}
	return out
}

// clearStaleWatermarks is clear_stale_epoch_watermark for rwsim's
// watermarks, each of which covers all 256 vnodes: if some entry is at or
// after the safe epoch it covers every vnode, so older entries are simply
// dropped; otherwise the newest older watermark is carried forward to one
// entry at the safe epoch (with a fresh full bitmap).
func clearStaleWatermarks(tw *pb.TableWatermarks, safe uint64) {
	es := tw.EpochWatermarks
	if len(es) == 0 || es[0].Epoch >= safe {
		return
	}
	i := sort.Search(len(es), func(i int) bool { return es[i].Epoch >= safe })
	if i < len(es) {
		tw.EpochWatermarks = es[i:]
		return
	}
	newest := es[len(es)-1].Watermarks[0]
	tw.EpochWatermarks = []*pb.TableWatermarks_EpochNewWatermarks{{
		Watermarks: []*pb.VnodeWatermark{{Watermark: newest.Watermark, VnodeBitmap: fullVnodeBitmap()}},
		Epoch:      safe,
	}}
}

// --- version stats ----------------------------------------------------

// addTableStats is add_prost_table_stats_map at commit: rough sizes per
// table of the SSTs written.
func (c *Cluster) addTableStats(ssts []*pb.SstableInfo) {
	if c.stats.TableStats == nil {
		c.stats.TableStats = map[uint32]*pb.TableStats{}
	}
	for _, s := range ssts {
		n := int64(len(s.TableIds))
		for _, t := range s.TableIds {
			ts := c.stats.TableStats[t]
			if ts == nil {
				ts = &pb.TableStats{}
				c.stats.TableStats[t] = ts
			}
			ts.TotalKeyCount += int64(s.TotalKeyCount) / n
			ts.TotalKeySize += int64(s.TotalKeyCount) * 22 / n
			ts.TotalValueSize += int64(s.UncompressedFileSize) / n
		}
	}
}

// purgeTableStats is purge_prost_table_stats: only member tables keep stats.
func (c *Cluster) purgeTableStats() {
	members := map[uint32]bool{}
	for _, m := range c.members {
		for _, t := range m {
			members[t] = true
		}
	}
	for t := range c.stats.TableStats {
		if !members[t] {
			delete(c.stats.TableStats, t)
		}
	}
}

func sortedKeys[K uint32 | uint64, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
