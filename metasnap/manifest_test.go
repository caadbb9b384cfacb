package metasnap

import (
	"strings"
	"testing"
)

func TestManifestGoldenV17(t *testing.T) {
	// A v1.7.0-shaped entry (reference §1.2), written by hand.
	in := `{"manifest_id":3,"snapshot_metadata":[{"id":1,"hummock_version_id":42,"ssts":[3,5],"max_committed_epoch":6597069766656,"safe_epoch":0,"format_version":1,"remarks":null}]}`
	m, err := DecodeManifest([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	e := m.SnapshotMetadata[0]
	if m.ManifestID != 3 || e.ID != 1 || e.HummockVersionID != 42 || len(e.SSTs) != 2 || e.MaxCommittedEpoch != 6597069766656 || e.FormatVersion != 1 || e.Remarks != nil {
		t.Fatalf("decoded %+v", m)
	}
	out, err := EncodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	// An entry rwsnap did not change is written back as read.
	if string(out) != in {
		t.Fatalf("encoded\n%s\nwant\n%s", out, in)
	}
	// A new entry gets every field, state_table_info as {} (v1.10.0 cannot
	// parse an entry without it).
	m.SnapshotMetadata = append(m.SnapshotMetadata, SnapshotMetadata{ID: 2, HummockVersionID: 43, SSTs: []uint64{3}, FormatVersion: 1})
	out, _ = EncodeManifest(m)
	want := in[:len(in)-2] + `,{"id":2,"hummock_version_id":43,"ssts":[3],"max_committed_epoch":0,"safe_epoch":0,"format_version":1,"remarks":null,"state_table_info":{},"rw_version":null}]}`
	if string(out) != want {
		t.Fatalf("encoded\n%s\nwant\n%s", out, want)
	}
}

func TestManifestShapes(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, e SnapshotMetadata)
	}{
		{"v1.0 without format_version", `{"id":2,"hummock_version_id":1,"ssts":[],"max_committed_epoch":0,"safe_epoch":0}`,
			func(t *testing.T, e SnapshotMetadata) {
				if e.FormatVersion != 0 || e.Remarks != nil {
					t.Fatalf("%+v", e)
				}
			}},
		{"v1.10 pbjson state_table_info", `{"id":3,"hummock_version_id":9,"ssts":[7],"max_committed_epoch":10,"safe_epoch":1,"format_version":1,"remarks":"before upgrade","state_table_info":{"1001":{"committedEpoch":"6597069766656","compactionGroupId":"3"}},"rw_version":"1.10.0"}`,
			func(t *testing.T, e SnapshotMetadata) {
				info := e.StateTableInfo[1001]
				if info.CommittedEpoch != 6597069766656 || info.CompactionGroupID != 3 || info.SafeEpoch != 0 || *e.Remarks != "before upgrade" || *e.RWVersion != "1.10.0" {
					t.Fatalf("%+v", e)
				}
			}},
		{"HEAD snake_case numbers and extra field", `{"id":4,"hummock_version_id":9,"ssts":[],"format_version":2,"state_table_info":{"7":{"committed_epoch":65536,"compaction_group_id":2}},"future":{"x":1}}`,
			func(t *testing.T, e SnapshotMetadata) {
				if e.StateTableInfo[7].CommittedEpoch != 65536 || e.StateTableInfo[7].CompactionGroupID != 2 || string(e.Extra["future"]) != `{"x":1}` {
					t.Fatalf("%+v", e)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeManifest([]byte(`{"manifest_id":1,"snapshot_metadata":[` + tt.in + `]}`))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, m.SnapshotMetadata[0])
			// Whatever we read, we write back without losing it.
			out, _ := EncodeManifest(m)
			m2, err := DecodeManifest(out)
			if err != nil {
				t.Fatalf("re-decode %s: %v", out, err)
			}
			tt.check(t, m2.SnapshotMetadata[0])
		})
	}
}

func TestStateTableInfoPBJSON(t *testing.T) {
	m := &Manifest{ManifestID: 1, SnapshotMetadata: []SnapshotMetadata{{ID: 1, StateTableInfo: map[uint32]StateTableInfo{
		1002: {CommittedEpoch: 20, SafeEpoch: 0, CompactionGroupID: 3}, 1001: {CommittedEpoch: 10, SafeEpoch: 5}}}}}
	out, _ := EncodeManifest(m)
	want := `"state_table_info":{"1001":{"committedEpoch":"10","safeEpoch":"5"},"1002":{"committedEpoch":"20","compactionGroupId":"3"}}`
	if !strings.Contains(string(out), want) {
		t.Fatalf("got %s", out)
	}
}

func TestManifestRejects(t *testing.T) {
	for _, in := range []string{
		`not json`,
		`{"manifest_id":1}`,
		`{"snapshot_metadata":[]}`,
		`{"manifest_id":"1","snapshot_metadata":[]}`,
		`{"manifest_id":1,"snapshot_metadata":[],"manifest_id":2}`,
		`[]`,
	} {
		if _, err := DecodeManifest([]byte(in)); err == nil {
			t.Errorf("accepted %s", in)
		}
	}
}

func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"manifest_id":3,"snapshot_metadata":[{"id":1,"hummock_version_id":42,"ssts":[3,5],"max_committed_epoch":1,"safe_epoch":0,"format_version":1,"remarks":null,"state_table_info":{"1":{"committedEpoch":"2"}}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			return
		}
		out, err := EncodeManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeManifest(out); err != nil {
			t.Fatalf("re-decode of %s: %v", out, err)
		}
	})
}
