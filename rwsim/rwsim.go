// Package rwsim simulates a RisingWave v1.x cluster for rwsnap's tests,
// benchmarks and demo, since RisingWave itself cannot run here. This file
// and its siblings are the meta-store part: they write a realistic v1.7
// etcd meta store (reference §2.2/§2.3: default cf, cluster id, system
// params, catalogs, users, fragments, compaction groups, version stats,
// a version delta log, and the rows a snapshot must leave out) plus the
// hummock checkpoint and SST objects into a hummock object store, and keep
// committing epochs as time passes.
//
// A Cluster is used from one process; its methods are safe for concurrent
// use. After an error from Advance or Checkpoint the Cluster's bookkeeping
// may be ahead of what was written; discard it.
package rwsim

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/hummock"
	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwversion"
)

// DefaultStateStore is the state store of RisingWave's meta backup CI
// profile (ci-meta-backup-test: MinIO on 9301, bucket hummock001).
const DefaultStateStore = "hummock+minio://hummockadmin:hummockadmin@127.0.0.1:9301/hummock001"

// Options configure Seed.
type Options struct {
	// StateStore is the state_store param, e.g. DefaultStateStore or
	// "hummock+fs:///tmp/x". It only names the store in the params; the
	// objects go to the objstore.Store passed to Seed.
	StateStore string
	// DataDir is data_directory; default "hummock_001".
	DataDir string
	// BackupURL and BackupDir are backup_storage_url/_directory; by default
	// derived as v1.7 does (config.rs into_init_system_params): the state
	// store without "hummock+" (else "memory"), and DataDir + "/backup".
	BackupURL, BackupDir string
	// Tables is the number of user tables and materialized views; default
	// 6, at least 4 (the seeded delta chain needs that many members in the
	// materialized-view compaction group).
	Tables int
	// FragmentSize is the size in bytes of each cf/table_fragments value;
	// default 20 KiB.
	FragmentSize int
	// ExtraKeys adds that many padding internal-table catalog rows
	// (~300 B each), for benchmarks that need N keys.
	ExtraKeys int
	// Seed makes everything deterministic (ids, bytes, names).
	Seed int64
	// Now is the clock epochs are taken from; default time.Now.
	Now func() time.Time
	// Parallel bounds concurrent etcd transactions and object uploads
	// while seeding; default 8.
	Parallel int
	// RWVersion is the RisingWave release whose meta store is simulated:
	// v1.7 (default), v1.9 (subscriptions, table change logs), v1.10
	// (state_table_info deltas, no member_table_ids, its watermark rules),
	// v2.0 (secrets, v2.0's system params, its snapshot layout); v1.2 and
	// v1.5 seed v1.7's layout (their meta nodes differ: metanode.Config's
	// RWVersion). See rwsim/modes.go.
	RWVersion rwversion.Version
	// NewObjectPrefixStrategy simulates a cluster first started on v2.0
	// (use_new_object_prefix_strategy true: SSTs under crc32 prefixes on
	// fs:// too); false is one upgraded from v1.x. Ignored before v2.0.
	NewObjectPrefixStrategy bool
}

func (o *Options) setDefaults() {
	if o.StateStore == "" {
		o.StateStore = DefaultStateStore
	}
	if o.DataDir == "" {
		o.DataDir = "hummock_001"
	}
	if o.BackupURL == "" {
		if u, ok := strings.CutPrefix(o.StateStore, "hummock+"); ok {
			o.BackupURL = u
		} else {
			o.BackupURL = "memory"
		}
	}
	if o.BackupDir == "" {
		o.BackupDir = o.DataDir + "/backup"
	}
	if o.Tables == 0 {
		o.Tables = 6
	}
	o.Tables = max(o.Tables, 4)
	if o.FragmentSize <= 0 {
		o.FragmentSize = 20 << 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.RWVersion == (rwversion.Version{}) {
		o.RWVersion = rwversion.V1_7
	}
}

type generators struct {
	database, schema, table, function, worker, fragment, actor, user, backup,
	sst, compactTask, parallelUnit, group, connection *idGen
	secret *idGen // v2.0 only
}

// newGenerators starts every StoredIdGenerator of IdGeneratorManager::new
// (id.rs v1.7) at its start value, bound = start + 1000.
func newGenerators() generators {
	return generators{
		database:     newIDGen("database", 0),
		schema:       newIDGen("schema", 0),
		table:        newIDGen("table", firstTableID),
		function:     newIDGen("function", 0),
		worker:       newIDGen("worker", 1), // META_NODE_ID + 1
		fragment:     newIDGen("fragment", 1),
		actor:        newIDGen("actor", 1),
		user:         newIDGen("user", firstUserID),
		backup:       newIDGen("backup", 1),
		sst:          newIDGen("hummock_ss_table_id", 1),
		compactTask:  newIDGen("hummock_compaction_task", 1),
		parallelUnit: newIDGen("parallel_unit", 0),
		group:        newIDGen("compaction_group", groupStaticEnd+1),
		connection:   newIDGen("connection", 0),
	}
}

func (g *generators) all() []*idGen {
	all := []*idGen{g.database, g.schema, g.table, g.function, g.worker, g.fragment, g.actor,
		g.user, g.backup, g.sst, g.compactTask, g.parallelUnit, g.group, g.connection}
	if g.secret != nil {
		all = append(all, g.secret)
	}
	return all
}

type sstObject struct{ id, size uint64 }

// job is a streaming job: a table, MV, index or sink with its state tables.
type job struct {
	rel       *Relation
	mvTable   uint32 // 0 for sinks
	internals []uint32
	keys      []string // etcd keys it owns (catalog rows + fragments)
	fragment  uint32   // the materialize fragment (Table.fragment_id)
	deps      []uint32 // Table.dependent_relations
}

// Cluster is a seeded simulated cluster.
type Cluster struct {
	mu       sync.Mutex
	opts     Options
	cli      *clientv3.Client
	store    objstore.Store
	prefixed bool
	rng      *rand.Rand
	gens     generators

	clusterID    string
	params       [][2]string
	notification uint64
	relations    map[uint32]*Relation // user-visible relations by id
	jobs         map[uint32]*job      // by job id
	pending      []kv                 // catalog/cluster rows not yet written

	version       *pb.HummockVersion // current version: own bookkeeping
	ckpt          *pb.HummockVersion // version in DataDir/checkpoint/0
	stats         *pb.HummockVersionStats
	deltaIDs      []uint64 // ids in cf/hummock_1, ascending
	deltas        map[uint64]*pb.HummockVersionDelta
	newDeltas     []*pb.HummockVersionDelta // not yet written
	objSize       map[uint64]uint64
	newObjects    []sstObject
	stale         []uint64
	staleSize     uint64
	staleByVer    map[uint64]*pb.HummockVersionCheckpoint_StaleObjects
	groupsChanged bool
	groupRows     map[uint64]bool // groups with a cf/hummock_6 row

	lastEpoch uint64
	advances  int
	wmTable   uint32 // internal table with a watermark per epoch
	wmValue   uint64
	// analyst is the non-superuser bootstrap creates, with its password hash.
	analyst     uint32
	analystHash string

	// Version modes (modes.go).
	members    map[uint64][]uint32 // group -> member tables, rwsim's own record
	subscribed map[uint32]string   // table -> its subscription's catalog key (v1.9+)
	logEpochs  []uint64            // commit epochs that carried change logs
}

// RisingWave epoch: ms since 2021-04-01T00:00:00Z in the high 48 bits.
const epochBaseMillis = 1_617_235_200_000

// EpochOf is the committed epoch of t.
func EpochOf(t time.Time) uint64 { return uint64(t.UnixMilli()-epochBaseMillis) << 16 }

// EpochTime is the wall-clock time of an epoch.
func EpochTime(e uint64) time.Time { return time.UnixMilli(int64(e>>16) + epochBaseMillis) }

// epochAt returns t's epoch, or the next epoch after the last one used if
// the clock did not move on (epochs must strictly increase).
func (c *Cluster) epochAt(t time.Time) uint64 {
	e := EpochOf(t)
	if e <= c.lastEpoch {
		e = c.lastEpoch + 1<<16
	}
	c.lastEpoch = e
	return e
}

// Seed writes a fresh simulated v1.7 meta store into etcd (which should be
// empty) and the matching hummock checkpoint and SST objects into
// hummockStore. cli must stay open while the Cluster is used.
func Seed(ctx context.Context, cli *clientv3.Client, hummockStore objstore.Store, opts Options) (*Cluster, error) {
	opts.setDefaults()
	if err := checkMode(opts.RWVersion); err != nil {
		return nil, err
	}
	c := &Cluster{
		members:    map[uint64][]uint32{},
		subscribed: map[uint32]string{},
		opts:       opts,
		cli:        cli,
		store:      hummockStore,
		prefixed:   hummock.Prefixed(hummockStore.Scheme(), opts.NewObjectPrefixStrategy && opts.RWVersion.AtLeast(rwversion.V2_0)),
		rng:        rand.New(rand.NewSource(opts.Seed)),
		gens:       newGenerators(),
		relations:  map[uint32]*Relation{},
		jobs:       map[uint32]*job{},
		version:    initVersion(),
		stats:      &pb.HummockVersionStats{},
		deltas:     map[uint64]*pb.HummockVersionDelta{},
		objSize:    map[uint64]uint64{},
		staleByVer: map[uint64]*pb.HummockVersionCheckpoint_StaleObjects{},
		groupRows:  map[uint64]bool{},
	}
	if c.v20() {
		c.gens.secret = newIDGen("secret", 0)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buildHistory(opts.Now())
	if err := c.writeSeed(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// buildHistory builds, in memory, a cluster that was created an hour ago:
// its bootstrap rows, DDL, a version history folded into a checkpoint, and
// a delta log after the checkpoint exercising every kind of delta.
func (c *Cluster) buildHistory(now time.Time) {
	clock := now.Add(-time.Hour)
	tick := func(d time.Duration) uint64 {
		clock = clock.Add(d)
		return c.epochAt(clock)
	}
	c.bootstrap()
	if c.v20() {
		c.v20Bootstrap()
	}
	c.emptyCommit(tick(time.Second))

	// DDL: a source, the user tables/MVs (plus one MV dropped later), an
	// index, a sink, a view.
	src := c.newRelation(KindSource, "src_events", nil, c.lastEpoch)
	src.Columns = []Column{{"event_id", "bigint"}, {"user_id", "bigint"}, {"payload", "varchar"}, {"ts", "timestamptz"}}
	src.Definition = "CREATE SOURCE src_events (event_id BIGINT, user_id BIGINT, payload VARCHAR, ts TIMESTAMPTZ) WITH (connector = 'kafka', topic = 'src_events', properties.bootstrap.server = 'kafka:9092') FORMAT PLAIN ENCODE JSON"
	c.putCatalog(metastore.CFSource, src.ID, sourceValue(src, c.lastEpoch))
	// DDL is spread over at most half an hour so that, whatever Tables
	// is, the whole history stays in the past.
	ddl := min(time.Minute, 30*time.Minute/time.Duration(c.opts.Tables+3))
	var userJobs []*job
	var dropped *job
	for i := range c.opts.Tables {
		if i == 3 {
			dropped = c.createJob(KindMaterializedView, "mv_tmp_backfill", 1, tick(ddl))
		}
		kind, internals := KindTable, 0
		if i%3 != 0 {
			kind, internals = KindMaterializedView, 1+i%2
		}
		userJobs = append(userJobs, c.createJob(kind, relationName(kind, i), internals, tick(ddl)))
	}
	if c.v19() {
		// Subscriptions keep change logs of two tables; the second is
		// dropped after the checkpoint, and its log with it.
		c.subscribe(userJobs[0].mvTable, "sub_"+userJobs[0].rel.Name)
		c.subscribe(userJobs[3].mvTable, "sub_"+userJobs[3].rel.Name)
	}
	idx := c.createIndex("idx_"+userJobs[0].rel.Name+"_id", userJobs[0].rel, tick(ddl))
	c.createSink("sink_"+userJobs[1].rel.Name, userJobs[1].rel, tick(ddl))
	view := c.createView("v_recent_"+userJobs[0].rel.Name, userJobs[0].rel)
	c.createLineage(userJobs[0].rel, view, tick(ddl))
	_ = idx
	for _, j := range userJobs {
		if j.rel.Kind == KindMaterializedView && len(j.internals) > 0 {
			c.wmTable = j.internals[0]
			break
		}
	}

	// Data: commits into L0 of every group, compaction into L1, a trivial
	// move to L2 of the first and last MV-group tables, and a split of the
	// to-be-dropped MV into its own group (as `independent_compaction_group`
	// or the auto split does), leaving branched SSTs behind.
	for range 3 {
		c.commitAll(tick(time.Minute), false, nil)
	}
	c.compactL0(groupStateDefault, c.version.MaxCommittedEpoch)
	c.compactL0(groupMV, c.version.MaxCommittedEpoch)
	m := c.membersOf(groupMV)
	c.trivialMove(groupMV, 1, []uint64{c.l1SST(groupMV, m[0]), c.l1SST(groupMV, m[len(m)-1])})
	c.commitAll(tick(time.Minute), false, nil)
	c.split(groupMV, []uint32{dropped.mvTable})
	c.commitAll(tick(time.Minute), true, nil)
	c.commitAll(tick(time.Minute), true, nil)
	c.compactL0(groupMV, c.version.MaxCommittedEpoch)
	for range 30 + c.rng.Intn(60) {
		c.emptyCommit(tick(10 * time.Second))
	}
	c.commitAll(tick(time.Minute), true, nil)
	// The delta that produced the checkpointed version stays in the log
	// (meta's delta GC is lazy): replay must skip it (id <= checkpoint id).
	clock = now.Add(-3 * time.Minute)
	c.commitAll(tick(0), true, nil)
	old := c.newDeltas[len(c.newDeltas)-1]
	c.newDeltas = []*pb.HummockVersionDelta{old}
	c.ckpt = proto.Clone(c.version).(*pb.HummockVersion)

	// The log after the checkpoint.
	step := 25 * time.Second
	wm := func(e uint64) map[uint32]*pb.TableWatermarks {
		c.wmValue += 1000
		return map[uint32]*pb.TableWatermarks{c.wmTable: newTableWatermark(e, watermarkValue(c.wmValue))}
	}
	c.commitAll(tick(step), true, nil)
	e2 := tick(step)
	w2 := wm(e2)
	w2[dropped.internals[0]] = newTableWatermark(e2, watermarkValue(7))
	c.commitAll(e2, true, w2)
	c.compactL0(groupMV, e2) // L0 -> L1, safe epoch advances to e2
	m = c.membersOf(groupMV)
	c.trivialMove(groupMV, 1, []uint64{c.l1SST(groupMV, m[1])})
	if c.v19() {
		c.unsubscribe(userJobs[3].mvTable)
	}
	c.commitAll(tick(step), true, nil)
	c.split(groupMV, []uint32{m[2]})
	c.createJob(KindMaterializedView, "mv_live_metrics", 1, c.lastEpoch)
	e4 := tick(step)
	c.commitAll(e4, true, wm(e4))
	c.dropJob(dropped)
	c.commitAll(tick(step), true, nil)
}

// commitAll commits one epoch with an SST for every group that has members:
// all members for most groups, the inner members (all but the first and
// last) for the MV group when middleMV is set, so later compactions touch
// a key span in the middle of L1 and must sort their output in.
func (c *Cluster) commitAll(epoch uint64, middleMV bool, watermarks map[uint32]*pb.TableWatermarks) {
	per := map[uint64][]*pb.SstableInfo{}
	prev := c.version.MaxCommittedEpoch
	for _, gid := range sortedKeys(c.version.Levels) {
		m := c.membersOf(gid)
		if len(m) == 0 {
			continue
		}
		if gid == groupMV && middleMV && len(m) > 2 {
			m = m[1 : len(m)-1]
		}
		per[gid] = []*pb.SstableInfo{c.newSST(m, prev+1<<16, epoch)}
	}
	c.commit(epoch, per, watermarks)
}

func (c *Cluster) l1SST(gid uint64, table uint32) uint64 {
	for _, s := range c.version.Levels[gid].Levels[0].TableInfos {
		if len(s.TableIds) == 1 && s.TableIds[0] == table {
			return s.SstId
		}
	}
	panic(fmt.Sprintf("rwsim: no L1 SST of table %d in group %d", table, gid))
}

func watermarkValue(v uint64) []byte {
	// A memcomparable-encoded timestamp watermark: non-null tag + BE value.
	return append([]byte{1}, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

var tableNames = []string{"orders", "customers", "products", "payments", "shipments", "reviews", "sessions", "inventory"}
var mvNames = []string{"mv_revenue_by_day", "mv_top_customers", "mv_orders_per_minute", "mv_product_sales", "mv_active_sessions", "mv_low_stock"}

func relationName(kind RelationKind, i int) string {
	list := tableNames
	if kind == KindMaterializedView {
		list = mvNames
	}
	n := list[(i/2)%len(list)]
	if r := i / (2 * len(list)); r > 0 {
		n = fmt.Sprintf("%s_%d", n, r+1)
	}
	return n
}

// bootstrap writes what a v1.7 meta node writes on first launch and what
// the first workers register: cluster id, params, users, the dev database
// and its schemas, workers.
func (c *Cluster) bootstrap() {
	b := make([]byte, 16)
	c.rng.Read(b)
	b[6] = b[6]&0x0f | 0x40 // UUID version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	c.clusterID = fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	c.pending = append(c.pending, kv{key: string(metastore.EtcdKey(metastore.CFClusterID, []byte(metastore.ClusterIDKey))), val: []byte(c.clusterID)})

	// for_all_params! (src/common/src/system_param/mod.rs v1.7), values as
	// Rust's to_string() writes them.
	c.params = [][2]string{
		{"barrier_interval_ms", "1000"},
		{"checkpoint_frequency", "1"},
		{"sstable_size_mb", "256"},
		{"parallel_compact_size_mb", "512"},
		{"block_size_kb", "64"},
		{"bloom_false_positive", "0.001"},
		{"state_store", c.opts.StateStore},
		{"data_directory", c.opts.DataDir},
		{"backup_storage_url", c.opts.BackupURL},
		{"backup_storage_directory", c.opts.BackupDir},
		{"max_concurrent_creating_streaming_jobs", "1"},
		{"pause_on_next_bootstrap", "false"},
		{"enable_tracing", "false"},
	}
	for _, p := range c.params {
		c.pending = append(c.pending, kv{key: string(metastore.EtcdKey(metastore.CFSystemParams, []byte(p[0]))), val: []byte(p[1])})
	}

	c.putCatalog(metastore.CFUserInfo, superUserID, userValue(superUserID, "root", true, "", nil))
	c.putCatalog(metastore.CFUserInfo, pgSuperUserID, userValue(pgSuperUserID, "postgres", true, "", nil))
	db := uint32(c.gens.database.alloc(1))
	c.putCatalog(metastore.CFDatabase, db, databaseValue(db, "dev", superUserID))
	for _, name := range schemaNames {
		id := uint32(c.gens.schema.alloc(1))
		c.putCatalog(metastore.CFSchema, id, schemaValue(id, db, name, superUserID))
	}
	analyst := uint32(c.gens.user.alloc(1))
	c.analyst, c.analystHash = analyst, "md5"+fmt.Sprintf("%032x", c.rng.Uint64())
	c.putCatalog(metastore.CFUserInfo, analyst, userValue(analyst, "analyst", false, c.analystHash, nil))
	c.notification += 8

	// Workers: a frontend, a compute node with 4 parallel units, a
	// compactor. Keys are HostAddress protobufs.
	for _, w := range []struct {
		typ  uint64
		port int
		pus  int
	}{{1, 4566, 0}, {2, 5688, parallelUnitsCnt}, {4, 6660, 0}} {
		id := uint32(c.gens.worker.alloc(1))
		var pus []uint32
		for range w.pus {
			pus = append(pus, uint32(c.gens.parallelUnit.alloc(1)))
		}
		c.pending = append(c.pending, kv{key: string(metastore.EtcdKey(metastore.CFWorker, hostAddress("127.0.0.1", w.port))), val: workerValue(id, w.typ, "127.0.0.1", w.port, pus)})
	}

	fid := uint32(c.gens.function.alloc(1))
	c.putCatalog(metastore.CFFunction, fid, functionValue(fid, "fn_discount"))
	cid := uint32(c.gens.connection.alloc(1))
	c.putCatalog(metastore.CFConnection, cid, connectionValue(cid, "conn_msk"))
	c.notification += 2
}

func (c *Cluster) putCatalog(cf string, id uint32, val []byte) string {
	k := string(metastore.EtcdKey(cf, metastore.U32Key(id)))
	c.pending = append(c.pending, kv{key: k, val: val})
	return k
}

func (c *Cluster) newRelation(kind RelationKind, name string, cols []Column, epoch uint64) *Relation {
	r := &Relation{ID: uint32(c.gens.table.alloc(1)), Name: name, Kind: kind, SchemaID: publicSchemaID, Columns: cols, CreatedEpoch: epoch}
	c.relations[r.ID] = r
	c.notification++
	return r
}

// createJob creates a table or MV: catalog rows for it and its internal
// tables, its fragments, and registration of its state tables with
// hummock (MV/table -> group 3, internal -> group 2, as
// register_table_fragments does).
func (c *Cluster) createJob(kind RelationKind, name string, internals int, epoch uint64) *job {
	return c.createJobOn(kind, name, internals, epoch, "", nil)
}

// createJobOn is createJob for an MV with its own definition reading from
// upstream relations (Table.dependent_relations).
func (c *Cluster) createJobOn(kind RelationKind, name string, internals int, epoch uint64, def string, upstream []*Relation) *job {
	var cols []Column
	tableType := uint64(1)
	switch kind {
	case KindTable:
		cols = []Column{{"id", "bigint"}, {"name", "varchar"}, {"amount", "double precision"}, {"created_at", "timestamptz"}}
		if def == "" {
			def = fmt.Sprintf("CREATE TABLE %s (id BIGINT, name VARCHAR, amount DOUBLE PRECISION, created_at TIMESTAMPTZ)", name)
		}
	default:
		tableType = 2
		cols = []Column{{"k", "varchar"}, {"cnt", "bigint"}, {"total", "double precision"}, {"window_start", "timestamptz"}}
		if def == "" {
			def = fmt.Sprintf("CREATE MATERIALIZED VIEW %s AS SELECT name AS k, count(*) AS cnt, sum(amount) AS total, window_start FROM TUMBLE(orders, created_at, INTERVAL '1 MINUTE') GROUP BY name, window_start", name)
			// The default query reads orders: RisingWave records it in
			// Table.dependent_relations.
			if o := c.byName("orders"); o != nil && upstream == nil {
				upstream = []*Relation{o}
			}
		}
	}
	var deps []uint32
	for _, u := range upstream {
		deps = append(deps, u.ID)
	}
	r := c.newRelation(kind, name, cols, epoch)
	r.Definition = def
	j := &job{rel: r, mvTable: r.ID}
	for i := range internals {
		it := &Relation{ID: uint32(c.gens.table.alloc(1)), Name: fmt.Sprintf("__internal_%s_%d_hashaggstate_%d", name, r.ID, i), Kind: KindInternal, Columns: []Column{{"k", "varchar"}, {"state", "bigint"}}, CreatedEpoch: epoch}
		j.internals = append(j.internals, it.ID)
		r.Internal = append(r.Internal, it.ID)
		j.keys = append(j.keys, c.putCatalog(metastore.CFTable, it.ID, tableValue(it, 4, 0, nil, epoch)))
	}
	frags, actors := c.allocActors(2)
	j.fragment, j.deps = frags[len(frags)-1], deps
	j.keys = append(j.keys, c.putCatalog(metastore.CFTable, r.ID, tableValue(r, tableType, frags[len(frags)-1], deps, epoch)))
	j.keys = append(j.keys, c.putFragments(r.ID, append([]uint32{r.ID}, j.internals...), frags, actors))
	c.jobs[r.ID] = j
	byGroup := map[uint64][]uint32{groupMV: {r.ID}}
	if len(j.internals) > 0 {
		byGroup[groupStateDefault] = slices.Clone(j.internals)
	}
	c.registerTables(byGroup)
	return j
}

func (c *Cluster) allocActors(nFrag int) (frags, actors []uint32) {
	for range nFrag {
		frags = append(frags, uint32(c.gens.fragment.alloc(1)))
		for range parallelUnitsCnt {
			actors = append(actors, uint32(c.gens.actor.alloc(1)))
		}
	}
	return
}

func (c *Cluster) putFragments(jobID uint32, stateTables, frags, actors []uint32) string {
	return c.putCatalog(metastore.CFTableFragments, jobID, fragmentsValue(c.rng, jobID, stateTables, frags, actors, c.opts.FragmentSize))
}

func (c *Cluster) createIndex(name string, on *Relation, epoch uint64) *job {
	ix := c.newRelation(KindIndex, name, nil, epoch)
	it := &Relation{ID: uint32(c.gens.table.alloc(1)), Name: name, Kind: KindIndexTable, Columns: []Column{{"id", "bigint"}, {"_row_id", "bigint"}}, CreatedEpoch: epoch, Definition: fmt.Sprintf("CREATE INDEX %s ON %s(id)", name, on.Name)}
	ix.Definition = it.Definition
	ix.Internal = []uint32{it.ID}
	j := &job{rel: ix, mvTable: it.ID}
	frags, actors := c.allocActors(2)
	j.keys = append(j.keys,
		c.putCatalog(metastore.CFIndex, ix.ID, indexValue(ix, it.ID, on.ID, epoch)),
		c.putCatalog(metastore.CFTable, it.ID, tableValue(it, 3, frags[1], []uint32{on.ID}, epoch)),
		c.putFragments(it.ID, []uint32{it.ID}, frags, actors))
	c.jobs[it.ID] = j
	c.registerTables(map[uint64][]uint32{groupMV: {it.ID}})
	return j
}

func (c *Cluster) createSink(name string, from *Relation, epoch uint64) *job {
	s := c.newRelation(KindSink, name, from.Columns, epoch)
	s.Definition = fmt.Sprintf("CREATE SINK %s FROM %s WITH (connector = 'blackhole')", name, from.Name)
	// The sink's log store is an internal state table in group 2.
	it := &Relation{ID: uint32(c.gens.table.alloc(1)), Name: fmt.Sprintf("__internal_%s_%d_sink_log_store", name, s.ID), Kind: KindInternal, Columns: []Column{{"kv_log_store_epoch", "bigint"}}, CreatedEpoch: epoch}
	s.Internal = []uint32{it.ID}
	j := &job{rel: s, internals: []uint32{it.ID}}
	frags, actors := c.allocActors(1)
	j.keys = append(j.keys,
		c.putCatalog(metastore.CFSink, s.ID, sinkValue(s, from.ID, epoch, "blackhole")),
		c.putCatalog(metastore.CFTable, it.ID, tableValue(it, 4, frags[0], nil, epoch)),
		c.putFragments(s.ID, []uint32{it.ID}, frags, actors))
	c.jobs[s.ID] = j
	c.registerTables(map[uint64][]uint32{groupStateDefault: {it.ID}})
	return j
}

func (c *Cluster) createView(name string, on *Relation) *Relation {
	return c.createViewAs(name, on, fmt.Sprintf("SELECT * FROM %s WHERE created_at > now() - INTERVAL '1 hour'", on.Name))
}

// createViewAs creates a view; RisingWave stores its query (View.sql), not
// the CREATE VIEW statement.
func (c *Cluster) createViewAs(name string, on *Relation, sql string) *Relation {
	v := c.newRelation(KindView, name, on.Columns, c.lastEpoch)
	v.Definition = sql
	c.putCatalog(metastore.CFView, v.ID, viewValue(v, []uint32{on.ID}))
	return v
}

// Credentials rwsim plants in the catalog, as operators do in WITH
// clauses, so tests can check that no output shows them.
const (
	KafkaPassword = "rwsim-kafka-Pa55w0rd"
	JDBCPassword  = "rwsim-Jdbc-S3cret"
)

// createLineage builds a dependency chain several levels deep, a source
// and a sink whose WITH clauses hold credentials, and the analyst's
// privileges: source -> MV -> MV -> MV -> view -> view, and a sink on the
// last MV.
func (c *Cluster) createLineage(orders, recent *Relation, epoch uint64) {
	src := c.newRelation(KindSource, "src_payments", []Column{{"payment_id", "bigint"}, {"order_id", "bigint"}, {"amount", "double precision"}, {"paid_at", "timestamptz"}}, epoch)
	props := [][2]string{{"properties.security.protocol", "SASL_SSL"}, {"properties.sasl.mechanism", "SCRAM-SHA-512"},
		{"properties.sasl.username", "rw_ingest"}, {"properties.sasl.password", KafkaPassword}}
	src.Definition = "CREATE SOURCE src_payments (payment_id BIGINT, order_id BIGINT, amount DOUBLE PRECISION, paid_at TIMESTAMPTZ) " +
		"WITH (connector = 'kafka', topic = 'src_payments', properties.bootstrap.server = 'kafka:9092', " +
		"properties.security.protocol = 'SASL_SSL', properties.sasl.mechanism = 'SCRAM-SHA-512', " +
		"properties.sasl.username = 'rw_ingest', properties.sasl.password = '" + KafkaPassword + "') FORMAT PLAIN ENCODE JSON"
	c.putCatalog(metastore.CFSource, src.ID, sourceValue(src, epoch, props...))

	l1 := c.createJobOn(KindMaterializedView, "mv_paid_orders", 1, epoch,
		"CREATE MATERIALIZED VIEW mv_paid_orders AS SELECT o.name AS k, count(*) AS cnt, sum(p.amount) AS total, window_start FROM TUMBLE(src_payments, paid_at, INTERVAL '1 MINUTE') AS p JOIN orders AS o ON p.order_id = o.id GROUP BY o.name, window_start",
		[]*Relation{src, orders})
	l2 := c.createJobOn(KindMaterializedView, "mv_paid_by_customer", 1, epoch,
		"CREATE MATERIALIZED VIEW mv_paid_by_customer AS SELECT k, sum(cnt) AS cnt, sum(total) AS total, max(window_start) AS window_start FROM mv_paid_orders GROUP BY k",
		[]*Relation{l1.rel})
	l3 := c.createJobOn(KindMaterializedView, "mv_top_customers_paid", 0, epoch,
		"CREATE MATERIALIZED VIEW mv_top_customers_paid AS SELECT * FROM mv_paid_by_customer ORDER BY total DESC LIMIT 10",
		[]*Relation{l2.rel})
	v1 := c.createViewAs("v_top_customers_paid", l3.rel, "SELECT k, total FROM mv_top_customers_paid WHERE total > 100")
	c.createViewAs("v_top_customers_paid_names", v1, "SELECT k FROM v_top_customers_paid")
	c.createViewAs("v_recent_big_orders", recent, "SELECT * FROM "+recent.Name+" WHERE amount > 1000")

	s := c.newRelation(KindSink, "sink_top_customers_pg", l3.rel.Columns, epoch)
	s.Definition = "CREATE SINK sink_top_customers_pg FROM mv_top_customers_paid WITH (connector = 'jdbc', " +
		"jdbc.url = 'jdbc:postgresql://warehouse:5432/dw?user=rw&password=" + JDBCPassword + "', table.name = 'top_customers', type = 'upsert', primary_key = 'k')"
	it := &Relation{ID: uint32(c.gens.table.alloc(1)), Name: fmt.Sprintf("__internal_%s_%d_sink_log_store", s.Name, s.ID), Kind: KindInternal, Columns: []Column{{"kv_log_store_epoch", "bigint"}}, CreatedEpoch: epoch}
	s.Internal = []uint32{it.ID}
	j := &job{rel: s, internals: []uint32{it.ID}}
	frags, actors := c.allocActors(1)
	sinkProps := [][2]string{{"jdbc.url", "jdbc:postgresql://warehouse:5432/dw?user=rw&password=" + JDBCPassword},
		{"table.name", "top_customers"}, {"type", "upsert"}, {"primary_key", "k"}}
	j.keys = append(j.keys,
		c.putCatalog(metastore.CFSink, s.ID, sinkValue(s, l3.rel.ID, epoch, "jdbc", sinkProps...)),
		c.putCatalog(metastore.CFTable, it.ID, tableValue(it, 4, frags[0], nil, epoch)),
		c.putFragments(s.ID, []uint32{it.ID}, frags, actors))
	c.jobs[s.ID] = j
	c.registerTables(map[uint64][]uint32{groupStateDefault: {it.ID}})

	// The analyst may connect to dev, use public, read the last MV and the
	// first view, and read every table in public with grant option.
	grants := []msg{
		grant(grantOnDatabase, devDatabaseID, false, actionConnect),
		grant(grantOnSchema, publicSchemaID, false, actionUsage),
		grant(grantOnTable, l3.rel.ID, false, actionSelect),
		grant(grantOnView, v1.ID, false, actionSelect),
		grant(grantOnSource, src.ID, false, actionSelect),
		grant(grantOnAllTablesSchema, publicSchemaID, true, actionSelect, actionInsert),
	}
	c.putCatalog(metastore.CFUserInfo, c.analyst, userValue(c.analyst, "analyst", false, c.analystHash, grants))
	c.notification += 8
}

// dropJob drops a streaming job: its catalog rows and fragments go, its
// state tables are unregistered from hummock (deleting an emptied group).
func (c *Cluster) dropJob(j *job) {
	for _, k := range j.keys {
		c.pending = append(c.pending, kv{key: k, del: true})
	}
	tables := slices.Clone(j.internals)
	if j.mvTable != 0 {
		tables = append([]uint32{j.mvTable}, tables...)
	}
	c.unregisterTables(tables)
	delete(c.jobs, j.rel.ID)
	delete(c.relations, j.rel.ID)
	c.notification++
}

// --- writing ------------------------------------------------------------

func (c *Cluster) sstKey(id uint64) string { return hummock.SSTPath(c.opts.DataDir, id, c.prefixed) }

// sstBytes is the object body of an SST: deterministic incompressible bytes
// of the size its SstableInfo claims.
func sstBytes(id, size uint64) []byte {
	r := rand.New(rand.NewSource(int64(id) * 7919))
	b := make([]byte, size)
	r.Read(b)
	copy(b, fmt.Sprintf("RWSIM-SST object=%d\n", id))
	return b
}

func (c *Cluster) uploadObjects(ctx context.Context, objs []sstObject) error {
	g := newGroup(ctx, c.opts.Parallel)
	for _, o := range objs {
		g.Go(func(ctx context.Context) error {
			if err := c.store.Put(ctx, c.sstKey(o.id), sstBytes(o.id, o.size)); err != nil {
				return fmt.Errorf("rwsim: upload SST object %d: %w", o.id, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func (c *Cluster) writeCheckpoint(ctx context.Context, v *pb.HummockVersion) error {
	cp := &pb.HummockVersionCheckpoint{Version: v}
	if len(c.staleByVer) > 0 {
		cp.StaleObjects = map[uint64]*pb.HummockVersionCheckpoint_StaleObjects{}
		for id, so := range c.staleByVer {
			if id <= v.Id {
				cp.StaleObjects[id] = proto.Clone(so).(*pb.HummockVersionCheckpoint_StaleObjects)
			}
		}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cp)
	if err != nil {
		return fmt.Errorf("rwsim: encode checkpoint: %w", err)
	}
	if err := c.store.Put(ctx, hummock.CheckpointPath(c.opts.DataDir), b); err != nil {
		return fmt.Errorf("rwsim: write checkpoint: %w", err)
	}
	return nil
}

// hummockRows are the rows written with every delta: the deltas, version
// stats (cf/hummock_7, key UInt64Value(0) = empty), id generator bounds that
// moved, compaction groups and their compact status when groups changed,
// and notification_version.
func (c *Cluster) hummockRows(all bool) ([]kv, error) {
	var rows []kv
	for _, d := range c.newDeltas {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("rwsim: encode delta %d: %w", d.Id, err)
		}
		rows = append(rows, kv{key: string(metastore.EtcdKey(metastore.CFHummockDelta, metastore.U64Key(d.Id))), val: b})
	}
	// v1.7 never sets hummock_version_id in the persisted stats ("always 0
	// in meta store", hummock/manager/mod.rs).
	sb, err := proto.MarshalOptions{Deterministic: true}.Marshal(c.stats)
	if err != nil {
		return nil, err
	}
	rows = append(rows, kv{key: string(metastore.EtcdKey(metastore.CFVersionStats, metastore.U64Key(0))), val: sb})
	for _, g := range c.gens.all() {
		if g.dirty || all {
			rows = append(rows, g.kv())
			g.dirty = false
		}
	}
	if c.groupsChanged || all {
		for gid := range c.groupRows {
			if _, ok := c.version.Levels[gid]; !ok {
				rows = append(rows,
					kv{key: string(metastore.EtcdKey(metastore.CFCompactionGroup, metastore.U64Key(gid))), del: true},
					kv{key: string(metastore.EtcdKey(metastore.CFCompactStatus, metastore.U64Key(gid))), del: true})
				delete(c.groupRows, gid)
			}
		}
		for _, gid := range sortedKeys(c.version.Levels) {
			if !c.groupRows[gid] || all {
				rows = append(rows,
					kv{key: string(metastore.EtcdKey(metastore.CFCompactionGroup, metastore.U64Key(gid))), val: compactionGroupValue(gid)},
					kv{key: string(metastore.EtcdKey(metastore.CFCompactStatus, metastore.U64Key(gid))), val: compactStatusValue(gid)})
				c.groupRows[gid] = true
			}
		}
		c.groupsChanged = false
	}
	rows = append(rows,
		kv{key: string(metastore.EtcdKey(metastore.CFDefault, []byte("notification_version"))), val: metastore.MemcomparableU64(c.notification)})
	return rows, nil
}

// compactStatusValue is hummock.CompactStatus{group, one idle LevelHandler
// per level}: meta's compaction bookkeeping, never part of a snapshot.
func compactStatusValue(gid uint64) []byte {
	m := msg(nil).uint(1, gid)
	for l := range defaultMaxLevel + 1 {
		m = m.sub(2, msg(nil).uint(1, uint64(l)))
	}
	return m
}

func (c *Cluster) commitDeltas() {
	for _, d := range c.newDeltas {
		c.deltas[d.Id] = d
		c.deltaIDs = append(c.deltaIDs, d.Id)
	}
	c.newDeltas = nil
}

// writeSeed uploads objects and the checkpoint first, then etcd, so the
// meta store never names an object that is not there.
func (c *Cluster) writeSeed(ctx context.Context) error {
	// Objects still referenced by the checkpoint or by a logged delta;
	// older ones were vacuumed long ago.
	need := map[uint64]bool{}
	for _, id := range hummock.ObjectIDs(c.ckpt) {
		need[id] = true
	}
	for _, d := range c.newDeltas {
		for _, gd := range d.GroupDeltas {
			for _, g := range gd.GroupDeltas {
				for _, s := range g.GetIntraLevel().GetInsertedTableInfos() {
					need[s.ObjectId] = true
				}
			}
		}
	}
	var objs []sstObject
	for _, o := range c.newObjects {
		c.objSize[o.id] = o.size
		if need[o.id] {
			objs = append(objs, o)
		}
	}
	c.newObjects = nil
	if err := c.uploadObjects(ctx, objs); err != nil {
		return err
	}
	if err := c.writeCheckpoint(ctx, c.ckpt); err != nil {
		return err
	}

	// Rows a live cluster has but a snapshot must not carry: pinned
	// versions/snapshots of the frontend (1) and compute node (2), and a
	// compaction task assignment.
	for ctxID := uint32(1); ctxID <= 2; ctxID++ {
		c.pending = append(c.pending,
			kv{key: string(metastore.EtcdKey(metastore.CFHummockPinVersion, metastore.U32Key(ctxID))), val: msg(nil).uint(1, uint64(ctxID)).uint(2, c.version.Id)},
			kv{key: string(metastore.EtcdKey(metastore.CFHummockPinSnapshot, metastore.U32Key(ctxID))), val: msg(nil).uint(1, uint64(ctxID)).uint(2, c.version.MaxCommittedEpoch)})
	}
	task := c.gens.compactTask.alloc(1)
	c.pending = append(c.pending, kv{key: string(metastore.EtcdKey(metastore.CFCompactTask, metastore.U64Key(task))),
		val: msg(nil).sub(1, msg(nil).uint(4, task).uint(11, groupStateDefault)).uint(2, 3)})
	c.pending = append(c.pending, kv{key: string(metastore.EtcdKey(metastore.CFDefault, []byte("table_revision"))), val: metastore.MemcomparableU64(uint64(len(c.jobs)))})

	// Padding internal tables for benchmarks, streamed.
	var pad *streamWriter
	if n := c.opts.ExtraKeys; n > 0 {
		pad = newStreamWriter(ctx, c.cli, c.opts.Parallel)
		first := uint32(c.gens.table.alloc(uint64(n)))
		for i := range n {
			id := first + uint32(i)
			r := &Relation{ID: id, Name: fmt.Sprintf("__internal_pad_%d_state", id), Kind: KindInternal, Columns: []Column{{"k", "varchar"}, {"v", "bigint"}}}
			pad.add(kv{key: string(metastore.EtcdKey(metastore.CFTable, metastore.U32Key(id))), val: tableValue(r, 4, 0, nil, c.ckpt.MaxCommittedEpoch)})
		}
	}

	// Catalog and cluster rows (deletes of the dropped job's rows cancel
	// their puts: apply in order, then write what is left).
	final := map[string]int{}
	var rows []kv
	for _, e := range c.pending {
		if i, ok := final[e.key]; ok {
			rows[i] = e
			continue
		}
		final[e.key] = len(rows)
		rows = append(rows, e)
	}
	rows = slices.DeleteFunc(rows, func(e kv) bool { return e.del })
	c.pending = nil
	hr, err := c.hummockRows(true)
	if err != nil {
		return err
	}
	rows = append(rows, hr...)
	if err := writeBatched(ctx, c.cli, rows, c.opts.Parallel); err != nil {
		return err
	}
	if pad != nil {
		if err := pad.wait(); err != nil {
			return err
		}
	}
	c.commitDeltas()
	return nil
}

// flush writes what Advance produced: objects first, then catalog rows,
// then the deltas with stats and generators in one transaction.
func (c *Cluster) flush(ctx context.Context) error {
	objs := c.newObjects
	c.newObjects = nil
	for _, o := range objs {
		c.objSize[o.id] = o.size
	}
	if err := c.uploadObjects(ctx, objs); err != nil {
		return err
	}
	if err := writeBatched(ctx, c.cli, c.pending, 1); err != nil {
		return err
	}
	c.pending = nil
	rows, err := c.hummockRows(false)
	if err != nil {
		return err
	}
	if err := writeAtomic(ctx, c.cli, rows); err != nil {
		return err
	}
	c.commitDeltas()
	return nil
}

// Advance commits one more epoch, taken from Options.Now (or the epoch after
// the last one if the clock did not move): new SSTs in every group, a
// commit delta with id = previous + 1, version stats, a watermark for the
// watermarked table. Every 5th L0 sub-level of a group triggers an L0 -> L1
// compaction delta (advancing the safe epoch to the previous committed
// epoch), and every 10th Advance creates a new materialized view (catalog,
// fragments, a group-membership delta). Extra deltas follow the commit.
func (c *Cluster) Advance(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.version.MaxCommittedEpoch
	e := c.epochAt(c.opts.Now())
	var wm map[uint32]*pb.TableWatermarks
	if _, ok := c.groupOf(c.wmTable); ok {
		c.wmValue += 1000
		wm = map[uint32]*pb.TableWatermarks{c.wmTable: newTableWatermark(e, watermarkValue(c.wmValue))}
	}
	c.commitAll(e, true, wm)
	for _, gid := range sortedKeys(c.version.Levels) {
		if len(c.version.Levels[gid].L0.SubLevels) >= 5 {
			c.compactL0(gid, prev)
		}
	}
	c.advances++
	if c.advances%10 == 0 {
		c.createJob(KindMaterializedView, fmt.Sprintf("mv_live_%d", c.advances/10), 1, e)
	}
	return c.flush(ctx)
}

// Checkpoint writes the current version as the new checkpoint
// (DataDir/checkpoint/0, with the stale objects recorded so far) and then
// deletes every delta up to its id from cf/hummock_1, like meta's
// checkpoint followed by delta GC.
func (c *Cluster) Checkpoint(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := proto.Clone(c.version).(*pb.HummockVersion)
	if err := c.writeCheckpoint(ctx, v); err != nil {
		return err
	}
	c.ckpt = v
	var dels []kv
	keep := c.deltaIDs[:0]
	for _, id := range c.deltaIDs {
		if id <= v.Id {
			dels = append(dels, kv{key: string(metastore.EtcdKey(metastore.CFHummockDelta, metastore.U64Key(id))), del: true})
			delete(c.deltas, id)
		} else {
			keep = append(keep, id)
		}
	}
	c.deltaIDs = keep
	return writeBatched(ctx, c.cli, dels, c.opts.Parallel)
}

// --- accessors ----------------------------------------------------------

// ExpectedVersion is the current version by rwsim's own bookkeeping: what
// replaying cf/hummock_1 onto the checkpoint must give.
func (c *Cluster) ExpectedVersion() *pb.HummockVersion {
	c.mu.Lock()
	defer c.mu.Unlock()
	return proto.Clone(c.version).(*pb.HummockVersion)
}

// CheckpointVersion is the version stored in DataDir/checkpoint/0.
func (c *Cluster) CheckpointVersion() *pb.HummockVersion {
	c.mu.Lock()
	defer c.mu.Unlock()
	return proto.Clone(c.ckpt).(*pb.HummockVersion)
}

// Deltas are the deltas now in cf/hummock_1, ascending by id.
func (c *Cluster) Deltas() []*pb.HummockVersionDelta {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*pb.HummockVersionDelta, 0, len(c.deltaIDs))
	for _, id := range c.deltaIDs {
		out = append(out, proto.Clone(c.deltas[id]).(*pb.HummockVersionDelta))
	}
	return out
}

// VersionStats is the cf/hummock_7 row.
func (c *Cluster) VersionStats() *pb.HummockVersionStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return proto.Clone(c.stats).(*pb.HummockVersionStats)
}

// LastEpoch is the max committed epoch.
func (c *Cluster) LastEpoch() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version.MaxCommittedEpoch
}

// SafeEpoch is the current version's safe epoch.
func (c *Cluster) SafeEpoch() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version.SafeEpoch
}

// UserPasswordHash is the stored password hash of the analyst user, which
// no rwsnap output may show.
func (c *Cluster) UserPasswordHash() string { return c.analystHash }

// ClusterID is the cf/cluster_id value.
func (c *Cluster) ClusterID() string { return c.clusterID }

// SystemParams are the cf/system_params rows (name -> string value).
func (c *Cluster) SystemParams() map[string]string {
	m := make(map[string]string, len(c.params))
	for _, p := range c.params {
		m[p[0]] = p[1]
	}
	return m
}

// Options are the options after defaults.
func (c *Cluster) Options() Options { return c.opts }

// Relations lists the user-visible relations (tables, MVs, indexes, sinks,
// sources, views), by id.
func (c *Cluster) Relations() []Relation {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Relation, 0, len(c.relations))
	for _, id := range sortedKeys(c.relations) {
		out = append(out, *c.relations[id])
	}
	return out
}

// SSTKey is the object key of an SST object in the hummock store.
func (c *Cluster) SSTKey(objectID uint64) string { return c.sstKey(objectID) }

// ObjectIDs lists every SST object rwsim has written, ascending.
func (c *Cluster) ObjectIDs() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return sortedKeys(c.objSize)
}

// KeyCounts counts etcd keys per column family prefix ("default",
// "cf/catalog_table", ..., "cf/cluster_id"), and everything else under
// "other" (e.g. election keys). Keys only, so it is cheap on big stores.
func KeyCounts(ctx context.Context, cli *clientv3.Client) (map[string]int, error) {
	out := map[string]int{}
	key := "\x00"
	for {
		resp, err := cli.Get(ctx, key, clientv3.WithRange("\xff"), clientv3.WithKeysOnly(), clientv3.WithLimit(10000))
		if err != nil {
			return nil, err
		}
		for _, k := range resp.Kvs {
			s := string(k.Key)
			switch {
			case s == "cf/cluster_id":
				out[s]++
			case strings.HasPrefix(s, "default/"):
				out["default"]++
			case strings.HasPrefix(s, "cf/"):
				cf, _, _ := strings.Cut(s[3:], "/")
				out["cf/"+cf]++
			default:
				out["other"]++
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
