package hummock

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/rwversion"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func TestReplay(t *testing.T) {
	base := ver(5, 100, 0, group(2, []uint32{100}, nil, emptyLevels(6)))
	commit := func(id, prev, mce uint64, s *pb.SstableInfo) *pb.HummockVersionDelta {
		return delta(id, prev, mce, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{2: gds(intra(0, mce, nil, 0, s))})
	}
	s6 := sst(6, 6, "a", "b", 1)
	s7 := sst(7, 7, "c", "d", 2)
	cases := []struct {
		name         string
		deltas       []*pb.HummockVersionDelta
		want         *pb.HummockVersion
		inconsistent string // expected ErrInconsistentVersion text
		wantErr      string
	}{
		{
			name: "no deltas: the base",
			want: base,
		},
		{
			name: "unsorted input, old deltas skipped",
			deltas: []*pb.HummockVersionDelta{
				commit(7, 6, 300, s7), commit(3, 2, 50, s6), commit(6, 5, 200, s6), nil,
			},
			want: ver(7, 300, 0, group(2, []uint32{100}, &pb.OverlappingLevel{TotalFileSize: 3, UncompressedFileSize: 6, SubLevels: []*pb.Level{
				lvl(0, over, 200, 1, 2, s6),
				lvl(0, over, 300, 2, 4, s7),
			}}, emptyLevels(6))),
		},
		{
			name:         "gap: later deltas are skipped and the result is inconsistent",
			deltas:       []*pb.HummockVersionDelta{commit(6, 5, 200, s6), commit(8, 7, 300, s7)},
			inconsistent: "inconsistent hummock version: expected 8, actual 6",
		},
		{
			name:         "log older than the checkpoint",
			deltas:       []*pb.HummockVersionDelta{commit(3, 2, 50, s6), commit(4, 3, 60, s7)},
			inconsistent: "inconsistent hummock version: expected 4, actual 5",
		},
		{
			name:    "a broken delta stops the replay and is named",
			deltas:  []*pb.HummockVersionDelta{commit(6, 5, 200, s6), commit(7, 6, 100, s7)},
			wantErr: "apply delta 7 (prev 6)",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			saved := clone(base)
			got, err := Replay(base, tc.deltas, rwversion.For(rwversion.V1_7).Replay)
			if !proto.Equal(saved, base) {
				t.Fatalf("Replay modified its base")
			}
			switch {
			case tc.inconsistent != "":
				if !errors.Is(err, ErrInconsistentVersion) || err.Error() != tc.inconsistent {
					t.Fatalf("want %q wrapping ErrInconsistentVersion, got %v", tc.inconsistent, err)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalidDelta) {
					t.Fatalf("want ErrInvalidDelta containing %q, got %v", tc.wantErr, err)
				}
			default:
				if err != nil {
					t.Fatalf("Replay: %v", err)
				}
				mustEqual(t, tc.want, got)
				if len(tc.deltas) == 0 && got == base {
					t.Fatalf("Replay returned its base, want a copy")
				}
			}
		})
	}
}

func TestInitVersion(t *testing.T) {
	v := InitVersion()
	want := &pb.HummockVersion{Id: 1, Levels: map[uint64]*pb.HummockVersion_Levels{
		2: {GroupId: 2, L0: &pb.OverlappingLevel{}, Levels: emptyLevels(6)},
		3: {GroupId: 3, L0: &pb.OverlappingLevel{}, Levels: emptyLevels(6)},
	}}
	mustEqual(t, want, v)
	for i, l := range v.Levels[2].Levels {
		if l.LevelIdx != uint32(i+1) || l.LevelType != nonOver {
			t.Fatalf("level %d = %v", i, l)
		}
	}
	// The empty L0 must be encoded (RisingWave unwraps it).
	b, err := EncodeCheckpoint(v)
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeCheckpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.GetVersion().GetLevels()[3].L0 == nil {
		t.Fatalf("empty l0 lost in encoding")
	}
	if len(c.GetStaleObjects()) != 0 {
		t.Fatalf("stale objects = %v, want none", c.GetStaleObjects())
	}
	mustEqual(t, want, c.GetVersion())
}

func TestObjectIDs(t *testing.T) {
	shared := sst(7, 70, "a", "b", 1)
	v := ver(9, 1, 0,
		group(2, nil, &pb.OverlappingLevel{SubLevels: []*pb.Level{
			lvl(0, over, 1, 0, 0, sst(3, 3, "a", "b", 1), sst(1, 1, "c", "d", 1)),
			lvl(0, over, 2, 0, 0, withID(shared, 71)),
		}}, withLevels(map[int]*pb.Level{2: lvl(2, nonOver, 0, 0, 0, sst(12, 12, "a", "b", 1))})),
		group(3, nil, nil, withLevels(map[int]*pb.Level{1: lvl(1, nonOver, 0, 0, 0, withID(shared, 72), sst(3, 33, "x", "y", 1))})))
	v.TableChangeLogs = map[uint32]*pb.TableChangeLog{1: {ChangeLogs: []*pb.EpochNewChangeLog{{
		OldValue: []*pb.SstableInfo{sst(20, 20, "a", "b", 1)}, NewValue: []*pb.SstableInfo{sst(1, 1, "a", "b", 1)}, Epochs: []uint64{5},
	}}}}
	want := []uint64{1, 3, 7, 12, 20}
	if got := ObjectIDs(v); !slices.Equal(got, want) {
		t.Fatalf("ObjectIDs = %v, want %v", got, want)
	}
	if got := ObjectIDs(InitVersion()); len(got) != 0 {
		t.Fatalf("ObjectIDs(init) = %v, want none", got)
	}
}

func TestApplyDeltaChangeLog(t *testing.T) {
	base := ver(10, 10, 0, group(2, nil, nil, emptyLevels(6)))
	base.StateTableInfo = map[uint32]*pb.StateTableInfo{1: {CommittedEpoch: 10, CompactionGroupId: 2}, 2: {CommittedEpoch: 10, CompactionGroupId: 2}}
	base.TableChangeLogs = map[uint32]*pb.TableChangeLog{
		1: {ChangeLogs: []*pb.EpochNewChangeLog{{Epochs: []uint64{10}, NewValue: []*pb.SstableInfo{sst(50, 50, "a", "b", 1)}}}},
		2: {ChangeLogs: []*pb.EpochNewChangeLog{{Epochs: []uint64{10}}}},
	}
	d := delta(11, 10, 20, 0, nil)
	d.StateTableInfoDelta = map[uint32]*pb.StateTableInfoDelta{1: {CommittedEpoch: 20, CompactionGroupId: 2}, 2: {CommittedEpoch: 20, CompactionGroupId: 2}}
	d.ChangeLogDelta = map[uint32]*pb.HummockVersionDelta_ChangeLogDelta{1: {
		NewLog:        &pb.EpochNewChangeLog{Epochs: []uint64{20}, NewValue: []*pb.SstableInfo{sst(51, 51, "a", "b", 1)}},
		TruncateEpoch: 10,
	}}
	// Table 1: the new log is appended, then the entry ending at 10 is
	// truncated. Table 2: its epoch advanced with no log, so its log goes.
	want := ver(11, 20, 0, group(2, nil, nil, emptyLevels(6)))
	want.StateTableInfo = map[uint32]*pb.StateTableInfo{1: {CommittedEpoch: 20, CompactionGroupId: 2}, 2: {CommittedEpoch: 20, CompactionGroupId: 2}}
	want.TableChangeLogs = map[uint32]*pb.TableChangeLog{
		1: {ChangeLogs: []*pb.EpochNewChangeLog{{Epochs: []uint64{20}, NewValue: []*pb.SstableInfo{sst(51, 51, "a", "b", 1)}}}},
	}
	runApplyCases(t, []applyCase{{name: "append, drop, truncate", base: base, delta: d, want: want, line: rwversion.V1_10}})
	got := clone(base)
	if err := ApplyDelta(got, d, rwversion.For(rwversion.V1_10).Replay); err != nil {
		t.Fatal(err)
	}
	if ids := ObjectIDs(got); !slices.Equal(ids, []uint64{51}) {
		t.Fatalf("ObjectIDs = %v, want [51]", ids)
	}
}

// crc32Bitwise is CRC-32/ISO-HDLC (reflected polynomial 0xEDB88320, init
// and final xor 0xFFFFFFFF), computed bit by bit, independent of hash/crc32.
func crc32Bitwise(b []byte) uint32 {
	c := ^uint32(0)
	for _, x := range b {
		c ^= uint32(x)
		for i := 0; i < 8; i++ {
			if c&1 != 0 {
				c = c>>1 ^ 0xEDB88320
			} else {
				c >>= 1
			}
		}
	}
	return ^c
}

func TestSSTPath(t *testing.T) {
	// crc32(00 00 00 00 00 00 00 01) = 0x1225efff (also Python's
	// zlib.crc32(struct.pack('>Q', 1))); 0xff = 255.
	if got := crc32Bitwise([]byte{0, 0, 0, 0, 0, 0, 0, 1}); got != 0x1225efff {
		t.Fatalf("reference crc32 = %#x", got)
	}
	cases := []struct {
		dir      string
		id       uint64
		prefixed bool
		want     string
	}{
		{"hummock_001", 1, true, "hummock_001/255/1.data"},       // 0x1225efff % 256 = 0xff
		{"hummock_001", 42, true, "hummock_001/191/42.data"},     // crc 0xbe9916bf, 0xbf = 191
		{"hummock_001", 1000, true, "hummock_001/224/1000.data"}, // crc 0xe0dee6e0, 0xe0 = 224
		{"hummock_001", 42, false, "hummock_001/42.data"},
		{"a/b", 0, false, "a/b/0.data"},
	}
	for _, tc := range cases {
		if got := SSTPath(tc.dir, tc.id, tc.prefixed); got != tc.want {
			t.Errorf("SSTPath(%q, %d, %v) = %q, want %q", tc.dir, tc.id, tc.prefixed, got, tc.want)
		}
		if id, ok := ParseSSTObjectID(tc.want); !ok || id != tc.id {
			t.Errorf("ParseSSTObjectID(%q) = %d, %v", tc.want, id, ok)
		}
	}
	for _, id := range []uint64{1, 2, 255, 256, 1 << 40, ^uint64(0)} {
		var be [8]byte
		for i := 0; i < 8; i++ {
			be[i] = byte(id >> (56 - 8*i))
		}
		want := "d/" + itoa(uint64(crc32Bitwise(be[:])%256)) + "/" + itoa(id) + ".data"
		if got := SSTPath("d", id, true); got != want {
			t.Errorf("SSTPath(d, %d) = %q, want %q", id, got, want)
		}
	}
}

func TestParseSSTObjectID(t *testing.T) {
	cases := []struct {
		key  string
		id   uint64
		ok   bool
		note string
	}{
		{"hummock_001/255/1.data", 1, true, "prefixed"},
		{"hummock_001/42.data", 42, true, "plain"},
		{"42.data", 42, true, "no directory"},
		{"d/18446744073709551615.data", 18446744073709551615, true, "max u64"},
		{"d/18446744073709551616.data", 0, false, "overflow"},
		{"hummock_001/checkpoint/0", 0, false, "checkpoint"},
		{"d/01.data", 0, false, "leading zero"},
		{"d/.data", 0, false, "empty id"},
		{"d/-1.data", 0, false, "sign"},
		{"d/1.data.tmp", 0, false, "suffix"},
		{"d/1.dat", 0, false, "wrong suffix"},
		{"d/1a.data", 0, false, "not a number"},
	}
	for _, tc := range cases {
		id, ok := ParseSSTObjectID(tc.key)
		if ok != tc.ok || id != tc.id {
			t.Errorf("%s: ParseSSTObjectID(%q) = %d, %v; want %d, %v", tc.note, tc.key, id, ok, tc.id, tc.ok)
		}
	}
}

func TestCheckpointPath(t *testing.T) {
	if got := CheckpointPath("hummock_001"); got != "hummock_001/checkpoint/0" {
		t.Fatalf("CheckpointPath = %q", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	bad := []byte{0x0a, 0x05, 0x01} // field 1, length 5, only 1 byte
	if _, err := DecodeVersion(bad); err == nil || !strings.Contains(err.Error(), "decode hummock version") {
		t.Errorf("DecodeVersion: %v", err)
	}
	if _, err := DecodeDelta(bad); err == nil || !strings.Contains(err.Error(), "decode hummock version delta") {
		t.Errorf("DecodeDelta: %v", err)
	}
	if _, err := DecodeCheckpoint(bad); err == nil || !strings.Contains(err.Error(), "decode hummock version checkpoint") {
		t.Errorf("DecodeCheckpoint: %v", err)
	}
	if _, err := EncodeCheckpoint(nil); err == nil {
		t.Errorf("EncodeCheckpoint(nil): no error")
	}
}

// TestUnknownFieldsSurvive appends fields rwsnap does not declare (HEAD's
// SstableInfo.sst_size = 14 and vnode_statistics = 15, Levels field 6,
// HummockVersion field 8) and checks decode -> replay -> encode keeps them.
func TestUnknownFieldsSurvive(t *testing.T) {
	var sstUnknown []byte
	sstUnknown = protowire.AppendTag(sstUnknown, 14, protowire.VarintType)
	sstUnknown = protowire.AppendVarint(sstUnknown, 4096)
	sstUnknown = protowire.AppendTag(sstUnknown, 15, protowire.BytesType)
	sstUnknown = protowire.AppendBytes(sstUnknown, []byte{1, 2, 3})
	rawSST, err := proto.Marshal(sst(5, 5, "a", "b", 8))
	if err != nil {
		t.Fatal(err)
	}
	rawSST = append(rawSST, sstUnknown...)
	withUnknown := &pb.SstableInfo{}
	if err := proto.Unmarshal(rawSST, withUnknown); err != nil {
		t.Fatal(err)
	}

	base := ver(10, 100, 0, group(2, []uint32{100},
		&pb.OverlappingLevel{TotalFileSize: 8, UncompressedFileSize: 16, SubLevels: []*pb.Level{lvl(0, over, 50, 8, 16, withUnknown)}},
		emptyLevels(6)))
	var levelsUnknown []byte
	levelsUnknown = protowire.AppendTag(levelsUnknown, 6, protowire.VarintType)
	levelsUnknown = protowire.AppendVarint(levelsUnknown, 77)
	base.Levels[2].ProtoReflect().SetUnknown(levelsUnknown)
	rawVersion, err := proto.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	var versionUnknown []byte
	versionUnknown = protowire.AppendTag(versionUnknown, 8, protowire.BytesType)
	versionUnknown = protowire.AppendBytes(versionUnknown, []byte("vector index"))
	rawVersion = append(rawVersion, versionUnknown...)

	v, err := DecodeVersion(rawVersion)
	if err != nil {
		t.Fatal(err)
	}
	// Trivial move of the SST to L1: its SstableInfo travels through the
	// delta, so encode the delta with the unknown fields too.
	d := delta(11, 10, 100, 0, map[uint64]*pb.HummockVersionDelta_GroupDeltas{
		2: gds(intra(0, 0, []uint64{5}, 0), intra(1, 0, nil, 0, withUnknown)),
	})
	rawDelta, err := proto.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	d, err = DecodeDelta(rawDelta)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Replay(v, []*pb.HummockVersionDelta{d}, rwversion.For(rwversion.V1_7).Replay)
	if err != nil {
		t.Fatal(err)
	}
	b, err := EncodeCheckpoint(got)
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeCheckpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	rv := c.GetVersion()
	if u := rv.ProtoReflect().GetUnknown(); !bytes.Equal(u, versionUnknown) {
		t.Errorf("version unknown fields = %x, want %x", u, versionUnknown)
	}
	g := rv.GetLevels()[2]
	if u := g.ProtoReflect().GetUnknown(); !bytes.Equal(u, levelsUnknown) {
		t.Errorf("levels unknown fields = %x, want %x", u, levelsUnknown)
	}
	l1 := g.GetLevels()[0].GetTableInfos()
	if len(l1) != 1 {
		t.Fatalf("L1 = %v, want the moved SST", l1)
	}
	if u := l1[0].ProtoReflect().GetUnknown(); !bytes.Equal(u, sstUnknown) {
		t.Errorf("sst unknown fields = %x, want %x", u, sstUnknown)
	}
	reencoded, err := proto.Marshal(l1[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reencoded, rawSST) {
		t.Errorf("sst bytes changed:\n got %x\nwant %x", reencoded, rawSST)
	}
}
