package metasnap

import (
	"testing"

	"github.com/rwsnap/rwsnap/rwversion"
)

// TestEntryShapePerRelease: a new entry is written with exactly the keys
// the release's MetaSnapshotMetadata has (src/storage/backup/src/lib.rs per
// tag: format_version from v1.4, remarks from v1.6, state_table_info and
// rw_version from v1.10). The expected bytes are written by hand.
func TestEntryShapePerRelease(t *testing.T) {
	rv := "1.10.2"
	r := "nightly"
	for _, tc := range []struct {
		line    rwversion.Version
		remarks *string
		rwv     *string
		want    string
	}{
		{rwversion.Version{Major: 1, Minor: 2}, nil, nil, `{"id":7,"hummock_version_id":3,"ssts":[11],"max_committed_epoch":9,"safe_epoch":1}`},
		{rwversion.Version{Major: 1, Minor: 5}, nil, nil, `{"id":7,"hummock_version_id":3,"ssts":[11],"max_committed_epoch":9,"safe_epoch":1,"format_version":1}`},
		{rwversion.V1_7, &r, nil, `{"id":7,"hummock_version_id":3,"ssts":[11],"max_committed_epoch":9,"safe_epoch":1,"format_version":1,"remarks":"nightly"}`},
		{rwversion.V1_9, nil, nil, `{"id":7,"hummock_version_id":3,"ssts":[11],"max_committed_epoch":9,"safe_epoch":1,"format_version":1,"remarks":null}`},
		{rwversion.V1_10, nil, nil, `{"id":7,"hummock_version_id":3,"ssts":[11],"max_committed_epoch":9,"safe_epoch":1,"format_version":1,"remarks":null,"state_table_info":{},"rw_version":null}`},
		{rwversion.V1_10, nil, &rv, `{"id":7,"hummock_version_id":3,"ssts":[11],"max_committed_epoch":9,"safe_epoch":1,"format_version":1,"remarks":null,"state_table_info":{},"rw_version":"1.10.2"}`},
	} {
		shape := rwversion.For(tc.line).Manifest
		e := SnapshotMetadata{ID: 7, HummockVersionID: 3, SSTs: []uint64{11}, MaxCommittedEpoch: 9, SafeEpoch: 1, FormatVersion: FormatV1,
			Remarks: tc.remarks, RWVersion: tc.rwv, Absent: AbsentFor(shape)}
		if !shape.FormatVersion {
			e.FormatVersion = 0
		}
		b, err := e.MarshalJSON()
		if err != nil || string(b) != tc.want {
			t.Errorf("%s: %s, %v\nwant %s", tc.line, b, err, tc.want)
			continue
		}
		// Read back, it keeps its shape when rewritten with a change.
		m, err := DecodeManifest([]byte(`{"manifest_id":1,"snapshot_metadata":[` + tc.want + `]}`))
		if err != nil {
			t.Fatal(err)
		}
		got := m.SnapshotMetadata[0]
		got.SSTs = []uint64{11, 12}
		b, _ = got.MarshalJSON()
		if want := tc.want[:len(`{"id":7,"hummock_version_id":3,"ssts":[11`)] + `,12` + tc.want[len(`{"id":7,"hummock_version_id":3,"ssts":[11`):]; string(b) != want {
			t.Errorf("%s rewritten: %s\nwant %s", tc.line, b, want)
		}
	}
}

// TestAsWrittenBy: a meta node's rewrite keeps only its struct's keys and
// drops fields it does not know, as serde does.
func TestAsWrittenBy(t *testing.T) {
	in := `{"id":1,"hummock_version_id":2,"ssts":[],"max_committed_epoch":3,"safe_epoch":0,"format_version":1,"remarks":"r","state_table_info":{"5":{"committed_epoch":3,"compaction_group_id":2}},"rw_version":"2.1.0","future":true}`
	m, err := DecodeManifest([]byte(`{"manifest_id":1,"snapshot_metadata":[` + in + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	for line, want := range map[rwversion.Version]string{
		{Major: 1, Minor: 5}: `{"id":1,"hummock_version_id":2,"ssts":[],"max_committed_epoch":3,"safe_epoch":0,"format_version":1}`,
		rwversion.V1_9:       `{"id":1,"hummock_version_id":2,"ssts":[],"max_committed_epoch":3,"safe_epoch":0,"format_version":1,"remarks":"r"}`,
		rwversion.V2_0:       `{"id":1,"hummock_version_id":2,"ssts":[],"max_committed_epoch":3,"safe_epoch":0,"format_version":1,"remarks":"r","state_table_info":{"5":{"committedEpoch":"3","compactionGroupId":"2"}},"rw_version":"2.1.0"}`,
	} {
		b, err := m.SnapshotMetadata[0].AsWrittenBy(rwversion.For(line).Manifest).MarshalJSON()
		if err != nil || string(b) != want {
			t.Errorf("%s: %s, %v\nwant %s", line, b, err, want)
		}
	}
	// rwsnap itself keeps the entry as read.
	if b, _ := m.SnapshotMetadata[0].MarshalJSON(); string(b) != in {
		t.Errorf("kept: %s", b)
	}
}
