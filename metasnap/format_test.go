package metasnap

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// goldenPayload is a tiny ClusterMetadata written out by hand from the
// format description (reference §1.3), not produced by the encoder.
const goldenPayload = "" +
	"01000000" + "03000000" + "0a0101" + // default_cf keys: [BytesValue{0x01}]
	"01000000" + "04000000" + "0a020203" + // default_cf values: [BytesValue{0x02 0x03}]
	"02000000" + "0805" + // HummockVersion{id: 5}
	"00000000" + // HummockVersionStats{} (zero-length message)
	"00000000" + "00000000" + "00000000" + "00000000" + "00000000" + // groups, fragments, users, databases, schemas
	"01000000" + "03000000" + "08e907" + // tables: [Table{id: 1001}]
	"00000000" + "00000000" + "00000000" + "00000000" + "00000000" + "00000000" + // index..connection
	"02000000" + "0864" + // SystemParams{barrier_interval_ms: 100}
	"04000000" + "0a026162" // StringValue{"ab"}

const goldenSubscriptions = "00000000"

func golden(t *testing.T, payload string) []byte {
	t.Helper()
	head := "01000000" + "0700000000000000" // format 1, id 7
	b, err := hex.DecodeString(head + payload)
	if err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

func goldenSnapshot() *MetaSnapshot {
	return &MetaSnapshot{FormatVersion: 1, ID: 7, Metadata: &ClusterMetadata{
		DefaultCF:        []KV{{Key: []byte{1}, Value: []byte{2, 3}}},
		HummockVersion:   []byte{0x08, 0x05},
		VersionStats:     []byte{},
		Tables:           [][]byte{{0x08, 0xe9, 0x07}},
		SystemParams:     []byte{0x08, 0x64},
		ClusterID:        "ab",
		HasSubscriptions: true,
	}}
}

func TestEncodeGolden(t *testing.T) {
	want := golden(t, goldenPayload+goldenSubscriptions)
	got := goldenSnapshot().Encode()
	if !bytes.Equal(got, want) {
		t.Fatalf("encode mismatch\n got %x\nwant %x", got, want)
	}
}

func TestDecodeGolden(t *testing.T) {
	tests := []struct {
		name     string
		payload  string
		wantSubs bool
	}{
		{"v1.8+ with subscription list", goldenPayload + goldenSubscriptions, true},
		{"pre-v1.8 without subscription list", goldenPayload, false},
		{"v2.0 with secrets list", goldenPayload + goldenSubscriptions + "01000000" + "02000000" + "0801", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Decode(golden(t, tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			m := s.Metadata
			if s.ID != 7 || s.FormatVersion != 1 {
				t.Fatalf("header = %d/%d", s.FormatVersion, s.ID)
			}
			if len(m.DefaultCF) != 1 || !bytes.Equal(m.DefaultCF[0].Key, []byte{1}) || !bytes.Equal(m.DefaultCF[0].Value, []byte{2, 3}) {
				t.Fatalf("default_cf = %v", m.DefaultCF)
			}
			if !bytes.Equal(m.HummockVersion, []byte{8, 5}) || len(m.VersionStats) != 0 {
				t.Fatalf("version = %x stats = %x", m.HummockVersion, m.VersionStats)
			}
			if len(m.Tables) != 1 || !bytes.Equal(m.Tables[0], []byte{0x08, 0xe9, 0x07}) || len(m.Databases) != 0 {
				t.Fatalf("tables = %x", m.Tables)
			}
			if m.ClusterID != "ab" || !bytes.Equal(m.SystemParams, []byte{0x08, 0x64}) {
				t.Fatalf("cluster id %q params %x", m.ClusterID, m.SystemParams)
			}
			if m.HasSubscriptions != tt.wantSubs {
				t.Fatalf("HasSubscriptions = %v", m.HasSubscriptions)
			}
		})
	}
}

func TestEmptyWrappersAreZeroLength(t *testing.T) {
	s := goldenSnapshot()
	s.Metadata.DefaultCF = []KV{{Key: []byte{}, Value: []byte{}}}
	s.Metadata.ClusterID = ""
	b := s.Encode()
	// keys list: count 1, one zero-length message.
	if got := hex.EncodeToString(b[12:24]); got != "010000000000000001000000" {
		t.Fatalf("empty default_cf pair encodes as %s", got)
	}
	d, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Metadata.DefaultCF[0].Key) != 0 || d.Metadata.ClusterID != "" {
		t.Fatalf("decoded %v %q", d.Metadata.DefaultCF, d.Metadata.ClusterID)
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	good := goldenSnapshot().Encode()
	flip := bytes.Clone(good)
	flip[20] ^= 0x40
	badLen := golden(t, strings.Replace(goldenPayload, "02000000"+"0805", "ff000000"+"0805", 1))
	v2 := bytes.Clone(good[:len(good)-8])
	v2[0] = 2
	v2 = binary.LittleEndian.AppendUint64(v2, xxhash.Sum64(v2))
	tests := []struct {
		name string
		b    []byte
		want error
		text string
	}{
		{"bit flip", flip, ErrChecksum, "checksum mismatch"},
		{"truncated", good[:len(good)-5], ErrChecksum, "checksum"},
		{"too short", good[:10], ErrChecksum, "shorter than"},
		{"length past end", badLen, nil, "hummock_version: truncated"},
		{"format v2", v2, ErrUnsupportedFormat, "SQL meta store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.b)
			if err == nil {
				t.Fatal("decode accepted damaged bytes")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err %q lacks %q", err, tt.text)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(goldenSnapshot().Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Also fuzz the payload with a valid checksum, else every input stops there.
		if len(b) >= 12 {
			b = binary.LittleEndian.AppendUint64(bytes.Clone(b), xxhash.Sum64(b))
		}
		s, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(s.Encode())
		if err != nil {
			t.Fatalf("re-decode of re-encoded snapshot: %v", err)
		}
		if len(again.Metadata.DefaultCF) != len(s.Metadata.DefaultCF) || again.Metadata.ClusterID != s.Metadata.ClusterID {
			t.Fatal("round trip changed the snapshot")
		}
	})
}

// Large values and many lists survive the streaming round trip unchanged.
func TestEncodeLargeValuesRoundTrip(t *testing.T) {
	s := goldenSnapshot()
	big := bytes.Repeat([]byte{0x5a}, 300<<10)
	s.Metadata.TableFragments = [][]byte{big, {1, 2}, big[:128], big[:127]}
	s.Metadata.DefaultCF = append(s.Metadata.DefaultCF, KV{Key: []byte("k"), Value: big})
	d, err := Decode(s.Encode())
	if err != nil {
		t.Fatal(err)
	}
	fr := d.Metadata.TableFragments
	if len(fr) != 4 || !bytes.Equal(fr[0], big) || !bytes.Equal(fr[2], big[:128]) || !bytes.Equal(fr[3], big[:127]) ||
		!bytes.Equal(d.Metadata.DefaultCF[1].Value, big) {
		t.Fatal("round trip changed the values")
	}
}
