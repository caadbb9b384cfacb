package hummock

import (
	"bytes"
	"testing"

	"github.com/rwsnap/rwsnap/hummock/commonpb"
	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
)

// bitmap is a 256-vnode Bitmap::to_protobuf body built by hand: byte 0 is
// 256 % 8 = 0, then 32 bytes, vnode i at byte i/8, bit i%8.
func bitmap(from, to int, extra ...int) *commonpb.Buffer {
	body := make([]byte, 33)
	set := func(i int) { body[1+i/8] |= 1 << (i % 8) }
	for i := from; i < to; i++ {
		set(i)
	}
	for _, i := range extra {
		set(i)
	}
	return &commonpb.Buffer{Compression: commonpb.Buffer_NONE, Body: body}
}

func vw(value string, bm *commonpb.Buffer) *pb.VnodeWatermark {
	return &pb.VnodeWatermark{Watermark: []byte(value), VnodeBitmap: bm}
}

func epochWM(epoch uint64, ws ...*pb.VnodeWatermark) *pb.TableWatermarks_EpochNewWatermarks {
	return &pb.TableWatermarks_EpochNewWatermarks{Epoch: epoch, Watermarks: ws}
}

func TestBitmapLayout(t *testing.T) {
	// Vnodes 0..63 are the first 8 body bytes after the header byte.
	want := append([]byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, make([]byte, 24)...)
	if got := newVnodeBitmap(seq(0, 64)).GetBody(); !bytes.Equal(got, want) {
		t.Fatalf("bitmap body = %x, want %x", got, want)
	}
	// Vnode 200 = byte 1+25, bit 0; vnode 9 = byte 2, bit 1.
	want = make([]byte, 33)
	want[26] = 0x01
	want[2] = 0x02
	if got := newVnodeBitmap([]int{9, 200}).GetBody(); !bytes.Equal(got, want) {
		t.Fatalf("bitmap body = %x, want %x", got, want)
	}
	vs, err := vnodesOf(vw("x", &commonpb.Buffer{Body: want}))
	if err != nil || len(vs) != 2 || vs[0] != 9 || vs[1] != 200 {
		t.Fatalf("vnodesOf = %v, %v; want [9 200]", vs, err)
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestApplyDeltaWatermarks(t *testing.T) {
	// Table 7: epoch 10 sets vnodes 0..127 to "a", epoch 20 vnodes 0..63 to
	// "b", epoch 30 vnode 200 to "c".
	tw := func() *pb.TableWatermarks {
		return &pb.TableWatermarks{IsAscending: true, EpochWatermarks: []*pb.TableWatermarks_EpochNewWatermarks{
			epochWM(10, vw("a", bitmap(0, 128))),
			epochWM(20, vw("b", bitmap(0, 64))),
			epochWM(30, vw("c", bitmap(0, 0, 200))),
		}}
	}
	withWM := func(id, mce, safe uint64, wms map[uint32]*pb.TableWatermarks) *pb.HummockVersion {
		v := ver(id, mce, safe, group(2, nil, nil, emptyLevels(6)))
		v.TableWatermarks = wms
		return v
	}
	base := withWM(10, 100, 5, map[uint32]*pb.TableWatermarks{7: tw()})
	wmDelta := func(safe uint64, add map[uint32]*pb.TableWatermarks, removed ...uint32) *pb.HummockVersionDelta {
		d := delta(11, 10, 100, safe, nil)
		d.NewTableWatermarks = add
		d.RemovedTableIds = removed
		return d
	}

	cases := []applyCase{
		{
			// Kept: epoch 30. Carried into a new entry at 25: "b" for 0..63
			// (from epoch 20), then "a" for 64..127 (from epoch 10).
			name:  "safe epoch between entries",
			base:  base,
			delta: wmDelta(25, nil),
			want: withWM(11, 100, 25, map[uint32]*pb.TableWatermarks{7: {IsAscending: true, EpochWatermarks: []*pb.TableWatermarks_EpochNewWatermarks{
				epochWM(25, vw("b", bitmap(0, 64)), vw("a", bitmap(64, 128))),
				epochWM(30, vw("c", bitmap(0, 0, 200))),
			}}}),
		},
		{
			// The oldest kept entry is at the safe epoch: carried watermarks
			// join it.
			name:  "safe epoch equals a kept entry",
			base:  base,
			delta: wmDelta(20, nil),
			want: withWM(11, 100, 20, map[uint32]*pb.TableWatermarks{7: {IsAscending: true, EpochWatermarks: []*pb.TableWatermarks_EpochNewWatermarks{
				epochWM(20, vw("b", bitmap(0, 64)), vw("a", bitmap(64, 128))),
				epochWM(30, vw("c", bitmap(0, 0, 200))),
			}}}),
		},
		{
			// Everything stale: the newest entry (30) covers only vnode 200,
			// so 0..63 come from 20 and 64..127 from 10.
			name:  "safe epoch after all entries",
			base:  base,
			delta: wmDelta(40, nil),
			want: withWM(11, 100, 40, map[uint32]*pb.TableWatermarks{7: {IsAscending: true, EpochWatermarks: []*pb.TableWatermarks_EpochNewWatermarks{
				epochWM(40, vw("c", bitmap(0, 0, 200)), vw("b", bitmap(0, 64)), vw("a", bitmap(64, 128))),
			}}}),
		},
		{
			name:  "safe epoch below the oldest entry leaves watermarks alone",
			base:  base,
			delta: wmDelta(8, nil),
			want:  withWM(11, 100, 8, map[uint32]*pb.TableWatermarks{7: tw()}),
		},
		{
			name:    "safe epoch must not go back",
			base:    base,
			delta:   wmDelta(4, nil),
			wantErr: "safe epoch goes back from 5 to 4",
		},
		{
			name: "new watermarks: appended to a table, inserted for a new one, removed tables dropped first",
			base: withWM(10, 100, 5, map[uint32]*pb.TableWatermarks{7: tw(), 8: tw()}),
			delta: wmDelta(5, map[uint32]*pb.TableWatermarks{
				7: {IsAscending: true, EpochWatermarks: []*pb.TableWatermarks_EpochNewWatermarks{epochWM(40, vw("d", bitmap(0, 256)))}},
				8: {IsAscending: false, EpochWatermarks: []*pb.TableWatermarks_EpochNewWatermarks{epochWM(40, vw("e", bitmap(0, 256)))}},
				9: {IsAscending: false, EpochWatermarks: []*pb.TableWatermarks_EpochNewWatermarks{epochWM(40, vw("f", bitmap(0, 256)))}},
			}, 8),
			want: withWM(11, 100, 5, map[uint32]*pb.TableWatermarks{
				7: {IsAscending: true, EpochWatermarks: append(tw().EpochWatermarks, epochWM(40, vw("d", bitmap(0, 256))))},
				8: {IsAscending: false, EpochWatermarks: []*pb.TableWatermarks_EpochNewWatermarks{epochWM(40, vw("e", bitmap(0, 256)))}},
				9: {IsAscending: false, EpochWatermarks: []*pb.TableWatermarks_EpochNewWatermarks{epochWM(40, vw("f", bitmap(0, 256)))}},
			}),
		},
		{
			name: "new watermarks must come after the last epoch",
			base: base,
			delta: wmDelta(5, map[uint32]*pb.TableWatermarks{
				7: {IsAscending: true, EpochWatermarks: []*pb.TableWatermarks_EpochNewWatermarks{epochWM(30, vw("d", bitmap(0, 256)))}},
			}),
			wantErr: "is not after the last epoch",
		},
		{
			name: "watermark direction must not change",
			base: base,
			delta: wmDelta(5, map[uint32]*pb.TableWatermarks{
				7: {IsAscending: false, EpochWatermarks: []*pb.TableWatermarks_EpochNewWatermarks{epochWM(40, vw("d", bitmap(0, 256)))}},
			}),
			wantErr: "direction changes",
		},
		{
			name: "new watermark without a bitmap",
			base: base,
			delta: wmDelta(5, map[uint32]*pb.TableWatermarks{
				9: {EpochWatermarks: []*pb.TableWatermarks_EpochNewWatermarks{epochWM(40, vw("d", nil))}},
			}),
			wantErr: "no vnode_bitmap",
		},
	}
	runApplyCases(t, cases)
}
