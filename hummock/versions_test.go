package hummock

import (
	"bytes"
	"testing"

	"github.com/rwsnap/rwsnap/hummock/commonpb"
	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/rwversion"
)

// Golden cases for the rules that differ by release line, written by hand
// from RisingWave's apply_version_delta at each tag (hummock_version_ext.rs
// @v1.7.0, @v1.9.0, @v1.10.0, @v2.0.7): one input, the result each line
// computes.

// allVnodes is a 256-vnode bitmap with every bit set, as
// Bitmap::to_protobuf writes it: byte 0 = 256 % 8 = 0, then 32 bytes.
func allVnodes() *commonpb.Buffer {
	return &commonpb.Buffer{Compression: commonpb.Buffer_NONE, Body: append([]byte{0}, bytes.Repeat([]byte{0xff}, 32)...)}
}

func wmEntry(epoch uint64, value string) *pb.TableWatermarks_EpochNewWatermarks {
	return &pb.TableWatermarks_EpochNewWatermarks{Epoch: epoch, Watermarks: []*pb.VnodeWatermark{{Watermark: []byte(value), VnodeBitmap: allVnodes()}}}
}

func wms(entries ...*pb.TableWatermarks_EpochNewWatermarks) *pb.TableWatermarks {
	return &pb.TableWatermarks{IsAscending: true, EpochWatermarks: entries}
}

type lineCase struct {
	name  string
	base  func() *pb.HummockVersion
	delta func() *pb.HummockVersionDelta
	// want per line; a line missing here must fail with wantErr[line].
	want    map[rwversion.Version]func() *pb.HummockVersion
	wantErr map[rwversion.Version]string
}

func runLineCases(t *testing.T, cases []lineCase) {
	t.Helper()
	for _, tc := range cases {
		for line, want := range tc.want {
			var cs []applyCase
			cs = append(cs, applyCase{name: tc.name + " " + line.String(), base: tc.base(), delta: tc.delta(), want: want(), line: line})
			runApplyCases(t, cs)
		}
		for line, e := range tc.wantErr {
			runApplyCases(t, []applyCase{{name: tc.name + " " + line.String(), base: tc.base(), delta: tc.delta(), wantErr: e, line: line}})
		}
	}
}

func TestLinesChangeLogDrop(t *testing.T) {
	// Two tables with change logs; a commit (mce 10 -> 20) brings a new log
	// for table 1 only and no state_table_info_delta (a v1.9 delta has no
	// field 11). v1.9 drops table 2's log (any max_committed_epoch rise);
	// v1.10 keeps it (its own committed epoch did not advance); v1.8 knows
	// no change logs at all and leaves the version's as they were.
	logs := func() map[uint32]*pb.TableChangeLog {
		return map[uint32]*pb.TableChangeLog{
			1: {ChangeLogs: []*pb.EpochNewChangeLog{{Epochs: []uint64{10}, NewValue: []*pb.SstableInfo{sst(50, 50, "a", "b", 1, 1)}}}},
			2: {ChangeLogs: []*pb.EpochNewChangeLog{{Epochs: []uint64{10}, OldValue: []*pb.SstableInfo{sst(60, 60, "a", "b", 1, 2)}}}},
		}
	}
	base := func() *pb.HummockVersion {
		v := ver(10, 10, 0, group(2, []uint32{1, 2}, nil, emptyLevels(6)))
		v.TableChangeLogs = logs()
		return v
	}
	newLog := func() *pb.EpochNewChangeLog {
		return &pb.EpochNewChangeLog{Epochs: []uint64{20}, NewValue: []*pb.SstableInfo{sst(51, 51, "a", "b", 1, 1)}}
	}
	d := func() *pb.HummockVersionDelta {
		d := delta(11, 10, 20, 0, nil)
		d.ChangeLogDelta = map[uint32]*pb.HummockVersionDelta_ChangeLogDelta{1: {NewLog: newLog()}}
		return d
	}
	withLogs := func(keep2 bool) func() *pb.HummockVersion {
		return func() *pb.HummockVersion {
			v := ver(11, 20, 0, group(2, []uint32{1, 2}, nil, emptyLevels(6)))
			l := logs()
			l[1].ChangeLogs = append(l[1].ChangeLogs, newLog())
			if !keep2 {
				delete(l, 2)
			}
			v.TableChangeLogs = l
			return v
		}
	}
	runLineCases(t, []lineCase{{
		name: "commit without a log for table 2", base: base, delta: d,
		want: map[rwversion.Version]func() *pb.HummockVersion{
			rwversion.V1_8: func() *pb.HummockVersion {
				v := ver(11, 20, 0, group(2, []uint32{1, 2}, nil, emptyLevels(6)))
				v.TableChangeLogs = logs()
				return v
			},
			rwversion.V1_9:  withLogs(false),
			rwversion.V1_10: withLogs(true),
		},
	}})

	// A compaction (mce unchanged) drops nothing in v1.9.
	compaction := func() *pb.HummockVersionDelta { return delta(11, 10, 10, 0, nil) }
	runLineCases(t, []lineCase{{
		name: "compaction", base: base, delta: compaction,
		want: map[rwversion.Version]func() *pb.HummockVersion{
			rwversion.V1_9: func() *pb.HummockVersion {
				v := ver(11, 10, 0, group(2, []uint32{1, 2}, nil, emptyLevels(6)))
				v.TableChangeLogs = logs()
				return v
			},
		},
	}})
}

func TestLinesVnodePartitionMembers(t *testing.T) {
	// Group 2's frozen member_table_ids say {100, 101}; state_table_info
	// says only table 100 is in group 2. A compaction rewrites L0 sub-level
	// 5 (one SST of table 100) with vnode_partition_count 4: v1.7-v1.9
	// count two members and keep 0, v1.10 counts one and takes 4.
	base := func() *pb.HummockVersion {
		v := ver(10, 10, 0, group(2, []uint32{100, 101},
			&pb.OverlappingLevel{TotalFileSize: 1, UncompressedFileSize: 2, SubLevels: []*pb.Level{lvl(0, over, 5, 1, 2, sst(1, 1, "a", "b", 1, 100))}},
			emptyLevels(6)))
		v.StateTableInfo = map[uint32]*pb.StateTableInfo{100: {CommittedEpoch: 10, CompactionGroupId: 2}, 101: {CommittedEpoch: 10, CompactionGroupId: 3}}
		return v
	}
	d := func() *pb.HummockVersionDelta {
		return delta(11, 10, 10, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
			2: gds(intra(0, 5, []uint64{1}, 4, sst(2, 2, "a", "b", 1, 100))),
		})
	}
	result := func(vnode uint32) func() *pb.HummockVersion {
		return func() *pb.HummockVersion {
			sub := lvl(0, nonOver, 5, 1, 2, sst(2, 2, "a", "b", 1, 100))
			sub.VnodePartitionCount = vnode
			v := ver(11, 10, 0, group(2, []uint32{100, 101}, &pb.OverlappingLevel{TotalFileSize: 1, UncompressedFileSize: 2, SubLevels: []*pb.Level{sub}}, emptyLevels(6)))
			v.StateTableInfo = base().StateTableInfo
			return v
		}
	}
	runLineCases(t, []lineCase{{
		name: "single-table L0 rewrite", base: base, delta: d,
		want: map[rwversion.Version]func() *pb.HummockVersion{
			rwversion.V1_7: result(0), rwversion.V1_9: result(0), rwversion.V1_10: result(4), rwversion.V2_0: result(4),
		},
	}})
}

func TestLinesWatermarksOfRemovedTables(t *testing.T) {
	// Table 7 has watermarks and state_table_info; a delta removes it.
	base := func() *pb.HummockVersion {
		v := ver(10, 10, 0, group(2, nil, nil, emptyLevels(6)))
		v.TableWatermarks = map[uint32]*pb.TableWatermarks{7: wms(wmEntry(5, "a"))}
		v.StateTableInfo = map[uint32]*pb.StateTableInfo{7: {CommittedEpoch: 10, CompactionGroupId: 2}}
		return v
	}
	plain := func() *pb.HummockVersionDelta {
		d := delta(11, 10, 20, 0, nil)
		d.RemovedTableIds = []uint32{7}
		return d
	}
	withNew := func() *pb.HummockVersionDelta {
		d := plain()
		d.NewTableWatermarks = map[uint32]*pb.TableWatermarks{7: wms(wmEntry(20, "b"))}
		return d
	}
	result := func(tw *pb.TableWatermarks, sti bool) func() *pb.HummockVersion {
		return func() *pb.HummockVersion {
			v := ver(11, 20, 0, group(2, nil, nil, emptyLevels(6)))
			if tw != nil {
				v.TableWatermarks = map[uint32]*pb.TableWatermarks{7: tw}
			}
			if sti { // lines before v1.10 do not touch state_table_info
				v.StateTableInfo = map[uint32]*pb.StateTableInfo{7: {CommittedEpoch: 10, CompactionGroupId: 2}}
			}
			return v
		}
	}
	runLineCases(t, []lineCase{
		{
			name: "removed, no new watermarks", base: base, delta: plain,
			want: map[rwversion.Version]func() *pb.HummockVersion{
				rwversion.V1_7:  result(nil, true),
				rwversion.V1_9:  result(nil, true),
				rwversion.V1_10: result(wms(wmEntry(5, "a")), false), // kept: v1.10 removes only with new ones
			},
		},
		{
			name: "removed with new watermarks", base: base, delta: withNew,
			want: map[rwversion.Version]func() *pb.HummockVersion{
				rwversion.V1_7:  result(wms(wmEntry(20, "b")), true), // removed first, then inserted afresh
				rwversion.V1_9:  result(nil, true),                   // merged, then removed
				rwversion.V1_10: result(nil, false),
			},
		},
	})
}

func TestLinesPerTableSafeEpoch(t *testing.T) {
	// Watermarks at epochs 100 and 200; table 7's own safe epoch rises to
	// 200 while the global safe epoch stays 0. v1.10 clears table 7 at 200
	// (the entry at 100 goes: every vnode is covered at 200); v1.7 clears
	// only at a raised global safe epoch, so nothing changes.
	base := func() *pb.HummockVersion {
		v := ver(10, 200, 0, group(2, nil, nil, emptyLevels(6)))
		v.TableWatermarks = map[uint32]*pb.TableWatermarks{7: wms(wmEntry(100, "a"), wmEntry(200, "b"))}
		v.StateTableInfo = map[uint32]*pb.StateTableInfo{7: {CommittedEpoch: 200, SafeEpoch: 0, CompactionGroupId: 2}}
		return v
	}
	d := func() *pb.HummockVersionDelta {
		d := delta(11, 10, 300, 0, nil)
		d.StateTableInfoDelta = map[uint32]*pb.StateTableInfoDelta{7: {CommittedEpoch: 300, SafeEpoch: 200, CompactionGroupId: 2}}
		return d
	}
	runLineCases(t, []lineCase{{
		name: "table safe epoch 200", base: base, delta: d,
		want: map[rwversion.Version]func() *pb.HummockVersion{
			rwversion.V1_7: func() *pb.HummockVersion {
				v := base()
				v.Id, v.MaxCommittedEpoch = 11, 300
				return v
			},
			rwversion.V1_10: func() *pb.HummockVersion {
				v := ver(11, 300, 0, group(2, nil, nil, emptyLevels(6)))
				v.TableWatermarks = map[uint32]*pb.TableWatermarks{7: wms(wmEntry(200, "b"))}
				v.StateTableInfo = map[uint32]*pb.StateTableInfo{7: {CommittedEpoch: 300, SafeEpoch: 200, CompactionGroupId: 2}}
				return v
			},
		},
	}})
}

func TestLinesV20Commit(t *testing.T) {
	// max_committed_epoch stays 100 but table 100's committed epoch rises:
	// v2.0 takes the commit path and adds one L0 sub-level per intra-level
	// delta; v1.10 takes the compaction path, where sub-level 300 does not
	// exist.
	base := func() *pb.HummockVersion {
		v := ver(10, 100, 0, group(2, nil, nil, emptyLevels(6)))
		v.StateTableInfo = map[uint32]*pb.StateTableInfo{100: {CommittedEpoch: 100, CompactionGroupId: 2}}
		return v
	}
	d := func() *pb.HummockVersionDelta {
		d := delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
			2: gds(intra(0, 300, nil, 0, sst(1, 1, "a", "b", 1, 100)), intra(0, 301, nil, 0, sst(2, 2, "c", "d", 1, 100))),
		})
		d.StateTableInfoDelta = map[uint32]*pb.StateTableInfoDelta{100: {CommittedEpoch: 300, CompactionGroupId: 2}}
		return d
	}
	runLineCases(t, []lineCase{{
		name: "table epoch bump", base: base, delta: d,
		want: map[rwversion.Version]func() *pb.HummockVersion{
			rwversion.V2_0: func() *pb.HummockVersion {
				v := ver(11, 100, 0, group(2, nil, &pb.OverlappingLevel{TotalFileSize: 2, UncompressedFileSize: 4, SubLevels: []*pb.Level{
					lvl(0, over, 300, 1, 2, sst(1, 1, "a", "b", 1, 100)),
					lvl(0, over, 301, 1, 2, sst(2, 2, "c", "d", 1, 100)),
				}}, emptyLevels(6)))
				v.StateTableInfo = map[uint32]*pb.StateTableInfo{100: {CommittedEpoch: 300, CompactionGroupId: 2}}
				return v
			},
		},
		wantErr: map[rwversion.Version]string{rwversion.V1_10: "should find the level to insert into"},
	}})
}

func TestLinesPrevIDAssert(t *testing.T) {
	// v1.10 asserts prev_id; v1.7 does not look at it.
	base := func() *pb.HummockVersion { return ver(10, 10, 0, group(2, nil, nil, emptyLevels(6))) }
	d := func() *pb.HummockVersionDelta { return delta(11, 9, 20, 0, nil) }
	runLineCases(t, []lineCase{{
		name: "wrong prev_id", base: base, delta: d,
		want: map[rwversion.Version]func() *pb.HummockVersion{
			rwversion.V1_7: func() *pb.HummockVersion { return ver(11, 20, 0, group(2, nil, nil, emptyLevels(6))) },
		},
		wantErr: map[rwversion.Version]string{rwversion.V1_10: "prev_id 9"},
	}})
}

func TestLinesV19DeltaChainDropsChangeLog(t *testing.T) {
	// A v1.9 log after a checkpoint: commit at 20 with logs for tables 1
	// and 2, commit at 30 with a log for table 1 only (table 2's
	// subscription was dropped), a compaction. Replayed by v1.9's rules,
	// table 2's log is gone at 30; by v1.10's (which want a
	// state_table_info_delta v1.9 never writes) it would stay, pinning its
	// SSTs.
	base := ver(10, 10, 0, group(2, []uint32{1, 2}, nil, emptyLevels(6)))
	log := func(e uint64, obj uint64, table uint32) *pb.HummockVersionDelta_ChangeLogDelta {
		return &pb.HummockVersionDelta_ChangeLogDelta{NewLog: &pb.EpochNewChangeLog{Epochs: []uint64{e}, NewValue: []*pb.SstableInfo{sst(obj, obj, "a", "b", 1, table)}}}
	}
	d1 := delta(11, 10, 20, 0, nil)
	d1.ChangeLogDelta = map[uint32]*pb.HummockVersionDelta_ChangeLogDelta{1: log(20, 71, 1), 2: log(20, 72, 2)}
	d2 := delta(12, 11, 30, 0, nil)
	d2.ChangeLogDelta = map[uint32]*pb.HummockVersionDelta_ChangeLogDelta{1: log(30, 73, 1)}
	d3 := delta(13, 12, 30, 0, nil)
	chain := []*pb.HummockVersionDelta{d3, d1, d2} // any order: replay sorts by id
	got, err := Replay(base, chain, rwversion.For(rwversion.V1_9).Replay)
	if err != nil {
		t.Fatal(err)
	}
	want := ver(13, 30, 0, group(2, []uint32{1, 2}, nil, emptyLevels(6)))
	want.TableChangeLogs = map[uint32]*pb.TableChangeLog{1: {ChangeLogs: []*pb.EpochNewChangeLog{d1.ChangeLogDelta[1].NewLog, d2.ChangeLogDelta[1].NewLog}}}
	mustEqual(t, want, got)
	if ids := ObjectIDs(got); len(ids) != 2 || ids[0] != 71 || ids[1] != 73 {
		t.Fatalf("pinned %v, want [71 73]", ids)
	}
	other, err := Replay(base, chain, rwversion.For(rwversion.V1_10).Replay)
	if err != nil {
		t.Fatal(err)
	}
	if len(other.GetTableChangeLogs()) != 2 {
		t.Fatalf("v1.10 rules kept %d logs, want 2 (the difference the v1.9 rule makes)", len(other.GetTableChangeLogs()))
	}
}
