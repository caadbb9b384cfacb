package hummock

import (
	"bytes"
	"fmt"
	"sort"

	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
)

// A full key is user_key ‖ BE u64 epoch, and user_key = BE u32 table_id ‖
// table_key (hummock_sdk/src/key.rs).
const (
	epochLen       = 8
	tablePrefixLen = 4
)

// compareFullKey is KeyComparator::compare_encoded_full_key: user keys
// ascending, then epochs descending (newer versions of a key sort first).
// Both keys must hold at least epochLen bytes.
func compareFullKey(a, b []byte) int {
	ua, ea := a[:len(a)-epochLen], a[len(a)-epochLen:]
	ub, eb := b[:len(b)-epochLen], b[len(b)-epochLen:]
	if c := bytes.Compare(ua, ub); c != 0 {
		return c
	}
	return bytes.Compare(eb, ea)
}

// compareKeyRange is key_range_cmp! (key_range.rs): by left bound (empty =
// -inf), then by right bound (empty = +inf).
func compareKeyRange(a, b *pb.KeyRange) int {
	al, bl := a.GetLeft(), b.GetLeft()
	switch {
	case len(al) == 0 && len(bl) == 0:
	case len(al) != 0 && len(bl) != 0:
		if c := compareFullKey(al, bl); c != 0 {
			return c
		}
	case len(al) == 0:
		return -1
	default:
		return 1
	}
	ar, br := a.GetRight(), b.GetRight()
	switch {
	case len(ar) == 0 && len(br) == 0:
		return 0
	case len(ar) != 0 && len(br) != 0:
		return compareFullKey(ar, br)
	case len(ar) == 0:
		return 1
	default:
		return -1
	}
}

// sortByKeyRange is RisingWave's `table_infos.sort_by(key_range.compare)`,
// a stable sort. RisingWave unwraps key_range and panics on full keys
// shorter than an epoch; exactly which elements its sort compares is an
// implementation detail, so every element is checked up front instead.
func sortByKeyRange(ssts []*pb.SstableInfo) error {
	if len(ssts) < 2 {
		return nil
	}
	for _, s := range ssts {
		kr := s.GetKeyRange()
		if kr == nil {
			return fmt.Errorf("sst %d (object %d) has no key_range", s.GetSstId(), s.GetObjectId())
		}
		if l := len(kr.GetLeft()); l != 0 && l < epochLen {
			return fmt.Errorf("sst %d (object %d): key_range.left is %d bytes, shorter than a full key", s.GetSstId(), s.GetObjectId(), l)
		}
		if l := len(kr.GetRight()); l != 0 && l < epochLen {
			return fmt.Errorf("sst %d (object %d): key_range.right is %d bytes, shorter than a full key", s.GetSstId(), s.GetObjectId(), l)
		}
	}
	sort.SliceStable(ssts, func(i, j int) bool {
		return compareKeyRange(ssts[i].GetKeyRange(), ssts[j].GetKeyRange()) < 0
	})
	return nil
}

// userKeyOf is FullKey::decode(k).user_key, which needs a table id and an
// epoch.
func userKeyOf(k []byte) ([]byte, bool) {
	if len(k) < tablePrefixLen+epochLen {
		return nil, false
	}
	return k[:len(k)-epochLen], true
}

// canConcat is can_concat (hummock_sdk/src/lib.rs): every SST ends strictly
// before the next one starts, comparing user keys only; an equal user key is
// fine when the earlier right bound is exclusive. The error reports what
// RisingWave would panic on (missing key range, key too short to decode).
func canConcat(ssts []*pb.SstableInfo) (bool, error) {
	for i := 1; i < len(ssts); i++ {
		prev, next := ssts[i-1].GetKeyRange(), ssts[i].GetKeyRange()
		if prev == nil || next == nil {
			return false, fmt.Errorf("can_concat: sst %d or %d has no key_range", ssts[i-1].GetSstId(), ssts[i].GetSstId())
		}
		r, ok := userKeyOf(prev.GetRight())
		if !ok {
			return false, fmt.Errorf("can_concat: sst %d: key_range.right is not a full key", ssts[i-1].GetSstId())
		}
		l, ok := userKeyOf(next.GetLeft())
		if !ok {
			return false, fmt.Errorf("can_concat: sst %d: key_range.left is not a full key", ssts[i].GetSstId())
		}
		c := bytes.Compare(r, l)
		if c == 0 && prev.GetRightExclusive() {
			c = -1
		}
		if c >= 0 {
			return false, nil
		}
	}
	return true, nil
}

// assertConcat turns a failed can_concat assert into an error.
func assertConcat(ssts []*pb.SstableInfo) error {
	ok, err := canConcat(ssts)
	if err != nil {
		return err
	}
	if !ok {
		ids := make([]uint64, len(ssts))
		for i, s := range ssts {
			ids[i] = s.GetSstId()
		}
		return fmt.Errorf("sstables of a non-overlapping level overlap (can_concat failed), sst ids %v", ids)
	}
	return nil
}
