package hummock

import (
	"fmt"

	"github.com/rwsnap/rwsnap/hummock/commonpb"
	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
	"google.golang.org/protobuf/proto"
)

// vnodeCount is VirtualNode::COUNT in RisingWave v1.7 and v1.10.
const vnodeCount = 256

// vnodesOf lists the vnodes set in a VnodeWatermark's bitmap, in ascending
// order. The body layout is Bitmap::to_protobuf's (common/src/buffer/
// bitmap.rs): byte 0 = num_bits % 8, then the bits LSB first. RisingWave
// panics on a missing bitmap, an empty body, or a bit count that underflows.
// Bits past num_bits and vnodes >= 256 take part in nothing.
func vnodesOf(w *pb.VnodeWatermark) ([]int, error) {
	bm := w.GetVnodeBitmap()
	if bm == nil {
		return nil, fmt.Errorf("vnode watermark has no vnode_bitmap")
	}
	body := bm.GetBody()
	if len(body) == 0 {
		return nil, fmt.Errorf("vnode watermark bitmap has an empty body")
	}
	// u8 arithmetic as in Bitmap::from(&PbBuffer).
	short := int(uint8(8-body[0]) % 8)
	numBits := (len(body)-1)*8 - short
	if numBits < 0 {
		return nil, fmt.Errorf("vnode watermark bitmap of %d bytes declares a negative bit count", len(body))
	}
	var out []int
	for i := 0; i < numBits && i < vnodeCount; i++ {
		if body[1+i/8]&(1<<(i%8)) != 0 {
			out = append(out, i)
		}
	}
	return out, nil
}

// newVnodeBitmap is a fresh 256-bit Bitmap::to_protobuf.
func newVnodeBitmap(vnodes []int) *commonpb.Buffer {
	body := make([]byte, 1+vnodeCount/8) // body[0] = 256 % 8 = 0
	for _, v := range vnodes {
		body[1+v/8] |= 1 << (v % 8)
	}
	return &commonpb.Buffer{Compression: commonpb.Buffer_NONE, Body: body}
}

// checkTableWatermarks mirrors TableWatermarks::from_protobuf, which unwraps
// every bitmap: RisingWave panics decoding a delta that lacks one.
func checkTableWatermarks(tw *pb.TableWatermarks) error {
	for _, e := range tw.GetEpochWatermarks() {
		for _, w := range e.GetWatermarks() {
			if _, err := vnodesOf(w); err != nil {
				return fmt.Errorf("epoch %d: %w", e.GetEpoch(), err)
			}
		}
	}
	return nil
}

func epochsSorted(es []*pb.TableWatermarks_EpochNewWatermarks) bool {
	for i := 1; i < len(es); i++ {
		if es[i-1].GetEpoch() > es[i].GetEpoch() {
			return false
		}
	}
	return true
}

// applyNewTableWatermarks is TableWatermarks::apply_new_table_watermarks:
// same direction, both lists sorted, new epochs strictly after the old ones,
// then append.
func applyNewTableWatermarks(cur, add *pb.TableWatermarks) error {
	if cur.GetIsAscending() != add.GetIsAscending() {
		return fmt.Errorf("watermark direction changes (ascending %v -> %v)", cur.GetIsAscending(), add.GetIsAscending())
	}
	if !epochsSorted(cur.GetEpochWatermarks()) {
		return fmt.Errorf("existing watermark epochs are not sorted")
	}
	if !epochsSorted(add.GetEpochWatermarks()) {
		return fmt.Errorf("new watermark epochs are not sorted")
	}
	ce, ae := cur.GetEpochWatermarks(), add.GetEpochWatermarks()
	if len(ce) > 0 && len(ae) > 0 && ce[len(ce)-1].GetEpoch() >= ae[0].GetEpoch() {
		return fmt.Errorf("new watermark epoch %d is not after the last epoch %d", ae[0].GetEpoch(), ce[len(ce)-1].GetEpoch())
	}
	for _, e := range ae {
		cur.EpochWatermarks = append(cur.EpochWatermarks, proto.Clone(e).(*pb.TableWatermarks_EpochNewWatermarks))
	}
	return nil
}

// clearStaleEpochWatermark is TableWatermarks::clear_stale_epoch_watermark:
// entries at or after safeEpoch are kept; for each vnode none of them covers,
// the newest older watermark is carried into an entry at safeEpoch (merged
// into the oldest kept entry when that one is exactly at safeEpoch). Entries
// are consumed from the back, as RisingWave pops them.
func clearStaleEpochWatermark(tw *pb.TableWatermarks, safeEpoch uint64) error {
	es := tw.GetEpochWatermarks()
	if len(es) == 0 || es[0].GetEpoch() >= safeEpoch {
		return nil
	}
	var unset [vnodeCount]bool
	for i := range unset {
		unset[i] = true
	}
	left := vnodeCount
	var result []*pb.TableWatermarks_EpochNewWatermarks // newest first
	for len(es) > 0 && es[len(es)-1].GetEpoch() >= safeEpoch {
		e := es[len(es)-1]
		es = es[:len(es)-1]
		for _, w := range e.GetWatermarks() {
			vs, err := vnodesOf(w)
			if err != nil {
				return fmt.Errorf("epoch %d: %w", e.GetEpoch(), err)
			}
			for _, v := range vs {
				if unset[v] {
					unset[v] = false
					left--
				}
			}
		}
		result = append(result, e)
	}
	for left > 0 && len(es) > 0 {
		e := es[len(es)-1]
		es = es[:len(es)-1]
		var carried []*pb.VnodeWatermark
		for _, w := range e.GetWatermarks() {
			vs, err := vnodesOf(w)
			if err != nil {
				return fmt.Errorf("epoch %d: %w", e.GetEpoch(), err)
			}
			var set []int
			for _, v := range vs {
				if unset[v] {
					unset[v] = false
					left--
					set = append(set, v)
				}
			}
			if len(set) > 0 {
				carried = append(carried, &pb.VnodeWatermark{
					Watermark:   append([]byte(nil), w.GetWatermark()...),
					VnodeBitmap: newVnodeBitmap(set),
				})
			}
		}
		if len(carried) == 0 {
			continue
		}
		if n := len(result); n > 0 && result[n-1].GetEpoch() == safeEpoch {
			result[n-1].Watermarks = append(result[n-1].Watermarks, carried...)
		} else {
			result = append(result, &pb.TableWatermarks_EpochNewWatermarks{Epoch: safeEpoch, Watermarks: carried})
		}
	}
	for i, j := 0, len(result)-1; i < j; i, j = i+1, j-1 {
		result[i], result[j] = result[j], result[i]
	}
	for i := 1; i < len(result); i++ {
		if result[i-1].GetEpoch() >= result[i].GetEpoch() {
			return fmt.Errorf("watermark epochs after clearing below safe epoch %d are not strictly ascending (%d, %d)", safeEpoch, result[i-1].GetEpoch(), result[i].GetEpoch())
		}
	}
	tw.EpochWatermarks = result
	return nil
}
