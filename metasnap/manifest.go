package metasnap

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
)

// Manifest is <dir>/manifest.json (src/storage/backup/src/lib.rs
// MetaSnapshotManifest). It is the only index of a backup location:
// RisingWave never lists objects.
type Manifest struct {
	ManifestID       uint64             `json:"manifest_id"`
	SnapshotMetadata []SnapshotMetadata `json:"snapshot_metadata"`
}

// SnapshotMetadata is one manifest entry (MetaSnapshotMetadata). Field order
// is RisingWave's; upstream test scripts match it with regular expressions.
type SnapshotMetadata struct {
	ID                uint64
	HummockVersionID  uint64
	SSTs              []uint64 // SST object ids the snapshot pins
	MaxCommittedEpoch uint64
	SafeEpoch         uint64
	FormatVersion     uint32  // 0 when absent (v1.0-v1.3)
	Remarks           *string // null when none
	// StateTableInfo is v1.10's per-table epochs; written as {} when empty
	// because v1.10.0 cannot parse a manifest without it.
	StateTableInfo map[uint32]StateTableInfo
	RWVersion      *string
	// Extra keeps fields written by newer RisingWave versions, so rewriting
	// the manifest never drops them.
	Extra map[string]json.RawMessage
}

// StateTableInfo is hummock.StateTableInfo as the v1.10 manifest stores it
// (pbjson: camelCase, u64 as strings, zero values omitted).
type StateTableInfo struct {
	CommittedEpoch    uint64
	SafeEpoch         uint64
	CompactionGroupID uint64
}

// Find returns the entry with id, or nil.
func (m *Manifest) Find(id uint64) *SnapshotMetadata {
	for i := range m.SnapshotMetadata {
		if m.SnapshotMetadata[i].ID == id {
			return &m.SnapshotMetadata[i]
		}
	}
	return nil
}

// IDs lists the snapshot ids in manifest (creation) order.
func (m *Manifest) IDs() []uint64 {
	out := make([]uint64, len(m.SnapshotMetadata))
	for i, s := range m.SnapshotMetadata {
		out[i] = s.ID
	}
	return out
}

// EncodeManifest renders compact JSON as serde_json::to_vec does.
func EncodeManifest(m *Manifest) ([]byte, error) {
	if m.SnapshotMetadata == nil {
		m = &Manifest{ManifestID: m.ManifestID, SnapshotMetadata: []SnapshotMetadata{}}
	}
	return json.Marshal(m)
}

// DecodeManifest parses any RisingWave v1.0+ manifest.
func DecodeManifest(b []byte) (*Manifest, error) {
	var m Manifest
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode manifest.json: %w", err)
	}
	seen := map[uint64]bool{}
	for _, s := range m.SnapshotMetadata {
		if seen[s.ID] {
			return nil, fmt.Errorf("decode manifest.json: snapshot id %d listed twice", s.ID)
		}
		seen[s.ID] = true
	}
	return &m, nil
}

var knownFields = map[string]bool{"id": true, "hummock_version_id": true, "ssts": true, "max_committed_epoch": true,
	"safe_epoch": true, "format_version": true, "remarks": true, "state_table_info": true, "rw_version": true}

// MarshalJSON writes the fields in RisingWave's order, then any extra ones.
func (s SnapshotMetadata) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	ssts := s.SSTs
	if ssts == nil {
		ssts = []uint64{}
	}
	sstJSON, _ := json.Marshal(ssts)
	remarks, _ := json.Marshal(s.Remarks)
	rwv, _ := json.Marshal(s.RWVersion)
	fmt.Fprintf(&b, `{"id":%d,"hummock_version_id":%d,"ssts":%s,"max_committed_epoch":%d,"safe_epoch":%d,"format_version":%d,"remarks":%s,"state_table_info":`,
		s.ID, s.HummockVersionID, sstJSON, s.MaxCommittedEpoch, s.SafeEpoch, s.FormatVersion, remarks)
	writeStateTableInfo(&b, s.StateTableInfo)
	fmt.Fprintf(&b, `,"rw_version":%s`, rwv)
	keys := make([]string, 0, len(s.Extra))
	for k := range s.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kj, _ := json.Marshal(k)
		fmt.Fprintf(&b, ",%s:%s", kj, s.Extra[k])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeStateTableInfo(b *bytes.Buffer, m map[uint32]StateTableInfo) {
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
		b.WriteByte('}')
	}
	b.WriteByte('}')
}

// UnmarshalJSON accepts every v1.0+ shape: missing format_version, remarks,
// state_table_info and rw_version; pbjson camelCase or snake_case table info
// with numbers or strings.
func (s *SnapshotMetadata) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*s = SnapshotMetadata{}
	u64 := func(name string, dst *uint64, required bool) error {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			if required {
				return fmt.Errorf("manifest entry lacks %q", name)
			}
			return nil
		}
		x, err := parseU64(v)
		if err != nil {
			return fmt.Errorf("manifest entry field %q: %w", name, err)
		}
		*dst = x
		return nil
	}
	if err := u64("id", &s.ID, true); err != nil {
		return err
	}
	if err := u64("hummock_version_id", &s.HummockVersionID, true); err != nil {
		return err
	}
	if err := u64("max_committed_epoch", &s.MaxCommittedEpoch, false); err != nil {
		return err
	}
	if err := u64("safe_epoch", &s.SafeEpoch, false); err != nil {
		return err
	}
	var fv uint64
	if err := u64("format_version", &fv, false); err != nil {
		return err
	}
	if fv > 1<<32-1 {
		return fmt.Errorf("manifest entry %d: format_version %d out of range", s.ID, fv)
	}
	s.FormatVersion = uint32(fv)
	if v, ok := raw["ssts"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &s.SSTs); err != nil {
			return fmt.Errorf("manifest entry %d field \"ssts\": %w", s.ID, err)
		}
	}
	for name, dst := range map[string]**string{"remarks": &s.Remarks, "rw_version": &s.RWVersion} {
		if v, ok := raw[name]; ok && string(v) != "null" {
			var str string
			if err := json.Unmarshal(v, &str); err != nil {
				return fmt.Errorf("manifest entry %d field %q: %w", s.ID, name, err)
			}
			*dst = &str
		}
	}
	if v, ok := raw["state_table_info"]; ok && string(v) != "null" {
		var m map[string]map[string]json.RawMessage
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("manifest entry %d field \"state_table_info\": %w", s.ID, err)
		}
		s.StateTableInfo = make(map[uint32]StateTableInfo, len(m))
		for k, fields := range m {
			id, err := strconv.ParseUint(k, 10, 32)
			if err != nil {
				return fmt.Errorf("manifest entry %d: state_table_info key %q is not a table id", s.ID, k)
			}
			var info StateTableInfo
			for name, fv := range fields {
				x, err := parseU64(fv)
				if err != nil {
					return fmt.Errorf("manifest entry %d: state_table_info[%s].%s: %w", s.ID, k, name, err)
				}
				switch name {
				case "committedEpoch", "committed_epoch":
					info.CommittedEpoch = x
				case "safeEpoch", "safe_epoch":
					info.SafeEpoch = x
				case "compactionGroupId", "compaction_group_id":
					info.CompactionGroupID = x
				}
			}
			s.StateTableInfo[uint32(id)] = info
		}
	}
	for k, v := range raw {
		if !knownFields[k] {
			if s.Extra == nil {
				s.Extra = map[string]json.RawMessage{}
			}
			s.Extra[k] = v
		}
	}
	return nil
}

// parseU64 reads a JSON number or a decimal string (pbjson writes u64 as
// strings) without going through float64.
func parseU64(v json.RawMessage) (uint64, error) {
	s := string(v)
	if len(s) >= 2 && s[0] == '"' {
		if err := json.Unmarshal(v, &s); err != nil {
			return 0, err
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// WrittenBy names the release that wrote the entry, for messages.
func (s *SnapshotMetadata) WrittenBy() string {
	if s.RWVersion != nil && *s.RWVersion != "" {
		return "written by RisingWave " + *s.RWVersion
	}
	return "no rw_version recorded"
}
