package metasnap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
	"google.golang.org/protobuf/encoding/protowire"
)

// The v1 object is written and read as a stream: every list is preceded by
// its count, and the checksum is a running xxhash64 over everything before
// it, so neither side ever needs the whole object in memory. Encode, Decode
// and the streaming backup, verify, copy and restore all go through the one
// layout below (WriteSnapshot, Scan), so they cannot disagree on a byte.

// Section names one part of the v1 payload, in stream order.
type Section int

// The sections of a v1 payload (src/storage/backup/src/meta_snapshot_v1.rs,
// ClusterMetadata::encode_to), in the order they are stored.
const (
	SecDefaultKeys      Section = iota // list of BytesValue keys
	SecDefaultValues                   // list of BytesValue values
	SecHummockVersion                  // message
	SecVersionStats                    // message
	SecCompactionGroups                // lists, SecCompactionGroups..SecConnections
	SecTableFragments
	SecUserInfo
	SecDatabases
	SecSchemas
	SecTables
	SecIndexes
	SecSinks
	SecSources
	SecViews
	SecFunctions
	SecConnections
	SecSystemParams  // message
	SecClusterID     // message: StringValue
	SecSubscriptions // list, v1.8+ (absent in older snapshots)
	SecSecrets       // list, v2.0.x (kept when present)
	NumSections
)

var sectionNames = [NumSections]string{"default_cf keys", "default_cf values", "hummock_version", "version_stats",
	"compaction_groups", "table_fragments", "user_info", "database", "schema", "table", "index", "sink", "source",
	"view", "function", "connection", "system_params", "cluster_id", "subscription", "secret"}

func (s Section) String() string {
	if s >= 0 && s < NumSections {
		return sectionNames[s]
	}
	return fmt.Sprintf("section %d", int(s))
}

// IsList says whether the section is a counted list of messages.
func (s Section) IsList() bool {
	switch s {
	case SecHummockVersion, SecVersionStats, SecSystemParams, SecClusterID:
		return false
	}
	return s >= 0 && s < NumSections
}

// ModelSections are the catalog-like lists (items 5-16), in stream order.
var ModelSections = []Section{SecCompactionGroups, SecTableFragments, SecUserInfo, SecDatabases, SecSchemas,
	SecTables, SecIndexes, SecSinks, SecSources, SecViews, SecFunctions, SecConnections}

// headerLen is u32 format_version + u64 id; trailerLen the u64 checksum.
const (
	headerLen  = 12
	trailerLen = 8
)

// List is one counted list of a payload being written: Count messages,
// produced in order by Each (which calls yield once per message).
type List struct {
	Count int
	Each  func(yield func(msg []byte) error) error
}

// ListOf is the List of messages held in memory.
func ListOf(ms [][]byte) List {
	return List{Count: len(ms), Each: func(yield func([]byte) error) error {
		for _, m := range ms {
			if err := yield(m); err != nil {
				return err
			}
		}
		return nil
	}}
}

// Body is a v1 payload to write whose large lists may be streams (a backup
// feeds them from etcd range reads).
type Body struct {
	DefaultCF      []KV
	HummockVersion []byte
	VersionStats   []byte
	Models         [12]List // ModelSections, in order
	SystemParams   []byte
	ClusterID      string
	Subscriptions  List  // always written (count 0 when empty): v1.8-v1.10 decoders need it
	Secrets        *List // written only when set
}

// snapWriter writes the object's bytes through a running xxhash64.
type snapWriter struct {
	w   *bufio.Writer
	h   *xxhash.Digest
	n   int64
	err error
	b   [8]byte
}

func (s *snapWriter) write(p []byte) {
	if s.err != nil {
		return
	}
	s.h.Write(p)
	_, s.err = s.w.Write(p)
	s.n += int64(len(p))
}

func (s *snapWriter) u32(v uint32) {
	binary.LittleEndian.PutUint32(s.b[:4], v)
	s.write(s.b[:4])
}

// msg is u32 LE length + the message.
func (s *snapWriter) msg(b []byte) {
	s.u32(uint32(len(b)))
	s.write(b)
}

// wrapped is msg of prost's google.protobuf.BytesValue/StringValue: field
// 1, length-delimited, omitted when empty (then a zero-length message).
func (s *snapWriter) wrapped(b []byte) {
	if len(b) == 0 {
		s.u32(0)
		return
	}
	var head [1 + binary.MaxVarintLen64]byte
	h := protowire.AppendTag(head[:0], 1, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(len(b)))
	s.u32(uint32(len(h) + len(b)))
	s.write(h)
	s.write(b)
}

func (s *snapWriter) list(sec Section, l List) {
	if s.err != nil {
		return
	}
	if l.Count < 0 || uint64(l.Count) > 1<<32-1 {
		s.err = fmt.Errorf("%s: %d messages do not fit a u32 count", sec, l.Count)
		return
	}
	s.u32(uint32(l.Count))
	if l.Each == nil {
		if l.Count != 0 {
			s.err = fmt.Errorf("%s: %d messages announced and none given", sec, l.Count)
		}
		return
	}
	n := 0
	err := l.Each(func(m []byte) error {
		n++
		if n > l.Count {
			return fmt.Errorf("%s: more than the %d messages counted", sec, l.Count)
		}
		s.msg(m)
		return s.err
	})
	if s.err == nil && err != nil {
		s.err = err
	}
	if s.err == nil && n != l.Count {
		s.err = fmt.Errorf("%s: %d messages counted but %d given", sec, l.Count, n)
	}
}

// WriteSnapshot writes a v1 snapshot object to w in one pass, exactly as
// RisingWave v1.x encodes it: u32le format_version | u64le id | payload |
// u64le xxhash64(seed 0) of everything before it. It returns the bytes
// written and the checksum. A list whose stream yields another number of
// messages than it announced fails the write (the caller discards the
// object).
func WriteSnapshot(w io.Writer, id uint64, b *Body) (int64, uint64, error) {
	s := &snapWriter{w: bufio.NewWriterSize(w, 256<<10), h: xxhash.New()}
	s.u32(FormatV1)
	binary.LittleEndian.PutUint64(s.b[:], id)
	s.write(s.b[:])
	s.u32(uint32(len(b.DefaultCF)))
	for _, kv := range b.DefaultCF {
		s.wrapped(kv.Key)
	}
	s.u32(uint32(len(b.DefaultCF)))
	for _, kv := range b.DefaultCF {
		s.wrapped(kv.Value)
	}
	s.msg(b.HummockVersion)
	s.msg(b.VersionStats)
	for i, l := range b.Models {
		s.list(ModelSections[i], l)
	}
	s.msg(b.SystemParams)
	s.wrapped([]byte(b.ClusterID))
	s.list(SecSubscriptions, b.Subscriptions)
	if b.Secrets != nil {
		s.list(SecSecrets, *b.Secrets)
	}
	if s.err != nil {
		return s.n, 0, s.err
	}
	sum := s.h.Sum64()
	binary.LittleEndian.PutUint64(s.b[:], sum)
	if _, err := s.w.Write(s.b[:]); err != nil {
		return s.n, 0, err
	}
	s.n += 8
	if err := s.w.Flush(); err != nil {
		return s.n, 0, err
	}
	return s.n, sum, nil
}

// Span is where one section lies in the object.
type Span struct {
	Present bool
	Off     int64 // offset of the section (its count, for a list)
	Len     int64 // bytes, count included
	Count   int   // messages, for a list
}

// Head is what a scan keeps of a snapshot: its header, checksum, the small
// parts (default_cf, hummock version, version stats, system params, cluster
// id) and where every section lies. Its Meta's lists are empty unless the
// scan's item function collected them.
type Head struct {
	FormatVersion uint32
	ID            uint64
	Size          int64
	Checksum      uint64
	Meta          ClusterMetadata
	Spans         [NumSections]Span
}

// Count is the number of messages of a list section.
func (h *Head) Count(sec Section) int { return h.Spans[sec].Count }

// ItemFunc receives one message of a list section during a scan. msg is
// only valid during the call (the buffer is reused): copy what is kept.
type ItemFunc func(sec Section, i int, msg []byte) error

// scanner reads a snapshot object through a running xxhash64, checking
// every length prefix against the bytes the object still has.
type scanner struct {
	r    *bufio.Reader
	h    *xxhash.Digest
	pos  int64 // bytes consumed
	left int64 // payload bytes left before the checksum
	buf  []byte
	tmp  [8]byte
}

// errStructure marks a malformed payload (as opposed to a failed read).
type errStructure struct{ err error }

func (e errStructure) Error() string { return e.err.Error() }
func (e errStructure) Unwrap() error { return e.err }

func (s *scanner) bad(sec Section, format string, args ...any) error {
	return errStructure{fmt.Errorf("%s: %s", sec, fmt.Sprintf(format, args...))}
}

// read fills p from the object, hashing it.
func (s *scanner) read(p []byte) error {
	if _, err := io.ReadFull(s.r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("object ended at byte %d, before its announced size: %w", s.pos, io.ErrUnexpectedEOF)
		}
		return err
	}
	s.h.Write(p)
	s.pos += int64(len(p))
	return nil
}

// skip hashes and drops n bytes, allocating nothing.
func (s *scanner) skip(n int64) error {
	for n > 0 {
		b, err := s.r.Peek(int(min(n, int64(s.r.Size()))))
		if len(b) > 0 {
			s.h.Write(b)
			s.r.Discard(len(b))
			s.pos += int64(len(b))
			n -= int64(len(b))
			continue
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("object ended at byte %d, before its announced size: %w", s.pos, io.ErrUnexpectedEOF)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *scanner) u32(sec Section) (uint32, error) {
	if s.left < 4 {
		return 0, s.bad(sec, "truncated: need 4 bytes, have %d", s.left)
	}
	if err := s.read(s.tmp[:4]); err != nil {
		return 0, err
	}
	s.left -= 4
	return binary.LittleEndian.Uint32(s.tmp[:4]), nil
}

// msgLen reads a message's length prefix and checks it against the bytes
// left, before anything is allocated for it.
func (s *scanner) msgLen(sec Section) (int64, error) {
	n, err := s.u32(sec)
	if err != nil {
		return 0, err
	}
	if int64(n) > s.left {
		return 0, s.bad(sec, "truncated: length %d exceeds the %d bytes left", n, s.left)
	}
	return int64(n), nil
}

// msg reads one message into a new slice.
func (s *scanner) msg(sec Section) ([]byte, error) {
	n, err := s.msgLen(sec)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if err := s.read(b); err != nil {
		return nil, err
	}
	s.left -= n
	return b, nil
}

// list reads one counted list, handing each message to item (or hashing
// and skipping it when item is nil).
func (s *scanner) list(sec Section, span *Span, item func(i int, msg []byte) error) error {
	span.Present, span.Off = true, s.pos
	n, err := s.u32(sec)
	if err != nil {
		return err
	}
	// Every message needs at least its 4-byte length: bound the count.
	if uint64(n)*4 > uint64(s.left) {
		return s.bad(sec, "count %d cannot fit in the %d bytes left", n, s.left)
	}
	span.Count = int(n)
	for i := 0; i < int(n); i++ {
		m, err := s.msgLen(sec)
		if err != nil {
			return err
		}
		if item == nil {
			if err := s.skip(m); err != nil {
				return err
			}
		} else {
			if int64(cap(s.buf)) < m {
				s.buf = make([]byte, m)
			}
			b := s.buf[:m]
			if err := s.read(b); err != nil {
				return err
			}
			if err := item(i, b); err != nil {
				return err
			}
		}
		s.left -= m
	}
	span.Len = s.pos - span.Off
	return nil
}

// Scan reads a whole snapshot object of size bytes from r in one pass,
// hashing every byte, and returns its Head once the stored checksum matched.
// item, when not nil, is called for every message of the list sections from
// SecCompactionGroups on (default_cf is always kept in Head.Meta) before the
// checksum is known: a caller must not act on them until Scan returns nil.
//
// A malformed payload whose checksum does not match either is reported as
// ErrChecksum (corruption), as a whole-buffer decoder would.
func Scan(r io.Reader, size int64, item ItemFunc) (*Head, error) {
	if size < headerLen+trailerLen {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the 20-byte header and checksum", ErrChecksum, size)
	}
	s := &scanner{r: bufio.NewReaderSize(r, 256<<10), h: xxhash.New(), left: size - headerLen - trailerLen}
	h := &Head{Size: size}
	if err := s.read(s.tmp[:4]); err != nil {
		return nil, err
	}
	h.FormatVersion = binary.LittleEndian.Uint32(s.tmp[:4])
	if err := s.read(s.tmp[:8]); err != nil {
		return nil, err
	}
	h.ID = binary.LittleEndian.Uint64(s.tmp[:8])
	perr := s.payload(h, item)
	if perr != nil {
		var st errStructure
		if !errors.As(perr, &st) {
			return nil, perr // a read failed or the item function refused
		}
		// Malformed: hash the rest, so corruption is named as such.
		if err := s.skip(s.left); err != nil {
			return nil, err
		}
		s.left = 0
	}
	if _, err := io.ReadFull(s.r, s.tmp[:8]); err != nil {
		return nil, fmt.Errorf("object ended at byte %d, before its checksum: %w", s.pos, io.ErrUnexpectedEOF)
	}
	stored := binary.LittleEndian.Uint64(s.tmp[:8])
	if got := s.h.Sum64(); got != stored {
		return nil, fmt.Errorf("%w: stored %016x, computed %016x over %d bytes", ErrChecksum, stored, got, size-trailerLen)
	}
	if perr != nil {
		return nil, fmt.Errorf("decode snapshot %d: %w", h.ID, perr)
	}
	h.Checksum = stored
	return h, nil
}

func (s *scanner) payload(h *Head, item ItemFunc) error {
	if h.FormatVersion != FormatV1 && h.FormatVersion != 0 {
		// Not decoded: only the checksum is checked.
		if err := s.skip(s.left); err != nil {
			return err
		}
		s.left = 0
		return nil
	}
	m := &h.Meta
	var keys, values [][]byte
	collect := func(dst *[][]byte) func(int, []byte) error {
		return func(_ int, b []byte) error {
			*dst = append(*dst, append([]byte{}, b...))
			return nil
		}
	}
	if err := s.list(SecDefaultKeys, &h.Spans[SecDefaultKeys], collect(&keys)); err != nil {
		return err
	}
	if err := s.list(SecDefaultValues, &h.Spans[SecDefaultValues], collect(&values)); err != nil {
		return err
	}
	if len(keys) != len(values) {
		return s.bad(SecDefaultKeys, "%d keys but %d values", len(keys), len(values))
	}
	m.DefaultCF = make([]KV, len(keys))
	for i := range keys {
		k, err := unwrapBytes(keys[i])
		if err != nil {
			return s.bad(SecDefaultKeys, "key %d: %v", i, err)
		}
		v, err := unwrapBytes(values[i])
		if err != nil {
			return s.bad(SecDefaultValues, "value %d: %v", i, err)
		}
		m.DefaultCF[i] = KV{Key: k, Value: v}
	}
	msg := func(sec Section) ([]byte, error) {
		off := s.pos
		b, err := s.msg(sec)
		h.Spans[sec] = Span{Present: true, Off: off, Len: s.pos - off}
		return b, err
	}
	var err error
	if m.HummockVersion, err = msg(SecHummockVersion); err != nil {
		return err
	}
	if m.VersionStats, err = msg(SecVersionStats); err != nil {
		return err
	}
	list := func(sec Section) error {
		var f func(int, []byte) error
		if item != nil {
			f = func(i int, b []byte) error { return item(sec, i, b) }
		}
		return s.list(sec, &h.Spans[sec], f)
	}
	for _, sec := range ModelSections {
		if err := list(sec); err != nil {
			return err
		}
	}
	if m.SystemParams, err = msg(SecSystemParams); err != nil {
		return err
	}
	cid, err := msg(SecClusterID)
	if err != nil {
		return err
	}
	c, err := unwrapBytes(cid)
	if err != nil {
		return s.bad(SecClusterID, "%v", err)
	}
	m.ClusterID = string(c)
	// Unlike RisingWave v1.8-v1.10, the trailing lists are optional: a
	// snapshot written before v1.8 ends after the cluster id.
	if s.left > 0 {
		if err := list(SecSubscriptions); err != nil {
			return err
		}
		m.HasSubscriptions = true
	}
	if s.left > 0 {
		if err := list(SecSecrets); err != nil {
			return err
		}
		m.HasSecrets = true
	}
	if s.left > 0 {
		return s.bad(SecSecrets, "payload: %d unexpected trailing bytes", s.left)
	}
	return nil
}

// ScanSection reads one list section again from a snapshot object already
// verified by Scan (src must hold the same bytes: an open file, a spooled
// copy), calling item for each message. msg is only valid during the call.
func ScanSection(src io.ReaderAt, h *Head, sec Section, item func(i int, msg []byte) error) error {
	sp := h.Spans[sec]
	if !sec.IsList() {
		return fmt.Errorf("%s is not a list", sec)
	}
	if !sp.Present {
		return nil
	}
	s := &scanner{r: bufio.NewReaderSize(io.NewSectionReader(src, sp.Off, sp.Len), 256<<10), h: xxhash.New(), pos: sp.Off, left: sp.Len}
	var span Span
	if err := s.list(sec, &span, item); err != nil {
		return fmt.Errorf("snapshot %d: %w", h.ID, err)
	}
	if span.Count != sp.Count || s.left != 0 {
		return fmt.Errorf("snapshot %d: %s changed since it was verified", h.ID, sec)
	}
	return nil
}

// unwrapBytes decodes a BytesValue/StringValue: the last field 1 wins
// (protobuf merge semantics); unknown fields are skipped.
func unwrapBytes(b []byte) ([]byte, error) {
	out := []byte{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			out, b = v, b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		b = b[m:]
	}
	return out, nil
}
