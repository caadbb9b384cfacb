package metasnap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rwsnap/rwsnap/rwversion"
)

// Manifest is <dir>/manifest.json (src/storage/backup/src/lib.rs
// MetaSnapshotManifest). It is the only index of a backup location:
// RisingWave never lists objects.
//
// Strict in, faithful out: DecodeManifest accepts exactly the documents
// RisingWave's serde_json::from_slice accepts (one JSON value, nothing after
// it but whitespace, no repeated known field), and EncodeManifest writes
// every entry it did not change byte for byte as it was read, so entries of
// other RisingWave versions (format_version 2, snake_case state_table_info,
// fields rwsnap does not know) survive every rewrite. Unknown fields are
// kept at the top level too.
type Manifest struct {
	ManifestID       uint64
	SnapshotMetadata []SnapshotMetadata
	// Extra keeps unknown top-level fields, in the order read.
	Extra []Field
}

// Field is one JSON object member kept as read.
type Field struct {
	Name  string
	Value json.RawMessage
}

// SnapshotMetadata is one manifest entry (MetaSnapshotMetadata). Field order
// is RisingWave's; upstream test scripts match it with regular expressions.
type SnapshotMetadata struct {
	ID                uint64
	HummockVersionID  uint64
	SSTs              []uint64 // SST object ids the snapshot pins
	MaxCommittedEpoch uint64   // absent from v2.1 entries (read as 0)
	SafeEpoch         uint64   // absent from v2.1 entries (read as 0)
	FormatVersion     uint32   // 0 when absent (v1.0-v1.3)
	Remarks           *string  // null when none
	// StateTableInfo is v1.10's per-table epochs; written as {} when empty
	// because v1.10.0 cannot parse a manifest without it.
	StateTableInfo map[uint32]StateTableInfo
	// Shape is how state_table_info was written: ShapePBJSON (RisingWave
	// v1.10-v2.0: camelCase, u64 as strings) or ShapeSerde (v2.1+,
	// risingwave#19463: snake_case numbers); "" when empty or absent.
	Shape     string
	RWVersion *string
	// Absent are the optional keys the entry does not have: as read, or,
	// for a new entry, what the writing release's MetaSnapshotMetadata
	// lacks (src/storage/backup/src/lib.rs: format_version from v1.4,
	// remarks from v1.6, state_table_info and rw_version from v1.10).
	// The zero value writes every key.
	Absent EntryKeys
	// Extra keeps fields rwsnap does not know, so rewriting never drops them.
	Extra map[string]json.RawMessage
	// Err is set when the entry itself is malformed: it is kept verbatim,
	// counted, listed, and every command that needs it fails naming it;
	// the other entries stay usable.
	Err error

	raw         json.RawMessage // the entry as read
	fingerprint string          // its fields as decoded, to tell if changed
}

// AsWrittenBy is the entry as a RisingWave meta node of the line with that
// manifest shape writes it back when it rewrites the manifest: serde reads
// it into its own MetaSnapshotMetadata, so keys that struct lacks are lost
// (remarks before v1.6, state_table_info and rw_version before v1.10) and
// fields it does not know are dropped, and an absent Option is written as
// null. rwsim's meta node uses it; rwsnap itself keeps entries as read.
func (s SnapshotMetadata) AsWrittenBy(shape rwversion.ManifestShape) SnapshotMetadata {
	if s.Err != nil {
		return s // serde would refuse the whole manifest; rwsim keeps it
	}
	out := s
	out.raw, out.fingerprint, out.Extra = nil, "", nil
	out.Absent = AbsentFor(shape)
	if !shape.FormatVersion {
		out.FormatVersion = 0
	}
	if !shape.Remarks {
		out.Remarks = nil
	}
	if !shape.StateTableInfo {
		out.StateTableInfo, out.Shape = nil, ""
	} else {
		out.Shape = "" // pbjson, as v1.10-v2.0 write it
	}
	if !shape.RWVersion {
		out.RWVersion = nil
	}
	return out
}

// EntryKeys names the optional keys of a manifest entry.
type EntryKeys struct {
	FormatVersion, Remarks, StateTableInfo, RWVersion bool
}

// AbsentFor is what a new entry written by release line shape lacks.
func AbsentFor(shape rwversion.ManifestShape) EntryKeys {
	return EntryKeys{FormatVersion: !shape.FormatVersion, Remarks: !shape.Remarks, StateTableInfo: !shape.StateTableInfo, RWVersion: !shape.RWVersion}
}

// StateTableInfo is hummock.StateTableInfo as a manifest stores it.
type StateTableInfo struct {
	CommittedEpoch    uint64
	SafeEpoch         uint64
	CompactionGroupID uint64
	// Extra keeps fields rwsnap does not know.
	Extra map[string]json.RawMessage
}

// Shapes of state_table_info.
const (
	ShapePBJSON = "pbjson" // v1.10-v2.0: {"committedEpoch":"N","compactionGroupId":"N"}
	ShapeSerde  = "serde"  // v2.1+: {"committed_epoch":N,"compaction_group_id":N}
)

// ErrMalformedEntry is wrapped by SnapshotMetadata.Err.
var ErrMalformedEntry = errors.New("malformed manifest entry")

// Find returns the entry with id, or nil.
func (m *Manifest) Find(id uint64) *SnapshotMetadata {
	for i := range m.SnapshotMetadata {
		if s := &m.SnapshotMetadata[i]; s.ID == id && (s.Err == nil || s.ID != 0) {
			return s
		}
	}
	return nil
}

// IDs lists the snapshot ids in manifest (creation) order; an entry whose id
// cannot be read has none.
func (m *Manifest) IDs() []uint64 {
	out := make([]uint64, 0, len(m.SnapshotMetadata))
	for _, s := range m.SnapshotMetadata {
		if s.Err == nil || s.ID != 0 {
			out = append(out, s.ID)
		}
	}
	return out
}

// Malformed lists the entries that failed to decode.
func (m *Manifest) Malformed() []*SnapshotMetadata {
	var out []*SnapshotMetadata
	for i := range m.SnapshotMetadata {
		if m.SnapshotMetadata[i].Err != nil {
			out = append(out, &m.SnapshotMetadata[i])
		}
	}
	return out
}

// EncodeManifest renders compact JSON as serde_json::to_vec does.
func EncodeManifest(m *Manifest) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"manifest_id":%d,"snapshot_metadata":[`, m.ManifestID)
	for i := range m.SnapshotMetadata {
		if i > 0 {
			b.WriteByte(',')
		}
		e, err := m.SnapshotMetadata[i].MarshalJSON()
		if err != nil {
			return nil, err
		}
		b.Write(e)
	}
	b.WriteByte(']')
	for _, f := range m.Extra {
		kj, _ := json.Marshal(f.Name)
		fmt.Fprintf(&b, ",%s:%s", kj, f.Value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// MarshalJSON implements json.Marshaler for a manifest (top-level order and
// unknown fields kept).
func (m Manifest) MarshalJSON() ([]byte, error) { return EncodeManifest(&m) }

// DecodeManifest parses a manifest as RisingWave's serde does, except that a
// malformed entry fails only itself (SnapshotMetadata.Err).
func DecodeManifest(b []byte) (*Manifest, error) {
	fields, err := strictDocument(b)
	if err != nil {
		return nil, fmt.Errorf("decode manifest.json: %w", err)
	}
	m := &Manifest{}
	var haveID, haveList bool
	for _, f := range fields {
		switch f.Name {
		case "manifest_id":
			if m.ManifestID, err = strictU64(f.Value); err != nil {
				return nil, fmt.Errorf("decode manifest.json: manifest_id: %w", err)
			}
			haveID = true
		case "snapshot_metadata":
			var items []json.RawMessage
			if err := json.Unmarshal(f.Value, &items); err != nil || items == nil {
				return nil, fmt.Errorf("decode manifest.json: snapshot_metadata is not an array")
			}
			m.SnapshotMetadata = make([]SnapshotMetadata, len(items))
			for i, it := range items {
				m.SnapshotMetadata[i] = decodeEntry(it, i)
			}
			haveList = true
		default:
			m.Extra = append(m.Extra, f)
		}
	}
	if !haveID {
		return nil, fmt.Errorf("decode manifest.json: missing field `manifest_id`")
	}
	if !haveList {
		return nil, fmt.Errorf("decode manifest.json: missing field `snapshot_metadata`")
	}
	seen := map[uint64]int{}
	for i := range m.SnapshotMetadata {
		s := &m.SnapshotMetadata[i]
		if s.Err != nil {
			continue
		}
		if j, dup := seen[s.ID]; dup {
			s.Err = fmt.Errorf("%w: entry #%d: snapshot id %d is listed twice (also entry #%d)", ErrMalformedEntry, i+1, s.ID, j+1)
			continue
		}
		seen[s.ID] = i
	}
	return m, nil
}

// strictDocument checks b is exactly one JSON object (serde_json::from_slice:
// trailing whitespace only, valid UTF-8) and returns its members in order,
// refusing a repeated known member as serde's derive does.
func strictDocument(b []byte) ([]Field, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("not valid UTF-8")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	var whole json.RawMessage
	if err := d.Decode(&whole); err != nil {
		return nil, err
	}
	rest := b[d.InputOffset():]
	if i := bytes.IndexFunc(rest, func(r rune) bool { return !strings.ContainsRune(" \t\n\r", r) }); i >= 0 {
		return nil, fmt.Errorf("trailing characters at byte %d (%q...): a manifest is one JSON document", int(d.InputOffset())+i, clip(rest[i:]))
	}
	return objectFields(whole, map[string]bool{"manifest_id": true, "snapshot_metadata": true})
}

func clip(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return string(b)
}

// objectFields returns the members of a JSON object in order. A repeated
// member named in known is an error ("duplicate field").
func objectFields(raw json.RawMessage, known map[string]bool) ([]Field, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	t, err := d.Token()
	if err != nil {
		return nil, err
	}
	if t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var out []Field
	seen := map[string]bool{}
	for d.More() {
		kt, err := d.Token()
		if err != nil {
			return nil, err
		}
		k := kt.(string)
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return nil, err
		}
		if known[k] && seen[k] {
			return nil, fmt.Errorf("duplicate field `%s`", k)
		}
		seen[k] = true
		out = append(out, Field{Name: k, Value: v})
	}
	return out, nil
}

// strictU64 is serde's u64: a JSON integer, no sign, fraction or exponent,
// no string.
func strictU64(v json.RawMessage) (uint64, error) {
	s := string(v)
	x, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid type or value %q, expected u64", clip(v))
	}
	return x, nil
}

var knownFields = map[string]bool{"id": true, "hummock_version_id": true, "ssts": true, "max_committed_epoch": true,
	"safe_epoch": true, "format_version": true, "remarks": true, "state_table_info": true, "rw_version": true}

// decodeEntry decodes entry #i; failures are recorded in Err, naming the
// entry, and leave the raw bytes to be written back unchanged.
func decodeEntry(raw json.RawMessage, i int) SnapshotMetadata {
	s := SnapshotMetadata{raw: append(json.RawMessage(nil), raw...)}
	name := func() string {
		if s.ID != 0 {
			return fmt.Sprintf("entry #%d (snapshot %d)", i+1, s.ID)
		}
		return fmt.Sprintf("entry #%d", i+1)
	}
	fail := func(format string, a ...any) SnapshotMetadata {
		s.Err = fmt.Errorf("%w: %s: %s", ErrMalformedEntry, name(), fmt.Sprintf(format, a...))
		return s
	}
	fields, err := objectFields(raw, knownFields)
	if err != nil {
		return fail("%v", err)
	}
	got := map[string]json.RawMessage{}
	for _, f := range fields {
		got[f.Name] = f.Value
		if !knownFields[f.Name] {
			if s.Extra == nil {
				s.Extra = map[string]json.RawMessage{}
			}
			s.Extra[f.Name] = f.Value
		}
	}
	if v, ok := got["id"]; ok {
		s.ID, _ = strictU64(v)
	}
	for key, dst := range map[string]*bool{"format_version": &s.Absent.FormatVersion, "remarks": &s.Absent.Remarks,
		"state_table_info": &s.Absent.StateTableInfo, "rw_version": &s.Absent.RWVersion} {
		_, ok := got[key]
		*dst = !ok
	}
	u64 := func(field string, dst *uint64, required bool) error {
		v, ok := got[field]
		if !ok {
			if required {
				return fmt.Errorf("missing field `%s`", field)
			}
			return nil
		}
		x, err := strictU64(v)
		if err != nil {
			return fmt.Errorf("field `%s`: %w", field, err)
		}
		*dst = x
		return nil
	}
	for _, f := range []struct {
		name     string
		dst      *uint64
		required bool
	}{{"id", &s.ID, true}, {"hummock_version_id", &s.HummockVersionID, true},
		// Removed in v2.1 (#18491, #18644): absent from RisingWave 2.x entries.
		{"max_committed_epoch", &s.MaxCommittedEpoch, false}, {"safe_epoch", &s.SafeEpoch, false}} {
		if err := u64(f.name, f.dst, f.required); err != nil {
			return fail("%v", err)
		}
	}
	var fv uint64
	if err := u64("format_version", &fv, false); err != nil {
		return fail("%v", err)
	}
	if fv > 1<<32-1 {
		return fail("format_version %d out of range", fv)
	}
	s.FormatVersion = uint32(fv)
	if v, ok := got["ssts"]; ok {
		var items []json.RawMessage
		if err := json.Unmarshal(v, &items); err != nil || items == nil {
			return fail("field `ssts` is not an array of object ids")
		}
		s.SSTs = make([]uint64, len(items))
		for j, it := range items {
			if s.SSTs[j], err = strictU64(it); err != nil {
				return fail("field `ssts` item %d: %v", j, err)
			}
		}
	}
	for field, dst := range map[string]**string{"remarks": &s.Remarks, "rw_version": &s.RWVersion} {
		if v, ok := got[field]; ok && string(v) != "null" {
			var str string
			if err := json.Unmarshal(v, &str); err != nil {
				return fail("field `%s` is not a string", field)
			}
			*dst = &str
		}
	}
	if v, ok := got["state_table_info"]; ok && string(v) != "null" {
		if s.StateTableInfo, s.Shape, err = decodeStateTableInfo(v); err != nil {
			return fail("state_table_info%v", err)
		}
	}
	s.fingerprint = s.render()
	return s
}

// decodeStateTableInfo reads {"<table id>": {...}} in either shape: pbjson
// (camelCase or snake_case names, numbers or strings) as v1.10-v2.0 write
// and read it, or v2.1's plain serde (snake_case numbers).
func decodeStateTableInfo(v json.RawMessage) (map[uint32]StateTableInfo, string, error) {
	tables, err := objectFields(v, nil)
	if err != nil {
		return nil, "", fmt.Errorf(": %v", err)
	}
	out := make(map[uint32]StateTableInfo, len(tables))
	pbjson, serde := false, false
	for _, t := range tables {
		id, err := strconv.ParseUint(t.Name, 10, 32)
		if err != nil {
			return nil, "", fmt.Errorf(": key %q is not a table id", t.Name)
		}
		fields, err := objectFields(t.Value, nil)
		if err != nil {
			return nil, "", fmt.Errorf("[%s]: %v", t.Name, err)
		}
		var info StateTableInfo
		for _, f := range fields {
			var dst *uint64
			switch f.Name {
			case "committedEpoch", "committed_epoch":
				dst = &info.CommittedEpoch
			case "safeEpoch", "safe_epoch":
				dst = &info.SafeEpoch
			case "compactionGroupId", "compaction_group_id":
				dst = &info.CompactionGroupID
			default:
				if info.Extra == nil {
					info.Extra = map[string]json.RawMessage{}
				}
				info.Extra[f.Name] = f.Value
				continue
			}
			str := len(f.Value) > 0 && f.Value[0] == '"'
			if str || strings.ContainsAny(f.Name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
				pbjson = true
			} else {
				serde = true
			}
			x, err := lenientU64(f.Value)
			if err != nil {
				return nil, "", fmt.Errorf("[%s].%s: %v", t.Name, f.Name, err)
			}
			*dst = x
		}
		out[uint32(id)] = info
	}
	shape := ""
	switch {
	case pbjson:
		shape = ShapePBJSON
	case serde:
		shape = ShapeSerde
	}
	return out, shape, nil
}

// lenientU64 reads a JSON integer or a decimal string (pbjson writes u64
// as strings) without going through float64.
func lenientU64(v json.RawMessage) (uint64, error) {
	s := string(v)
	if len(s) >= 2 && s[0] == '"' {
		if err := json.Unmarshal(v, &s); err != nil {
			return 0, err
		}
	}
	x, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a u64", clip(v))
	}
	return x, nil
}

// MarshalJSON writes an entry rwsnap did not change as it was read, byte for
// byte; otherwise the fields in RisingWave's order, then any extra ones.
func (s SnapshotMetadata) MarshalJSON() ([]byte, error) {
	if s.raw != nil && (s.Err != nil || s.render() == s.fingerprint) {
		return s.raw, nil
	}
	if s.Err != nil {
		return nil, s.Err
	}
	return []byte(s.render()), nil
}

// render is the entry in RisingWave's layout: the keys in serde's order,
// those in Absent left out (an entry as v1.0-v1.9 write it has fewer);
// state_table_info in the shape it was read in, pbjson for new ones.
func (s SnapshotMetadata) render() string {
	var b bytes.Buffer
	ssts := s.SSTs
	if ssts == nil {
		ssts = []uint64{}
	}
	sstJSON, _ := json.Marshal(ssts)
	fmt.Fprintf(&b, `{"id":%d,"hummock_version_id":%d,"ssts":%s,"max_committed_epoch":%d,"safe_epoch":%d`,
		s.ID, s.HummockVersionID, sstJSON, s.MaxCommittedEpoch, s.SafeEpoch)
	if !s.Absent.FormatVersion || s.FormatVersion != 0 {
		fmt.Fprintf(&b, `,"format_version":%d`, s.FormatVersion)
	}
	if !s.Absent.Remarks || s.Remarks != nil {
		remarks, _ := json.Marshal(s.Remarks)
		fmt.Fprintf(&b, `,"remarks":%s`, remarks)
	}
	if !s.Absent.StateTableInfo || len(s.StateTableInfo) > 0 {
		b.WriteString(`,"state_table_info":`)
		writeStateTableInfo(&b, s.StateTableInfo, s.Shape)
	}
	if !s.Absent.RWVersion || s.RWVersion != nil {
		rwv, _ := json.Marshal(s.RWVersion)
		fmt.Fprintf(&b, `,"rw_version":%s`, rwv)
	}
	writeExtra(&b, s.Extra)
	b.WriteByte('}')
	return b.String()
}

func writeExtra(b *bytes.Buffer, extra map[string]json.RawMessage) {
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kj, _ := json.Marshal(k)
		fmt.Fprintf(b, ",%s:%s", kj, extra[k])
	}
}

func writeStateTableInfo(b *bytes.Buffer, m map[uint32]StateTableInfo, shape string) {
	ids := make([]uint32, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b.WriteByte('{')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		info := m[id]
		fmt.Fprintf(b, `"%d":{`, id)
		if shape == ShapeSerde {
			// v2.1+ plain serde: every field, numbers.
			fmt.Fprintf(b, `"committed_epoch":%d,"compaction_group_id":%d`, info.CommittedEpoch, info.CompactionGroupID)
			if info.SafeEpoch != 0 {
				fmt.Fprintf(b, `,"safe_epoch":%d`, info.SafeEpoch)
			}
		} else {
			sep := ""
			for _, f := range []struct {
				name string
				v    uint64
			}{{"committedEpoch", info.CommittedEpoch}, {"safeEpoch", info.SafeEpoch}, {"compactionGroupId", info.CompactionGroupID}} {
				if f.v != 0 { // pbjson omits zero values
					fmt.Fprintf(b, `%s"%s":"%d"`, sep, f.name, f.v)
					sep = ","
				}
			}
			if sep == "" && len(info.Extra) > 0 {
				// writeExtra starts with a comma
				var e bytes.Buffer
				writeExtra(&e, info.Extra)
				b.Write(e.Bytes()[1:])
				b.WriteByte('}')
				continue
			}
		}
		writeExtra(b, info.Extra)
		b.WriteByte('}')
	}
	b.WriteByte('}')
}

// UnmarshalJSON decodes one entry; a malformed entry is an error here
// (DecodeManifest instead keeps it, marked).
func (s *SnapshotMetadata) UnmarshalJSON(data []byte) error {
	*s = decodeEntry(data, 0)
	return s.Err
}

// WrittenBy names the release that wrote the entry, for messages.
func (s *SnapshotMetadata) WrittenBy() string {
	if s.RWVersion != nil && *s.RWVersion != "" {
		return "written by RisingWave " + *s.RWVersion
	}
	return "no rw_version recorded"
}
