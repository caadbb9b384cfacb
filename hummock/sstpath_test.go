package hummock

import "testing"

// Prefixed follows get_object_prefix of v2.0.7's object stores: S3 and
// MinIO always prefix, memory never, fs (OpenDAL) only under v2.0's
// use_new_object_prefix_strategy; v1.x stores have no such param (false).
func TestPrefixed(t *testing.T) {
	for _, tt := range []struct {
		scheme   string
		strategy bool
		want     bool
	}{
		{"s3", false, true}, {"s3", true, true},
		{"minio", false, true}, {"minio", true, true},
		{"memory", false, false}, {"memory", true, false},
		{"fs", false, false}, {"fs", true, true},
	} {
		if got := Prefixed(tt.scheme, tt.strategy); got != tt.want {
			t.Errorf("Prefixed(%q, %v) = %v, want %v", tt.scheme, tt.strategy, got, tt.want)
		}
	}
	// The prefix is crc32fast::hash(id.to_be_bytes()) % 256 (prefix.rs),
	// computed here by zlib.crc32 outside the code under test.
	for id, want := range map[uint64]string{1: "d/255/1.data", 4097: "d/174/4097.data"} {
		if got := SSTPath("d", id, true); got != want {
			t.Errorf("SSTPath(d, %d, prefixed) = %q, want %q", id, got, want)
		}
	}
	if got := SSTPath("d", 1, false); got != "d/1.data" {
		t.Errorf("SSTPath flat = %q", got)
	}
}
