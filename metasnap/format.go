// Package metasnap holds RisingWave's meta backup format: the MetaSnapshot
// v1 object (<dir>/<id>.snapshot), the manifest (<dir>/manifest.json), and
// the operations on a backup location: create, list, delete, verify.
package metasnap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"google.golang.org/protobuf/encoding/protowire"

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
}

// Encode renders the snapshot object exactly as RisingWave v1.x does:
// u32le format_version | u64le id | payload | u64le xxhash64(seed 0).
func (s *MetaSnapshot) Encode() []byte { return bytes.Join(s.EncodeChunks(), nil) }

// EncodeChunks renders the same bytes as Encode as a list of buffers whose
// concatenation is the object: values of refMin bytes or more are
// referenced where they are, not copied, so writing a snapshot with
// objstore.PutChunks needs no second copy of the metadata.
func (s *MetaSnapshot) EncodeChunks() [][]byte {
	m := s.Metadata
	e := &encoder{}
	e.u32(FormatV1)
	e.small(binary.LittleEndian.AppendUint64(nil, s.ID))
	m.encode(e)
	e.flush()
	h := xxhash.New()
	for _, c := range e.chunks {
		h.Write(c)
	}
	e.small(binary.LittleEndian.AppendUint64(nil, h.Sum64()))
	e.flush()
	return e.chunks
}

// refMin is the size from which a value is referenced instead of copied.
const refMin = 128

// encoder collects an encoding as chunks: small pieces (length prefixes,
// short values) are copied into 1 MiB blocks, large values referenced.
type encoder struct {
	chunks [][]byte
	block  []byte // the current block; block[start:] is not yet a chunk
	start  int
}

func (e *encoder) small(p []byte) {
	if cap(e.block)-len(e.block) < len(p) {
		e.flush()
		e.block, e.start = make([]byte, 0, max(1<<20, len(p))), 0
	}
	e.block = append(e.block, p...)
}

func (e *encoder) flush() {
	if len(e.block) > e.start {
		// A full slice expression: later appends to the block cannot reach
		// into a chunk already handed out.
		e.chunks = append(e.chunks, e.block[e.start:len(e.block):len(e.block)])
		e.start = len(e.block)
	}
}

func (e *encoder) value(b []byte) {
	if len(b) < refMin {
		e.small(b)
		return
	}
	e.flush()
	e.chunks = append(e.chunks, b)
}

func (e *encoder) u32(v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	e.small(b[:])
}

// msg is u32 LE length + the message.
func (e *encoder) msg(b []byte) {
	e.u32(uint32(len(b)))
	e.value(b)
}

// list is u32 LE count + count messages.
func (e *encoder) list(ms [][]byte) {
	e.u32(uint32(len(ms)))
	for _, m := range ms {
		e.msg(m)
	}
}

// wrapped is msg of prost's google.protobuf.BytesValue/StringValue: field
// 1, length-delimited, omitted when empty (then a zero-length message).
func (e *encoder) wrapped(b []byte) {
	if len(b) == 0 {
		e.u32(0)
		return
	}
	head := protowire.AppendTag(nil, 1, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(len(b)))
	e.u32(uint32(len(head) + len(b)))
	e.small(head)
	e.value(b)
}

// lists are the catalog-like lists in their fixed order (items 5-16).
func (m *ClusterMetadata) lists() []*[][]byte {
	return []*[][]byte{&m.CompactionGroups, &m.TableFragments, &m.UserInfo, &m.Databases, &m.Schemas,
		&m.Tables, &m.Indexes, &m.Sinks, &m.Sources, &m.Views, &m.Functions, &m.Connections}
}

func (m *ClusterMetadata) encode(e *encoder) {
	e.u32(uint32(len(m.DefaultCF)))
	for _, kv := range m.DefaultCF {
		e.wrapped(kv.Key)
	}
	e.u32(uint32(len(m.DefaultCF)))
	for _, kv := range m.DefaultCF {
		e.wrapped(kv.Value)
	}
	e.msg(m.HummockVersion)
	e.msg(m.VersionStats)
	for _, l := range m.lists() {
		e.list(*l)
	}
	e.msg(m.SystemParams)
	e.wrapped([]byte(m.ClusterID))
	e.list(m.Subscriptions)
	if m.HasSecrets {
		e.list(m.Secrets)
	}
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
	fv, id, err := DecodeHeader(b)
	if err != nil {
		return nil, err
	}
	if fv != FormatV1 && fv != 0 {
		if fv == FormatV2 {
			return nil, fmt.Errorf("%w: snapshot %d has format_version 2 (SQL meta store snapshots are not supported; rwsnap handles etcd meta stores)", ErrUnsupportedFormat, id)
		}
		return nil, fmt.Errorf("%w: snapshot %d has format_version %d", ErrUnsupportedFormat, id, fv)
	}
	d := decoder{buf: b[12 : len(b)-8]}
	m := &ClusterMetadata{}
	keys := d.list("default_cf keys")
	values := d.list("default_cf values")
	if d.err == nil && len(keys) != len(values) {
		d.fail("default_cf", fmt.Errorf("%d keys but %d values", len(keys), len(values)))
	}
	if d.err == nil {
		m.DefaultCF = make([]KV, len(keys))
		for i := range keys {
			m.DefaultCF[i] = KV{Key: d.unwrap("default_cf key", keys[i]), Value: d.unwrap("default_cf value", values[i])}
		}
	}
	m.HummockVersion = d.msg("hummock_version")
	m.VersionStats = d.msg("version_stats")
	names := []string{"compaction_groups", "table_fragments", "user_info", "database", "schema", "table",
		"index", "sink", "source", "view", "function", "connection"}
	for i, l := range m.lists() {
		*l = d.list(names[i])
	}
	m.SystemParams = d.msg("system_params")
	m.ClusterID = string(d.unwrap("cluster_id", d.msg("cluster_id")))
	if d.err == nil && len(d.buf) > 0 {
		m.Subscriptions, m.HasSubscriptions = d.list("subscription"), true
	}
	if d.err == nil && len(d.buf) > 0 {
		m.Secrets, m.HasSecrets = d.list("secret"), true
	}
	if d.err == nil && len(d.buf) > 0 {
		d.fail("payload", fmt.Errorf("%d unexpected trailing bytes", len(d.buf)))
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode snapshot %d: %w", id, d.err)
	}
	return &MetaSnapshot{FormatVersion: fv, ID: id, Metadata: m}, nil
}

type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(what string, err error) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %w", what, err)
	}
}

func (d *decoder) u32(what string) uint32 {
	if d.err != nil {
		return 0
	}
	if len(d.buf) < 4 {
		d.fail(what, fmt.Errorf("truncated: need 4 bytes, have %d", len(d.buf)))
		return 0
	}
	v := binary.LittleEndian.Uint32(d.buf)
	d.buf = d.buf[4:]
	return v
}

func (d *decoder) msg(what string) []byte {
	n := d.u32(what)
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(d.buf)) {
		d.fail(what, fmt.Errorf("truncated: length %d exceeds the %d bytes left", n, len(d.buf)))
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) list(what string) [][]byte {
	n := d.u32(what + " count")
	if d.err != nil {
		return nil
	}
	// Every item needs at least its 4-byte length: bound the allocation.
	if uint64(n)*4 > uint64(len(d.buf)) {
		d.fail(what, fmt.Errorf("count %d cannot fit in the %d bytes left", n, len(d.buf)))
		return nil
	}
	out := make([][]byte, 0, n)
	for i := uint32(0); i < n && d.err == nil; i++ {
		out = append(out, d.msg(what))
	}
	return out
}

// unwrap decodes a BytesValue/StringValue: the last field 1 wins (protobuf
// merge semantics); unknown fields are skipped.
func (d *decoder) unwrap(what string, b []byte) []byte {
	if d.err != nil {
		return nil
	}
	out := []byte{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			d.fail(what, protowire.ParseError(n))
			return nil
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				d.fail(what, protowire.ParseError(m))
				return nil
			}
			out, b = v, b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			d.fail(what, protowire.ParseError(m))
			return nil
		}
		b = b[m:]
	}
	return out
}
