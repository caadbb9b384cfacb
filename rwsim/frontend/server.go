// Package frontend is a pgwire server that behaves like a RisingWave v1.x
// frontend for what rwsnap touches: rw_catalog.rw_meta_snapshot served from
// a backup manifest (v1.7-v1.9 or v1.10 columns), SET/SHOW QUERY_EPOCH
// without validation at SET, and SELECT on demo tables whose rows are
// versioned by epoch, failing like RisingWave's BackupReader for epochs no
// snapshot covers. For tests and demos only: the SQL it understands is what
// rwsnap, psql scripts and the tests send.
package frontend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"

	"github.com/rwsnap/rwsnap/rwversion"
)

// Shape selects the rw_meta_snapshot columns and the BackupReader rule.
type Shape int

const (
	// V17 is RisingWave v1.7-v1.9: epoch columns, one global range per
	// snapshot.
	V17 Shape = iota
	// V110 is v1.10: state_table_info jsonb column, per-table ranges when a
	// snapshot has them.
	V110
)

// Options configure a frontend.
type Options struct {
	// Backup is the backup location whose manifest rw_meta_snapshot lists
	// and QUERY_EPOCH reads check (re-read on every query, as a compute
	// node's BackupReader follows manifest updates). nil: no snapshots.
	Backup *metasnap.Storage
	Shape  Shape
	// NoCatalog makes the server answer like plain PostgreSQL: no
	// rw_catalog schema, no QUERY_EPOCH.
	NoCatalog bool
	// Addr to listen on; default 127.0.0.1:0.
	Addr string
	// Version is reported by version() and rw_version; default by Shape.
	Version string
	// Hummock and DataDir, when set, are the cluster's state store: a read
	// of a demo table first checks that every SST object of the current
	// hummock version (DataDir/checkpoint/0) is there, and fails as
	// RisingWave's storage read does when one is missing (the rows are
	// served from memory; their existence in hummock is what is checked).
	Hummock objstore.Store
	DataDir string
	// NewObjectPrefixStrategy is the cluster's v2.0
	// use_new_object_prefix_strategy (the SST layout on fs://).
	NewObjectPrefixStrategy bool
	// FirstTableID is the id of the first demo table (default 1001): match
	// it to a table of the simulated cluster so that v1.10's per-table
	// state_table_info has an entry for it.
	FirstTableID uint32
}

// Executed is one statement the server ran (or tried to), in order.
type Executed struct {
	Session uint32
	SQL     string
	// Extended says it came through Parse/Bind/Execute, not a simple Query.
	Extended bool
}

// Server is a running frontend.
type Server struct {
	opts Options
	ln   net.Listener
	wg   sync.WaitGroup

	mu       sync.Mutex
	tables   map[string]*table
	nextID   uint32
	nextPID  uint32
	sessions map[uint32]*session
	conns    map[net.Conn]bool
	log      []Executed
	closed   bool
}

type versionedRow struct {
	vals     []any
	ins, del uint64 // del 0: not deleted
}

type table struct {
	id   uint32
	name string
	cols []Column
	rows []versionedRow
}

// Start listens and serves until Close or ctx ends.
func Start(ctx context.Context, opts Options) (*Server, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if opts.Version == "" {
		opts.Version = map[Shape]string{V17: "1.7.0", V110: "1.10.0"}[opts.Shape]
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rwsim frontend: listen on %s: %w", addr, err)
	}
	first := opts.FirstTableID
	if first == 0 {
		first = 1001
	}
	s := &Server{opts: opts, ln: ln, tables: map[string]*table{}, nextID: first,
		sessions: map[uint32]*session{}, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.acceptLoop()
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	return s, nil
}

// Addr is host:port of the listener.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is a connection URL for psql and pgx (user root, database dev, as
// RisingWave's defaults).
func (s *Server) URL() string {
	return "postgres://root@" + s.Addr() + "/dev?sslmode=disable"
}

// Close stops listening, ends every session and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	// A statement still running (pg_sleep) would hold Close until it ends.
	for _, ss := range s.sessions {
		ss.mu.Lock()
		if ss.cancel != nil {
			ss.cancel()
		}
		ss.mu.Unlock()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// Executed returns the statements run so far.
func (s *Server) Executed() []Executed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Executed(nil), s.log...)
}

// ClearLog forgets the executed statements.
func (s *Server) ClearLog() {
	s.mu.Lock()
	s.log = nil
	s.mu.Unlock()
}

// QueryEpochs returns QUERY_EPOCH of every open session, by session id.
func (s *Server) QueryEpochs() map[uint32]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[uint32]uint64{}
	for pid, ss := range s.sessions {
		out[pid] = ss.epoch()
	}
	return out
}

// CreateTable adds a demo table in schema public and returns its table id
// (the key of state_table_info in v1.10 snapshots).
func (s *Server) CreateTable(name string, cols ...Column) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = strings.ToLower(name)
	if _, ok := s.tables[name]; ok {
		return 0, fmt.Errorf("rwsim frontend: table %s exists", name)
	}
	if len(cols) == 0 {
		return 0, fmt.Errorf("rwsim frontend: table %s needs columns", name)
	}
	t := &table{id: s.nextID, name: name}
	for _, c := range cols {
		t.cols = append(t.cols, Column{Name: strings.ToLower(c.Name), Type: c.Type})
	}
	s.nextID++
	s.tables[name] = t
	return t.id, nil
}

// TableID returns a demo table's id.
func (s *Server) TableID(name string) (uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tables[strings.ToLower(name)]
	if !ok {
		return 0, false
	}
	return t.id, true
}

// Insert adds a row committed at epoch (visible to reads at epochs >= it).
func (s *Server) Insert(tableName string, epoch uint64, values ...any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tables[strings.ToLower(tableName)]
	if !ok {
		return fmt.Errorf("rwsim frontend: no table %s", tableName)
	}
	if len(values) != len(t.cols) {
		return fmt.Errorf("rwsim frontend: table %s has %d columns, got %d values", t.name, len(t.cols), len(values))
	}
	row := make([]any, len(values))
	for i, v := range values {
		cv, err := coerce(t.cols[i].Type, v)
		if err != nil {
			return fmt.Errorf("rwsim frontend: %s.%s: %w", t.name, t.cols[i].Name, err)
		}
		row[i] = cv
	}
	t.rows = append(t.rows, versionedRow{vals: row, ins: epoch})
	return nil
}

// Delete marks the live rows matching match as deleted at epoch (invisible
// to reads at epochs >= it) and returns how many.
func (s *Server) Delete(tableName string, epoch uint64, match func(values []any) bool) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tables[strings.ToLower(tableName)]
	if !ok {
		return 0, fmt.Errorf("rwsim frontend: no table %s", tableName)
	}
	n := 0
	for i := range t.rows {
		r := &t.rows[i]
		if r.del == 0 && match(r.vals) {
			r.del = epoch
			n++
		}
	}
	return n, nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.serveConn(c)
		}()
	}
}

func (s *Server) record(pid uint32, sql string, extended bool) {
	s.mu.Lock()
	s.log = append(s.log, Executed{Session: pid, SQL: sql, Extended: extended})
	s.mu.Unlock()
}

// sqlError is an ErrorResponse to send.
type sqlError struct {
	code, msg string
}

func (e *sqlError) Error() string { return e.msg }

// rwError wraps a message as RisingWave's pgwire does: every error is
// SQLSTATE XX000 (internal_error) with the error report as the message.
func rwError(format string, args ...any) *sqlError {
	return &sqlError{code: "XX000", msg: fmt.Sprintf(format, args...)}
}

func toSQLError(err error) *sqlError {
	var se *sqlError
	if errors.As(err, &se) {
		return se
	}
	return rwError("%s", err.Error())
}

// column is a result column.
type column struct {
	name string
	typ  Type
}

// plan is a statement ready to run: its result columns are known before
// execution, as Describe needs.
type plan struct {
	sql  string
	cols []column
	run  func(ctx context.Context) (rows [][]any, tag string, err error)
}

// readAt returns the rows of t visible at epoch (0: latest).
func (t *table) readAt(epoch uint64) [][]any {
	var out [][]any
	for _, r := range t.rows {
		if epoch == 0 {
			if r.del == 0 {
				out = append(out, r.vals)
			}
			continue
		}
		if r.ins <= epoch && (r.del == 0 || r.del > epoch) {
			out = append(out, r.vals)
		}
	}
	return out
}

// checkBackupEpoch is BackupReader::try_get_hummock_version's manifest
// lookup: the first entry (manifest order) whose range holds epoch.
func (s *Server) checkBackupEpoch(ctx context.Context, tableID uint32, epoch uint64) error {
	var m *metasnap.Manifest
	if s.opts.Backup != nil {
		var err error
		if m, _, err = s.opts.Backup.ReadManifest(ctx); err != nil {
			return rwError("Failed to run the query\n\nCaused by:\n  Read backup error %v", err)
		}
	} else {
		m = &metasnap.Manifest{}
	}
	for _, e := range m.SnapshotMetadata {
		if s.opts.Shape == V17 || len(e.StateTableInfo) == 0 {
			if e.SafeEpoch <= epoch && epoch <= e.MaxCommittedEpoch {
				return nil
			}
			continue
		}
		if info, ok := e.StateTableInfo[tableID]; ok && info.SafeEpoch <= epoch && epoch <= info.CommittedEpoch {
			return nil
		}
	}
	// HummockErrorInner::ReadBackupError's display changed in v1.9:
	// "Read backup error {0}." before, "Read backup error: {0}" from it
	// (src/storage/src/hummock/error.rs).
	return rwError("Failed to run the query\n\nCaused by:\n  %s", s.catalog().ReadBackupError(epoch))
}

// catalog is the frontend-visible rules of the release it reports.
func (s *Server) catalog() rwversion.Catalog {
	v, err := rwversion.Parse(s.opts.Version)
	if err != nil {
		v = rwversion.V1_7
	}
	return rwversion.For(v).Catalog
}

// ShapeFor is the rw_meta_snapshot shape of a release line (v1.10 changed
// it).
func ShapeFor(v rwversion.Version) Shape {
	if rwversion.For(v).Catalog.MetaSnapshotV110 {
		return V110
	}
	return V17
}

// metaSnapshotColumns are rw_meta_snapshot's columns by version
// (src/frontend/src/catalog/system_catalog/rw_catalog/rw_meta_snapshot.rs).
func (s *Server) metaSnapshotColumns() []Column {
	if s.opts.Shape == V110 {
		return []Column{{"meta_snapshot_id", Int8}, {"hummock_version_id", Int8}, {"remarks", Varchar},
			{"state_table_info", Jsonb}, {"rw_version", Varchar}}
	}
	return []Column{{"meta_snapshot_id", Int8}, {"hummock_version_id", Int8}, {"safe_epoch", Int8},
		{"safe_epoch_ts", Timestamp}, {"max_committed_epoch", Int8}, {"max_committed_epoch_ts", Timestamp},
		{"remarks", Varchar}}
}

func (s *Server) metaSnapshotRows(ctx context.Context) ([][]any, error) {
	if s.opts.Backup == nil {
		return nil, nil
	}
	m, _, err := s.opts.Backup.ReadManifest(ctx)
	if err != nil {
		return nil, rwError("Failed to read the catalog\n\nCaused by:\n  %v", err)
	}
	ts := func(epoch uint64) any {
		if epoch == 0 {
			return nil
		}
		ms := int64(epoch>>16) + 1_617_235_200_000
		return time.UnixMilli(ms).UTC()
	}
	str := func(p *string) any {
		if p == nil {
			return nil
		}
		return *p
	}
	var rows [][]any
	for _, e := range m.SnapshotMetadata {
		if s.opts.Shape == V110 {
			rows = append(rows, []any{int64(e.ID), int64(e.HummockVersionID), str(e.Remarks),
				stateTableInfoJSON(e.StateTableInfo), str(e.RWVersion)})
			continue
		}
		rows = append(rows, []any{int64(e.ID), int64(e.HummockVersionID), int64(e.SafeEpoch), ts(e.SafeEpoch),
			int64(e.MaxCommittedEpoch), ts(e.MaxCommittedEpoch), str(e.Remarks)})
	}
	return rows, nil
}

// stateTableInfoJSON renders json!(map<table_id, PbStateTableInfo>) as
// RisingWave's jsonb text output: pbjson camelCase, u64 as strings, zero
// fields omitted, keys sorted (serde_json's default map).
func stateTableInfoJSON(m map[uint32]metasnap.StateTableInfo) string {
	keys := make([]string, 0, len(m))
	byKey := map[string]metasnap.StateTableInfo{}
	for id, info := range m {
		k := fmt.Sprint(id)
		keys = append(keys, k)
		byKey[k] = info
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		info := byKey[k]
		fmt.Fprintf(&b, "%q: {", k)
		sep := ""
		for _, f := range []struct {
			name string
			v    uint64
		}{{"committedEpoch", info.CommittedEpoch}, {"safeEpoch", info.SafeEpoch}, {"compactionGroupId", info.CompactionGroupID}} {
			if f.v != 0 {
				fmt.Fprintf(&b, `%s"%s": "%d"`, sep, f.name, f.v)
				sep = ", "
			}
		}
		b.WriteByte('}')
	}
	b.WriteByte('}')
	return b.String()
}

// checkHummock is the storage side of a read: the version's SST objects
// must exist at the state store.
func (s *Server) checkHummock(ctx context.Context) error {
	hs := s.opts.Hummock
	if hs == nil {
		return nil
	}
	key := hummock.CheckpointPath(s.opts.DataDir)
	b, _, err := hs.Get(ctx, key)
	if err != nil {
		return rwError("Failed to run the query\n\nCaused by:\n  Storage error: Hummock error: Object error: %v", err)
	}
	cp, err := hummock.DecodeCheckpoint(b)
	if err != nil {
		return rwError("Failed to run the query\n\nCaused by:\n  Storage error: Hummock error: %v", err)
	}
	prefixed := hummock.Prefixed(hs.Scheme(), s.opts.NewObjectPrefixStrategy)
	for _, id := range hummock.ObjectIDs(cp.GetVersion()) {
		if _, err := hs.Stat(ctx, hummock.SSTPath(s.opts.DataDir, id, prefixed)); err != nil {
			return rwError("Failed to run the query\n\nCaused by:\n  Storage error: Hummock error: Object error: sstable %d: %v", id, err)
		}
	}
	return nil
}
