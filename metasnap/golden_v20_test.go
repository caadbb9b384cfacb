package metasnap

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// goldenV20 is a tiny RisingWave v2.0 snapshot written by hand from
// ClusterMetadata::encode_to (src/storage/backup/src/meta_snapshot_v1.rs
// @v2.0.7): one default-cf pair, empty version and stats, empty model
// lists, empty params, cluster id "c1", no subscriptions, one secret.
func goldenV20(withSecrets bool) []byte {
	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	var b []byte
	b = append(b, le32(1)...)                  // format_version
	b = binary.LittleEndian.AppendUint64(b, 7) // id
	b = append(b, le32(1)...)                  // 1 default-cf key
	b = append(b, le32(3)...)                  //   BytesValue, 3 bytes
	b = append(b, 0x0a, 0x01, 'k')             //   field 1 = "k"
	b = append(b, le32(1)...)                  // 1 default-cf value
	b = append(b, le32(3)...)                  //
	b = append(b, 0x0a, 0x01, 'v')             //   field 1 = "v"
	b = append(b, le32(0)...)                  // hummock version (empty message)
	b = append(b, le32(0)...)                  // version stats
	for range 12 {                             // compaction groups .. connections
		b = append(b, le32(0)...)
	}
	b = append(b, le32(0)...)           // system params
	b = append(b, le32(4)...)           // cluster id StringValue
	b = append(b, 0x0a, 0x02, 'c', '1') //
	b = append(b, le32(0)...)           // subscriptions: none
	if withSecrets {
		secret := []byte{0x08, 0x01, 0x12, 0x01, 's', 0x22, 0x02, 0xde, 0xad} // Secret{id 1, name "s", value de ad}
		b = append(b, le32(1)...)                                             // secrets: one
		b = append(b, le32(uint32(len(secret)))...)
		b = append(b, secret...)
	}
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

func TestGoldenV20Snapshot(t *testing.T) {
	s, err := Decode(goldenV20(true))
	if err != nil {
		t.Fatal(err)
	}
	m := s.Metadata
	if s.ID != 7 || m.ClusterID != "c1" || len(m.DefaultCF) != 1 || string(m.DefaultCF[0].Key) != "k" || !m.HasSecrets || len(m.Secrets) != 1 ||
		!bytes.Equal(m.Secrets[0], []byte{0x08, 0x01, 0x12, 0x01, 's', 0x22, 0x02, 0xde, 0xad}) || len(m.Subscriptions) != 0 {
		t.Fatalf("decoded %+v", m)
	}
	// rwsnap writes the same bytes for a v2.0 cluster.
	if got := s.Encode(); !bytes.Equal(got, goldenV20(true)) {
		t.Fatalf("encoded\n%x\nwant\n%x", got, goldenV20(true))
	}
	// A v1.10 snapshot has no item 20; rwsnap reads it and writes it back
	// without one.
	s, err = Decode(goldenV20(false))
	if err != nil {
		t.Fatal(err)
	}
	if s.Metadata.HasSecrets || !s.Metadata.HasSubscriptions {
		t.Fatalf("v1.10 layout read as %+v", s.Metadata)
	}
	if got := s.Encode(); !bytes.Equal(got, goldenV20(false)) {
		t.Fatalf("v1.10 layout re-encoded differently")
	}
}
