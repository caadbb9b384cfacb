package hummock

import (
	"bytes"
	"testing"

	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/rwversion"
	"google.golang.org/protobuf/proto"
)

// fuzzBase is a small version with two groups, L0 sub-levels, L1 SSTs and a
// watermark, so fuzzed deltas reach every branch of the replay.
func fuzzBase() *pb.HummockVersion {
	v := ver(10, 100, 5,
		group(2, []uint32{100, 101},
			&pb.OverlappingLevel{TotalFileSize: 11, UncompressedFileSize: 22, SubLevels: []*pb.Level{
				lvl(0, over, 50, 11, 22, sst(1, 1, "a", "c", 5), sst(2, 2, "b", "d", 6, 100, 101)),
			}},
			withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 9, 18, sst(4, 4, "x", "y", 9))})),
		group(3, []uint32{200}, nil, emptyLevels(6)))
	v.TableWatermarks = map[uint32]*pb.TableWatermarks{100: {IsAscending: true, EpochWatermarks: []*pb.TableWatermarks_EpochNewWatermarks{
		epochWM(10, vw("a", bitmap(0, 128))), epochWM(20, vw("b", bitmap(0, 64))),
	}}}
	return v
}

func fuzzSeedDeltas() []*pb.HummockVersionDelta {
	return []*pb.HummockVersionDelta{
		delta(11, 10, 200, 5, map[uint64]*pb.HummockVersionDelta_GroupDeltas{2: gds(intra(0, 200, nil, 0, sst(9, 9, "m", "n", 1)))}),
		delta(11, 10, 100, 15, map[uint64]*pb.HummockVersionDelta_GroupDeltas{2: gds(intra(0, 0, []uint64{1, 2}, 0), intra(1, 0, []uint64{4}, 4, sst(9, 9, "a", "z", 1)))}),
		delta(11, 10, 100, 5, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
			5: gds(&pb.GroupDelta{DeltaType: &pb.GroupDelta_GroupConstruct{GroupConstruct: &pb.GroupConstruct{
				GroupConfig: &pb.CompactionConfig{MaxLevel: 6}, ParentGroupId: 2, TableIds: []uint32{100}, NewSstStartId: 1000,
			}}}),
			3: gds(&pb.GroupDelta{DeltaType: &pb.GroupDelta_GroupDestroy{GroupDestroy: &pb.GroupDestroy{}}}),
		}),
	}
}

func FuzzDecodeDelta(f *testing.F) {
	for _, d := range fuzzSeedDeltas() {
		b, err := proto.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDelta(b)
		if err != nil {
			return
		}
		v := fuzzBase()
		for _, c := range allRules() {
			_ = ApplyDelta(proto.Clone(v).(*pb.HummockVersion), d, c) // errors are fine, panics are not
		}
		if _, err := Replay(fuzzBase(), []*pb.HummockVersionDelta{d}, rwversion.For(rwversion.V1_7).Replay); err == nil {
			if _, err := EncodeCheckpoint(v); err != nil {
				t.Fatalf("encode after replay: %v", err)
			}
		}
	})
}

func FuzzApplyDelta(f *testing.F) {
	vb, err := proto.Marshal(fuzzBase())
	if err != nil {
		f.Fatal(err)
	}
	for _, d := range fuzzSeedDeltas() {
		db, err := proto.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(vb, db)
	}
	f.Fuzz(func(t *testing.T, vb, db []byte) {
		v, err := DecodeVersion(vb)
		if err != nil {
			return
		}
		d, err := DecodeDelta(db)
		if err != nil {
			return
		}
		for _, c := range allRules() {
			_ = ApplyDelta(proto.Clone(v).(*pb.HummockVersion), d, c)
		}
		_ = ObjectIDs(v)
	})
}

// FuzzDecodeCheckpoint: any bytes at DATA_DIR/checkpoint/0 must decode or
// fail with an error, never panic; what decodes must replay, list its SST
// objects and re-encode to stable bytes (unknown fields kept).
func FuzzDecodeCheckpoint(f *testing.F) {
	cp, err := EncodeCheckpoint(fuzzBase())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cp)
	stale, err := proto.Marshal(&pb.HummockVersionCheckpoint{Version: fuzzBase(), StaleObjects: map[uint64]*pb.HummockVersionCheckpoint_StaleObjects{
		9: {Id: []uint64{1, 2, 3}, TotalFileSize: 42},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(stale)
	f.Add([]byte{})
	f.Add(cp[:len(cp)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCheckpoint(b)
		if err != nil {
			return
		}
		v := c.GetVersion()
		_ = ObjectIDs(v)
		if v == nil {
			if _, err := EncodeCheckpoint(v); err == nil {
				t.Fatal("a nil version encoded")
			}
			return
		}
		b1, err := EncodeCheckpoint(v)
		if err != nil {
			t.Fatalf("encode a decoded version: %v", err)
		}
		c2, err := DecodeCheckpoint(b1)
		if err != nil {
			t.Fatalf("decode what EncodeCheckpoint wrote: %v", err)
		}
		b2, err := EncodeCheckpoint(c2.GetVersion())
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("re-encoding is not stable (%v): %x != %x", err, b1, b2)
		}
		for _, c := range allRules() {
			_, _ = Replay(v, fuzzSeedDeltas(), c) // errors are fine, panics are not
		}
	})
}

// allRules is every distinct replay rule set of the etcd era.
func allRules() []rwversion.Replay {
	var out []rwversion.Replay
	for _, c := range rwversion.DistinctReplay(rwversion.Range{Lo: rwversion.Oldest, Hi: rwversion.Newest}) {
		out = append(out, c.Rules)
	}
	return out
}
