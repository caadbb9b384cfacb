package timetravel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rwsnap/rwsnap/metasnap"
)

// Shape says where snapshot ranges came from and so which rule applies.
type Shape int

const (
	// ShapeV17 is rw_meta_snapshot of v1.7–v1.9: global safe_epoch and
	// max_committed_epoch columns.
	ShapeV17 Shape = iota
	// ShapeV110 is rw_meta_snapshot of v1.10: per-table epochs in the
	// state_table_info jsonb column, no global epochs.
	ShapeV110
	// ShapeManifest is a backup manifest read directly: global epochs, and
	// per-table ones when RisingWave v1.10 wrote it.
	ShapeManifest
)

func (s Shape) String() string {
	switch s {
	case ShapeV17:
		return "rw_meta_snapshot (v1.7-v1.9 columns)"
	case ShapeV110:
		return "rw_meta_snapshot (v1.10 columns)"
	case ShapeManifest:
		return "backup manifest"
	}
	return "shape(" + strconv.Itoa(int(s)) + ")"
}

// ErrNotRisingWave means the server has no rw_catalog.rw_meta_snapshot.
var ErrNotRisingWave = errors.New("not a RisingWave frontend")

// TableEpochs is one table's readable range in a v1.10 snapshot.
type TableEpochs struct {
	SafeEpoch      uint64 `json:"safe_epoch"`
	CommittedEpoch uint64 `json:"committed_epoch"`
}

// Snapshot is one meta snapshot as far as time travel cares.
type Snapshot struct {
	ID               uint64 `json:"id"`
	HummockVersionID uint64 `json:"hummock_version_id"`
	// Global range; both 0 when the source has none (v1.10 rw_meta_snapshot).
	SafeEpoch         uint64                 `json:"safe_epoch"`
	MaxCommittedEpoch uint64                 `json:"max_committed_epoch"`
	Tables            map[uint32]TableEpochs `json:"tables,omitempty"`
	Remarks           *string                `json:"remarks"`
	RWVersion         *string                `json:"rw_version,omitempty"`
}

// Range is the epochs [Lo, Hi] a snapshot serves, both ends inclusive.
type Range struct {
	SnapshotID uint64
	Lo, Hi     uint64
	// PerTable says Lo/Hi came from state_table_info (v1.10 rule).
	PerTable bool
}

// Contains is BackupReader's test: safe_epoch <= e <= committed epoch.
func (r Range) Contains(e uint64) bool { return r.Lo <= e && e <= r.Hi }

// Range returns the epochs s serves for table (nil: for every table it
// has). RisingWave v1.10 uses the per-table entry whenever state_table_info
// is non-empty and the global pair otherwise (backup_reader.rs); without a
// table rwsnap takes the intersection over all tables, which is safe for
// any query.
func (s Snapshot) Range(table *uint32) (Range, bool) {
	r := Range{SnapshotID: s.ID}
	switch {
	case len(s.Tables) == 0:
		r.Lo, r.Hi = s.SafeEpoch, s.MaxCommittedEpoch
	case table != nil:
		t, ok := s.Tables[*table]
		if !ok {
			return r, false
		}
		r.Lo, r.Hi, r.PerTable = t.SafeEpoch, t.CommittedEpoch, true
	default:
		r.Lo, r.Hi, r.PerTable = 0, MaxEpoch, true
		for _, t := range s.Tables {
			r.Lo = max(r.Lo, t.SafeEpoch)
			r.Hi = min(r.Hi, t.CommittedEpoch)
		}
	}
	// A snapshot of an empty cluster commits nothing: epoch 0 would mean
	// "latest" to RisingWave, so it serves no time.
	return r, r.Hi != 0 && r.Lo <= r.Hi
}

// Catalog is the snapshot list of one cluster or backup location.
type Catalog struct {
	Shape     Shape
	Snapshots []Snapshot // manifest (creation) order, which is search order
}

// HasPerTable says whether any snapshot has v1.10 per-table epochs.
func (c *Catalog) HasPerTable() bool {
	for _, s := range c.Snapshots {
		if len(s.Tables) > 0 {
			return true
		}
	}
	return false
}

// Find returns the snapshot with id, or nil.
func (c *Catalog) Find(id uint64) *Snapshot {
	for i := range c.Snapshots {
		if c.Snapshots[i].ID == id {
			return &c.Snapshots[i]
		}
	}
	return nil
}

// FromManifest lists a backup manifest's snapshots without a cluster.
func FromManifest(m *metasnap.Manifest) *Catalog {
	c := &Catalog{Shape: ShapeManifest}
	for _, e := range m.SnapshotMetadata {
		if e.Err != nil {
			continue // a malformed entry serves no epoch
		}
		s := Snapshot{ID: e.ID, HummockVersionID: e.HummockVersionID, SafeEpoch: e.SafeEpoch,
			MaxCommittedEpoch: e.MaxCommittedEpoch, Remarks: e.Remarks, RWVersion: e.RWVersion}
		if len(e.StateTableInfo) > 0 {
			s.Tables = make(map[uint32]TableEpochs, len(e.StateTableInfo))
			for id, info := range e.StateTableInfo {
				s.Tables[id] = TableEpochs{SafeEpoch: info.SafeEpoch, CommittedEpoch: info.CommittedEpoch}
			}
		}
		c.Snapshots = append(c.Snapshots, s)
	}
	return c
}

// Querier is what ReadSnapshots needs of a connection (*pgx.Conn has it).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// MetaSnapshotSQL is the query ReadSnapshots sends. SELECT * because the
// columns differ between versions and are told apart by name.
const MetaSnapshotSQL = "SELECT * FROM rw_catalog.rw_meta_snapshot"

// ReadSnapshots reads rw_catalog.rw_meta_snapshot in either column shape.
func ReadSnapshots(ctx context.Context, q Querier) (*Catalog, error) {
	// Text results: RisingWave's binary encodings differ between versions,
	// its text output does not.
	rows, err := q.Query(ctx, MetaSnapshotSQL, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return nil, classifyCatalogError(err)
	}
	defer rows.Close()
	cols := map[string]int{}
	var names []string
	for i, fd := range rows.FieldDescriptions() {
		cols[strings.ToLower(fd.Name)] = i
		names = append(names, fd.Name)
	}
	has := func(names ...string) bool {
		for _, n := range names {
			if _, ok := cols[n]; !ok {
				return false
			}
		}
		return true
	}
	c := &Catalog{}
	switch {
	case has("meta_snapshot_id", "safe_epoch", "max_committed_epoch"):
		c.Shape = ShapeV17
	case has("meta_snapshot_id", "state_table_info"):
		c.Shape = ShapeV110
	default:
		return nil, fmt.Errorf("%w: rw_catalog.rw_meta_snapshot has columns %s, expected those of RisingWave v1.7-v1.10",
			ErrNotRisingWave, strings.Join(names, ", "))
	}
	for rows.Next() {
		raw := rows.RawValues()
		text := func(name string) (string, bool) {
			i, ok := cols[name]
			if !ok || raw[i] == nil {
				return "", false
			}
			return string(raw[i]), true
		}
		var s Snapshot
		for _, f := range []struct {
			col string
			dst *uint64
		}{{"meta_snapshot_id", &s.ID}, {"hummock_version_id", &s.HummockVersionID},
			{"safe_epoch", &s.SafeEpoch}, {"max_committed_epoch", &s.MaxCommittedEpoch}} {
			if v, ok := text(f.col); ok {
				if *f.dst, err = parseInt8(v); err != nil {
					return nil, fmt.Errorf("rw_meta_snapshot column %s: %w", f.col, err)
				}
			}
		}
		if v, ok := text("remarks"); ok {
			s.Remarks = &v
		}
		if v, ok := text("rw_version"); ok {
			s.RWVersion = &v
		}
		if v, ok := text("state_table_info"); ok {
			if s.Tables, err = parseStateTableInfo([]byte(v)); err != nil {
				return nil, fmt.Errorf("rw_meta_snapshot %d column state_table_info: %w", s.ID, err)
			}
		}
		c.Snapshots = append(c.Snapshots, s)
	}
	if err := rows.Err(); err != nil {
		return nil, classifyCatalogError(err)
	}
	return c, nil
}

// classifyCatalogError tells "this server has no such catalog" (PostgreSQL
// and others: undefined table or schema) from a failing RisingWave.
func classifyCatalogError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42P01", "3F000": // undefined_table, invalid_schema_name
			return fmt.Errorf("%w (reading rw_catalog.rw_meta_snapshot: %s)", ErrNotRisingWave, pgErr.Message)
		}
	}
	return fmt.Errorf("read rw_catalog.rw_meta_snapshot: %w", err)
}

// parseInt8 reads an int8 column; RisingWave stores u64 epochs as i64, so a
// negative value is the same bits.
func parseInt8(s string) (uint64, error) {
	if strings.HasPrefix(s, "-") {
		v, err := strconv.ParseInt(s, 10, 64)
		return uint64(v), err
	}
	return strconv.ParseUint(s, 10, 64)
}

// parseStateTableInfo reads v1.10's jsonb: pbjson camelCase, u64 as
// strings, zero fields omitted; snake_case and numbers accepted too.
func parseStateTableInfo(b []byte) (map[uint32]TableEpochs, error) {
	var m map[string]map[string]json.RawMessage
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	out := make(map[uint32]TableEpochs, len(m))
	for k, fields := range m {
		id, err := strconv.ParseUint(k, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("key %q is not a table id", k)
		}
		var t TableEpochs
		for name, v := range fields {
			s := strings.Trim(string(v), `"`)
			var dst *uint64
			switch name {
			case "committedEpoch", "committed_epoch":
				dst = &t.CommittedEpoch
			case "safeEpoch", "safe_epoch":
				dst = &t.SafeEpoch
			default:
				continue
			}
			if *dst, err = strconv.ParseUint(s, 10, 64); err != nil {
				return nil, fmt.Errorf("table %s field %s: %w", k, name, err)
			}
		}
		out[uint32(id)] = t
	}
	return out, nil
}

// TableIDs lists the tables with per-table epochs, sorted.
func (s Snapshot) TableIDs() []uint32 {
	ids := make([]uint32, 0, len(s.Tables))
	for id := range s.Tables {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
