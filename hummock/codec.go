// Package hummock holds RisingWave's hummock version model as rwsnap needs it:
// decoding the checkpoint and delta protobufs, replaying deltas onto a
// checkpoint exactly as a v1.7 meta node does at startup, and naming the SST
// objects a version references.
//
// The replay follows RisingWave v1.7.0's HummockVersion::apply_version_delta
// (src/storage/hummock_sdk/src/compaction_group/hummock_version_ext.rs); where
// RisingWave panics, this package returns an error naming the delta.
package hummock

import (
	"fmt"

	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
	"google.golang.org/protobuf/proto"
)

// DecodeVersion decodes a prost-encoded hummock.HummockVersion. Fields this
// package does not declare are kept as unknown fields and re-encoded as is.
func DecodeVersion(b []byte) (*pb.HummockVersion, error) {
	v := &pb.HummockVersion{}
	if err := proto.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decode hummock version: %w", err)
	}
	return v, nil
}

// DecodeDelta decodes one cf/hummock_1 value (hummock.HummockVersionDelta).
func DecodeDelta(b []byte) (*pb.HummockVersionDelta, error) {
	d := &pb.HummockVersionDelta{}
	if err := proto.Unmarshal(b, d); err != nil {
		return nil, fmt.Errorf("decode hummock version delta: %w", err)
	}
	return d, nil
}

// DecodeCheckpoint decodes the object at CheckpointPath
// (hummock.HummockVersionCheckpoint).
func DecodeCheckpoint(b []byte) (*pb.HummockVersionCheckpoint, error) {
	c := &pb.HummockVersionCheckpoint{}
	if err := proto.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("decode hummock version checkpoint: %w", err)
	}
	return c, nil
}

// EncodeCheckpoint encodes HummockVersionCheckpoint{version: v,
// stale_objects: {}}, what RisingWave's restore uploads ("Ignore stale
// objects. Full GC will clear them."). Map order is made deterministic so the
// same version always gives the same bytes.
func EncodeCheckpoint(v *pb.HummockVersion) ([]byte, error) {
	if v == nil {
		return nil, fmt.Errorf("encode hummock version checkpoint: nil version")
	}
	c := &pb.HummockVersionCheckpoint{Version: v}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode hummock version checkpoint (version %d): %w", v.GetId(), err)
	}
	return b, nil
}

// CheckpointPath is RisingWave's version_checkpoint_path
// (hummock_sdk/src/lib.rs): "{data_directory}/checkpoint/0".
func CheckpointPath(dataDir string) string {
	return dataDir + "/checkpoint/0"
}
