// Package catalog decodes the RisingWave catalog a meta snapshot holds
// (databases, schemas, tables with their materialized views, indexes and
// internal tables, sources, sinks, views, functions, connections,
// subscriptions (v1.8+), secrets (v2.0.x), users with their privileges)
// into plain Go values, with every credential redacted. It works on the
// snapshot's bytes alone: no cluster is needed.
//
// The messages are decoded with Go code generated from rwsnap's own subset
// of RisingWave's .proto files (proto/catalog.proto, proto/user.proto), as
// the hummock package does, rather than with hand-written protowire code:
// the field numbers are then checked in one readable place against
// RisingWave's, fields of newer versions are skipped as unknown fields
// without code, and the one layout conflict between versions (subscription
// field 10) is absorbed by a repeated field, which accepts both encodings.
package catalog

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/catalog/catalogpb"
	"github.com/rwsnap/rwsnap/catalog/userpb"
	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/metasnap"
)

// Kind is what a catalog object is, as inspect, diff and --ddl name it.
type Kind string

// Relation kinds, in the order --ddl creates them when nothing else decides.
const (
	KindSecret           Kind = "secret"
	KindConnection       Kind = "connection"
	KindFunction         Kind = "function"
	KindSource           Kind = "source"
	KindTable            Kind = "table"
	KindMaterializedView Kind = "materialized_view"
	KindIndex            Kind = "index"
	KindView             Kind = "view"
	KindSink             Kind = "sink"
	KindSubscription     Kind = "subscription"
	// KindInternal is a streaming job's state table: listed for its
	// storage, never in --ddl (the job recreates it).
	KindInternal Kind = "internal"
)

// Ref names a catalog object.
type Ref struct {
	Kind Kind   `json:"kind"`
	ID   uint32 `json:"id"`
}

// Column is one column of a relation.
type Column struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Hidden bool   `json:"hidden,omitempty"`
}

// Relation is one catalog object.
type Relation struct {
	Kind       Kind
	ID         uint32
	Name       string
	DatabaseID uint32
	SchemaID   uint32
	Owner      uint32
	// Definition is the stored SQL with credentials replaced by
	// Redacted; RawDefinition the stored SQL as is (kept for --ddl, which
	// replaces them with placeholders; never printed).
	Definition    string
	RawDefinition string
	DependsOn     []Ref
	CreatedEpoch  uint64
	Columns       []Column
	// Properties are WITH properties / connection info, credentials
	// replaced by Redacted; Redacted names what was replaced, in
	// properties and in the definition.
	Properties map[string]string
	Redacted   []string
	// RawProperties are the properties as stored (never printed; diff
	// uses them to tell that a redacted credential changed).
	RawProperties map[string]string
	// SecretRefs maps a property to the id of the secret it references (v1.10+).
	SecretRefs map[string]uint32
	// AssociatedTable is set on the source of a table with a connector
	// (CREATE TABLE ... WITH (connector = ...)): the table's DDL creates it.
	AssociatedTable uint32
	// IndexTable is the state table of an index.
	IndexTable uint32
	// Function is the signature of a function (functions have no stored
	// definition in v1.x).
	Function *FunctionInfo
	// StateTables are the storage tables of a relation: its own id for
	// tables and MVs, the index table for an index.
	StateTables []uint32
}

// FunctionInfo is what CREATE FUNCTION needs.
type FunctionInfo struct {
	Args       []Column
	Returns    string
	Language   string
	Link       string
	Identifier string
	Body       string
	Kind       string // scalar, table, aggregate
}

// Database and Schema are namespaces.
type Database struct {
	ID    uint32
	Name  string
	Owner uint32
}

// Schema is a schema of a database.
type Schema struct {
	ID         uint32
	DatabaseID uint32
	Name       string
	Owner      uint32
}

// User is a user without its password hash.
type User struct {
	ID            uint32      `json:"id"`
	Name          string      `json:"name"`
	IsSuper       bool        `json:"is_super"`
	CanCreateDB   bool        `json:"can_create_db"`
	CanCreateUser bool        `json:"can_create_user"`
	CanLogin      bool        `json:"can_login"`
	Auth          string      `json:"auth"` // e.g. "md5 password (hash not shown)", "none"
	Privileges    []Privilege `json:"privileges"`
}

// Privilege is one GRANT held by a user.
type Privilege struct {
	// On is what it is granted on: database, schema, table, source, sink,
	// view, function, subscription, or all_tables_in_schema,
	// all_sources_in_schema, all_dml_relations_in_schema.
	On       string   `json:"on"`
	ObjectID uint32   `json:"object_id"`
	Actions  []Action `json:"actions"`
}

// Action is one granted action.
type Action struct {
	Action          string `json:"action"`
	WithGrantOption bool   `json:"with_grant_option"`
	GrantedBy       uint32 `json:"granted_by"`
}

// Problem is a catalog message that could not be decoded; the rest of the
// catalog is still shown.
type Problem struct {
	Section string `json:"section"` // the snapshot list, e.g. "table"
	Index   int    `json:"index"`   // position in that list
	// Key is the etcd key the message was stored under, when its id could
	// be read (cf/catalog_table/<id>).
	Key   string `json:"key"`
	Error string `json:"error"`
}

func (p Problem) String() string {
	return fmt.Sprintf("%s item %d (%s) could not be decoded: %s", p.Section, p.Index, p.Key, p.Error)
}

// Catalog is a decoded snapshot catalog.
type Catalog struct {
	Databases []Database
	Schemas   []Schema
	Relations []Relation // by kind order, then id
	Users     []User
	// TableNames names every state table (tables, MVs, index tables,
	// internal tables) for the storage view.
	TableNames map[uint32]string
	Problems   []Problem
	// HasSubscriptions / HasSecrets say whether the snapshot carried the
	// v1.8+ and v2.0 lists.
	HasSubscriptions, HasSecrets bool
}

// cfNames are the etcd column families of the snapshot lists.
var cfNames = map[string]string{
	"database": "cf/catalog_database", "schema": "cf/catalog_schema", "table": "cf/catalog_table",
	"index": "cf/catalog_index", "sink": "cf/catalog_sink", "source": "cf/catalog_source",
	"view": "cf/catalog_view", "function": "cf/catalog_function", "connection": "cf/catalog_connection",
	"subscription": "cf/catalog_subscription", "secret": "cf/catalog_secret", "user_info": "cf/user_info",
}

type decoder struct {
	c *Catalog
}

// decode unmarshals one list item, recording a Problem on failure.
func (d *decoder) decode(section string, i int, b []byte, m proto.Message) bool {
	if err := proto.Unmarshal(b, m); err != nil {
		key := cfNames[section] + "/"
		if id, ok := leadingID(b); ok {
			key += fmt.Sprint(id)
		} else {
			key += "?"
		}
		d.c.Problems = append(d.c.Problems, Problem{Section: section, Index: i, Key: key, Error: err.Error()})
		return false
	}
	return true
}

// leadingID reads field 1 (the id of every catalog message) from a message
// that may be corrupt further on.
func leadingID(b []byte) (uint64, bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != 1 || typ != protowire.VarintType {
		return 0, false
	}
	v, m := protowire.ConsumeVarint(b[n:])
	return v, m >= 0
}

// Decode decodes the catalog of a format-1 snapshot. Messages that do not
// decode are reported in Catalog.Problems and left out; the rest is kept.
func Decode(md *metasnap.ClusterMetadata) *Catalog {
	c := &Catalog{TableNames: map[uint32]string{}, HasSubscriptions: md.HasSubscriptions, HasSecrets: md.HasSecrets}
	d := &decoder{c: c}
	for i, b := range md.Databases {
		var m catalogpb.Database
		if d.decode("database", i, b, &m) {
			c.Databases = append(c.Databases, Database{ID: m.Id, Name: m.Name, Owner: m.Owner})
		}
	}
	for i, b := range md.Schemas {
		var m catalogpb.Schema
		if d.decode("schema", i, b, &m) {
			c.Schemas = append(c.Schemas, Schema{ID: m.Id, DatabaseID: m.DatabaseId, Name: m.Name, Owner: m.Owner})
		}
	}
	indexTables := map[uint32]*catalogpb.Table{}
	for i, b := range md.Tables {
		var m catalogpb.Table
		if !d.decode("table", i, b, &m) {
			continue
		}
		c.TableNames[m.Id] = m.Name
		kind := KindTable
		switch m.TableType {
		case catalogpb.Table_MATERIALIZED_VIEW:
			kind = KindMaterializedView
		case catalogpb.Table_INDEX:
			indexTables[m.Id] = &m
			continue // shown as its Index
		case catalogpb.Table_INTERNAL:
			kind = KindInternal
		}
		r := Relation{Kind: kind, ID: m.Id, Name: m.Name, DatabaseID: m.DatabaseId, SchemaID: m.SchemaId, Owner: m.Owner,
			CreatedEpoch: m.GetCreatedAtEpoch(), Columns: columns(m.Columns), StateTables: []uint32{m.Id}}
		r.setDefinition(m.Definition)
		r.DependsOn = refs(m.DependentRelations)
		r.setProperties(m.Properties, nil)
		c.Relations = append(c.Relations, r)
	}
	for i, b := range md.Indexes {
		var m catalogpb.Index
		if !d.decode("index", i, b, &m) {
			continue
		}
		r := Relation{Kind: KindIndex, ID: m.Id, Name: m.Name, DatabaseID: m.DatabaseId, SchemaID: m.SchemaId, Owner: m.Owner,
			CreatedEpoch: m.GetCreatedAtEpoch(), IndexTable: m.IndexTableId, StateTables: []uint32{m.IndexTableId},
			DependsOn: []Ref{{ID: m.PrimaryTableId}}}
		if t := indexTables[m.IndexTableId]; t != nil {
			r.setDefinition(t.Definition)
			r.Columns = columns(t.Columns)
			delete(indexTables, m.IndexTableId)
		}
		c.Relations = append(c.Relations, r)
	}
	// An index table without its Index (a torn catalog) is still shown.
	for _, t := range indexTables {
		r := Relation{Kind: KindIndex, ID: t.Id, Name: t.Name, DatabaseID: t.DatabaseId, SchemaID: t.SchemaId, Owner: t.Owner,
			CreatedEpoch: t.GetCreatedAtEpoch(), Columns: columns(t.Columns), StateTables: []uint32{t.Id}, DependsOn: refs(t.DependentRelations)}
		r.setDefinition(t.Definition)
		c.Relations = append(c.Relations, r)
	}
	for i, b := range md.Sources {
		var m catalogpb.Source
		if !d.decode("source", i, b, &m) {
			continue
		}
		r := Relation{Kind: KindSource, ID: m.Id, Name: m.Name, DatabaseID: m.DatabaseId, SchemaID: m.SchemaId, Owner: m.Owner,
			CreatedEpoch: m.GetCreatedAtEpoch(), Columns: columns(m.Columns), AssociatedTable: m.GetAssociatedTableId()}
		r.setDefinition(m.Definition)
		props := map[string]string{}
		for k, v := range m.WithProperties {
			props[k] = v
		}
		for k, v := range m.GetInfo().GetFormatEncodeOptions() {
			props["format_encode."+k] = v
		}
		refsMap := map[string]*catalogpb.SecretRef{}
		for k, v := range m.SecretRefs {
			refsMap[k] = v
		}
		// StreamSourceInfo field 16 is v1.10's secret_ref (of the WITH
		// properties) and v2.0's format_encode_secret_refs (Source field 19
		// took over the WITH properties). v2.0 snapshots carry the secret
		// list (section 20); v1.10 ones do not.
		prefix := "format_encode."
		if !md.HasSecrets {
			prefix = ""
		}
		for k, v := range m.GetInfo().GetFormatEncodeSecretRefs() {
			refsMap[prefix+k] = v
		}
		r.setProperties(props, refsMap)
		if m.ConnectionId != nil {
			r.DependsOn = append(r.DependsOn, Ref{Kind: KindConnection, ID: *m.ConnectionId})
		}
		c.Relations = append(c.Relations, r)
	}
	for i, b := range md.Sinks {
		var m catalogpb.Sink
		if !d.decode("sink", i, b, &m) {
			continue
		}
		r := Relation{Kind: KindSink, ID: m.Id, Name: m.Name, DatabaseID: m.DatabaseId, SchemaID: m.SchemaId, Owner: m.Owner,
			CreatedEpoch: m.GetCreatedAtEpoch(), Columns: columns(m.Columns), DependsOn: refs(m.DependentRelations)}
		r.setDefinition(m.Definition)
		props := map[string]string{}
		for k, v := range m.Properties {
			props[k] = v
		}
		for k, v := range m.GetFormatDesc().GetOptions() {
			props["format_encode."+k] = v
		}
		refsMap := map[string]*catalogpb.SecretRef{}
		for k, v := range m.SecretRefs {
			refsMap[k] = v
		}
		for k, v := range m.GetFormatDesc().GetSecretRefs() {
			refsMap["format_encode."+k] = v
		}
		r.setProperties(props, refsMap)
		if m.ConnectionId != nil {
			r.DependsOn = append(r.DependsOn, Ref{Kind: KindConnection, ID: *m.ConnectionId})
		}
		if m.TargetTable != nil {
			r.DependsOn = append(r.DependsOn, Ref{ID: *m.TargetTable})
		}
		c.Relations = append(c.Relations, r)
	}
	for i, b := range md.Views {
		var m catalogpb.View
		if !d.decode("view", i, b, &m) {
			continue
		}
		r := Relation{Kind: KindView, ID: m.Id, Name: m.Name, DatabaseID: m.DatabaseId, SchemaID: m.SchemaId, Owner: m.Owner,
			DependsOn: refs(m.DependentRelations)}
		for _, f := range m.Columns {
			r.Columns = append(r.Columns, Column{Name: f.Name, Type: TypeString(f.DataType)})
		}
		// A view stores its query only; the DDL is CREATE VIEW name AS sql.
		r.setDefinition(m.Sql)
		r.setProperties(m.Properties, nil)
		c.Relations = append(c.Relations, r)
	}
	for i, b := range md.Functions {
		var m catalogpb.Function
		if !d.decode("function", i, b, &m) {
			continue
		}
		fi := &FunctionInfo{Returns: TypeString(m.ReturnType), Language: m.Language, Link: m.GetLink(), Identifier: m.GetIdentifier(), Body: m.GetBody(), Kind: "scalar"}
		switch m.Kind.(type) {
		case *catalogpb.Function_Table:
			fi.Kind = "table"
		case *catalogpb.Function_Aggregate:
			fi.Kind = "aggregate"
		}
		for j, t := range m.ArgTypes {
			a := Column{Type: TypeString(t)}
			if j < len(m.ArgNames) {
				a.Name = m.ArgNames[j]
			}
			fi.Args = append(fi.Args, a)
		}
		r := Relation{Kind: KindFunction, ID: m.Id, Name: m.Name, DatabaseID: m.DatabaseId, SchemaID: m.SchemaId, Owner: m.Owner, Function: fi}
		if fi.Link != "" {
			r.Properties = map[string]string{"link": fi.Link}
			if LooksLikeCredential(fi.Link) {
				r.Properties["link"] = Redacted
				r.Redacted = []string{"link"}
			}
		}
		c.Relations = append(c.Relations, r)
	}
	for i, b := range md.Connections {
		var m catalogpb.Connection
		if !d.decode("connection", i, b, &m) {
			continue
		}
		r := Relation{Kind: KindConnection, ID: m.Id, Name: m.Name, DatabaseID: m.DatabaseId, SchemaID: m.SchemaId, Owner: m.Owner}
		if pl := m.GetPrivateLinkService(); pl != nil {
			props := map[string]string{"type": "privatelink", "provider": strings.ToLower(pl.Provider.String()),
				"service.name": pl.ServiceName, "endpoint_id": pl.EndpointId}
			if pl.EndpointDnsName != "" {
				props["endpoint_dns_name"] = pl.EndpointDnsName
			}
			r.setProperties(props, nil)
		}
		c.Relations = append(c.Relations, r)
	}
	for i, b := range md.Subscriptions {
		var m catalogpb.Subscription
		if !d.decode("subscription", i, b, &m) {
			continue
		}
		r := Relation{Kind: KindSubscription, ID: m.Id, Name: m.Name, DatabaseID: m.DatabaseId, SchemaID: m.SchemaId, Owner: m.Owner,
			CreatedEpoch: m.GetCreatedAtEpoch(), DependsOn: refs(m.DependentRelations)}
		r.setDefinition(m.Definition)
		c.Relations = append(c.Relations, r)
	}
	for i, b := range md.Secrets {
		var m catalogpb.Secret
		if !d.decode("secret", i, b, &m) {
			continue
		}
		// Only the name: the value is the secret (encrypted, but still
		// never shown), and it is not in any output.
		c.Relations = append(c.Relations, Relation{Kind: KindSecret, ID: m.Id, Name: m.Name, DatabaseID: m.DatabaseId, SchemaID: m.SchemaId, Owner: m.Owner,
			Redacted: []string{"value"}})
	}
	for i, b := range md.UserInfo {
		var m userpb.UserInfo
		if d.decode("user_info", i, b, &m) {
			c.Users = append(c.Users, user(&m))
		}
	}
	c.resolveKinds()
	c.sort()
	return c
}

// resolveKinds fills in the kind of dependencies given by id only: tables,
// MVs, sources, sinks, views and indexes share one id space (the table id
// generator).
func (c *Catalog) resolveKinds() {
	byID := map[uint32]Kind{}
	for _, r := range c.Relations {
		switch r.Kind {
		case KindFunction, KindConnection, KindSecret:
		default:
			byID[r.ID] = r.Kind
		}
		if r.IndexTable != 0 {
			byID[r.IndexTable] = KindIndex
		}
	}
	for i := range c.Relations {
		r := &c.Relations[i]
		for j := range r.DependsOn {
			d := &r.DependsOn[j]
			if d.Kind == "" {
				if k, ok := byID[d.ID]; ok {
					d.Kind = k
				} else {
					d.Kind = KindTable // dropped or not in this snapshot
				}
			}
		}
		for _, id := range r.SecretRefs {
			r.DependsOn = append(r.DependsOn, Ref{Kind: KindSecret, ID: id})
		}
		sort.Slice(r.DependsOn, func(a, b int) bool {
			if r.DependsOn[a].ID != r.DependsOn[b].ID {
				return r.DependsOn[a].ID < r.DependsOn[b].ID
			}
			return r.DependsOn[a].Kind < r.DependsOn[b].Kind
		})
		r.DependsOn = dedupRefs(r.DependsOn)
	}
}

func dedupRefs(rs []Ref) []Ref {
	out := rs[:0]
	for i, r := range rs {
		if i == 0 || r != rs[i-1] {
			out = append(out, r)
		}
	}
	return out
}

var kindOrder = map[Kind]int{KindSecret: 0, KindConnection: 1, KindFunction: 2, KindSource: 3, KindTable: 4,
	KindMaterializedView: 5, KindIndex: 6, KindView: 7, KindSink: 8, KindSubscription: 9, KindInternal: 10}

// KindRank orders kinds for display and as the --ddl tie-breaker.
func KindRank(k Kind) int { return kindOrder[k] }

func (c *Catalog) sort() {
	sort.Slice(c.Databases, func(i, j int) bool { return c.Databases[i].ID < c.Databases[j].ID })
	sort.Slice(c.Schemas, func(i, j int) bool { return c.Schemas[i].ID < c.Schemas[j].ID })
	sort.SliceStable(c.Relations, func(i, j int) bool {
		a, b := c.Relations[i], c.Relations[j]
		if a.Kind != b.Kind {
			return kindOrder[a.Kind] < kindOrder[b.Kind]
		}
		return a.ID < b.ID
	})
	sort.Slice(c.Users, func(i, j int) bool { return c.Users[i].ID < c.Users[j].ID })
}

func (r *Relation) setDefinition(def string) {
	r.RawDefinition = def
	red, names := RedactSQL(def, func(string) string { return "'" + Redacted + "'" })
	r.Definition = red
	for _, n := range names {
		if n == "" {
			n = "definition"
		}
		r.Redacted = appendUnique(r.Redacted, n)
	}
}

func (r *Relation) setProperties(props map[string]string, secretRefs map[string]*catalogpb.SecretRef) {
	r.RawProperties = props
	red, names := RedactProperties(props)
	r.Properties = red
	for _, n := range names {
		r.Redacted = appendUnique(r.Redacted, n)
	}
	if len(secretRefs) > 0 {
		r.SecretRefs = map[string]uint32{}
		for k, v := range secretRefs {
			r.SecretRefs[k] = v.SecretId
		}
	}
	sort.Strings(r.Redacted)
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func refs(ids []uint32) []Ref {
	out := make([]Ref, 0, len(ids))
	for _, id := range ids {
		out = append(out, Ref{ID: id})
	}
	return out
}

func columns(cs []*catalogpb.ColumnCatalog) []Column {
	out := make([]Column, 0, len(cs))
	for _, c := range cs {
		d := c.GetColumnDesc()
		out = append(out, Column{Name: d.GetName(), Type: TypeString(d.GetColumnType()), Hidden: c.IsHidden})
	}
	return out
}

// TypeString renders a data.DataType as SQL.
func TypeString(t *catalogpb.DataType) string {
	if t == nil {
		return "unknown"
	}
	switch t.TypeName {
	case catalogpb.DataType_INT16:
		return "smallint"
	case catalogpb.DataType_INT32:
		return "integer"
	case catalogpb.DataType_INT64:
		return "bigint"
	case catalogpb.DataType_FLOAT:
		return "real"
	case catalogpb.DataType_DOUBLE:
		return "double precision"
	case catalogpb.DataType_BOOLEAN:
		return "boolean"
	case catalogpb.DataType_VARCHAR:
		return "varchar"
	case catalogpb.DataType_DECIMAL:
		return "numeric"
	case catalogpb.DataType_TIME:
		return "time"
	case catalogpb.DataType_TIMESTAMP:
		return "timestamp"
	case catalogpb.DataType_INTERVAL:
		return "interval"
	case catalogpb.DataType_DATE:
		return "date"
	case catalogpb.DataType_TIMESTAMPTZ:
		return "timestamptz"
	case catalogpb.DataType_BYTEA:
		return "bytea"
	case catalogpb.DataType_JSONB:
		return "jsonb"
	case catalogpb.DataType_SERIAL:
		return "serial"
	case catalogpb.DataType_INT256:
		return "rw_int256"
	case catalogpb.DataType_LIST:
		if len(t.FieldType) == 1 {
			return TypeString(t.FieldType[0]) + "[]"
		}
		return "list"
	case catalogpb.DataType_STRUCT:
		var parts []string
		for i, f := range t.FieldType {
			name := fmt.Sprintf("f%d", i+1)
			if i < len(t.FieldNames) {
				name = t.FieldNames[i]
			}
			parts = append(parts, name+" "+TypeString(f))
		}
		return "struct<" + strings.Join(parts, ", ") + ">"
	case catalogpb.DataType_MAP:
		if len(t.FieldType) == 1 && len(t.FieldType[0].FieldType) == 2 {
			return "map(" + TypeString(t.FieldType[0].FieldType[0]) + ", " + TypeString(t.FieldType[0].FieldType[1]) + ")"
		}
		return "map"
	}
	return strings.ToLower(t.TypeName.String())
}

func user(m *userpb.UserInfo) User {
	u := User{ID: m.Id, Name: m.Name, IsSuper: m.IsSuper, CanCreateDB: m.CanCreateDb, CanCreateUser: m.CanCreateUser,
		CanLogin: m.CanLogin, Auth: "none", Privileges: []Privilege{}}
	if a := m.AuthInfo; a != nil {
		// Never the hash: only which kind of authentication is set.
		switch a.EncryptionType {
		case userpb.AuthInfo_OAUTH:
			u.Auth = "oauth"
		case userpb.AuthInfo_PLAINTEXT, userpb.AuthInfo_SHA256, userpb.AuthInfo_MD5:
			u.Auth = strings.ToLower(a.EncryptionType.String()) + " password (hash not shown)"
		default:
			u.Auth = "password (hash not shown)"
		}
	}
	for _, g := range m.GrantPrivileges {
		p := Privilege{}
		switch o := g.Object.(type) {
		case *userpb.GrantPrivilege_DatabaseId:
			p.On, p.ObjectID = "database", o.DatabaseId
		case *userpb.GrantPrivilege_SchemaId:
			p.On, p.ObjectID = "schema", o.SchemaId
		case *userpb.GrantPrivilege_TableId:
			p.On, p.ObjectID = "table", o.TableId
		case *userpb.GrantPrivilege_SourceId:
			p.On, p.ObjectID = "source", o.SourceId
		case *userpb.GrantPrivilege_SinkId:
			p.On, p.ObjectID = "sink", o.SinkId
		case *userpb.GrantPrivilege_ViewId:
			p.On, p.ObjectID = "view", o.ViewId
		case *userpb.GrantPrivilege_FunctionId:
			p.On, p.ObjectID = "function", o.FunctionId
		case *userpb.GrantPrivilege_SubscriptionId:
			p.On, p.ObjectID = "subscription", o.SubscriptionId
		case *userpb.GrantPrivilege_AllTablesSchemaId:
			p.On, p.ObjectID = "all_tables_in_schema", o.AllTablesSchemaId
		case *userpb.GrantPrivilege_AllSourcesSchemaId:
			p.On, p.ObjectID = "all_sources_in_schema", o.AllSourcesSchemaId
		case *userpb.GrantPrivilege_AllDmlRelationsSchemaId:
			p.On, p.ObjectID = "all_dml_relations_in_schema", o.AllDmlRelationsSchemaId
		default:
			p.On = "unknown"
		}
		for _, a := range g.ActionWithOpts {
			p.Actions = append(p.Actions, Action{Action: a.Action.String(), WithGrantOption: a.WithGrantOption, GrantedBy: a.GrantedBy})
		}
		u.Privileges = append(u.Privileges, p)
	}
	return u
}

// CreatedAt is when a relation was created (zero if not recorded).
func (r *Relation) CreatedAt() time.Time {
	if r.CreatedEpoch == 0 {
		return time.Time{}
	}
	return hummock.EpochTime(r.CreatedEpoch).UTC()
}
