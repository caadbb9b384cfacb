package restore

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
)

const minioURL = "minio://hummockadmin:hummockadmin@127.0.0.1:9301/hummock001"

func snapshot(t *testing.T, id uint64, generators map[string]uint64) *metasnap.MetaSnapshot {
	t.Helper()
	v, _ := proto.Marshal(&hummockpb.HummockVersion{Id: 42, MaxCommittedEpoch: 7 << 16})
	sp, _, err := metastore.SystemParamsFromKV(map[string]string{
		"state_store": "hummock+" + minioURL, "data_directory": "hummock_001",
		"backup_storage_url": minioURL, "backup_storage_directory": "backup", "barrier_interval_ms": "1000",
	})
	if err != nil {
		t.Fatal(err)
	}
	spb, _ := proto.Marshal(sp)
	m := &metasnap.ClusterMetadata{
		HummockVersion: v, VersionStats: []byte{0x08, 0x2a},
		CompactionGroups: [][]byte{{0x08, 0x02}, {0x08, 0x03}},
		TableFragments:   [][]byte{{0x08, 0xe9, 0x07, 0x12, 0x01, 'x'}},
		UserInfo:         [][]byte{{0x08, 0x01, 0x12, 0x04, 'r', 'o', 'o', 't'}},
		Databases:        [][]byte{{0x08, 0x01}},
		Tables:           [][]byte{{0x08, 0xe9, 0x07}, {0x08, 0xea, 0x07}},
		SystemParams:     spb,
		ClusterID:        "c0ffee",
	}
	for k, v := range generators {
		m.DefaultCF = append(m.DefaultCF, metasnap.KV{Key: []byte(k), Value: metastore.MemcomparableU64(v)})
	}
	return &metasnap.MetaSnapshot{FormatVersion: 1, ID: id, Metadata: m}
}

func TestBuildPlanKeys(t *testing.T) {
	p, err := BuildPlan(snapshot(t, 1, map[string]uint64{"table_id_next_generator": 2001}), nil, PlanOptions{HummockURL: minioURL, HummockDir: "hummock_001"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range mustAll(t, p) {
		got[kv.Key] = string(kv.Value)
	}
	want := map[string]string{
		"default/table_id_next_generator":      string(metastore.MemcomparableU64(2001)),
		"cf/hummock_7/":                        "\x08\x2a", // stats key 0 encodes to nothing
		"cf/hummock_6/\x08\x02":                "\x08\x02",
		"cf/hummock_6/\x08\x03":                "\x08\x03",
		"cf/table_fragments/\x08\xe9\x07":      "\x08\xe9\x07\x12\x01x",
		"cf/user_info/\x08\x01":                "\x08\x01\x12\x04root",
		"cf/catalog_database/\x08\x01":         "\x08\x01",
		"cf/catalog_table/\x08\xe9\x07":        "\x08\xe9\x07",
		"cf/catalog_table/\x08\xea\x07":        "\x08\xea\x07",
		"cf/system_params/state_store":         "hummock+" + minioURL,
		"cf/system_params/data_directory":      "hummock_001",
		"cf/system_params/barrier_interval_ms": "1000",
		"cf/cluster_id":                        "c0ffee",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q = %q, want %q", k, got[k], v)
		}
	}
	all := mustAll(t, p)
	if all[len(all)-1].Key != "cf/cluster_id" {
		t.Errorf("cluster id must be written last, got %q", all[len(all)-1].Key)
	}
	if p.HummockVersionID != 42 || p.CheckpointKey() != "hummock_001/checkpoint/0" || len(p.ParamChanges) != 0 {
		t.Errorf("plan %+v", p)
	}
}

func TestBuildPlanNewestRule(t *testing.T) {
	target := snapshot(t, 1, map[string]uint64{"table_id_next_generator": 2001, "backup_id_next_generator": 1001})
	tests := []struct {
		name    string
		newest  map[string]uint64
		wantErr string
	}{
		{"newer generators replace the target's", map[string]uint64{"table_id_next_generator": 3001, "backup_id_next_generator": 2001, "hummock_ss_table_id_next_generator": 5001}, ""},
		{"missing key", map[string]uint64{"table_id_next_generator": 3001}, "superset requirement"},
		{"smaller value", map[string]uint64{"table_id_next_generator": 1500, "backup_id_next_generator": 2001}, "monotonicity requirement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := BuildPlan(target, snapshot(t, 9, tt.newest), PlanOptions{HummockURL: minioURL, HummockDir: "hummock_001"})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.DefaultCFFrom != 9 || len(p.Groups[0].KVs) != 3 {
				t.Fatalf("default cf from %d: %v", p.DefaultCFFrom, p.Groups[0].KVs)
			}
			// Everything else still comes from the target.
			if p.SnapshotID != 1 {
				t.Fatal("target changed")
			}
		})
	}
}

func TestBuildPlanLocation(t *testing.T) {
	s := snapshot(t, 1, nil)
	tests := []struct {
		name    string
		o       PlanOptions
		wantErr string
		changes int
	}{
		{"same location", PlanOptions{HummockURL: minioURL, HummockDir: "hummock_001"}, "", 0},
		{"same bucket, other credentials", PlanOptions{HummockURL: "minio://other:pw@127.0.0.1:9301/hummock001", HummockDir: "hummock_001"}, "", 0},
		{"other url", PlanOptions{HummockURL: "s3://elsewhere", HummockDir: "hummock_001"}, "storage_url mismatch", 0},
		{"other dir", PlanOptions{HummockURL: minioURL, HummockDir: "dummy_dir"}, "storage_directory mismatch", 0},
		{"overwrite", PlanOptions{HummockURL: "s3://new", HummockDir: "hummock_002", OverwriteHummockEndpoint: true, OverwriteBackupURL: "s3://new", OverwriteBackupDir: "backup_2"}, "", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := BuildPlan(s, nil, tt.o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), ":hummockadmin@") {
					t.Fatalf("secret in error: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p.ParamChanges) != tt.changes {
				t.Fatalf("changes %v", p.ParamChanges)
			}
			if tt.changes > 0 {
				got := map[string]string{}
				for _, kv := range mustAll(t, p) {
					got[kv.Key] = string(kv.Value)
				}
				if got["cf/system_params/state_store"] != "hummock+s3://new" || got["cf/system_params/data_directory"] != "hummock_002" ||
					got["cf/system_params/backup_storage_url"] != "s3://new" || got["cf/system_params/backup_storage_directory"] != "backup_2" {
					t.Fatalf("params %v", got)
				}
			}
		})
	}
}

func TestValidateOptions(t *testing.T) {
	base := func() Options {
		return Options{SnapshotID: 1, MetaStoreType: "etcd", Etcd: metastore.Config{Endpoints: []string{"x"}}, BackupURL: "s3://b", HummockURL: "s3://h"}
	}
	tests := []struct {
		name    string
		mod     func(*Options)
		wantErr string
	}{
		{"ok, defaults filled", func(o *Options) {}, ""},
		{"missing flags named", func(o *Options) { o.SnapshotID = 0; o.BackupURL = "" }, "--meta-snapshot-id, --backup-storage-url"},
		{"sql", func(o *Options) { o.MetaStoreType = "sql" }, "not supported"},
		{"unknown type", func(o *Options) { o.MetaStoreType = "redis" }, "unknown"},
		{"partial overwrite", func(o *Options) { o.OverwriteHummockEndpoint = true }, "must be set together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base()
			tt.mod(&o)
			err := o.Validate()
			if tt.wantErr == "" {
				if err != nil || o.BackupDir != "backup" || o.HummockDir != "hummock_001" {
					t.Fatalf("%v %+v", err, o)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func mustAll(t *testing.T, p *Plan) []KV {
	t.Helper()
	all, err := p.All()
	if err != nil {
		t.Fatal(err)
	}
	return all
}
