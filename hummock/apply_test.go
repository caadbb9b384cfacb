package hummock

import (
	"errors"
	"strings"
	"testing"

	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/rwversion"
)

type applyCase struct {
	name    string
	base    *pb.HummockVersion
	delta   *pb.HummockVersionDelta
	want    *pb.HummockVersion // ignored when wantErr is set
	wantErr string
	line    rwversion.Version // whose rules; v1.7 when zero
}

func rulesOf(line rwversion.Version) rwversion.Replay {
	if line == (rwversion.Version{}) {
		line = rwversion.V1_7
	}
	return rwversion.For(line).Replay
}

func runApplyCases(t *testing.T, cases []applyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := clone(tc.base)
			err := ApplyDelta(v, tc.delta, rulesOf(tc.line))
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("want error containing %q, got none", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalidDelta) {
					t.Fatalf("want ErrInvalidDelta containing %q, got %v", tc.wantErr, err)
				}
				if want := "apply delta " + itoa(tc.delta.GetId()); !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not name the delta (%q)", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("ApplyDelta: %v", err)
			}
			mustEqual(t, tc.want, v)
		})
	}
}

func itoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestApplyDeltaCommit(t *testing.T) {
	s1 := sst(1, 1, "a", "b", 5)
	s2 := sst(2, 2, "c", "d", 3)
	s3 := sst(3, 3, "m", "n", 7)
	base := ver(10, 100, 0, group(2, []uint32{100},
		&pb.OverlappingLevel{TotalFileSize: 5, UncompressedFileSize: 10, SubLevels: []*pb.Level{lvl(0, over, 50, 5, 10, s1)}},
		emptyLevels(6)))

	cases := []applyCase{
		{
			name: "commit appends an overlapping L0 sub-level, SSTs in delta order",
			base: base,
			delta: delta(11, 10, 200, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(0, 200, nil, 0, s3, s2)),
			}),
			want: ver(11, 200, 0, group(2, []uint32{100},
				&pb.OverlappingLevel{TotalFileSize: 15, UncompressedFileSize: 30, SubLevels: []*pb.Level{
					lvl(0, over, 50, 5, 10, s1),
					lvl(0, over, 200, 10, 20, s3, s2),
				}},
				emptyLevels(6))),
		},
		{
			name: "commit without SSTs only moves the epoch",
			base: base,
			delta: delta(11, 10, 200, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(0, 200, nil, 0)),
			}),
			want: func() *pb.HummockVersion { v := clone(base); v.Id, v.MaxCommittedEpoch = 11, 200; return v }(),
		},
		{
			name:  "no group deltas: epochs may even go back, nothing asserts",
			base:  base,
			delta: delta(11, 10, 50, 0, nil),
			want:  func() *pb.HummockVersion { v := clone(base); v.Id, v.MaxCommittedEpoch = 11, 50; return v }(),
		},
		{
			name: "commit with a removal and a destroy drops the group",
			base: base,
			delta: delta(11, 10, 200, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(0, 0, []uint64{1}, 0), &pb.GroupDelta{DeltaType: &pb.GroupDelta_GroupDestroy{GroupDestroy: &pb.GroupDestroy{}}}),
			}),
			want: ver(11, 200, 0),
		},
		{
			name: "commit into L1 is rejected",
			base: base,
			delta: delta(11, 10, 200, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(1, 0, nil, 0, s2)),
			}),
			wantErr: "we should only add to L0 when we commit an epoch",
		},
		{
			name: "commit that deletes is rejected",
			base: base,
			delta: delta(11, 10, 200, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(0, 0, []uint64{1}, 0)),
			}),
			wantErr: "no sst should be deleted when committing an epoch",
		},
		{
			name: "commit sub-level must be the newest",
			base: base,
			delta: delta(11, 10, 200, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(0, 50, nil, 0, s2)),
			}),
			wantErr: "inserted new level is not the newest",
		},
		{
			name: "max committed epoch must not go back",
			base: base,
			delta: delta(11, 10, 99, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(0, 200, nil, 0, s2)),
			}),
			wantErr: "new max commit epoch 99 is older than the current max commit epoch 100",
		},
		{
			name: "unknown group",
			base: base,
			delta: delta(11, 10, 200, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				9: gds(intra(0, 200, nil, 0, s2)),
			}),
			wantErr: "compaction group should exist",
		},
		{
			name: "group delta without a type",
			base: base,
			delta: delta(11, 10, 200, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(&pb.GroupDelta{}),
			}),
			wantErr: "no delta_type",
		},
	}
	runApplyCases(t, cases)
}

func TestApplyDeltaCompaction(t *testing.T) {
	s1 := sst(1, 1, "a", "c", 5)
	s2 := sst(2, 2, "b", "d", 6)
	s3 := sst(3, 3, "e", "f", 7)
	s4 := sst(4, 4, "x", "y", 9)
	s5 := sst(5, 5, "a", "d", 8)
	s6 := sst(6, 6, "p", "q", 4)
	s7 := sst(7, 7, "a", "f", 9)
	s8 := sst(8, 8, "x", "z", 1)
	// L0: sub 50 {s1, s2} (11/22), sub 60 {s3} (7/14); L1 {s4} (9/18).
	base := ver(10, 100, 0, group(2, []uint32{100, 101},
		&pb.OverlappingLevel{TotalFileSize: 18, UncompressedFileSize: 36, SubLevels: []*pb.Level{
			lvl(0, over, 50, 11, 22, s1, s2),
			lvl(0, over, 60, 7, 14, s3),
		}},
		withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 9, 18, s4)})))
	bumped := func(v *pb.HummockVersion) *pb.HummockVersion { v.Id = 11; return v }

	cases := []applyCase{
		{
			name: "L0 to L1: delete by sst id, sort inserts, purge empty sub-levels, recompute sizes",
			base: base,
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(0, 0, []uint64{1, 2}, 0), intra(1, 0, []uint64{4}, 0, s6, s5)),
			}),
			want: ver(11, 100, 0, group(2, []uint32{100, 101},
				&pb.OverlappingLevel{TotalFileSize: 7, UncompressedFileSize: 14, SubLevels: []*pb.Level{
					lvl(0, over, 60, 7, 14, s3),
				}},
				withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 12, 24, s5, s6)}))),
		},
		{
			name: "partial L0 delete keeps the sub-level and recomputes its size",
			base: base,
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(0, 0, []uint64{1}, 0)),
			}),
			want: ver(11, 100, 0, group(2, []uint32{100, 101},
				&pb.OverlappingLevel{TotalFileSize: 13, UncompressedFileSize: 26, SubLevels: []*pb.Level{
					lvl(0, over, 50, 6, 12, s2),
					lvl(0, over, 60, 7, 14, s3),
				}},
				withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 9, 18, s4)}))),
		},
		{
			name: "expired compact task: one missing id skips the whole group",
			base: base,
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(0, 0, []uint64{1, 99}, 0), intra(1, 0, nil, 7, s5)),
			}),
			want: bumped(clone(base)),
		},
		{
			name: "ids are sst ids, never object ids",
			base: ver(10, 100, 0, group(2, []uint32{100}, nil,
				withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 9, 18, withID(s4, 40))}))),
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(1, 0, []uint64{4}, 0)), // 4 is the object id
			}),
			want: ver(11, 100, 0, group(2, []uint32{100}, nil,
				withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 9, 18, withID(s4, 40))}))),
		},
		{
			name: "branched copy removed in one group only",
			base: ver(10, 100, 0,
				group(2, []uint32{100}, nil, withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 9, 18, withID(s4, 40))})),
				group(3, []uint32{101}, nil, withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 9, 18, withID(s4, 41))}))),
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				3: gds(intra(1, 0, []uint64{41}, 0)),
			}),
			want: ver(11, 100, 0,
				group(2, []uint32{100}, nil, withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 9, 18, withID(s4, 40))})),
				group(3, []uint32{101}, nil, withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 0, 0)}))),
		},
		{
			name: "empty L0 sub-levels survive a compaction that does not touch L0",
			base: ver(10, 100, 0, group(2, []uint32{100, 101},
				&pb.OverlappingLevel{TotalFileSize: 7, UncompressedFileSize: 14, SubLevels: []*pb.Level{
					lvl(0, over, 50, 0, 0),
					lvl(0, over, 60, 7, 14, s3),
				}},
				withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 9, 18, s4)}))),
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(1, 0, []uint64{4}, 0, s5)),
			}),
			want: ver(11, 100, 0, group(2, []uint32{100, 101},
				&pb.OverlappingLevel{TotalFileSize: 7, UncompressedFileSize: 14, SubLevels: []*pb.Level{
					lvl(0, over, 50, 0, 0),
					lvl(0, over, 60, 7, 14, s3),
				}},
				withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 8, 16, s5)}))),
		},
		{
			name: "trivial move L0 to L1 re-inserts the same SstableInfo",
			base: ver(10, 100, 0, group(2, []uint32{100},
				&pb.OverlappingLevel{TotalFileSize: 5, UncompressedFileSize: 10, SubLevels: []*pb.Level{lvl(0, over, 50, 5, 10, s1)}},
				emptyLevels(6))),
			delta: func() *pb.HummockVersionDelta {
				d := delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
					2: gds(intra(0, 0, []uint64{1}, 0), intra(1, 0, nil, 0, s1)),
				})
				d.TrivialMove = true
				return d
			}(),
			want: ver(11, 100, 0, group(2, []uint32{100},
				&pb.OverlappingLevel{},
				withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 5, 10, s1)}))),
		},
		{
			name: "intra-L0 compaction: insert into the target sub-level, single-table group takes the vnode count",
			base: ver(10, 100, 0, group(2, []uint32{100},
				&pb.OverlappingLevel{TotalFileSize: 12, UncompressedFileSize: 24, SubLevels: []*pb.Level{
					lvl(0, over, 50, 5, 10, s1),
					lvl(0, over, 60, 7, 14, s3),
				}},
				emptyLevels(6))),
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(0, 0, []uint64{1, 3}, 0), intra(0, 60, nil, 4, s7)),
			}),
			want: ver(11, 100, 0, group(2, []uint32{100},
				&pb.OverlappingLevel{TotalFileSize: 9, UncompressedFileSize: 18, SubLevels: []*pb.Level{
					{LevelIdx: 0, LevelType: nonOver, SubLevelId: 60, TotalFileSize: 9, UncompressedFileSize: 18, VnodePartitionCount: 4, TableInfos: []*pb.SstableInfo{s7}},
				}},
				emptyLevels(6))),
		},
		{
			name: "L1 keeps a partition count unless a multi-table group writes 0",
			base: ver(10, 100, 0, group(2, []uint32{100, 101}, nil,
				withLevels(map[int]*pb.Level{1: {LevelIdx: 1, LevelType: nonOver, TotalFileSize: 9, UncompressedFileSize: 18, VnodePartitionCount: 3, TableInfos: []*pb.SstableInfo{s4}}}))),
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(1, 0, nil, 0, s5)),
			}),
			want: ver(11, 100, 0, group(2, []uint32{100, 101}, nil,
				withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 17, 34, s5, s4)}))),
		},
		{
			name: "empty L1 takes the delta's vnode count",
			base: ver(10, 100, 0, group(2, []uint32{100, 101}, nil,
				withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 9, 18, s4)}))),
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(1, 0, []uint64{4}, 0), intra(1, 0, nil, 16, s5)),
			}),
			want: ver(11, 100, 0, group(2, []uint32{100, 101}, nil,
				withLevels(map[int]*pb.Level{1: {LevelIdx: 1, LevelType: nonOver, TotalFileSize: 8, UncompressedFileSize: 16, VnodePartitionCount: 16, TableInfos: []*pb.SstableInfo{s5}}}))),
		},
		{
			name: "insert into a missing L0 sub-level",
			base: base,
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(0, 0, []uint64{1}, 0), intra(0, 55, nil, 0, s7)),
			}),
			wantErr: "should find the level to insert into",
		},
		{
			name: "overlapping SSTs in L1",
			base: base,
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(1, 0, nil, 0, s8)),
			}),
			wantErr: "can_concat",
		},
		{
			name: "delete from a level the group lacks",
			base: base,
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(intra(9, 0, []uint64{4}, 0)),
			}),
			wantErr: "delete from level 9",
		},
	}
	runApplyCases(t, cases)
}

func TestApplyDeltaGroups(t *testing.T) {
	a := sst(1, 1, "a", "b", 10, 100)
	b := sst(2, 2, "c", "d", 20, 100, 101)
	c := sst(3, 3, "e", "f", 30, 101)
	d := sst(4, 4, "g", "h", 40, 100)
	// L1 sorted by key range: d (table 100) before c (table 101).
	parent := group(2, []uint32{100, 101},
		&pb.OverlappingLevel{TotalFileSize: 30, UncompressedFileSize: 60, SubLevels: []*pb.Level{lvl(0, over, 10, 30, 60, a, b)}},
		withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 70, 140, d, c)}))
	base := ver(10, 100, 0, parent)
	construct := func(parentID uint64, tables []uint32, version pb.CompatibilityVersion) *pb.GroupDelta {
		return &pb.GroupDelta{DeltaType: &pb.GroupDelta_GroupConstruct{GroupConstruct: &pb.GroupConstruct{
			GroupConfig: &pb.CompactionConfig{MaxLevel: 6}, ParentGroupId: parentID, TableIds: tables,
			GroupId: 5, NewSstStartId: 1000, Version: version,
		}}}
	}
	metaChange := func(add, remove []uint32) *pb.GroupDelta {
		return &pb.GroupDelta{DeltaType: &pb.GroupDelta_GroupMetaChange{GroupMetaChange: &pb.GroupMetaChange{TableIdsAdd: add, TableIdsRemove: remove}}}
	}
	destroy := &pb.GroupDelta{DeltaType: &pb.GroupDelta_GroupDestroy{GroupDestroy: &pb.GroupDestroy{}}}
	child := func(l0 *pb.OverlappingLevel, levels []*pb.Level, members ...uint32) *pb.HummockVersion_Levels {
		g := group(5, members, l0, levels)
		g.ParentGroupId = 2
		return g
	}

	cases := []applyCase{
		{
			// a and d hold only table 100: trivial split moves them (child
			// copy n, parent copy dropped). b is shared: child copy 1001,
			// parent renumbered 1002.
			name: "split, trivial allowed (version 0)",
			base: base,
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(metaChange(nil, []uint32{100})),
				5: gds(construct(2, []uint32{100}, pb.CompatibilityVersion_VERSION_UNSPECIFIED)),
			}),
			want: ver(11, 100, 0,
				group(2, []uint32{101},
					&pb.OverlappingLevel{TotalFileSize: 20, UncompressedFileSize: 40, SubLevels: []*pb.Level{lvl(0, over, 10, 20, 40, withID(b, 1002))}},
					withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 30, 60, c)})),
				child(
					&pb.OverlappingLevel{TotalFileSize: 30, UncompressedFileSize: 60, SubLevels: []*pb.Level{lvl(0, over, 10, 30, 60, withID(a, 1000), withID(b, 1001))}},
					withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 40, 80, withID(d, 1003))}),
					100)),
		},
		{
			name: "split, no trivial split (version 1): every hit SST is branched",
			base: base,
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				5: gds(construct(2, []uint32{100}, pb.CompatibilityVersion_NO_TRIVIAL_SPLIT)),
			}),
			want: ver(11, 100, 0,
				group(2, []uint32{100, 101},
					&pb.OverlappingLevel{TotalFileSize: 30, UncompressedFileSize: 60, SubLevels: []*pb.Level{lvl(0, over, 10, 30, 60, withID(a, 1001), withID(b, 1003))}},
					withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 70, 140, withID(d, 1005), c)})),
				child(
					&pb.OverlappingLevel{TotalFileSize: 30, UncompressedFileSize: 60, SubLevels: []*pb.Level{lvl(0, over, 10, 30, 60, withID(a, 1000), withID(b, 1002))}},
					withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 40, 80, withID(d, 1004))}),
					100)),
		},
		{
			name: "v1.10 split (version 2): members come from state_table_info",
			line: rwversion.V1_10,
			base: func() *pb.HummockVersion {
				v := clone(base)
				v.StateTableInfo = map[uint32]*pb.StateTableInfo{100: {CommittedEpoch: 100, CompactionGroupId: 2}, 101: {CommittedEpoch: 100, CompactionGroupId: 2}}
				return v
			}(),
			delta: func() *pb.HummockVersionDelta {
				dl := delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
					5: gds(construct(2, nil, pb.CompatibilityVersion_NO_MEMBER_TABLE_IDS)),
				})
				dl.StateTableInfoDelta = map[uint32]*pb.StateTableInfoDelta{100: {CommittedEpoch: 100, CompactionGroupId: 5}}
				return dl
			}(),
			want: func() *pb.HummockVersion {
				v := ver(11, 100, 0,
					group(2, []uint32{100, 101},
						&pb.OverlappingLevel{TotalFileSize: 30, UncompressedFileSize: 60, SubLevels: []*pb.Level{lvl(0, over, 10, 30, 60, withID(a, 1001), withID(b, 1003))}},
						withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 70, 140, withID(d, 1005), c)})),
					child(
						&pb.OverlappingLevel{TotalFileSize: 30, UncompressedFileSize: 60, SubLevels: []*pb.Level{lvl(0, over, 10, 30, 60, withID(a, 1000), withID(b, 1002))}},
						withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 40, 80, withID(d, 1004))})))
				v.StateTableInfo = map[uint32]*pb.StateTableInfo{100: {CommittedEpoch: 100, CompactionGroupId: 5}, 101: {CommittedEpoch: 100, CompactionGroupId: 2}}
				return v
			}(),
		},
		{
			name: "construct without a parent: empty group, member ids as given",
			base: base,
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				5: gds(construct(0, []uint32{7, 3}, 0)),
			}),
			want: ver(11, 100, 0, parent, group(5, []uint32{7, 3}, nil, emptyLevels(6))),
		},
		{
			name: "construct with itself as parent",
			base: ver(10, 100, 0, parent, group(5, nil, nil, emptyLevels(6))),
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				5: gds(&pb.GroupDelta{DeltaType: &pb.GroupDelta_GroupConstruct{GroupConstruct: &pb.GroupConstruct{
					GroupConfig: &pb.CompactionConfig{MaxLevel: 6}, ParentGroupId: 5,
				}}}),
			}),
			wantErr: "is the group itself",
		},
		{
			name: "construct without a config",
			base: base,
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				5: gds(&pb.GroupDelta{DeltaType: &pb.GroupDelta_GroupConstruct{GroupConstruct: &pb.GroupConstruct{ParentGroupId: 2}}}),
			}),
			wantErr: "without group_config",
		},
		{
			name: "two constructs in one group",
			base: base,
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				5: gds(construct(0, nil, 0), construct(0, nil, 0)),
			}),
			wantErr: "more than one group_construct",
		},
		{
			name: "destroy drops the group and its SSTs",
			base: ver(10, 100, 0, parent, group(5, []uint32{7}, nil, emptyLevels(6))),
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				5: gds(destroy),
			}),
			want: ver(11, 100, 0, parent),
		},
		{
			name: "meta change appends, removes, sorts, keeps duplicates",
			base: ver(10, 100, 0, group(2, []uint32{7, 1}, nil, emptyLevels(6))),
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				2: gds(metaChange([]uint32{5, 3, 3}, []uint32{7})),
			}),
			want: ver(11, 100, 0, group(2, []uint32{1, 3, 3, 5}, nil, emptyLevels(6))),
		},
		{
			name: "table change moves member ids in origin order, unsorted",
			base: ver(10, 100, 0, group(2, []uint32{100, 101, 102}, nil, emptyLevels(6)), group(6, []uint32{200}, nil, emptyLevels(6))),
			delta: delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
				6: gds(&pb.GroupDelta{DeltaType: &pb.GroupDelta_GroupTableChange{GroupTableChange: &pb.GroupTableChange{
					TableIds: []uint32{102, 100}, TargetGroupId: 6, OriginGroupId: 2, NewSstStartId: 500, Version: pb.CompatibilityVersion_NO_TRIVIAL_SPLIT,
				}}}),
			}),
			want: ver(11, 100, 0, group(2, []uint32{101}, nil, emptyLevels(6)), group(6, []uint32{200, 100, 102}, nil, emptyLevels(6))),
		},
	}
	runApplyCases(t, cases)
}

func TestApplyDeltaStateTableInfo(t *testing.T) {
	base := ver(10, 100, 0, group(2, nil, nil, emptyLevels(6)))
	base.StateTableInfo = map[uint32]*pb.StateTableInfo{1: {CommittedEpoch: 100, SafeEpoch: 10, CompactionGroupId: 2}, 2: {CommittedEpoch: 100, CompactionGroupId: 2}}
	cases := []applyCase{
		{
			name: "set absolute values, drop removed tables",
			line: rwversion.V1_10,
			base: base,
			delta: func() *pb.HummockVersionDelta {
				d := delta(11, 10, 200, 0, nil)
				d.StateTableInfoDelta = map[uint32]*pb.StateTableInfoDelta{
					1: {CommittedEpoch: 200, SafeEpoch: 20, CompactionGroupId: 3},
					2: {CommittedEpoch: 300},
					3: {CommittedEpoch: 200, SafeEpoch: 200, CompactionGroupId: 2},
				}
				d.RemovedTableIds = []uint32{2}
				return d
			}(),
			want: func() *pb.HummockVersion {
				v := ver(11, 200, 0, group(2, nil, nil, emptyLevels(6)))
				v.StateTableInfo = map[uint32]*pb.StateTableInfo{1: {CommittedEpoch: 200, SafeEpoch: 20, CompactionGroupId: 3}, 3: {CommittedEpoch: 200, SafeEpoch: 200, CompactionGroupId: 2}}
				return v
			}(),
		},
		{
			name: "regress",
			line: rwversion.V1_10,
			base: base,
			delta: func() *pb.HummockVersionDelta {
				d := delta(11, 10, 200, 0, nil)
				d.StateTableInfoDelta = map[uint32]*pb.StateTableInfoDelta{1: {CommittedEpoch: 200, SafeEpoch: 5, CompactionGroupId: 2}}
				return d
			}(),
			wantErr: "state table info regress",
		},
	}
	runApplyCases(t, cases)
}
