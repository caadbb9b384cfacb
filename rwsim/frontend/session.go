package frontend

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

type session struct {
	srv    *Server
	be     *pgproto3.Backend
	pid    uint32
	secret []byte

	mu         sync.Mutex
	queryEpoch uint64
	cancel     context.CancelFunc // of the running statement

	vars    map[string]string
	stmts   map[string]*plan
	portals map[string]*portal
}

type portal struct {
	plan    *plan
	formats []int16
}

func (ss *session) epoch() uint64 {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.queryEpoch
}

func (s *Server) serveConn(c net.Conn) {
	be := pgproto3.NewBackend(c, c)
	var startup *pgproto3.StartupMessage
	for startup == nil {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			// No TLS here: 'N' tells the client to go on in plain text.
			if _, err := c.Write([]byte{'N'}); err != nil {
				return
			}
		case *pgproto3.CancelRequest:
			s.cancelSession(m.ProcessID, m.SecretKey)
			return
		case *pgproto3.StartupMessage:
			startup = m
		}
	}
	if startup.ProtocolVersion != pgproto3.ProtocolVersion30 {
		be.Send(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0})
	}
	ss := &session{srv: s, be: be, secret: make([]byte, 4), vars: map[string]string{},
		stmts: map[string]*plan{}, portals: map[string]*portal{}}
	rand.Read(ss.secret)
	s.mu.Lock()
	s.nextPID++
	ss.pid = s.nextPID
	s.sessions[ss.pid] = ss
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sessions, ss.pid)
		s.mu.Unlock()
	}()
	if v := startup.Parameters["application_name"]; v != "" {
		ss.vars["application_name"] = v
	}
	// Trust authentication, then what RisingWave v1.x reports
	// (pg_protocol.rs write_parameter_status_msg_no_flush).
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"})
	be.Send(&pgproto3.ParameterStatus{Name: "standard_conforming_strings", Value: "on"})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "9.5.0"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: ss.pid, SecretKey: ss.secret})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	ss.loop()
}

func (s *Server) cancelSession(pid uint32, secret []byte) {
	s.mu.Lock()
	ss := s.sessions[pid]
	s.mu.Unlock()
	if ss == nil || string(ss.secret) != string(secret) {
		return
	}
	ss.mu.Lock()
	if ss.cancel != nil {
		ss.cancel()
	}
	ss.mu.Unlock()
}

func (ss *session) sendError(err error) {
	se := toSQLError(err)
	ss.be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: se.code, Message: se.msg})
}

// loop serves messages until the client leaves. After an error in the
// extended protocol everything up to Sync is skipped, as PostgreSQL does.
func (ss *session) loop() {
	skipping := false
	for {
		msg, err := ss.be.Receive()
		if err != nil {
			return
		}
		if skipping {
			switch msg.(type) {
			case *pgproto3.Sync:
				skipping = false
			case *pgproto3.Terminate:
				return
			default:
				continue
			}
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			ss.simpleQuery(m.String)
			ss.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			if ss.be.Flush() != nil {
				return
			}
		case *pgproto3.Parse:
			p, err := ss.parseOne(m.Query)
			if err != nil {
				ss.sendError(err)
				skipping = true
				continue
			}
			ss.stmts[m.Name] = p
			ss.be.Send(&pgproto3.ParseComplete{})
		case *pgproto3.Bind:
			p, ok := ss.stmts[m.PreparedStatement]
			switch {
			case !ok:
				ss.sendError(&sqlError{code: "26000", msg: fmt.Sprintf("prepared statement %q does not exist", m.PreparedStatement)})
				skipping = true
			case len(m.Parameters) > 0:
				ss.sendError(rwError("rwsim frontend: bind parameters are not supported"))
				skipping = true
			default:
				ss.portals[m.DestinationPortal] = &portal{plan: p, formats: m.ResultFormatCodes}
				ss.be.Send(&pgproto3.BindComplete{})
			}
		case *pgproto3.Describe:
			var cols []column
			var formats []int16
			if m.ObjectType == 'S' {
				p, ok := ss.stmts[m.Name]
				if !ok {
					ss.sendError(&sqlError{code: "26000", msg: fmt.Sprintf("prepared statement %q does not exist", m.Name)})
					skipping = true
					continue
				}
				ss.be.Send(&pgproto3.ParameterDescription{})
				cols = p.cols
			} else {
				pt, ok := ss.portals[m.Name]
				if !ok {
					ss.sendError(&sqlError{code: "34000", msg: fmt.Sprintf("portal %q does not exist", m.Name)})
					skipping = true
					continue
				}
				cols, formats = pt.plan.cols, pt.formats
			}
			if cols == nil {
				ss.be.Send(&pgproto3.NoData{})
			} else {
				ss.be.Send(rowDescription(cols, formats))
			}
		case *pgproto3.Execute:
			pt, ok := ss.portals[m.Portal]
			if !ok {
				ss.sendError(&sqlError{code: "34000", msg: fmt.Sprintf("portal %q does not exist", m.Portal)})
				skipping = true
				continue
			}
			if err := ss.execute(pt.plan, pt.formats, true, false); err != nil {
				ss.sendError(err)
				skipping = true
			}
		case *pgproto3.Close:
			if m.ObjectType == 'S' {
				delete(ss.stmts, m.Name)
			} else {
				delete(ss.portals, m.Name)
			}
			ss.be.Send(&pgproto3.CloseComplete{})
		case *pgproto3.Sync:
			delete(ss.portals, "") // the unnamed portal ends with the transaction
			ss.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			if ss.be.Flush() != nil {
				return
			}
		case *pgproto3.Flush:
			if ss.be.Flush() != nil {
				return
			}
		case *pgproto3.Terminate:
			return
		default:
			ss.sendError(&sqlError{code: "08P01", msg: fmt.Sprintf("unsupported message %T", msg)})
			skipping = true
		}
	}
}

func rowDescription(cols []column, formats []int16) *pgproto3.RowDescription {
	rd := &pgproto3.RowDescription{}
	for i, c := range cols {
		rd.Fields = append(rd.Fields, pgproto3.FieldDescription{Name: []byte(c.name), DataTypeOID: c.typ.oid(),
			DataTypeSize: c.typ.size(), TypeModifier: -1, Format: formatOf(formats, i)})
	}
	return rd
}

// formatOf applies the Bind rule: no codes = text, one code = all columns.
func formatOf(formats []int16, i int) int16 {
	switch {
	case len(formats) == 0:
		return 0
	case len(formats) == 1:
		return formats[0]
	case i < len(formats):
		return formats[i]
	}
	return 0
}

func (ss *session) simpleQuery(sql string) {
	texts, groups, err := splitStatements(sql)
	if err != nil {
		ss.srv.record(ss.pid, sql, false)
		ss.sendError(rwError("sql parser error: %v", err))
		return
	}
	if len(groups) == 0 {
		ss.be.Send(&pgproto3.EmptyQueryResponse{})
		return
	}
	for i, toks := range groups {
		p, err := ss.plan(texts[i], toks)
		if err != nil {
			ss.srv.record(ss.pid, texts[i], false)
			ss.sendError(err)
			return
		}
		if err := ss.execute(p, nil, false, true); err != nil {
			ss.sendError(err)
			return
		}
	}
}

// parseOne plans a Parse message's query, which must be one statement.
func (ss *session) parseOne(sql string) (*plan, error) {
	texts, groups, err := splitStatements(sql)
	if err != nil {
		return nil, rwError("sql parser error: %v", err)
	}
	switch len(groups) {
	case 0:
		return &plan{sql: "", run: nil}, nil
	case 1:
		return ss.plan(texts[0], groups[0])
	}
	return nil, &sqlError{code: "42601", msg: "cannot insert multiple commands into a prepared statement"}
}

// execute runs p and streams its rows. describe sends a RowDescription
// first (simple protocol does; Execute does not).
func (ss *session) execute(p *plan, formats []int16, extended, describe bool) error {
	ss.srv.record(ss.pid, p.sql, extended)
	if p.run == nil {
		ss.be.Send(&pgproto3.EmptyQueryResponse{})
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	ss.mu.Lock()
	ss.cancel = cancel
	ss.mu.Unlock()
	rows, tag, err := p.run(ctx)
	ss.mu.Lock()
	ss.cancel = nil
	ss.mu.Unlock()
	cancel()
	if err != nil {
		return err
	}
	if describe && p.cols != nil {
		ss.be.Send(rowDescription(p.cols, nil))
	}
	for _, r := range rows {
		dr := &pgproto3.DataRow{Values: make([][]byte, len(r))}
		for i, v := range r {
			if formatOf(formats, i) == 1 {
				dr.Values[i] = encodeBinary(p.cols[i].typ, v)
			} else {
				dr.Values[i] = encodeText(p.cols[i].typ, v)
			}
		}
		ss.be.Send(dr)
	}
	ss.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	return nil
}

// plan turns one statement into a plan, resolving names now so Describe
// knows the columns; data is read at execution.
func (ss *session) plan(sql string, toks []token) (*plan, error) {
	st, err := parseStatement(toks)
	if err != nil {
		return nil, rwError("sql parser error: %v", err)
	}
	switch st := st.(type) {
	case nil:
		return &plan{sql: sql}, nil
	case *setStmt:
		return &plan{sql: sql, run: func(context.Context) ([][]any, string, error) {
			return nil, "SET", ss.set(st)
		}}, nil
	case *showStmt:
		if _, err := ss.show(st.name); err != nil {
			return nil, err
		}
		return &plan{sql: sql, cols: []column{{strings.ToLower(st.name), Varchar}},
			run: func(context.Context) ([][]any, string, error) {
				v, err := ss.show(st.name)
				return [][]any{{v}}, "SHOW", err
			}}, nil
	case *selectStmt:
		return ss.planSelect(sql, st)
	}
	return nil, rwError("unsupported statement")
}

// configNames are the session variables SHOW and SET know besides
// query_epoch (a few of RisingWave's, for scripts that poke around).
var configNames = map[string]string{
	"timezone": "UTC", "application_name": "", "search_path": `"$user", public`,
	"transaction_isolation": "read committed", "server_version": "9.5.0", "rw_implicit_flush": "false",
}

func (ss *session) set(st *setStmt) error {
	name := strings.ToLower(st.name)
	if ss.srv.opts.NoCatalog && name == "query_epoch" {
		return &sqlError{code: "42704", msg: fmt.Sprintf("unrecognized configuration parameter %q", name)}
	}
	if name == "query_epoch" {
		// ConfigNonZeroU64: u64 parse, 0 = off; no range check (RisingWave
		// validates only when a query reads the backup).
		var v uint64
		if !st.isDef {
			var err error
			if v, err = strconv.ParseUint(st.value, 10, 64); err != nil {
				return rwError("Failed to get/set session config: Invalid value `%s` for `query_epoch`\n\nCaused by:\n  %s",
					st.value, rustParseIntError(st.value, err))
			}
		}
		ss.mu.Lock()
		ss.queryEpoch = v
		ss.mu.Unlock()
		return nil
	}
	if _, ok := configNames[name]; !ok {
		return rwError("Failed to get/set session config: Unrecognized config entry `%s`", name)
	}
	if st.isDef {
		delete(ss.vars, name)
	} else {
		ss.vars[name] = st.value
	}
	return nil
}

// rustParseIntError is Rust's ParseIntError text, which RisingWave shows.
func rustParseIntError(s string, err error) string {
	switch {
	case s == "":
		return "cannot parse integer from empty string"
	case errors.Is(err, strconv.ErrRange):
		return "number too large to fit in target type"
	}
	return "invalid digit found in string"
}

func (ss *session) show(name string) (string, error) {
	name = strings.ToLower(name)
	if name == "query_epoch" && !ss.srv.opts.NoCatalog {
		return strconv.FormatUint(ss.epoch(), 10), nil
	}
	if v, ok := ss.vars[name]; ok {
		return v, nil
	}
	if v, ok := configNames[name]; ok {
		return v, nil
	}
	if ss.srv.opts.NoCatalog {
		return "", &sqlError{code: "42704", msg: fmt.Sprintf("unrecognized configuration parameter %q", name)}
	}
	return "", rwError("Failed to get/set session config: Unrecognized config entry `%s`", name)
}

// source is what a SELECT reads: columns and a reader.
type source struct {
	cols []Column
	read func(ctx context.Context) ([][]any, error)
}

func (ss *session) resolve(schema, name string) (*source, error) {
	s := ss.srv
	if (schema == "rw_catalog" || schema == "") && name == "rw_meta_snapshot" && !s.opts.NoCatalog {
		return &source{cols: s.metaSnapshotColumns(), read: s.metaSnapshotRows}, nil
	}
	if schema == "" || schema == "public" {
		s.mu.Lock()
		t, ok := s.tables[name]
		var cols []Column
		if ok {
			cols = append(cols, t.cols...)
		}
		s.mu.Unlock()
		if ok {
			return &source{cols: cols, read: func(ctx context.Context) ([][]any, error) {
				epoch := ss.epoch()
				if epoch != 0 {
					if err := s.checkBackupEpoch(ctx, t.id, epoch); err != nil {
						return nil, err
					}
				}
				if err := s.checkHummock(ctx); err != nil {
					return nil, err
				}
				s.mu.Lock()
				defer s.mu.Unlock()
				return t.readAt(epoch), nil
			}}, nil
		}
	}
	full := name
	if schema != "" {
		full = schema + "." + name
	}
	if s.opts.NoCatalog {
		return nil, &sqlError{code: "42P01", msg: fmt.Sprintf("relation %q does not exist", full)}
	}
	return nil, rwError("Catalog error: table or source not found: %s", full)
}

func (ss *session) planSelect(sql string, st *selectStmt) (*plan, error) {
	src := &source{read: func(context.Context) ([][]any, error) { return [][]any{{}}, nil }}
	if st.table != "" {
		var err error
		if src, err = ss.resolve(st.schema, st.table); err != nil {
			return nil, err
		}
	}
	colIndex := func(name string) (int, error) {
		for i, c := range src.cols {
			if c.Name == name {
				return i, nil
			}
		}
		return 0, rwError("Failed to bind expression: %s\n\nCaused by:\n  Item not found: Invalid column: %s", name, name)
	}
	type outCol struct {
		col  column
		src  int // source column for itemColumn/itemCount
		item selectItem
	}
	var outs []outCol
	aggregate := false
	for _, it := range st.items {
		switch it.kind {
		case itemStar:
			if st.table == "" {
				return nil, rwError("sql parser error: SELECT * with no tables specified is not valid")
			}
			for i, c := range src.cols {
				outs = append(outs, outCol{col: column{c.Name, c.Type}, src: i, item: selectItem{kind: itemColumn, col: c.Name}})
			}
			continue
		case itemColumn:
			i, err := colIndex(it.col)
			if err != nil {
				return nil, err
			}
			outs = append(outs, outCol{col: column{it.col, src.cols[i].Type}, src: i, item: it})
		case itemCountStar:
			aggregate = true
			outs = append(outs, outCol{col: column{"count", Int8}, item: it})
		case itemCount:
			i, err := colIndex(it.col)
			if err != nil {
				return nil, err
			}
			aggregate = true
			outs = append(outs, outCol{col: column{"count", Int8}, src: i, item: it})
		case itemLiteral:
			typ := Varchar
			switch v := it.lit.(type) {
			case int64:
				typ = Int4
				if v != int64(int32(v)) {
					typ = Int8
				}
			case float64:
				typ = Float8
			case bool:
				typ = Bool
			}
			outs = append(outs, outCol{col: column{"?column?", typ}, item: it})
		case itemFunc:
			outs = append(outs, outCol{col: column{it.col, Varchar}, item: it})
		}
		if it.alias != "" {
			outs[len(outs)-1].col.name = it.alias
		}
	}
	if aggregate {
		for _, o := range outs {
			if o.item.kind == itemColumn {
				return nil, rwError("Invalid input syntax: column must appear in the GROUP BY clause or be used in an aggregate function")
			}
		}
	}
	type filter struct {
		idx int
		c   cond
	}
	var filters []filter
	for _, c := range st.where {
		i, err := colIndex(c.col)
		if err != nil {
			return nil, err
		}
		filters = append(filters, filter{i, c})
	}
	type sortKey struct {
		src, out int // one of them >= 0
		desc     bool
	}
	var keys []sortKey
	for _, k := range st.order {
		sk := sortKey{src: -1, out: -1, desc: k.desc}
		switch {
		case k.pos > 0:
			if k.pos > len(outs) {
				return nil, rwError("Invalid input syntax: ORDER BY position %d is not in select list", k.pos)
			}
			sk.out = k.pos - 1
		default:
			for i, o := range outs {
				if o.col.name == k.col {
					sk.out = i
					break
				}
			}
			if sk.out < 0 {
				i, err := colIndex(k.col)
				if err != nil {
					return nil, err
				}
				sk.src = i
			}
		}
		keys = append(keys, sk)
	}
	cols := make([]column, len(outs))
	for i, o := range outs {
		cols[i] = o.col
	}
	run := func(ctx context.Context) ([][]any, string, error) {
		in, err := src.read(ctx)
		if err != nil {
			return nil, "", err
		}
		var kept [][]any
		for _, r := range in {
			ok := true
			for _, f := range filters {
				if !matches(r[f.idx], f.c) {
					ok = false
					break
				}
			}
			if ok {
				kept = append(kept, r)
			}
		}
		type pair struct{ src, out []any }
		var rows []pair
		if aggregate {
			out := make([]any, len(outs))
			for i, o := range outs {
				switch o.item.kind {
				case itemCountStar:
					out[i] = int64(len(kept))
				case itemCount:
					n := int64(0)
					for _, r := range kept {
						if r[o.src] != nil {
							n++
						}
					}
					out[i] = n
				default:
					v, err := ss.evalConst(ctx, o.item)
					if err != nil {
						return nil, "", err
					}
					out[i] = v
				}
			}
			rows = append(rows, pair{nil, out})
		} else {
			for _, r := range kept {
				out := make([]any, len(outs))
				for i, o := range outs {
					if o.item.kind == itemColumn {
						out[i] = r[o.src]
						continue
					}
					v, err := ss.evalConst(ctx, o.item)
					if err != nil {
						return nil, "", err
					}
					out[i] = v
				}
				rows = append(rows, pair{r, out})
			}
		}
		sort.SliceStable(rows, func(a, b int) bool {
			for _, k := range keys {
				var c int
				if k.out >= 0 {
					c = compare(rows[a].out[k.out], rows[b].out[k.out])
				} else {
					c = compare(rows[a].src[k.src], rows[b].src[k.src])
				}
				if k.desc {
					c = -c
				}
				if c != 0 {
					return c < 0
				}
			}
			return false
		})
		if st.limit >= 0 && int64(len(rows)) > st.limit {
			rows = rows[:st.limit]
		}
		result := make([][]any, len(rows))
		for i, r := range rows {
			result[i] = r.out
		}
		return result, "SELECT " + strconv.Itoa(len(result)), nil
	}
	return &plan{sql: sql, cols: cols, run: run}, nil
}

func matches(v any, c cond) bool {
	if v == nil || c.lit == nil {
		return false // NULL compares to nothing
	}
	r := compare(v, c.lit)
	switch c.op {
	case "=":
		return r == 0
	case "<>", "!=":
		return r != 0
	case "<":
		return r < 0
	case ">":
		return r > 0
	case "<=":
		return r <= 0
	case ">=":
		return r >= 0
	}
	return false
}

func (ss *session) evalConst(ctx context.Context, it selectItem) (any, error) {
	switch it.kind {
	case itemLiteral:
		return it.lit, nil
	case itemFunc:
		switch it.col {
		case "version":
			return fmt.Sprintf("PostgreSQL 9.5-RisingWave-%s (rwsim)", ss.srv.opts.Version), nil
		case "current_setting":
			name, _ := it.lit.(string)
			return ss.show(name)
		case "pg_sleep":
			var d time.Duration
			switch v := it.lit.(type) {
			case int64:
				d = time.Duration(v) * time.Second
			case float64:
				d = time.Duration(v * float64(time.Second))
			}
			select {
			case <-time.After(d):
				return "", nil
			case <-ctx.Done():
				return nil, &sqlError{code: "57014", msg: "canceling statement due to user request"}
			}
		}
	}
	return nil, rwError("cannot evaluate %s", it.col)
}
