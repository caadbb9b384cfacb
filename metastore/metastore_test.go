package metastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
)

func TestKeyEncoding(t *testing.T) {
	tests := []struct {
		id   uint64
		want []byte
	}{
		{0, []byte{}},                    // prost omits the default value
		{1, []byte{0x08, 0x01}},          // field 1 varint
		{1001, []byte{0x08, 0xe9, 0x07}}, // reference §2.1 example
	}
	for _, tt := range tests {
		if got := U64Key(tt.id); !bytes.Equal(got, tt.want) {
			t.Errorf("U64Key(%d) = %x, want %x", tt.id, got, tt.want)
		}
		if got, ok := DecodeU64Key(tt.want); !ok || got != tt.id {
			t.Errorf("DecodeU64Key(%x) = %d, %v", tt.want, got, ok)
		}
	}
	if got := string(EtcdKey(CFTable, U32Key(1001))); got != "cf/catalog_table/\x08\xe9\x07" {
		t.Errorf("EtcdKey = %q", got)
	}
	if got := string(EtcdKey(CFVersionStats, U64Key(0))); got != "cf/hummock_7/" {
		t.Errorf("stats key = %q", got)
	}
	if !bytes.Equal(MemcomparableU64(1001), []byte{0, 0, 0, 0, 0, 0, 0x03, 0xe9}) {
		t.Error("memcomparable u64")
	}
}

func seedMinimal(t *testing.T, cli *clientv3.Client, tables int) {
	t.Helper()
	ctx := context.Background()
	put := func(k, v string) {
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	put("cf/cluster_id", "0b5e2c51-5a2d-4c2a-9a43-5e2f6f0b2f1e")
	put("cf/system_params/state_store", "hummock+fs:///tmp/x")
	put("cf/system_params/barrier_interval_ms", "1000")
	put("default/table_id_next_generator", string(MemcomparableU64(2001)))
	for i := 0; i < tables; i++ {
		put(string(EtcdKey(CFTable, U32Key(uint32(1001+i)))), fmt.Sprintf("table-%d", i))
	}
	// A cf whose name extends another's must not leak into it.
	put("cf/hummock_10/x", "not a delta")
	put("cf/hummock_1/"+string(U64Key(5)), "delta-5")
}

func TestReadMetadataOneRevision(t *testing.T) {
	c := etcdtest.StartT(t, embedetcd.Config{})
	cli := etcdtest.ClientT(t, c)
	ctx := context.Background()
	seedMinimal(t, cli, 50)

	// Pin a revision, then change etcd: a pinned read must not see it.
	r := NewReader(cli, 0)
	if _, _, err := r.Get(ctx, "cf/cluster_id"); err != nil {
		t.Fatal(err)
	}
	rev := r.Revision()
	if _, err := cli.Put(ctx, string(EtcdKey(CFTable, U32Key(5000))), "late"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, string(EtcdKey(CFTable, U32Key(1001)))); err != nil {
		t.Fatal(err)
	}
	md, err := ReadMetadata(ctx, cli, rev)
	if err != nil {
		t.Fatal(err)
	}
	has := func(vals [][]byte, want string) bool {
		for _, v := range vals {
			if string(v) == want {
				return true
			}
		}
		return false
	}
	// Lists come in etcd key order (varint keys: not numeric), as list_cf.
	if md.Revision != rev || len(md.Tables) != 50 || !has(md.Tables, "table-0") || has(md.Tables, "late") {
		t.Fatalf("revision %d (want %d), %d tables", md.Revision, rev, len(md.Tables))
	}
	if len(md.HummockDeltas) != 1 || string(md.HummockDeltas[0].Value) != "delta-5" {
		t.Fatalf("deltas = %v", md.HummockDeltas)
	}
	if md.SystemParams["barrier_interval_ms"] != "1000" || md.ClusterID == "" {
		t.Fatalf("params %v cluster %q", md.SystemParams, md.ClusterID)
	}
	if len(md.DefaultCF) != 1 || string(md.DefaultCF[0].Key) != "table_id_next_generator" {
		t.Fatalf("default cf = %v", md.DefaultCF)
	}
	// The current read sees the change.
	now, err := ReadMetadata(ctx, cli, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(now.Tables) != 50 || has(now.Tables, "table-0") || !has(now.Tables, "late") {
		t.Fatalf("current read: %d tables", len(now.Tables))
	}
}

func TestRangePaginates(t *testing.T) {
	t.Setenv(RangeModeEnv, "paged")
	c := etcdtest.StartT(t, embedetcd.Config{})
	cli := etcdtest.ClientT(t, c)
	seedMinimal(t, cli, 37)
	for _, page := range []int{0, 1, 2, 10, 36, 37, 38, 1000} { // 0: adaptive
		r := NewReader(cli, 0)
		r.PageSize = page
		kvs, err := r.ListCF(context.Background(), CFTable)
		if err != nil {
			t.Fatal(err)
		}
		if len(kvs) != 37 {
			t.Fatalf("page %d: %d keys", page, len(kvs))
		}
		for i := 1; i < len(kvs); i++ {
			if bytes.Compare(kvs[i-1].Key, kvs[i].Key) >= 0 {
				t.Fatalf("page %d: keys out of order at %d", page, i)
			}
		}
	}
}

func TestReadMetadataErrors(t *testing.T) {
	c := etcdtest.StartT(t, embedetcd.Config{})
	cli := etcdtest.ClientT(t, c)
	ctx := context.Background()
	if _, err := ReadMetadata(ctx, cli, 0); !errors.Is(err, ErrNotRisingWave) {
		t.Fatalf("empty etcd: err = %v", err)
	}
	if _, err := cli.Put(ctx, "cf/system_params/state_store", "hummock+memory"); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMetadata(ctx, cli, 0); err == nil || !strings.Contains(err.Error(), "cluster id not found") {
		t.Fatalf("no cluster id: err = %v", err)
	}
	// A compacted revision is reported as such, so callers can retry.
	seedMinimal(t, cli, 1)
	r := NewReader(cli, 0)
	r.Get(ctx, "cf/cluster_id")
	old := r.Revision()
	resp, _ := cli.Put(ctx, "cf/system_params/x", "y")
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMetadata(ctx, cli, old); !errors.Is(err, ErrCompacted) {
		t.Fatalf("compacted: err = %v", err)
	}
}

func TestAllocBackupIDConcurrent(t *testing.T) {
	c := etcdtest.StartT(t, embedetcd.Config{})
	cli := etcdtest.ClientT(t, c)
	ctx := context.Background()
	// Absent generator starts at 1.
	if id, err := AllocBackupID(ctx, cli); err != nil || id != 1 {
		t.Fatalf("first id = %d, %v", id, err)
	}
	if _, err := cli.Put(ctx, "default/backup_id_next_generator", string(MemcomparableU64(1001))); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := AllocBackupID(ctx, cli)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[id] {
				t.Errorf("id %d handed out twice", id)
			}
			seen[id] = true
		}()
	}
	wg.Wait()
	for id := uint64(1001); id < 1009; id++ {
		if !seen[id] {
			t.Errorf("id %d not handed out (got %v)", id, seen)
		}
	}
	resp, _ := cli.Get(ctx, "default/backup_id_next_generator")
	if !bytes.Equal(resp.Kvs[0].Value, MemcomparableU64(1009)) {
		t.Fatalf("generator = %x", resp.Kvs[0].Value)
	}
}

func TestFindLeader(t *testing.T) {
	c := etcdtest.StartT(t, embedetcd.Config{})
	cli := etcdtest.ClientT(t, c)
	ctx := context.Background()
	if l, err := FindLeader(ctx, cli); err != nil || l != nil {
		t.Fatalf("no meta: %v %v", l, err)
	}
	// Campaign as RisingWave does: the etcd election API on __meta_election_.
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(2))
	if err != nil {
		t.Fatal(err)
	}
	el := concurrency.NewElection(sess, ElectionPrefix)
	if err := el.Campaign(ctx, "127.0.0.1:5690"); err != nil {
		t.Fatal(err)
	}
	l, err := FindLeader(ctx, cli)
	if err != nil || l == nil || l.Addr != "127.0.0.1:5690" || !strings.HasPrefix(l.Key, ElectionPrefix) {
		t.Fatalf("live meta: %+v %v", l, err)
	}
	// A crashed meta: its lease stops being kept alive and expires.
	sess.Orphan()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := FindLeader(ctx, cli)
		if err != nil {
			t.Fatal(err)
		}
		if l == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader still live after its lease should have expired: %+v", l)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestSystemParamsRoundTrip(t *testing.T) {
	kv := map[string]string{
		"barrier_interval_ms": "1000", "checkpoint_frequency": "1", "sstable_size_mb": "256", "block_size_kb": "64",
		"bloom_false_positive": "0.001", "state_store": "hummock+minio://a:b@h:1/bkt", "data_directory": "hummock_001",
		"backup_storage_url": "minio://a:b@h:1/bkt", "backup_storage_directory": "hummock_001/backup",
		"parallel_compact_size_mb": "512", "max_concurrent_creating_streaming_jobs": "1", "pause_on_next_bootstrap": "false",
		"enable_tracing": "true", "some_future_param": "x",
	}
	sp, unknown, err := SystemParamsFromKV(kv)
	if err != nil {
		t.Fatal(err)
	}
	if len(unknown) != 1 || unknown[0] != "some_future_param" {
		t.Fatalf("unknown = %v", unknown)
	}
	if sp.GetBarrierIntervalMs() != 1000 || sp.GetBloomFalsePositive() != 0.001 || !sp.GetEnableTracing() || sp.PauseOnNextBootstrap == nil || sp.GetPauseOnNextBootstrap() {
		t.Fatalf("params = %v", sp)
	}
	back := SystemParamsToKV(sp)
	delete(kv, "some_future_param")
	for k, v := range kv {
		if back[k] != v {
			t.Errorf("%s: %q, want %q", k, back[k], v)
		}
	}
	if _, _, err := SystemParamsFromKV(map[string]string{"barrier_interval_ms": "fast"}); err == nil {
		t.Error("bad number accepted")
	}
}

// TestValidateParam follows RisingWave's set_system_param: str::parse of
// the Rust type, then OverrideValidateOnSet (mod.rs, v1.7.0 .. v2.0.7),
// and object store URLs as build_remote_object_store takes them.
func TestValidateParam(t *testing.T) {
	tests := []struct {
		name, value string
		ok          bool
		why         string
	}{
		{"barrier_interval_ms", "500", true, ""},
		{"barrier_interval_ms", "100", true, ""},
		{"barrier_interval_ms", "+250", true, ""}, // Rust's from_str takes a '+'
		{"barrier_interval_ms", "99", false, "out of range"},
		{"barrier_interval_ms", "0", false, "out of range"},
		{"barrier_interval_ms", "-1", false, "unsigned"},
		{"barrier_interval_ms", " 500", false, "unsigned"},
		{"barrier_interval_ms", "1_000", false, "unsigned"},
		{"barrier_interval_ms", "", false, "unsigned"},
		{"barrier_interval_ms", "5000000000", false, "out of range for u32"},
		{"checkpoint_frequency", "1", true, ""},
		{"checkpoint_frequency", "0", false, "out of range"},
		{"checkpoint_frequency", "5000000000", true, ""},
		{"checkpoint_frequency", "18446744073709551616", false, "out of range for u64"},
		{"max_concurrent_creating_streaming_jobs", "0", true, ""}, // no rule beyond u32
		{"bloom_false_positive", "0.01", true, ""},
		{"bloom_false_positive", "1e-3", true, ""},
		{"bloom_false_positive", "0x1p-3", false, "decimal"},
		{"bloom_false_positive", "abc", false, "number"},
		{"enable_tracing", "true", true, ""},
		{"enable_tracing", "yes", false, "true or false"},
		{"enable_tracing", "True", false, "true or false"},
		{"backup_storage_directory", "backup", true, ""},
		{"backup_storage_directory", "  ", false, "cannot be empty"},
		{"backup_storage_url", "minio://ak:sk@127.0.0.1:9000/b", true, ""},
		{"backup_storage_url", "minio://ak:sk@http://127.0.0.1:9000/b", true, ""},
		{"backup_storage_url", "s3://bucket", true, ""},
		{"backup_storage_url", "fs:///var/backups", true, ""},
		{"backup_storage_url", "gcs://bucket", true, ""},
		{"backup_storage_url", "azblob://c", true, ""},
		{"backup_storage_url", "memory", true, ""},
		{"backup_storage_url", " ", false, "cannot be empty"},
		{"backup_storage_url", "hummock+minio://ak:sk@h:9000/b", false, "hummock+ belongs to state_store"},
		{"backup_storage_url", "hummock+s3://b", false, "hummock+ belongs to state_store"},
		{"backup_storage_url", "s3-compatible://b", false, "does not support s3-compatible"},
		{"backup_storage_url", "ftp://host/x", false, "not an object store URL"},
		{"backup_storage_url", "/var/backups", false, "not an object store URL"},
		{"backup_storage_url", "minio://h:9000/b", false, "ACCESS_KEY:SECRET_KEY"},
		{"backup_storage_url", "minio://ak:sk@h:9000", false, "ACCESS_KEY:SECRET_KEY"},
		{"backup_storage_url", "s3://", false, "needs a bucket"},
		{"state_store", "hummock+minio://ak:sk@h:9000/b", true, ""},
		{"state_store", "minio://ak:sk@h:9000/b", false, "hummock+"},
		{"data_directory", "", false, "cannot be empty"},
		// No string parameter is non-UTF-8 (RisingWave could not decode
		// it) or holds a control character.
		{"backup_storage_directory", "a\xffb", false, "not valid UTF-8"},
		{"backup_storage_directory", "a\x1b[2Jb", false, "control character (U+001B)"},
		{"data_directory", "hummock\n001", false, "control character (U+000A)"},
		{"backup_storage_url", "s3://b\tx", false, "control character"},
		{"license_key", "eyJ\x00SEKRIT", false, "control character"},
		{"backup_storage_directory", "répertoire/备份", true, ""},
		{"no_such_param", "1", false, "unknown"},
	}
	for _, tt := range tests {
		err := ValidateParam(tt.name, tt.value)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateParam(%s, %q) = %v", tt.name, tt.value, err)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tt.why) {
			t.Errorf("ValidateParam(%s, %q) = %v, want it to say %q", tt.name, tt.value, err, tt.why)
		}
		if err != nil && strings.Contains(err.Error(), "SEKRIT") {
			t.Errorf("ValidateParam(%s) shows the secret value: %v", tt.name, err)
		}
	}
}
