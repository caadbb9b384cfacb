package hummock

import (
	"encoding/binary"
	"testing"

	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// fk builds a full key: BE u32 table id ‖ table key ‖ BE u64 epoch.
func fk(table uint32, key string, epoch uint64) []byte {
	b := binary.BigEndian.AppendUint32(nil, table)
	b = append(b, key...)
	return binary.BigEndian.AppendUint64(b, epoch)
}

// sst builds an SstableInfo over [left, right] of table tables[0] with
// file size size and uncompressed size 2*size.
func sst(obj, id uint64, left, right string, size uint64, tables ...uint32) *pb.SstableInfo {
	if len(tables) == 0 {
		tables = []uint32{100}
	}
	return &pb.SstableInfo{
		ObjectId: obj,
		SstId:    id,
		KeyRange: &pb.KeyRange{
			Left:  fk(tables[0], left, 1),
			Right: fk(tables[0], right, 1),
		},
		FileSize:             size,
		UncompressedFileSize: 2 * size,
		TableIds:             tables,
	}
}

// withID returns a copy of s with a new sst id and table ids.
func withID(s *pb.SstableInfo, id uint64, tables ...uint32) *pb.SstableInfo {
	c := proto.Clone(s).(*pb.SstableInfo)
	c.SstId = id
	if tables != nil {
		c.TableIds = tables
	}
	return c
}

func lvl(idx uint32, lt pb.LevelType, sub uint64, total, uncompressed uint64, ssts ...*pb.SstableInfo) *pb.Level {
	return &pb.Level{LevelIdx: idx, LevelType: lt, SubLevelId: sub, TotalFileSize: total, UncompressedFileSize: uncompressed, TableInfos: ssts}
}

const (
	over    = pb.LevelType_LEVEL_TYPE_OVERLAPPING
	nonOver = pb.LevelType_LEVEL_TYPE_NONOVERLAPPING
)

// emptyLevels is levels 1..n, empty and non-overlapping.
func emptyLevels(n int) []*pb.Level {
	ls := make([]*pb.Level, n)
	for i := range ls {
		ls[i] = &pb.Level{LevelIdx: uint32(i + 1), LevelType: nonOver}
	}
	return ls
}

func group(id uint64, members []uint32, l0 *pb.OverlappingLevel, levels []*pb.Level) *pb.HummockVersion_Levels {
	if l0 == nil {
		l0 = &pb.OverlappingLevel{}
	}
	return &pb.HummockVersion_Levels{GroupId: id, MemberTableIds: members, L0: l0, Levels: levels}
}

func intra(level uint32, sub uint64, removed []uint64, vnode uint32, inserted ...*pb.SstableInfo) *pb.GroupDelta {
	return &pb.GroupDelta{DeltaType: &pb.GroupDelta_IntraLevel{IntraLevel: &pb.IntraLevelDelta{
		LevelIdx: level, L0SubLevelId: sub, RemovedTableIds: removed, InsertedTableInfos: inserted, VnodePartitionCount: vnode,
	}}}
}

func gds(ds ...*pb.GroupDelta) *pb.HummockVersionDelta_GroupDeltas {
	return &pb.HummockVersionDelta_GroupDeltas{GroupDeltas: ds}
}

func clone[T proto.Message](m T) T { return proto.Clone(m).(T) }

func mustEqual(t *testing.T, want, got proto.Message) {
	t.Helper()
	if !proto.Equal(want, got) {
		o := prototext.MarshalOptions{Multiline: true}
		t.Fatalf("mismatch\nwant:\n%s\ngot:\n%s", o.Format(want), o.Format(got))
	}
}

func ver(id, mce, safe uint64, groups ...*pb.HummockVersion_Levels) *pb.HummockVersion {
	v := &pb.HummockVersion{Id: id, MaxCommittedEpoch: mce, SafeEpoch: safe, Levels: map[uint64]*pb.HummockVersion_Levels{}}
	for _, g := range groups {
		v.Levels[g.GroupId] = g
	}
	return v
}

func delta(id, prev, mce, safe uint64, groups map[uint64]*pb.HummockVersionDelta_GroupDeltas) *pb.HummockVersionDelta {
	return &pb.HummockVersionDelta{Id: id, PrevId: prev, MaxCommittedEpoch: mce, SafeEpoch: safe, GroupDeltas: groups}
}

// withLevels replaces levels[i] (level i+1) in a fresh 6-level list.
func withLevels(repl map[int]*pb.Level) []*pb.Level {
	ls := emptyLevels(6)
	for i, l := range repl {
		ls[i-1] = l
	}
	return ls
}
