package hummock

import (
	"strings"
	"testing"

	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
)

func TestCompareKeyRange(t *testing.T) {
	kr := func(l, r []byte) *pb.KeyRange { return &pb.KeyRange{Left: l, Right: r} }
	a1, a2, b1 := fk(1, "a", 1), fk(1, "a", 2), fk(1, "b", 1)
	cases := []struct {
		name string
		x, y *pb.KeyRange
		want int
	}{
		{"newer epoch of a key sorts first", kr(a2, b1), kr(a1, b1), -1},
		{"user key decides before epoch", kr(a1, b1), kr(b1, b1), -1},
		{"equal left: right decides", kr(a1, a1), kr(a1, b1), -1},
		{"empty left is -inf", kr(nil, a1), kr(a1, a1), -1},
		{"empty right is +inf", kr(a1, nil), kr(a1, b1), 1},
		{"both unbounded", kr(nil, nil), kr(nil, nil), 0},
		{"table id is part of the user key", kr(fk(2, "a", 1), nil), kr(fk(1, "z", 1), nil), 1},
	}
	for _, tc := range cases {
		if got := compareKeyRange(tc.x, tc.y); got != tc.want {
			t.Errorf("%s: compare = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestCanConcat(t *testing.T) {
	mk := func(l, r []byte, excl bool) *pb.SstableInfo {
		return &pb.SstableInfo{KeyRange: &pb.KeyRange{Left: l, Right: r, RightExclusive: excl}}
	}
	cases := []struct {
		name    string
		ssts    []*pb.SstableInfo
		want    bool
		wantErr string
	}{
		{"disjoint", []*pb.SstableInfo{mk(fk(1, "a", 1), fk(1, "b", 1), false), mk(fk(1, "c", 1), fk(1, "d", 1), false)}, true, ""},
		// Epochs are ignored: same user key at different epochs overlaps.
		{"same user key, inclusive", []*pb.SstableInfo{mk(fk(1, "a", 1), fk(1, "b", 9), false), mk(fk(1, "b", 1), fk(1, "d", 1), false)}, false, ""},
		{"same user key, exclusive", []*pb.SstableInfo{mk(fk(1, "a", 1), fk(1, "b", 9), true), mk(fk(1, "b", 1), fk(1, "d", 1), false)}, true, ""},
		{"overlap", []*pb.SstableInfo{mk(fk(1, "a", 1), fk(1, "c", 1), false), mk(fk(1, "b", 1), fk(1, "d", 1), false)}, false, ""},
		{"single", []*pb.SstableInfo{{}}, true, ""},
		{"unbounded right cannot be decoded", []*pb.SstableInfo{mk(fk(1, "a", 1), nil, false), mk(fk(1, "b", 1), nil, false)}, false, "not a full key"},
		{"missing key range", []*pb.SstableInfo{{}, mk(fk(1, "b", 1), nil, false)}, false, "no key_range"},
	}
	for _, tc := range cases {
		got, err := canConcat(tc.ssts)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: canConcat = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if err := sortByKeyRange([]*pb.SstableInfo{mk([]byte{1, 2}, nil, false), mk(fk(1, "a", 1), nil, false)}); err == nil {
		t.Errorf("sorting a 2-byte full key: no error")
	}
}
