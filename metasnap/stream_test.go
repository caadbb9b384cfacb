package metasnap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func bigSnapshot() *MetaSnapshot {
	s := goldenSnapshot()
	m := s.Metadata
	for i := range 300 {
		m.Tables = append(m.Tables, []byte{0x08, byte(i), byte(i >> 8)})
		m.TableFragments = append(m.TableFragments, bytes.Repeat([]byte{byte(i)}, 1000+i))
	}
	m.Subscriptions = [][]byte{{0x08, 0x01}}
	m.Secrets, m.HasSecrets = [][]byte{{0x08, 0x02}}, true
	return s
}

// Lists given as streams encode to the very bytes of the in-memory lists.
func TestWriteSnapshotStreamsEqualEncode(t *testing.T) {
	s := bigSnapshot()
	want := s.Encode()
	b := s.Metadata.Body()
	for i, l := range b.Models {
		inner := l
		b.Models[i] = List{Count: inner.Count, Each: func(yield func([]byte) error) error {
			return inner.Each(func(m []byte) error { return yield(bytes.Clone(m)) })
		}}
	}
	var buf bytes.Buffer
	n, sum, err := WriteSnapshot(&buf, s.ID, b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) || n != int64(len(want)) || sum != binary.LittleEndian.Uint64(want[len(want)-8:]) {
		t.Fatalf("streamed encoding differs: %d bytes vs %d", n, len(want))
	}
}

// A stream that yields another number of messages than it counted fails
// the write: the count is already written, so the object would be corrupt.
func TestWriteSnapshotCountMismatch(t *testing.T) {
	for _, tt := range []struct {
		count, yields int
		want          string
	}{{2, 3, "more than the 2 messages counted"}, {3, 2, "3 messages counted but 2 given"}} {
		b := goldenSnapshot().Metadata.Body()
		b.Models[5] = List{Count: tt.count, Each: func(yield func([]byte) error) error {
			for range tt.yields {
				if err := yield([]byte{0x08, 0x01}); err != nil {
					return err
				}
			}
			return nil
		}}
		_, _, err := WriteSnapshot(&bytes.Buffer{}, 7, b)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "table") {
			t.Errorf("count %d, %d given: err = %v, want %q", tt.count, tt.yields, err, tt.want)
		}
	}
}

// Scan keeps the small parts, hands out every list message, records where
// each section lies; ScanSection reads a section again from those bytes.
func TestScanSpansAndSections(t *testing.T) {
	s := bigSnapshot()
	b := s.Encode()
	got := map[Section][][]byte{}
	h, err := Scan(bytes.NewReader(b), int64(len(b)), func(sec Section, i int, msg []byte) error {
		if i != len(got[sec]) {
			t.Fatalf("%s: message %d out of order", sec, i)
		}
		got[sec] = append(got[sec], bytes.Clone(msg))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m := s.Metadata
	if h.ID != 7 || h.Size != int64(len(b)) || !bytes.Equal(h.Meta.HummockVersion, m.HummockVersion) || h.Meta.ClusterID != "ab" ||
		len(h.Meta.DefaultCF) != 1 || !h.Meta.HasSecrets || h.Meta.Tables != nil {
		t.Fatalf("head %+v", h)
	}
	for _, sec := range []Section{SecTables, SecTableFragments, SecSubscriptions, SecSecrets} {
		want := *m.list(sec)
		if h.Count(sec) != len(want) || len(got[sec]) != len(want) {
			t.Fatalf("%s: %d/%d messages, want %d", sec, h.Count(sec), len(got[sec]), len(want))
		}
		var again [][]byte
		if err := ScanSection(bytes.NewReader(b), h, sec, func(_ int, msg []byte) error {
			again = append(again, bytes.Clone(msg))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if !bytes.Equal(got[sec][i], want[i]) || !bytes.Equal(again[i], want[i]) {
				t.Fatalf("%s #%d differs", sec, i)
			}
		}
	}
}

// reseal rewrites the trailing checksum, so a structural defect is what
// Scan meets.
func reseal(b []byte) []byte {
	body := b[:len(b)-8]
	return binary.LittleEndian.AppendUint64(bytes.Clone(body), xxhash.Sum64(body))
}

func TestScanRejects(t *testing.T) {
	good := goldenSnapshot().Encode()
	// Offsets in the golden object: header 12, default keys count at 12.
	hugeCount := reseal(append(append(bytes.Clone(good[:12]), 0xff, 0xff, 0xff, 0x7f), good[16:]...))
	hugeLen := reseal(append(append(bytes.Clone(good[:16]), 0xf0, 0xff, 0xff, 0xff), good[20:]...))
	flipped := bytes.Clone(good)
	flipped[30] ^= 0xff
	tests := []struct {
		name string
		b    []byte
		size int64
		want string
		is   error
	}{
		{"shorter than header and checksum", good[:19], 19, "shorter than the 20-byte header", ErrChecksum},
		{"a flipped byte", flipped, int64(len(flipped)), "checksum mismatch", ErrChecksum},
		{"count larger than the bytes left", hugeCount, int64(len(hugeCount)), "count 2147483647 cannot fit", nil},
		{"length larger than the bytes left", hugeLen, int64(len(hugeLen)), "length 4294967280 exceeds the", nil},
		{"object shorter than its announced size", good, int64(len(good)) + 100, "before its", nil},
		{"trailing bytes", reseal(append(bytes.Clone(good[:len(good)-8]), 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0, 0, 0, 0, 0, 0)), 0, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := tt.size
			if size == 0 {
				size = int64(len(tt.b))
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Scan(bytes.NewReader(tt.b), size, nil)
			runtime.ReadMemStats(&after)
			if err == nil || (tt.want != "" && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want %v", err, tt.is)
			}
			// No allocation may follow an unchecked length prefix.
			if d := after.TotalAlloc - before.TotalAlloc; d > 8<<20 {
				t.Fatalf("scan of a %d-byte object allocated %d bytes", len(tt.b), d)
			}
		})
	}
}

// A streamed copy of a multi-megabyte snapshot with every list skipped
// allocates a small, fixed amount, whatever the object's size.
func TestScanSkippingListsIsFlat(t *testing.T) {
	s := goldenSnapshot()
	big := bytes.Repeat([]byte{1}, 1<<20)
	for range 32 {
		s.Metadata.TableFragments = append(s.Metadata.TableFragments, big)
	}
	b := s.Encode()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := Scan(bytes.NewReader(b), int64(len(b)), nil); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 2<<20 {
		t.Fatalf("scanning a %d-byte snapshot allocated %d bytes", len(b), d)
	}
}
