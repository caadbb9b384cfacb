package rwsim_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/hummock"
	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
	"github.com/rwsnap/rwsnap/rwversion"
)

// fakeClock starts at a fixed time and moves only when told to, so epochs
// are deterministic.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)} }

type env struct {
	etcd  *embedetcd.Cluster
	cli   *clientv3.Client
	store objstore.Store
	sim   *rwsim.Cluster
	clock *fakeClock
}

func seed(t *testing.T, opts rwsim.Options, store objstore.Store) *env {
	t.Helper()
	e := &env{etcd: etcdtest.StartT(t, embedetcd.Config{}), clock: newClock()}
	e.cli = etcdtest.ClientT(t, e.etcd)
	if store == nil {
		store = objstore.NewMemory()
	}
	e.store = store
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	sim, err := rwsim.Seed(context.Background(), e.cli, store, opts)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	e.sim = sim
	return e
}

func (e *env) all(t *testing.T) map[string][]byte {
	t.Helper()
	resp, err := e.cli.Get(context.Background(), "\x00", clientv3.WithRange("\xff"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, kv := range resp.Kvs {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

func withPrefix(m map[string][]byte, p string) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range m {
		if strings.HasPrefix(k, p) {
			out[k] = v
		}
	}
	return out
}

// readLog reads what rwsnap reads: the checkpoint object and cf/hummock_1.
func (e *env) readLog(t *testing.T) (*pb.HummockVersion, []*pb.HummockVersionDelta) {
	t.Helper()
	ctx := context.Background()
	b, _, err := e.store.Get(ctx, hummock.CheckpointPath(e.sim.Options().DataDir))
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	cp, err := hummock.DecodeCheckpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.cli.Get(ctx, metastore.Prefix(metastore.CFHummockDelta), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var deltas []*pb.HummockVersionDelta
	for _, kv := range resp.Kvs {
		id, ok := metastore.DecodeU64Key(kv.Key[len(metastore.Prefix(metastore.CFHummockDelta)):])
		if !ok {
			t.Fatalf("bad delta key %q", kv.Key)
		}
		d, err := hummock.DecodeDelta(kv.Value)
		if err != nil {
			t.Fatal(err)
		}
		if d.Id != id {
			t.Fatalf("delta key %d holds delta %d", id, d.Id)
		}
		deltas = append(deltas, d)
	}
	return cp.Version, deltas
}

func (e *env) checkReplay(t *testing.T) *pb.HummockVersion {
	t.Helper()
	base, deltas := e.readLog(t)
	got, err := hummock.Replay(base, deltas, rwversion.For(e.sim.Options().RWVersion).Replay)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	want := e.sim.ExpectedVersion()
	if !proto.Equal(got, want) {
		t.Fatalf("replayed version differs from rwsim's bookkeeping\n got: %s\nwant: %s", summarize(got), summarize(want))
	}
	return want
}

func summarize(v *pb.HummockVersion) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "id=%d mce=%d safe=%d wm=%d", v.Id, v.MaxCommittedEpoch, v.SafeEpoch, len(v.TableWatermarks))
	for _, gid := range sortedGroups(v) {
		l := v.Levels[gid]
		fmt.Fprintf(&sb, "\n  group %d parent %d members %v L0(%d,%d):", gid, l.ParentGroupId, l.MemberTableIds, l.L0.TotalFileSize, l.L0.UncompressedFileSize)
		for _, sl := range l.L0.SubLevels {
			fmt.Fprintf(&sb, " [sub %d %v size %d:", sl.SubLevelId, sl.LevelType, sl.TotalFileSize)
			for _, s := range sl.TableInfos {
				fmt.Fprintf(&sb, " %d/%d", s.SstId, s.ObjectId)
			}
			sb.WriteString("]")
		}
		for _, lv := range l.Levels {
			if len(lv.TableInfos) == 0 {
				continue
			}
			fmt.Fprintf(&sb, " L%d(%d):", lv.LevelIdx, lv.TotalFileSize)
			for _, s := range lv.TableInfos {
				fmt.Fprintf(&sb, " %d/%d%v", s.SstId, s.ObjectId, s.TableIds)
			}
		}
	}
	return sb.String()
}

func sortedGroups(v *pb.HummockVersion) []uint64 {
	var ids []uint64
	for id := range v.Levels {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func TestSeedLayout(t *testing.T) {
	e := seed(t, rwsim.Options{Seed: 1}, nil)
	kvs := e.all(t)

	// Every column family of a v1.7 meta store is present.
	for _, cf := range []string{
		metastore.CFDefault, metastore.CFSystemParams, metastore.CFDatabase, metastore.CFSchema,
		metastore.CFTable, metastore.CFIndex, metastore.CFSink, metastore.CFSource, metastore.CFView,
		metastore.CFFunction, metastore.CFConnection, metastore.CFUserInfo, metastore.CFTableFragments,
		metastore.CFWorker, metastore.CFHummockDelta, metastore.CFHummockPinVersion,
		metastore.CFHummockPinSnapshot, metastore.CFCompactStatus, metastore.CFCompactTask,
		metastore.CFCompactionGroup, metastore.CFVersionStats,
	} {
		if len(withPrefix(kvs, metastore.Prefix(cf))) == 0 {
			t.Errorf("no keys under %s/", cf)
		}
	}

	// Cluster id: a UUIDv4 string.
	id := string(kvs["cf/cluster_id"])
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) || id != e.sim.ClusterID() {
		t.Errorf("cluster id %q", id)
	}

	// System params: every v1.7 param, as strings, with derived backup params.
	want := map[string]string{
		"barrier_interval_ms": "1000", "checkpoint_frequency": "1", "sstable_size_mb": "256",
		"parallel_compact_size_mb": "512", "block_size_kb": "64", "bloom_false_positive": "0.001",
		"state_store": rwsim.DefaultStateStore, "data_directory": "hummock_001",
		"backup_storage_url":       "minio://hummockadmin:hummockadmin@127.0.0.1:9301/hummock001",
		"backup_storage_directory": "hummock_001/backup", "max_concurrent_creating_streaming_jobs": "1",
		"pause_on_next_bootstrap": "false", "enable_tracing": "false",
	}
	params := withPrefix(kvs, "cf/system_params/")
	if len(params) != len(want) {
		t.Errorf("%d params, want %d", len(params), len(want))
	}
	for k, v := range want {
		if got := string(params["cf/system_params/"+k]); got != v {
			t.Errorf("param %s = %q, want %q", k, got, v)
		}
	}
	sp, _, err := metastore.SystemParamsFromKV(e.sim.SystemParams())
	if err != nil || sp.GetBarrierIntervalMs() != 1000 {
		t.Errorf("params do not parse: %v", err)
	}

	// default/: memcomparable u64 id generator bounds, as after one start.
	gens := map[string]uint64{
		"database": 1000, "schema": 1000, "function": 1000, "worker": 1001, "user": 1011,
		"backup": 1001, "parallel_unit": 1000, "compaction_group": 1005, "connection": 1000,
	}
	for cat, bound := range gens {
		v := kvs["default/"+cat+"_id_next_generator"]
		if len(v) != 8 || binary.BigEndian.Uint64(v) != bound {
			t.Errorf("generator %s = %x, want bound %d", cat, v, bound)
		}
	}
	for _, k := range []string{"table", "fragment", "actor", "hummock_ss_table_id", "hummock_compaction_task"} {
		if v := kvs["default/"+k+"_id_next_generator"]; len(v) != 8 {
			t.Errorf("generator %s missing", k)
		}
	}
	if len(kvs["default/notification_version"]) != 8 {
		t.Error("no notification_version")
	}
	sstBound := binary.BigEndian.Uint64(kvs["default/hummock_ss_table_id_id_next_generator"])
	tableBound := binary.BigEndian.Uint64(kvs["default/table_id_next_generator"])

	// Catalog keys: UInt32Value ids; dev (id 0) has the empty key.
	if v, ok := kvs["cf/catalog_database/"]; !ok || !strings.Contains(string(v), "dev") {
		t.Errorf("dev database not under cf/catalog_database/ (id 0): %q", v)
	}
	if n := len(withPrefix(kvs, "cf/catalog_schema/")); n != 4 {
		t.Errorf("%d schemas, want 4", n)
	}
	for _, cf := range []string{"cf/catalog_table/", "cf/catalog_index/", "cf/catalog_sink/", "cf/catalog_source/", "cf/catalog_view/", "cf/table_fragments/"} {
		for k := range withPrefix(kvs, cf) {
			id, ok := metastore.DecodeU64Key([]byte(k[len(cf):]))
			if !ok || id < 1001 || id >= tableBound {
				t.Errorf("%s: id %d outside [1001, %d)", k, id, tableBound)
			}
			if string(metastore.U32Key(uint32(id))) != k[len(cf):] {
				t.Errorf("%s: not a canonical UInt32Value key", k)
			}
		}
	}
	users := withPrefix(kvs, "cf/user_info/")
	if _, ok := users["cf/user_info/"+string(metastore.U32Key(1))]; !ok || len(users) != 3 {
		t.Errorf("users: %d rows", len(users))
	}
	for k, v := range withPrefix(kvs, "cf/table_fragments/") {
		if len(v) < 18<<10 || len(v) > 22<<10 {
			t.Errorf("%s: %d bytes, want ~20 KiB", k, len(v))
		}
	}

	// Compaction groups 2, 3 and the split group; version stats under the
	// empty key.
	var groups []uint64
	for k, v := range withPrefix(kvs, "cf/hummock_6/") {
		cg := &pb.CompactionGroup{}
		if err := proto.Unmarshal(v, cg); err != nil {
			t.Fatal(err)
		}
		gid, _ := metastore.DecodeU64Key([]byte(k[len("cf/hummock_6/"):]))
		if cg.Id != gid || cg.CompactionConfig.GetMaxLevel() != 6 || len(cg.CompactionConfig.ProtoReflect().GetUnknown()) == 0 {
			t.Errorf("group row %q: %v", k, cg)
		}
		groups = append(groups, gid)
	}
	slices.Sort(groups)
	if !slices.Equal(groups, sortedGroups(e.sim.ExpectedVersion())) || !slices.Contains(groups, 2) || !slices.Contains(groups, 3) || len(groups) < 3 {
		t.Errorf("compaction groups %v", groups)
	}
	if len(withPrefix(kvs, "cf/hummock_7/")) != 1 {
		t.Fatal("want one cf/hummock_7 row")
	}
	stats := &pb.HummockVersionStats{}
	if err := proto.Unmarshal(kvs["cf/hummock_7/"], stats); err != nil || len(stats.TableStats) == 0 {
		t.Errorf("version stats under empty key: %v %v", stats, err)
	}

	// The hummock side: checkpoint decodes to the checkpoint version, every
	// referenced object exists, object ids stay below the generator bound.
	base, deltas := e.readLog(t)
	if !proto.Equal(base, e.sim.CheckpointVersion()) {
		t.Error("checkpoint object differs from CheckpointVersion")
	}
	refs := hummock.ObjectIDs(base)
	refs = append(refs, hummock.ObjectIDs(e.sim.ExpectedVersion())...)
	for _, d := range deltas {
		for _, gd := range d.GroupDeltas {
			for _, g := range gd.GroupDeltas {
				for _, s := range g.GetIntraLevel().GetInsertedTableInfos() {
					refs = append(refs, s.ObjectId)
				}
			}
		}
	}
	for _, id := range refs {
		if id >= sstBound {
			t.Errorf("object %d not below hummock_ss_table_id bound %d", id, sstBound)
		}
		key := hummock.SSTPath("hummock_001", id, false)
		info, err := e.store.Stat(context.Background(), key)
		if err != nil {
			t.Errorf("SST object %s: %v", key, err)
		} else if info.Size < 2048 {
			t.Errorf("SST object %s: %d bytes", key, info.Size)
		}
	}

	// What rwsnap reads for a snapshot works on the seeded store.
	md, err := metastore.ReadMetadata(context.Background(), e.cli, 0)
	if err != nil {
		t.Fatal(err)
	}
	if md.ClusterID != id || len(md.Tables) == 0 || len(md.TableFragments) == 0 || len(md.Databases) != 1 ||
		len(md.Functions) != 1 || len(md.Connections) != 1 || len(md.Views) != 4 || len(md.Sinks) != 2 || len(md.Indexes) != 1 || len(md.Sources) != 2 {
		t.Errorf("ReadMetadata: %d functions, %d connections, %d views, %d sinks, %d indexes, %d sources",
			len(md.Functions), len(md.Connections), len(md.Views), len(md.Sinks), len(md.Indexes), len(md.Sources))
	}

	counts, err := rwsim.KeyCounts(context.Background(), e.cli)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keys per cf: %v", counts)
}

// TestDeltaChain checks the seeded log exercises every kind of delta and
// that rwsnap's replay of it gives rwsim's own version.
func TestDeltaChain(t *testing.T) {
	e := seed(t, rwsim.Options{Seed: 2}, nil)
	base, deltas := e.readLog(t)
	v := e.checkReplay(t)

	var old, commits2, compaction, trivial, construct, metaChange, destroy, watermarks bool
	for _, d := range deltas {
		if d.Id <= base.Id {
			old = true
			continue
		}
		if d.TrivialMove {
			trivial = true
		}
		if len(d.NewTableWatermarks) > 0 {
			watermarks = true
		}
		l0Groups := 0
		for _, gd := range d.GroupDeltas {
			for _, g := range gd.GroupDeltas {
				switch x := g.DeltaType.(type) {
				case *pb.GroupDelta_IntraLevel:
					if x.IntraLevel.LevelIdx == 0 && len(x.IntraLevel.InsertedTableInfos) > 0 {
						l0Groups++
					}
					if x.IntraLevel.LevelIdx == 0 && len(x.IntraLevel.RemovedTableIds) > 0 && !d.TrivialMove {
						compaction = true
					}
				case *pb.GroupDelta_GroupConstruct:
					construct = true
					if x.GroupConstruct.NewSstStartId == 0 || x.GroupConstruct.Version != pb.CompatibilityVersion_NO_TRIVIAL_SPLIT {
						t.Errorf("group construct %v", x.GroupConstruct)
					}
				case *pb.GroupDelta_GroupMetaChange:
					metaChange = true
				case *pb.GroupDelta_GroupDestroy:
					destroy = true
				}
			}
		}
		if l0Groups >= 2 {
			commits2 = true
		}
	}
	for name, ok := range map[string]bool{"old delta": old, "multi-group commit": commits2, "L0 compaction": compaction,
		"trivial move": trivial, "group construct": construct, "group meta change": metaChange, "group destroy": destroy,
		"table watermarks": watermarks} {
		if !ok {
			t.Errorf("delta log lacks a %s", name)
		}
	}
	// Consecutive ids after the checkpoint.
	var ids []uint64
	for _, d := range deltas {
		if d.Id > base.Id {
			ids = append(ids, d.Id)
			if d.PrevId != d.Id-1 {
				t.Errorf("delta %d prev %d", d.Id, d.PrevId)
			}
		}
	}
	if ids[0] != base.Id+1 || ids[len(ids)-1] != v.Id || len(ids) != int(v.Id-base.Id) {
		t.Errorf("delta ids %v after checkpoint %d, version %d", ids, base.Id, v.Id)
	}
	if v.SafeEpoch <= base.SafeEpoch || v.MaxCommittedEpoch <= base.MaxCommittedEpoch {
		t.Errorf("epochs did not advance: %s", summarize(v))
	}

	// Branched SSTs: one object in two groups under different sst ids.
	owner := map[uint64]uint64{}
	shared := false
	for gid, l := range v.Levels {
		seen := map[uint64]bool{}
		for _, s := range ssts(l) {
			if seen[s.ObjectId] {
				t.Errorf("group %d holds object %d twice", gid, s.ObjectId)
			}
			seen[s.ObjectId] = true
			if g, ok := owner[s.ObjectId]; ok && g != gid {
				shared = true
			}
			owner[s.ObjectId] = gid
		}
	}
	if !shared {
		t.Error("no SST object shared between groups after the split")
	}
	// L1+ levels are sorted and concatenable by key range; L0 sub-levels ascend.
	for gid, l := range v.Levels {
		for i := 1; i < len(l.L0.SubLevels); i++ {
			if l.L0.SubLevels[i-1].SubLevelId >= l.L0.SubLevels[i].SubLevelId {
				t.Errorf("group %d: L0 sub-levels out of order", gid)
			}
		}
		for _, lv := range l.Levels {
			for i := 1; i < len(lv.TableInfos); i++ {
				a, b := lv.TableInfos[i-1].KeyRange.Right, lv.TableInfos[i].KeyRange.Left
				if string(a[:len(a)-8]) >= string(b[:len(b)-8]) {
					t.Errorf("group %d L%d: SSTs overlap or unsorted", gid, lv.LevelIdx)
				}
			}
		}
	}
	t.Logf("checkpoint %d, %d deltas: %s", base.Id, len(deltas), summarize(v))
}

func ssts(l *pb.HummockVersion_Levels) []*pb.SstableInfo {
	var out []*pb.SstableInfo
	for _, sl := range l.L0.SubLevels {
		out = append(out, sl.TableInfos...)
	}
	for _, lv := range l.Levels {
		out = append(out, lv.TableInfos...)
	}
	return out
}

func TestAdvanceAndCheckpoint(t *testing.T) {
	e := seed(t, rwsim.Options{Seed: 3, FragmentSize: 4 << 10}, nil)
	ctx := context.Background()
	tables := len(e.sim.Relations())
	for i := range 25 {
		before := e.sim.ExpectedVersion()
		beforeEpoch := e.sim.LastEpoch()
		if i%4 != 3 { // sometimes the clock stands still: epochs must still grow
			e.clock.Add(time.Second)
		}
		if err := e.sim.Advance(ctx); err != nil {
			t.Fatal(err)
		}
		after := e.sim.ExpectedVersion()
		if e.sim.LastEpoch() <= beforeEpoch || after.MaxCommittedEpoch != e.sim.LastEpoch() || e.sim.LastEpoch()&0xffff != 0 {
			t.Fatalf("advance %d: epoch %d -> %d", i, beforeEpoch, e.sim.LastEpoch())
		}
		deltas := e.sim.Deltas()
		var commit *pb.HummockVersionDelta
		for _, d := range deltas {
			if d.Id == before.Id+1 {
				commit = d
			}
		}
		if commit == nil || commit.PrevId != before.Id || commit.MaxCommittedEpoch != e.sim.LastEpoch() || len(commit.GroupDeltas) < 2 {
			t.Fatalf("advance %d: no commit delta %d: %v", i, before.Id+1, commit)
		}
		if last := deltas[len(deltas)-1]; last.Id != after.Id {
			t.Fatalf("advance %d: last delta %d, version %d", i, last.Id, after.Id)
		}
		if i%5 == 4 {
			e.checkReplay(t)
		}
	}
	if len(e.sim.Relations()) <= tables {
		t.Error("25 advances created no materialized view")
	}
	if e.sim.SafeEpoch() == 0 {
		t.Error("safe epoch never advanced")
	}

	// A checkpoint replaces the object and truncates the log.
	if err := e.sim.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	base, deltas := e.readLog(t)
	if len(deltas) != 0 || !proto.Equal(base, e.sim.ExpectedVersion()) {
		t.Fatalf("after checkpoint: %d deltas left", len(deltas))
	}
	for range 3 {
		e.clock.Add(time.Second)
		if err := e.sim.Advance(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.checkReplay(t)

	// Every SST object named by the version exists.
	for _, id := range hummock.ObjectIDs(e.sim.ExpectedVersion()) {
		if _, err := e.store.Stat(ctx, e.sim.SSTKey(id)); err != nil {
			t.Errorf("object %d: %v", id, err)
		}
	}
}

func TestAdvanceRealClock(t *testing.T) {
	e := seed(t, rwsim.Options{Seed: 4, Now: time.Now}, nil)
	start := time.Now()
	if err := e.sim.Advance(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := rwsim.EpochTime(e.sim.LastEpoch())
	if got.Before(start.Add(-time.Millisecond)) || got.After(time.Now().Add(time.Second)) {
		t.Errorf("epoch time %v not now (%v)", got, start)
	}
	if base := e.sim.CheckpointVersion(); rwsim.EpochTime(base.MaxCommittedEpoch).After(start) {
		t.Errorf("checkpoint epoch in the future")
	}
}

func TestCampaign(t *testing.T) {
	e := seed(t, rwsim.Options{Seed: 5, FragmentSize: 1024}, nil)
	ctx := context.Background()
	resign, err := e.sim.Campaign(ctx, e.cli, "127.0.0.1:5690", 5)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.cli.Get(ctx, rwsim.MetaElectionKey, clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("election keys: %v %v", resp, err)
	}
	kv := resp.Kvs[0]
	if want := fmt.Sprintf("%s/%x", rwsim.MetaElectionKey, kv.Lease); string(kv.Key) != want || string(kv.Value) != "127.0.0.1:5690" {
		t.Errorf("election key %q = %q, want %q", kv.Key, kv.Value, want)
	}
	ttl, err := e.cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
	if err != nil || ttl.TTL <= 0 {
		t.Errorf("lease not live: %v %v", ttl, err)
	}
	leader, err := metastore.FindLeader(ctx, e.cli)
	if err != nil || leader == nil || leader.Addr != "127.0.0.1:5690" {
		t.Errorf("FindLeader: %+v %v", leader, err)
	}
	resign()
	resp, err = e.cli.Get(ctx, rwsim.MetaElectionKey, clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 0 {
		t.Errorf("after resign: %v %v", resp.Kvs, err)
	}
	if leader, _ := metastore.FindLeader(ctx, e.cli); leader != nil {
		t.Errorf("leader after resign: %+v", leader)
	}
}

// TestDeterministicFS seeds twice with the same seed and clock on the fs
// backend (a hummock+fs state store): same versions, same objects.
func TestDeterministicFS(t *testing.T) {
	var versions []*pb.HummockVersion
	for range 2 {
		dir := t.TempDir()
		st, err := objstore.Open(context.Background(), "fs://"+dir)
		if err != nil {
			t.Fatal(err)
		}
		e := seed(t, rwsim.Options{Seed: 9, StateStore: "hummock+fs://" + dir, DataDir: "data", Tables: 4}, st)
		if p := e.sim.SystemParams(); p["backup_storage_url"] != "fs://"+dir || p["backup_storage_directory"] != "data/backup" {
			t.Errorf("derived backup params %v", p)
		}
		e.checkReplay(t)
		infos, err := st.List(context.Background(), "data/")
		if err != nil || len(infos) < 10 {
			t.Fatalf("fs objects: %d %v", len(infos), err)
		}
		versions = append(versions, e.sim.ExpectedVersion())
	}
	if !proto.Equal(versions[0], versions[1]) {
		t.Error("same seed, different versions")
	}
}

func TestExtraKeys(t *testing.T) {
	e := seed(t, rwsim.Options{Seed: 6, ExtraKeys: 3000, FragmentSize: 1024}, nil)
	counts, err := rwsim.KeyCounts(context.Background(), e.cli)
	if err != nil {
		t.Fatal(err)
	}
	if counts["cf/catalog_table"] < 3000 {
		t.Errorf("catalog tables %d", counts["cf/catalog_table"])
	}
	kvs := e.all(t)
	bound := binary.BigEndian.Uint64(kvs["default/table_id_next_generator"])
	if bound < 1001+3000 {
		t.Errorf("table id bound %d below padding ids", bound)
	}
}
