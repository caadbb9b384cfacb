// Package metasnap holds RisingWave's meta backup format: the MetaSnapshot
// v1 object (<dir>/<id>.snapshot), the manifest (<dir>/manifest.json), and
// the operations on a backup location: create, list, delete, verify.
package metasnap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"

	"github.com/rwsnap/rwsnap/metastore"
)

// Format versions (src/storage/backup/src/meta_snapshot.rs).
const (
	FormatV1 uint32 = 1 // ClusterMetadata: etcd / in-memory meta store
	FormatV2 uint32 = 2 // MetadataV2: SQL meta store (not supported)
)

// ErrChecksum means the stored bytes do not match their trailing xxhash64.
var ErrChecksum = errors.New("checksum mismatch: the snapshot is corrupted or truncated")

// ErrUnsupportedFormat is returned for snapshots rwsnap cannot decode.
var ErrUnsupportedFormat = errors.New("unsupported snapshot format")

// KV is one default-cf pair (key without the "default/" prefix), as read
// from etcd.
type KV = metastore.KV

// ClusterMetadata is the v1 payload. Every message is kept as the protobuf
// bytes etcd held, so rwsnap needs no catalog schema and loses no field.
type ClusterMetadata struct {
	DefaultCF        []KV
	HummockVersion   []byte // hummock.HummockVersion
	VersionStats     []byte // hummock.HummockVersionStats
	CompactionGroups [][]byte
	TableFragments   [][]byte
	UserInfo         [][]byte
	Databases        [][]byte
	Schemas          [][]byte
	Tables           [][]byte
	Indexes          [][]byte
	Sinks            [][]byte
	Sources          [][]byte
	Views            [][]byte
	Functions        [][]byte
	Connections      [][]byte
	SystemParams     []byte // meta.SystemParams
	ClusterID        string
	// Subscriptions is the v1.8+ trailing list. rwsnap always writes it
	// (count 0 when empty): v1.8-v1.10 decoders misread a snapshot without it.
	Subscriptions [][]byte
	// HasSubscriptions is false when a decoded pre-v1.8 snapshot ended
	// before the list.
	HasSubscriptions bool
	// Secrets is the v2.0.x trailing list, kept when present.
	Secrets    [][]byte
	HasSecrets bool
}

// MetaSnapshot is one decoded snapshot object.
type MetaSnapshot struct {
	FormatVersion uint32
	ID            uint64
	Metadata      *ClusterMetadata
	// Stream, when set, holds the lists: Metadata has only the small parts
	// (LoadStream, LoadHead); use Count and Each.
	Stream *Snapshot
}

// Encode renders the snapshot object exactly as RisingWave v1.x does:
// u32le format_version | u64le id | payload | u64le xxhash64(seed 0).
func (s *MetaSnapshot) Encode() []byte {
	var buf bytes.Buffer
	if _, _, err := WriteSnapshot(&buf, s.ID, s.Metadata.Body()); err != nil {
		// In-memory lists always yield their own count; bytes.Buffer
		// does not fail.
		panic("metasnap: encode: " + err.Error())
	}
	return buf.Bytes()
}

// Body is the payload as a Body over the in-memory lists.
func (m *ClusterMetadata) Body() *Body {
	b := &Body{
		DefaultCF:      m.DefaultCF,
		HummockVersion: m.HummockVersion,
		VersionStats:   m.VersionStats,
		SystemParams:   m.SystemParams,
		ClusterID:      m.ClusterID,
		Subscriptions:  ListOf(m.Subscriptions),
	}
	for i, l := range m.lists() {
		b.Models[i] = ListOf(*l)
	}
	if m.HasSecrets {
		l := ListOf(m.Secrets)
		b.Secrets = &l
	}
	return b
}

// lists are the catalog-like lists in their fixed order (ModelSections).
func (m *ClusterMetadata) lists() []*[][]byte {
	return []*[][]byte{&m.CompactionGroups, &m.TableFragments, &m.UserInfo, &m.Databases, &m.Schemas,
		&m.Tables, &m.Indexes, &m.Sinks, &m.Sources, &m.Views, &m.Functions, &m.Connections}
}

// list returns the in-memory list of a list section (nil for others).
func (m *ClusterMetadata) list(sec Section) *[][]byte {
	switch sec {
	case SecSubscriptions:
		return &m.Subscriptions
	case SecSecrets:
		return &m.Secrets
	}
	for i, s := range ModelSections {
		if s == sec {
			return m.lists()[i]
		}
	}
	return nil
}

// VerifyChecksum checks the trailing xxhash64 of a snapshot object.
func VerifyChecksum(b []byte) error {
	if len(b) < 12+8 {
		return fmt.Errorf("%w: %d bytes is shorter than the 20-byte header and checksum", ErrChecksum, len(b))
	}
	body := b[:len(b)-8]
	want := binary.LittleEndian.Uint64(b[len(b)-8:])
	if got := xxhash.Sum64(body); got != want {
		return fmt.Errorf("%w: stored %016x, computed %016x over %d bytes", ErrChecksum, want, got, len(body))
	}
	return nil
}

// DecodeHeader returns format_version and id after checking the checksum.
func DecodeHeader(b []byte) (uint32, uint64, error) {
	if err := VerifyChecksum(b); err != nil {
		return 0, 0, err
	}
	return binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint64(b[4:]), nil
}

// Decode checks the checksum and decodes a format-1 snapshot. Unlike
// RisingWave v1.8-v1.10 it strips the checksum before decoding the payload,
// so snapshots written before v1.8 (no subscription list) decode too.
func Decode(b []byte) (*MetaSnapshot, error) {
	return decodeFrom(bytes.NewReader(b), int64(len(b)))
}

// decodeFrom decodes a whole snapshot of size bytes from r: every list is
// kept in memory (Scan and ScanSection stream them instead).
func decodeFrom(r io.Reader, size int64) (*MetaSnapshot, error) {
	var lists [NumSections][][]byte
	h, err := Scan(r, size, func(sec Section, _ int, msg []byte) error {
		lists[sec] = append(lists[sec], bytes.Clone(msg))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := CheckFormat(h); err != nil {
		return nil, err
	}
	m := h.Meta
	for sec := range NumSections {
		if l := m.list(sec); l != nil {
			*l = lists[sec]
			if *l == nil {
				*l = [][]byte{}
			}
		}
	}
	return &MetaSnapshot{FormatVersion: h.FormatVersion, ID: h.ID, Metadata: &m}, nil
}

// CheckFormat refuses snapshots whose format rwsnap cannot decode.
func CheckFormat(h *Head) error {
	if h.FormatVersion == FormatV1 || h.FormatVersion == 0 {
		return nil
	}
	if h.FormatVersion == FormatV2 {
		return fmt.Errorf("%w: snapshot %d has format_version 2 (SQL meta store snapshots are not supported; rwsnap handles etcd meta stores)", ErrUnsupportedFormat, h.ID)
	}
	return fmt.Errorf("%w: snapshot %d has format_version %d", ErrUnsupportedFormat, h.ID, h.FormatVersion)
}
