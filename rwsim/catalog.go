package rwsim

import (
	"fmt"
	"math/rand"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/rwsnap/rwsnap/metastore"
)

// RelationKind is what a catalog object is.
type RelationKind int

// Relation kinds rwsim creates.
const (
	KindTable RelationKind = iota + 1
	KindMaterializedView
	KindIndex // the Index catalog object; its state table has kind KindIndexTable
	KindIndexTable
	KindInternal
	KindSink
	KindSource
	KindView
)

func (k RelationKind) String() string {
	switch k {
	case KindTable:
		return "table"
	case KindMaterializedView:
		return "materialized view"
	case KindIndex:
		return "index"
	case KindIndexTable:
		return "index table"
	case KindInternal:
		return "internal table"
	case KindSink:
		return "sink"
	case KindSource:
		return "source"
	case KindView:
		return "view"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Column is one column of a relation, for the simulated frontend.
type Column struct {
	Name string
	Type string // SQL type name: bigint, varchar, double precision, timestamptz
}

// Relation is one catalog object as rwsim's frontend needs to know it.
type Relation struct {
	ID       uint32
	Name     string
	Kind     RelationKind
	SchemaID uint32
	Columns  []Column
	// Internal lists the internal state tables of a streaming job.
	Internal []uint32
	// CreatedEpoch is the epoch the relation was created at.
	CreatedEpoch uint64
	// Definition is the SQL that created it.
	Definition string
	// SchemaVersion counts ALTER TABLE schema changes (TableVersion.version).
	SchemaVersion uint64
}

// RisingWave type names (data.proto DataType.TypeName) of the column types
// rwsim uses.
var typeNames = map[string]uint64{
	"smallint": 1, "integer": 2, "bigint": 3, "real": 4, "double precision": 5,
	"boolean": 6, "varchar": 7, "numeric": 8, "timestamp": 10, "timestamptz": 13,
}

// Well-known ids (src/common/src/catalog/mod.rs v1.7, src/meta/src/manager/id.rs).
const (
	superUserID      = 1  // DEFAULT_SUPER_USER_ID, "root"
	pgSuperUserID    = 2  // DEFAULT_SUPER_USER_FOR_PG_ID, "postgres"
	firstUserID      = 11 // NON_RESERVED_USER_ID
	firstTableID     = 1001
	clusterVersion   = "1.7.0"
	computeWorkerID  = 2
	parallelUnitsCnt = 4
)

// The dev database and its schemas are the first ids of generators that
// start at 0 (id.rs: database/schema generators have no start value), so
// their model keys are UInt32Value(0) = empty bytes: etcd keys
// "cf/catalog_database/" and "cf/catalog_schema/".
const (
	devDatabaseID  = 0
	publicSchemaID = 0
)

var schemaNames = []string{"public", "pg_catalog", "information_schema", "rw_catalog"}

func dataType(name string) msg {
	return msg(nil).uint(1, typeNames[name]).boolean(4, true)
}

func columnCatalog(id int, c Column, hidden bool) msg {
	desc := msg(nil).sub(1, dataType(c.Type)).int(2, int64(id)).str(3, c.Name)
	return msg(nil).sub(1, desc).boolean(2, hidden)
}

func databaseValue(id uint32, name string, owner uint32) []byte {
	return msg(nil).uint(1, uint64(id)).str(2, name).uint(3, uint64(owner))
}

func schemaValue(id, db uint32, name string, owner uint32) []byte {
	return msg(nil).uint(1, uint64(id)).uint(2, uint64(db)).str(3, name).uint(4, uint64(owner))
}

// tableValue encodes catalog.Table (catalog.proto v1.7 field numbers).
func tableValue(r *Relation, tableType uint64, fragmentID uint32, deps []uint32, epoch uint64) []byte {
	m := msg(nil).uint(1, uint64(r.ID)).uint(2, uint64(r.SchemaID)).uint(3, devDatabaseID).str(4, r.Name)
	for i, c := range r.Columns {
		m = m.sub(5, columnCatalog(i, c, false))
	}
	// Hidden _row_id for tables without a declared key, as RisingWave adds.
	if tableType == 1 {
		m = m.sub(5, columnCatalog(len(r.Columns), Column{Name: "_row_id", Type: "bigint"}, true))
	}
	// pk = first column ascending, nulls largest.
	m = m.sub(6, msg(nil).uint(1, 0).sub(2, msg(nil).uint(1, 1).uint(2, 1)))
	var depIDs []uint64
	for _, d := range deps {
		depIDs = append(depIDs, uint64(d))
	}
	m = m.packed(8, depIDs...)
	m = m.uint(10, tableType)
	m = m.packed(12, 0) // distribution_key
	m = m.packed(13, 0) // stream_key
	m = m.uint(15, superUserID)
	m = m.mapStr(16, "connector", "").uint(17, uint64(fragmentID))
	vals := make([]uint64, len(r.Columns))
	for i := range vals {
		vals[i] = uint64(i)
	}
	m = m.packed(20, vals...).str(21, r.Definition).uint(23, 1).packed(25, 0)
	m = m.uintOpt(28, epoch).uintOpt(29, epoch)
	m = m.uint(31, 2) // STREAM_JOB_STATUS_CREATED
	m = m.uint(32, 1) // CREATE_TYPE_FOREGROUND
	m = m.strOpt(35, clusterVersion).strOpt(36, clusterVersion)
	if tableType == 1 { // TableVersion{version, next_column_id} for user tables
		m = m.sub(100, msg(nil).uint(1, r.SchemaVersion).int(2, int64(len(r.Columns)+1)))
	}
	return m
}

// sourceValue encodes catalog.Source; props are its WITH properties after
// connector (RisingWave keeps credentials there as typed, and in the
// definition).
func sourceValue(r *Relation, epoch uint64, props ...[2]string) []byte {
	m := msg(nil).uint(1, uint64(r.ID)).uint(2, uint64(r.SchemaID)).uint(3, devDatabaseID).str(4, r.Name)
	m = m.uintOpt(5, uint64(len(r.Columns))) // row_id_index
	for i, c := range r.Columns {
		m = m.sub(6, columnCatalog(i, c, false))
	}
	m = m.sub(6, columnCatalog(len(r.Columns), Column{Name: "_row_id", Type: "bigint"}, true))
	m = m.packed(7, uint64(len(r.Columns)))
	m = m.mapStr(8, "connector", "kafka").mapStr(8, "topic", r.Name).mapStr(8, "properties.bootstrap.server", "kafka:9092")
	for _, p := range props {
		m = m.mapStr(8, p[0], p[1])
	}
	m = m.uint(9, superUserID)
	// StreamSourceInfo{format=PLAIN(1), row_encode=JSON(1)} (fields 8, 9)
	m = m.sub(10, msg(nil).uint(8, 1).uint(9, 1))
	m = m.str(13, r.Definition).uintOpt(15, epoch).uintOpt(16, epoch)
	m = m.strOpt(17, clusterVersion).strOpt(18, clusterVersion).uint(100, 1)
	return m
}

func sinkValue(r *Relation, from uint32, epoch uint64, connector string, props ...[2]string) []byte {
	m := msg(nil).uint(1, uint64(r.ID)).uint(2, uint64(r.SchemaID)).uint(3, devDatabaseID).str(4, r.Name)
	for i, c := range r.Columns {
		m = m.sub(5, columnCatalog(i, c, false))
	}
	m = m.packed(7, uint64(from)).packed(8, 0).packed(9, 0)
	m = m.uint(11, superUserID)
	m = m.mapStr(12, "connector", connector)
	for _, p := range props {
		m = m.mapStr(12, p[0], p[1])
	}
	m = m.str(13, r.Definition).uintOpt(15, epoch).uintOpt(16, epoch)
	m = m.str(17, "dev").str(18, "")
	m = m.uint(19, 2) // stream_job_status CREATED
	m = m.strOpt(22, clusterVersion).strOpt(23, clusterVersion)
	return m
}

func indexValue(r *Relation, indexTable, primary uint32, epoch uint64) []byte {
	m := msg(nil).uint(1, uint64(r.ID)).uint(2, uint64(r.SchemaID)).uint(3, devDatabaseID).str(4, r.Name)
	m = m.uint(5, superUserID).uint(6, uint64(indexTable)).uint(7, uint64(primary))
	// index_item: InputRef expressions (ExprNode{function_type=0, return_type=3, input_ref=4}).
	for i := range 2 {
		m = m.sub(8, msg(nil).sub(3, dataType("bigint")).uintOpt(4, uint64(i)))
	}
	m = m.uintOpt(10, epoch).uintOpt(11, epoch).uint(12, 2).uint(13, 1)
	m = m.strOpt(14, clusterVersion).strOpt(15, clusterVersion)
	return m
}

func viewValue(r *Relation, deps []uint32) []byte {
	m := msg(nil).uint(1, uint64(r.ID)).uint(2, uint64(r.SchemaID)).uint(3, devDatabaseID).str(4, r.Name)
	m = m.uint(5, superUserID).str(7, r.Definition)
	var ids []uint64
	for _, d := range deps {
		ids = append(ids, uint64(d))
	}
	m = m.packed(8, ids...)
	for _, c := range r.Columns { // plan_common.Field{data_type=1, name=2}
		m = m.sub(9, msg(nil).sub(1, dataType(c.Type)).str(2, c.Name))
	}
	return m
}

func functionValue(id uint32, name string) []byte {
	m := msg(nil).uint(1, uint64(id)).uint(2, publicSchemaID).uint(3, devDatabaseID).str(4, name)
	m = m.sub(5, dataType("double precision")).sub(5, dataType("double precision"))
	m = m.sub(6, dataType("double precision")).str(7, "python")
	m = m.strOpt(8, "http://udf:8815").uint(9, superUserID).strOpt(10, name)
	m = m.str(15, "price").str(15, "pct")
	return m
}

func connectionValue(id uint32, name string) []byte {
	m := msg(nil).uint(1, uint64(id)).uint(2, publicSchemaID).uint(3, devDatabaseID).str(4, name)
	// PrivateLinkService{provider=AWS(2), service_name, endpoint_id, dns_entries, endpoint_dns_name}
	pls := msg(nil).uint(1, 2).str(2, "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0").
		str(3, "vpce-0fedcba9876543210").mapStr(4, "a", "vpce-0fedcba9876543210.vpce.amazonaws.com")
	return m.sub(5, pls).uint(6, superUserID)
}

// GrantPrivilege object fields (user.proto v1.7).
const (
	grantOnDatabase        = 1
	grantOnSchema          = 2
	grantOnTable           = 3 // tables, materialized views and indexes
	grantOnSource          = 4
	grantOnView            = 6
	grantOnFunction        = 8
	grantOnAllTablesSchema = 11
)

// GrantPrivilege.Action values.
const (
	actionSelect  = 1
	actionInsert  = 2
	actionConnect = 6
	actionUsage   = 7
	actionExecute = 8
)

// grant encodes user.GrantPrivilege{object, action_with_opts}, granted by root.
func grant(object protowire.Number, id uint32, withGrantOption bool, actions ...uint64) msg {
	// The object is a oneof: emitted even when the id is 0.
	m := msg(nil).uintOpt(object, uint64(id))
	for _, a := range actions {
		m = m.sub(7, msg(nil).uint(1, a).boolean(2, withGrantOption).uint(3, superUserID))
	}
	return m
}

// userValue encodes user.UserInfo.
func userValue(id uint32, name string, super bool, pwMD5 string, grants []msg) []byte {
	m := msg(nil).uint(1, uint64(id)).str(2, name).boolean(3, super).boolean(4, super).boolean(5, super).boolean(6, true)
	if pwMD5 != "" {
		m = m.sub(7, msg(nil).uint(1, 3).bytes(2, []byte(pwMD5))) // AuthInfo{MD5}
	}
	for _, g := range grants {
		m = m.sub(8, g)
	}
	return m
}

// fragmentsValue encodes meta.TableFragments for a streaming job. Real
// values are 10 KiB .. 1 MiB (actor plans, vnode bitmaps, splits); size pads
// the value with incompressible bytes in a ConnectorSplit.encoded_split so
// backups and benchmarks move realistic volumes.
func fragmentsValue(rng *rand.Rand, jobID uint32, stateTables []uint32, fragIDs, actorIDs []uint32, size int) []byte {
	m := msg(nil).uint(1, uint64(jobID)).uint(2, 3) // State CREATED
	perFrag := len(actorIDs) / len(fragIDs)
	for fi, fid := range fragIDs {
		f := msg(nil).uint(1, uint64(fid)).uint(2, 1<<uint(fi)).uint(3, 2) // HASH
		acts := actorIDs[fi*perFrag : (fi+1)*perFrag]
		for _, aid := range acts {
			node := msg(nil).uint(1, uint64(aid)).str(18, fmt.Sprintf("StreamMaterialize { columns: [...], stream_key: [id], actor: %d }", aid))
			a := msg(nil).uint(1, uint64(aid)).uint(2, uint64(fid)).sub(3, node)
			f = f.sub(4, a)
		}
		// vnode_mapping: 256 vnodes over the parallel units, run-length style.
		var idx, data []uint64
		for pu := range parallelUnitsCnt {
			idx = append(idx, uint64((pu+1)*256/parallelUnitsCnt-1))
			data = append(data, uint64(pu))
		}
		f = f.sub(5, msg(nil).packed(1, idx...).packed(2, data...))
		if fi == len(fragIDs)-1 {
			var st []uint64
			for _, t := range stateTables {
				st = append(st, uint64(t))
			}
			f = f.packed(6, st...)
		}
		m = m.mapEntry(3, uint64(fid), f)
	}
	for i, aid := range actorIDs {
		status := msg(nil).sub(1, msg(nil).uint(1, uint64(i%parallelUnitsCnt)).uint(2, computeWorkerID)).uint(2, 2)
		m = m.mapEntry(4, uint64(aid), status)
	}
	m = m.sub(6, msg(nil).str(1, "UTC"))
	if pad := size - len(m) - 32; pad > 0 {
		b := make([]byte, pad)
		rng.Read(b)
		split := msg(nil).str(1, "kafka").bytes(2, b)
		m = m.mapEntry(5, uint64(actorIDs[0]), msg(nil).sub(1, split))
	}
	return m
}

// workerValue encodes common.WorkerNode; its key is the HostAddress.
func hostAddress(host string, port int) []byte {
	return msg(nil).str(1, host).int(2, int64(port))
}

func workerValue(id uint32, typ uint64, host string, port int, pus []uint32) []byte {
	m := msg(nil).uint(1, uint64(id)).uint(2, typ).sub(3, hostAddress(host, port)).uint(4, 2)
	for _, pu := range pus {
		m = m.sub(5, msg(nil).uint(1, uint64(pu)).uint(2, uint64(id)))
	}
	// Property{is_streaming, is_serving}
	if typ == 2 {
		m = m.sub(6, msg(nil).boolean(1, true).boolean(2, true))
	}
	return m
}

// idGen mirrors StoredIdGenerator (src/meta/src/manager/id.rs): ids are
// handed out from next; the persisted value in default/ is an upper bound
// raised in steps of ID_PREALLOCATE_INTERVAL (1000), so every id ever
// handed out is below it.
type idGen struct {
	key   string
	next  uint64
	bound uint64
	dirty bool
}

const idPreallocate = 1000

// newIDGen is a generator as a meta node leaves it after one start: the
// bound is the start value + 1000.
func newIDGen(category string, start uint64) *idGen {
	return &idGen{key: category + "_id_next_generator", next: start, bound: start + idPreallocate, dirty: true}
}

func (g *idGen) alloc(n uint64) uint64 {
	id := g.next
	g.next += n
	if g.next > g.bound {
		steps := (g.next - g.bound + idPreallocate - 1) / idPreallocate
		g.bound += steps * idPreallocate
		g.dirty = true
	}
	return id
}

func (g *idGen) kv() kv {
	return kv{key: string(metastore.EtcdKey(metastore.CFDefault, []byte(g.key))), val: metastore.MemcomparableU64(g.bound)}
}
