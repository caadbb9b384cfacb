// Package inspect tells what a meta snapshot holds, from the backup
// location alone: its header, its catalog (relations with definitions and
// dependencies, users and privileges without password hashes), system
// parameters and hummock storage (inspect); what changed between two
// snapshots (diff); and a SQL script that recreates the catalog in
// dependency order (DDL). Credentials are redacted everywhere.
package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/catalog"
	"github.com/rwsnap/rwsnap/hummock"
	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
)

// ErrUnknownSnapshot means the id is not in the manifest.
var ErrUnknownSnapshot = errors.New("unknown snapshot")

// ErrCorrupt means the snapshot object fails its checksum.
var ErrCorrupt = errors.New("corrupt snapshot")

// Document is what `rwsnap meta inspect -o json` prints: one stable shape.
type Document struct {
	Snapshot  Header            `json:"snapshot"`
	Relations []Relation        `json:"relations"`
	Users     []catalog.User    `json:"users"`
	Params    map[string]string `json:"params"`
	Storage   Storage           `json:"storage"`

	// cat is the decoded catalog (with the stored definitions, for DDL).
	cat *catalog.Catalog
}

// Header is the snapshot's identity, how much of it was decoded, and the
// namespaces of its catalog.
type Header struct {
	ID                uint64     `json:"id"`
	Object            string     `json:"object"`
	FormatVersion     uint32     `json:"format_version"`
	RWVersion         *string    `json:"rw_version"`
	HummockVersionID  uint64     `json:"hummock_version_id"`
	MaxCommittedEpoch uint64     `json:"max_committed_epoch"`
	MaxCommittedTime  *time.Time `json:"max_committed_time"`
	SafeEpoch         uint64     `json:"safe_epoch"`
	SafeTime          *time.Time `json:"safe_time"`
	Bytes             int        `json:"bytes"`
	ChecksumOK        bool       `json:"checksum_ok"`
	Remarks           *string    `json:"remarks"`
	ClusterID         string     `json:"cluster_id"`
	// Decoded is "full", "partial" (NotDecoded says what is missing) or
	// "header" (only the header and the manifest entry).
	Decoded    string            `json:"decoded"`
	NotDecoded []string          `json:"not_decoded"`
	Problems   []catalog.Problem `json:"problems"`
	// Redacted says where credentials were replaced by [REDACTED].
	Redacted  []string   `json:"redacted"`
	Databases []Database `json:"databases"`
}

// Database is a database with its schemas.
type Database struct {
	ID      uint32   `json:"id"`
	Name    string   `json:"name"`
	Owner   string   `json:"owner"`
	Schemas []string `json:"schemas"`
}

// Relation is one catalog object as inspect shows it.
type Relation struct {
	Kind       catalog.Kind      `json:"kind"`
	ID         uint32            `json:"id"`
	Name       string            `json:"name"`
	Database   string            `json:"database"`
	Schema     string            `json:"schema"`
	Owner      string            `json:"owner"`
	Definition string            `json:"definition"`
	DependsOn  []Dependency      `json:"depends_on"`
	CreatedAt  *time.Time        `json:"created_at"`
	Columns    []catalog.Column  `json:"columns"`
	Properties map[string]string `json:"properties"`
	SecretRefs map[string]string `json:"secret_refs,omitempty"`
	Redacted   []string          `json:"redacted"`

	rawProps map[string]string // as stored, for diff; never printed
}

// Dependency names what a relation depends on.
type Dependency struct {
	Kind catalog.Kind `json:"kind"`
	ID   uint32       `json:"id"`
	Name string       `json:"name"`
}

// Storage is the snapshot's hummock version.
type Storage struct {
	HummockVersionID  uint64            `json:"hummock_version_id"`
	MaxCommittedEpoch uint64            `json:"max_committed_epoch"`
	MaxCommittedTime  *time.Time        `json:"max_committed_time"`
	SafeEpoch         uint64            `json:"safe_epoch"`
	SafeTime          *time.Time        `json:"safe_time"`
	SSTs              int               `json:"ssts"`
	Bytes             uint64            `json:"bytes"`
	CompactionGroups  []CompactionGroup `json:"compaction_groups"`
	Tables            []TableStorage    `json:"tables"`
}

// CompactionGroup is one group's levels.
type CompactionGroup struct {
	ID       uint64   `json:"id"`
	ParentID uint64   `json:"parent_id"`
	SSTs     int      `json:"ssts"`
	Bytes    uint64   `json:"bytes"`
	Tables   []uint32 `json:"tables"`
	Levels   []Level  `json:"levels"`
}

// Level is L0 (with its sub-levels) or L1..Ln.
type Level struct {
	Level     string `json:"level"`
	SubLevels int    `json:"sub_levels,omitempty"`
	SSTs      int    `json:"ssts"`
	Bytes     uint64 `json:"bytes"`
}

// TableStorage is one state table's share of the version. An SST holding
// several tables counts for each of them.
type TableStorage struct {
	ID              uint32     `json:"id"`
	Name            string     `json:"name"`
	CompactionGroup uint64     `json:"compaction_group"`
	SSTs            int        `json:"ssts"`
	Bytes           uint64     `json:"bytes"`
	CommittedEpoch  uint64     `json:"committed_epoch"`
	CommittedTime   *time.Time `json:"committed_time"`
	KeyCount        int64      `json:"key_count"`
	KVBytes         int64      `json:"kv_bytes"`
}

// Inspect reads snapshot id from the backup location and describes it.
// An unknown id or a corrupt object is an error; a snapshot rwsnap cannot
// decode fully gives a Document with Decoded "partial" or "header" that
// says what is missing.
func Inspect(ctx context.Context, st *metasnap.Storage, id uint64) (*Document, error) {
	m, _, err := st.ReadExistingManifest(ctx)
	if err != nil {
		return nil, err
	}
	e := m.Find(id)
	if e == nil {
		orphan := ""
		if objs, err := st.SnapshotObjects(ctx); err == nil {
			if _, ok := objs[id]; ok {
				orphan = fmt.Sprintf(" (%s exists but is an orphan: no manifest entry names it)", st.SnapshotKey(id))
			}
		}
		return nil, fmt.Errorf("%w: snapshot %d is not in the manifest of %s; it lists %s%s",
			ErrUnknownSnapshot, id, st, metasnap.FormatIDs(m.IDs()), orphan)
	}
	key := st.SnapshotKey(id)
	b, _, err := st.Store.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("snapshot %d: its object %s is missing from %s: %w", id, key, st.Store, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read snapshot %d (%s): %w", id, key, err)
	}
	return FromBytes(e, key, b)
}

// FromBytes describes a snapshot from its manifest entry and object bytes.
func FromBytes(e *metasnap.SnapshotMetadata, key string, b []byte) (*Document, error) {
	if err := metasnap.VerifyChecksum(b); err != nil {
		return nil, fmt.Errorf("%w %d (%s): %w", ErrCorrupt, e.ID, key, err)
	}
	d := &Document{
		Snapshot: Header{
			ID: e.ID, Object: key, RWVersion: e.RWVersion, HummockVersionID: e.HummockVersionID,
			MaxCommittedEpoch: e.MaxCommittedEpoch, SafeEpoch: e.SafeEpoch, Bytes: len(b), ChecksumOK: true,
			Remarks: redactedText(e.Remarks), NotDecoded: []string{}, Problems: []catalog.Problem{}, Redacted: []string{}, Databases: []Database{},
		},
		Relations: []Relation{}, Users: []catalog.User{}, Params: map[string]string{},
		Storage: Storage{CompactionGroups: []CompactionGroup{}, Tables: []TableStorage{}},
	}
	fv, hid, _ := metasnap.DecodeHeader(b)
	d.Snapshot.FormatVersion = fv
	if hid != e.ID {
		return nil, fmt.Errorf("%w %d (%s): the object holds snapshot id %d", ErrCorrupt, e.ID, key, hid)
	}
	if fv != metasnap.FormatV1 && fv != 0 {
		d.Snapshot.Decoded = "header"
		why := fmt.Sprintf("format_version %d", fv)
		if fv == metasnap.FormatV2 {
			why += " (a SQL meta store snapshot: its sections depend on the RisingWave version that wrote it"
			if e.RWVersion != nil {
				why += ", " + *e.RWVersion
			}
			why += "; rwsnap decodes the etcd-era format 1)"
		}
		d.Snapshot.NotDecoded = append(d.Snapshot.NotDecoded, "catalog, users, params and hummock version: "+why)
		d.storageFromEntry(e)
		d.finish()
		return d, nil
	}
	snap, err := metasnap.Decode(b)
	var md *metasnap.ClusterMetadata
	if err == nil {
		md = snap.Metadata
		d.Snapshot.Decoded = "full"
	} else {
		// Decode what comes before the section that failed.
		var missing string
		md, missing = decodePartial(b[12 : len(b)-8])
		d.Snapshot.Decoded = "partial"
		d.Snapshot.NotDecoded = append(d.Snapshot.NotDecoded, missing)
	}
	d.fill(md, e)
	d.finish()
	return d, nil
}

// fill decodes every part of md it can.
func (d *Document) fill(md *metasnap.ClusterMetadata, e *metasnap.SnapshotMetadata) {
	d.Snapshot.ClusterID = md.ClusterID
	cat := catalog.Decode(md)
	d.cat = cat
	d.Snapshot.Problems = append(d.Snapshot.Problems, cat.Problems...)
	users := map[uint32]string{}
	for _, u := range cat.Users {
		users[u.ID] = u.Name
	}
	owner := func(id uint32) string {
		if n, ok := users[id]; ok {
			return n
		}
		return "user " + strconv.FormatUint(uint64(id), 10)
	}
	dbs := map[uint32]string{}
	for _, db := range cat.Databases {
		dbs[db.ID] = db.Name
		d.Snapshot.Databases = append(d.Snapshot.Databases, Database{ID: db.ID, Name: db.Name, Owner: owner(db.Owner), Schemas: []string{}})
	}
	schemas := map[uint32]string{}
	for _, s := range cat.Schemas {
		schemas[s.ID] = s.Name
		for i := range d.Snapshot.Databases {
			if d.Snapshot.Databases[i].ID == s.DatabaseID {
				d.Snapshot.Databases[i].Schemas = append(d.Snapshot.Databases[i].Schemas, s.Name)
			}
		}
	}
	names := map[catalog.Ref]string{}
	for _, r := range cat.Relations {
		names[catalog.Ref{Kind: r.Kind, ID: r.ID}] = r.Name
	}
	for _, r := range cat.Relations {
		out := Relation{Kind: r.Kind, ID: r.ID, Name: r.Name, Database: dbs[r.DatabaseID], Schema: schemas[r.SchemaID],
			Owner: owner(r.Owner), Definition: r.Definition, DependsOn: []Dependency{}, Columns: r.Columns,
			Properties: r.Properties, Redacted: r.Redacted, rawProps: r.RawProperties}
		if out.Columns == nil {
			out.Columns = []catalog.Column{}
		}
		if out.Properties == nil {
			out.Properties = map[string]string{}
		}
		if out.Redacted == nil {
			out.Redacted = []string{}
		}
		if t := r.CreatedAt(); !t.IsZero() {
			out.CreatedAt = &t
		}
		for _, dep := range r.DependsOn {
			out.DependsOn = append(out.DependsOn, Dependency{Kind: dep.Kind, ID: dep.ID, Name: names[dep]})
		}
		if len(r.SecretRefs) > 0 {
			out.SecretRefs = map[string]string{}
			for k, id := range r.SecretRefs {
				out.SecretRefs[k] = names[catalog.Ref{Kind: catalog.KindSecret, ID: id}]
			}
		}
		for _, n := range r.Redacted {
			d.Snapshot.Redacted = append(d.Snapshot.Redacted, fmt.Sprintf("%s %s: %s", r.Kind, r.Name, n))
		}
		d.Relations = append(d.Relations, out)
	}
	d.Users = cat.Users
	if d.Users == nil {
		d.Users = []catalog.User{}
	}
	for _, u := range d.Users {
		if u.Auth != "none" {
			d.Snapshot.Redacted = append(d.Snapshot.Redacted, fmt.Sprintf("user %s: password hash", u.Name))
		}
	}
	d.fillParams(md.SystemParams)
	d.fillStorage(md, e, cat)
}

func (d *Document) fillParams(b []byte) {
	if b == nil {
		return
	}
	sp, err := metastore.DecodeSystemParams(b)
	if err != nil {
		d.Snapshot.NotDecoded = append(d.Snapshot.NotDecoded, "system params: "+err.Error())
		return
	}
	for k, v := range metastore.SystemParamsToKV(sp) {
		// URLs keep their shape with the credentials masked (as SHOW
		// PARAMETERS does); anything else that looks like a secret goes.
		r := objstore.RedactText(v)
		switch {
		case catalog.IsSecretName(k) || r == v && catalog.LooksLikeCredential(v):
			d.Params[k] = catalog.Redacted
			d.Snapshot.Redacted = append(d.Snapshot.Redacted, "param "+k)
			continue
		case r != v:
			d.Snapshot.Redacted = append(d.Snapshot.Redacted, "param "+k+": credentials in the URL")
			v = r
		}
		d.Params[k] = v
	}
	if n := len(sp.ProtoReflect().GetUnknown()); n > 0 {
		d.Snapshot.NotDecoded = append(d.Snapshot.NotDecoded,
			fmt.Sprintf("system params: %d bytes of parameters of a newer RisingWave version (not named here)", n))
	}
}

func (d *Document) fillStorage(md *metasnap.ClusterMetadata, e *metasnap.SnapshotMetadata, cat *catalog.Catalog) {
	if md.HummockVersion == nil {
		d.storageFromEntry(e)
		return
	}
	v := &pb.HummockVersion{}
	if err := proto.Unmarshal(md.HummockVersion, v); err != nil {
		d.Snapshot.NotDecoded = append(d.Snapshot.NotDecoded, "hummock version: "+err.Error())
		d.storageFromEntry(e)
		return
	}
	stats := &pb.HummockVersionStats{}
	if md.VersionStats != nil {
		if err := proto.Unmarshal(md.VersionStats, stats); err != nil {
			d.Snapshot.NotDecoded = append(d.Snapshot.NotDecoded, "version stats: "+err.Error())
		}
	}
	s := &d.Storage
	s.HummockVersionID, s.MaxCommittedEpoch, s.SafeEpoch = v.Id, v.MaxCommittedEpoch, v.SafeEpoch
	d.Snapshot.ClusterID = md.ClusterID
	objects := map[uint64]uint64{}
	tables := map[uint32]*TableStorage{}
	table := func(id uint32, gid uint64) *TableStorage {
		t := tables[id]
		if t == nil {
			t = &TableStorage{ID: id, Name: cat.TableNames[id], CompactionGroup: gid, CommittedEpoch: v.MaxCommittedEpoch}
			tables[id] = t
		}
		return t
	}
	gids := make([]uint64, 0, len(v.Levels))
	for gid := range v.Levels {
		gids = append(gids, gid)
	}
	sort.Slice(gids, func(i, j int) bool { return gids[i] < gids[j] })
	for _, gid := range gids {
		lv := v.Levels[gid]
		g := CompactionGroup{ID: gid, ParentID: lv.ParentGroupId, Tables: append([]uint32{}, lv.MemberTableIds...), Levels: []Level{}}
		count := func(l *Level, ssts []*pb.SstableInfo) {
			for _, sst := range ssts {
				l.SSTs++
				l.Bytes += sst.FileSize
				objects[sst.ObjectId] = sst.FileSize
				for _, tid := range sst.TableIds {
					t := table(tid, gid)
					t.SSTs++
					t.Bytes += sst.FileSize
				}
			}
		}
		l0 := Level{Level: "L0"}
		for _, sub := range lv.GetL0().GetSubLevels() {
			l0.SubLevels++
			count(&l0, sub.TableInfos)
		}
		g.Levels = append(g.Levels, l0)
		for _, l := range lv.Levels {
			out := Level{Level: "L" + strconv.Itoa(int(l.LevelIdx))}
			count(&out, l.TableInfos)
			g.Levels = append(g.Levels, out)
		}
		for _, l := range g.Levels {
			g.SSTs += l.SSTs
			g.Bytes += l.Bytes
		}
		for _, tid := range g.Tables {
			table(tid, gid)
		}
		s.CompactionGroups = append(s.CompactionGroups, g)
	}
	// v1.10+: per-table epochs and groups (member_table_ids is no longer kept).
	for tid, info := range v.StateTableInfo {
		t := table(tid, info.CompactionGroupId)
		t.CommittedEpoch, t.CompactionGroup = info.CommittedEpoch, info.CompactionGroupId
	}
	for tid, ts := range stats.TableStats {
		t := table(tid, 0)
		t.KeyCount, t.KVBytes = ts.TotalKeyCount, ts.TotalKeySize+ts.TotalValueSize
	}
	for _, size := range objects {
		s.SSTs++
		s.Bytes += size
	}
	for _, t := range tables {
		if t.CommittedEpoch != 0 {
			at := hummock.EpochTime(t.CommittedEpoch).UTC()
			t.CommittedTime = &at
		}
		s.Tables = append(s.Tables, *t)
	}
	sort.Slice(s.Tables, func(i, j int) bool { return s.Tables[i].ID < s.Tables[j].ID })
}

// storageFromEntry is what the manifest entry alone tells.
func (d *Document) storageFromEntry(e *metasnap.SnapshotMetadata) {
	s := &d.Storage
	s.HummockVersionID, s.MaxCommittedEpoch, s.SafeEpoch, s.SSTs = e.HummockVersionID, e.MaxCommittedEpoch, e.SafeEpoch, len(e.SSTs)
	for tid, info := range e.StateTableInfo {
		t := TableStorage{ID: tid, CompactionGroup: info.CompactionGroupID, CommittedEpoch: info.CommittedEpoch}
		if info.CommittedEpoch != 0 {
			at := hummock.EpochTime(info.CommittedEpoch).UTC()
			t.CommittedTime = &at
		}
		s.Tables = append(s.Tables, t)
	}
	sort.Slice(s.Tables, func(i, j int) bool { return s.Tables[i].ID < s.Tables[j].ID })
}

func (d *Document) finish() {
	h := &d.Snapshot
	if h.MaxCommittedEpoch != 0 {
		t := hummock.EpochTime(h.MaxCommittedEpoch).UTC()
		h.MaxCommittedTime = &t
	}
	if h.SafeEpoch != 0 {
		t := hummock.EpochTime(h.SafeEpoch).UTC()
		h.SafeTime = &t
	}
	s := &d.Storage
	if s.MaxCommittedEpoch != 0 {
		t := hummock.EpochTime(s.MaxCommittedEpoch).UTC()
		s.MaxCommittedTime = &t
	}
	if s.SafeEpoch != 0 {
		t := hummock.EpochTime(s.SafeEpoch).UTC()
		s.SafeTime = &t
	}
	sort.Strings(h.Redacted)
}

// WriteTable prints the document for people (output.Result).
func (d *Document) WriteTable(w io.Writer) error { return WriteTable(w, d) }

// redactedText hides credentials in free text (remarks): URLs with
// passwords, and the text as a whole when it is one.
func redactedText(s *string) *string {
	if s == nil {
		return nil
	}
	r := objstore.RedactText(*s)
	if r == *s && catalog.LooksLikeCredential(r) {
		r = catalog.Redacted
	}
	return &r
}

// Catalog is the decoded catalog (nil when only the header was decoded).
func (d *Document) Catalog() *catalog.Catalog { return d.cat }

// decodePartial walks a format-1 payload section by section (the layout of
// metasnap.Decode) and keeps every section before the first one that does
// not decode; it says which sections are missing and why.
func decodePartial(buf []byte) (*metasnap.ClusterMetadata, string) {
	md := &metasnap.ClusterMetadata{}
	r := &reader{buf: buf}
	keys := r.list()
	vals := r.list()
	if r.err == nil && len(keys) == len(vals) {
		for i := range keys {
			md.DefaultCF = append(md.DefaultCF, metasnap.KV{Key: unwrap(keys[i]), Value: unwrap(vals[i])})
		}
	}
	steps := []struct {
		name string
		do   func()
	}{
		{"hummock_version", func() { md.HummockVersion = r.msg() }},
		{"version_stats", func() { md.VersionStats = r.msg() }},
		{"compaction_groups", func() { md.CompactionGroups = r.list() }},
		{"table_fragments", func() { md.TableFragments = r.list() }},
		{"user_info", func() { md.UserInfo = r.list() }},
		{"database", func() { md.Databases = r.list() }},
		{"schema", func() { md.Schemas = r.list() }},
		{"table", func() { md.Tables = r.list() }},
		{"index", func() { md.Indexes = r.list() }},
		{"sink", func() { md.Sinks = r.list() }},
		{"source", func() { md.Sources = r.list() }},
		{"view", func() { md.Views = r.list() }},
		{"function", func() { md.Functions = r.list() }},
		{"connection", func() { md.Connections = r.list() }},
		{"system_params", func() { md.SystemParams = r.msg() }},
		{"cluster_id", func() { md.ClusterID = string(unwrap(r.msg())) }},
		{"subscription", func() {
			if len(r.buf) > 0 {
				md.Subscriptions, md.HasSubscriptions = r.list(), true
			}
		}},
		{"secret", func() {
			if len(r.buf) > 0 {
				md.Secrets, md.HasSecrets = r.list(), true
			}
		}},
	}
	if r.err != nil {
		return md, "every section (default_cf onwards): " + r.err.Error()
	}
	for i, s := range steps {
		s.do()
		if r.err != nil {
			var rest []string
			for _, t := range steps[i:] {
				rest = append(rest, t.name)
			}
			return md, fmt.Sprintf("sections %s: %v", strings.Join(rest, ", "), r.err)
		}
	}
	return md, fmt.Sprintf("%d bytes after the last known section (secret list), written by a newer RisingWave version", len(r.buf))
}

type reader struct {
	buf []byte
	err error
}

func (r *reader) u32() uint32 {
	if r.err != nil {
		return 0
	}
	if len(r.buf) < 4 {
		r.err = fmt.Errorf("truncated: need 4 bytes, have %d", len(r.buf))
		return 0
	}
	v := uint32(r.buf[0]) | uint32(r.buf[1])<<8 | uint32(r.buf[2])<<16 | uint32(r.buf[3])<<24
	r.buf = r.buf[4:]
	return v
}

func (r *reader) msg() []byte {
	n := r.u32()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.buf)) {
		r.err = fmt.Errorf("length %d exceeds the %d bytes left", n, len(r.buf))
		return nil
	}
	b := r.buf[:n:n]
	r.buf = r.buf[n:]
	return b
}

func (r *reader) list() [][]byte {
	n := r.u32()
	if r.err != nil {
		return nil
	}
	if uint64(n)*4 > uint64(len(r.buf)) {
		r.err = fmt.Errorf("count %d cannot fit in the %d bytes left", n, len(r.buf))
		return nil
	}
	out := make([][]byte, 0, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		out = append(out, r.msg())
	}
	return out
}

// unwrap reads a BytesValue/StringValue (field 1).
func unwrap(b []byte) []byte {
	if len(b) < 2 || b[0] != 0x0a {
		return nil
	}
	n, k := 0, 1
	for shift := 0; k < len(b); shift += 7 {
		c := b[k]
		k++
		n |= int(c&0x7f) << shift
		if c < 0x80 {
			break
		}
	}
	if k+n > len(b) {
		return nil
	}
	return b[k : k+n]
}
