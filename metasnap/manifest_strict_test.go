package metasnap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/objstore"
)

// Golden manifests written by hand from RisingWave's format description
// (src/storage/backup/src/lib.rs at v1.7.0, v1.10.2, v2.0.7 and v2.8.5).
const (
	// v1.10 entry: pbjson state_table_info (camelCase, u64 as strings,
	// zeros omitted) and rw_version.
	entryV110 = `{"id":11,"hummock_version_id":90,"ssts":[7,8],"max_committed_epoch":6597069766656,"safe_epoch":65536,"format_version":1,"remarks":"nightly","state_table_info":{"1001":{"committedEpoch":"6597069766656","safeEpoch":"65536","compactionGroupId":"3"}},"rw_version":"1.10.2"}`
	// v2.1+ entry: no max_committed_epoch/safe_epoch, snake_case numbers,
	// format 2 (SQL meta store), written by a newer RisingWave.
	entryV21 = `{"id":12,"hummock_version_id":95,"ssts":[9],"format_version":2,"remarks":null,"state_table_info":{"1001":{"committed_epoch":6597069832192,"compaction_group_id":3}},"rw_version":"2.1.0"}`
	// format-2 entry as RisingWave v1.9/v1.10's SQL backend writes it.
	entryF2 = `{"id":13,"hummock_version_id":96,"ssts":[],"max_committed_epoch":6597069897728,"safe_epoch":0,"format_version":2,"remarks":null,"state_table_info":{},"rw_version":"1.10.2"}`
)

func TestManifestMixedEntriesKeptByteForByte(t *testing.T) {
	in := `{"manifest_id":7,"snapshot_metadata":[` + entryV110 + `,` + entryV21 + `,` + entryF2 + `],"future_top":{"a":[1,2]}}`
	m, err := DecodeManifest([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.SnapshotMetadata) != 3 || len(m.Malformed()) != 0 {
		t.Fatalf("entries %d, malformed %v", len(m.SnapshotMetadata), m.Malformed())
	}
	a, b, c := m.SnapshotMetadata[0], m.SnapshotMetadata[1], m.SnapshotMetadata[2]
	if a.Shape != ShapePBJSON || a.StateTableInfo[1001].SafeEpoch != 65536 || *a.RWVersion != "1.10.2" {
		t.Fatalf("v1.10 entry %+v", a)
	}
	if b.Shape != ShapeSerde || b.FormatVersion != 2 || b.StateTableInfo[1001].CommittedEpoch != 6597069832192 || b.MaxCommittedEpoch != 0 {
		t.Fatalf("v2.1 entry %+v", b)
	}
	if c.FormatVersion != 2 || c.WrittenBy() != "written by RisingWave 1.10.2" {
		t.Fatalf("format-2 entry %+v", c)
	}
	// A rewrite (delete of nothing, a new entry) keeps every old byte.
	m.ManifestID++
	m.SnapshotMetadata = append(m.SnapshotMetadata, SnapshotMetadata{ID: 14, HummockVersionID: 97, FormatVersion: 1})
	out, err := EncodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"manifest_id":8,"snapshot_metadata":[` + entryV110 + `,` + entryV21 + `,` + entryF2 +
		`,{"id":14,"hummock_version_id":97,"ssts":[],"max_committed_epoch":0,"safe_epoch":0,"format_version":1,"remarks":null,"state_table_info":{},"rw_version":null}],"future_top":{"a":[1,2]}}`
	if string(out) != want {
		t.Fatalf("encoded\n%s\nwant\n%s", out, want)
	}
	// Deleting one keeps the others as they were.
	m.SnapshotMetadata = m.SnapshotMetadata[1:]
	out, _ = EncodeManifest(m)
	if !strings.HasPrefix(string(out), `{"manifest_id":8,"snapshot_metadata":[`+entryV21+`,`+entryF2+`,`) {
		t.Fatalf("after delete %s", out)
	}
}

func TestManifestUnknownFieldsEveryLevel(t *testing.T) {
	in := `{"manifest_id":1,"snapshot_metadata":[{"id":1,"hummock_version_id":2,"ssts":[],"max_committed_epoch":3,"safe_epoch":0,"format_version":1,"remarks":null,"state_table_info":{"5":{"committedEpoch":"3","vnodeCount":"256"}},"rw_version":"2.0.7","entry_extra":true}],"top_extra":"x"}`
	m, err := DecodeManifest([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	e := m.SnapshotMetadata[0]
	if string(e.StateTableInfo[5].Extra["vnodeCount"]) != `"256"` || string(e.Extra["entry_extra"]) != "true" || m.Extra[0].Name != "top_extra" {
		t.Fatalf("extras lost: %+v %+v", e, m.Extra)
	}
	// Changed entries are re-rendered and still keep every unknown field.
	m.SnapshotMetadata[0].Remarks = new(string)
	out, _ := EncodeManifest(m)
	for _, w := range []string{`"5":{"committedEpoch":"3","vnodeCount":"256"}`, `"entry_extra":true`, `"top_extra":"x"`, `"remarks":""`} {
		if !strings.Contains(string(out), w) {
			t.Fatalf("%s lacks %s", out, w)
		}
	}
}

func TestManifestStrictDocument(t *testing.T) {
	good := `{"manifest_id":1,"snapshot_metadata":[` + entryV110 + `]}`
	for name, in := range map[string]string{
		"trailing garbage": good + "x",
		"concatenated":     good + good,
		"two documents":    good + "\n" + `{"manifest_id":2,"snapshot_metadata":[]}`,
		"invalid utf-8":    `{"manifest_id":1,"snapshot_metadata":[],"x":"` + "\xff" + `"}`,
	} {
		if _, err := DecodeManifest([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// serde_json accepts trailing whitespace.
	if _, err := DecodeManifest([]byte(good + " \n\t\r")); err != nil {
		t.Errorf("trailing whitespace: %v", err)
	}
}

func TestManifestMalformedEntryFailsAlone(t *testing.T) {
	bad := `{"id":21,"hummock_version_id":1,"ssts":[],"max_committed_epoch":1,"safe_epoch":0,"state_table_info":{"9":{"committedEpoch":"soon"}}}`
	in := `{"manifest_id":4,"snapshot_metadata":[` + entryV110 + `,` + bad + `,{"id":"22","hummock_version_id":1},{"id":11,"hummock_version_id":3}]}`
	m, err := DecodeManifest([]byte(in))
	if err != nil {
		t.Fatalf("one bad entry failed the manifest: %v", err)
	}
	mal := m.Malformed()
	if len(mal) != 3 {
		t.Fatalf("malformed %d, want 3", len(mal))
	}
	for i, want := range []string{"entry #2 (snapshot 21): state_table_info[9].committedEpoch", "entry #3: field `id`", "entry #4: snapshot id 11 is listed twice (also entry #1)"} {
		if !errors.Is(mal[i].Err, ErrMalformedEntry) || !strings.Contains(mal[i].Err.Error(), want) {
			t.Errorf("malformed[%d] = %v, want %q", i, mal[i].Err, want)
		}
	}
	if m.Find(11).Err != nil || m.Find(21).Err == nil {
		t.Fatalf("Find")
	}
	// Rewritten, the bad entries stay exactly as they were.
	out, _ := EncodeManifest(m)
	if string(out) != in {
		t.Fatalf("rewrite changed bad entries:\n%s", out)
	}
}

// TestForeignEntriesCountTowardTheCap: format-2, 2.x and even malformed
// entries are snapshots RisingWave's cap counts (len of the manifest's
// list), so with 101 of them a backup is refused.
func TestForeignEntriesCountTowardTheCap(t *testing.T) {
	ctx := context.Background()
	st := NewStorage(objstore.NewMemory(), "backup")
	var entries []string
	for i := 1; i <= MaxSnapshots+1; i++ {
		switch i % 3 {
		case 0:
			entries = append(entries, fmt.Sprintf(`{"id":%d,"hummock_version_id":1,"ssts":[],"format_version":2,"state_table_info":{"1":{"committed_epoch":65536,"compaction_group_id":2}},"rw_version":"2.1.0"}`, i))
		case 1:
			entries = append(entries, fmt.Sprintf(`{"id":%d,"hummock_version_id":1,"ssts":[],"max_committed_epoch":1,"safe_epoch":0,"format_version":2,"remarks":null,"state_table_info":{},"rw_version":"1.10.2"}`, i))
		default:
			entries = append(entries, fmt.Sprintf(`{"id":%d,"hummock_version_id":"bad"}`, i))
		}
	}
	doc := `{"manifest_id":1,"snapshot_metadata":[` + strings.Join(entries, ",") + `]}`
	if err := st.Store.Put(ctx, st.ManifestKey(), []byte(doc)); err != nil {
		t.Fatal(err)
	}
	_, err := st.Create(ctx, (&MetaSnapshot{FormatVersion: FormatV1, ID: 500, Metadata: &ClusterMetadata{ClusterID: "c"}}).Encode(), SnapshotMetadata{ID: 500, FormatVersion: 1})
	if !errors.Is(err, ErrTooManySnapshots) {
		t.Fatalf("backup past the cap of foreign entries: %v", err)
	}
}
