package timetravel

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/metasnap"
)

// One hour is 3600000 << 16 = 235929600000; hours after 2024-01-01 00:00 UTC.
const hour = uint64(235929600000)

func at(h float64) time.Time {
	return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(h * float64(time.Hour)))
}

func TestChooseTime(t *testing.T) {
	// Snapshot 1 serves 01:00..03:00, snapshot 2 02:00..04:00, snapshot 3
	// 06:00..08:00 (a gap 04:00..06:00).
	cat := &Catalog{Shape: ShapeV17, Snapshots: []Snapshot{
		{ID: 1, SafeEpoch: jan1 + hour, MaxCommittedEpoch: jan1 + 3*hour},
		{ID: 2, SafeEpoch: jan1 + 2*hour, MaxCommittedEpoch: jan1 + 4*hour},
		{ID: 3, SafeEpoch: jan1 + 6*hour, MaxCommittedEpoch: jan1 + 8*hour},
		{ID: 4}, // an empty cluster's snapshot serves nothing
	}}
	tests := []struct {
		h        float64
		epoch    uint64
		snapshot uint64
		exact    bool
	}{
		{1, jan1 + hour, 1, true},              // inclusive lower end
		{1.5, jan1 + hour + hour/2, 1, true},   // inside
		{2.5, jan1 + 2*hour + hour/2, 1, true}, // in both: the first in manifest order, as BackupReader
		{3.5, jan1 + 3*hour + hour/2, 2, true}, // only in 2
		{4, jan1 + 4*hour, 2, true},            // inclusive upper end
		{5, jan1 + 4*hour, 2, false},           // in the gap: the latest earlier covered epoch
		{7, jan1 + 7*hour, 3, true},            // inside 3
		{8, jan1 + 8*hour, 3, true},            // last covered moment
	}
	for _, tt := range tests {
		ch, err := cat.ChooseTime(at(tt.h), nil, time.UTC)
		if err != nil {
			t.Errorf("%vh: %v", tt.h, err)
			continue
		}
		if ch.Epoch != tt.epoch || ch.Range.SnapshotID != tt.snapshot || ch.Exact != tt.exact {
			t.Errorf("%vh: epoch %d snapshot %d exact %v, want %d %d %v", tt.h, ch.Epoch, ch.Range.SnapshotID, ch.Exact, tt.epoch, tt.snapshot, tt.exact)
		}
		if !IsCommitted(ch.Epoch) {
			t.Errorf("%vh: chose uncommitted %d", tt.h, ch.Epoch)
		}
	}
	if ch, err := cat.ChooseTime(at(1).Add(time.Millisecond), nil, time.UTC); err != nil || ch.Epoch != jan1+hour+65536 {
		t.Errorf("01:00:00.001: %+v %v", ch, err)
	}
	for _, tm := range []time.Time{at(0.5), at(8).Add(time.Millisecond), at(10)} {
		h := tm.Sub(at(0)).Hours()
		_, err := cat.ChooseTime(tm, nil, time.UTC)
		var re *RangeError
		if !errors.As(err, &re) {
			t.Errorf("%vh: want RangeError, got %v", h, err)
			continue
		}
		msg := err.Error()
		for _, want := range []string{"no meta snapshot covers 2024-01-01", "covered ranges",
			"snapshot 1: 2024-01-01 01:00:00.000 UTC .. 2024-01-01 03:00:00.000 UTC",
			"snapshot 3: 2024-01-01 06:00:00.000 UTC .. 2024-01-01 08:00:00.000 UTC"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%vh: message lacks %q:\n%s", h, want, msg)
			}
		}
		if strings.Contains(msg, "snapshot 4") {
			t.Errorf("an empty snapshot is listed as a range:\n%s", msg)
		}
	}
	if _, err := (&Catalog{}).ChooseTime(at(1), nil, time.UTC); !errors.Is(err, ErrNoSnapshots) {
		t.Errorf("no snapshots: %v", err)
	}
	if _, err := cat.ChooseTime(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), nil, time.UTC); !errors.Is(err, ErrBeforeRisingWave) {
		t.Errorf("2020: %v", err)
	}
}

func TestChooseEpochAndSnapshot(t *testing.T) {
	cat := &Catalog{Snapshots: []Snapshot{
		{ID: 1, SafeEpoch: 0, MaxCommittedEpoch: jan1},
		{ID: 7, SafeEpoch: jan1, MaxCommittedEpoch: jan1 + hour},
	}}
	if ch, err := cat.ChooseEpoch(65536, nil, time.UTC); err != nil || ch.Range.SnapshotID != 1 {
		t.Errorf("epoch 65536: %+v %v", ch, err)
	}
	if ch, err := cat.ChooseEpoch(jan1+hour, nil, time.UTC); err != nil || ch.Range.SnapshotID != 7 {
		t.Errorf("last epoch: %+v %v", ch, err)
	}
	var se *SpillError
	if _, err := cat.ChooseEpoch(jan1+1, nil, time.UTC); !errors.As(err, &se) || se.Nearest != jan1 {
		t.Errorf("spill: %v", err)
	}
	var re *RangeError
	if _, err := cat.ChooseEpoch(jan1+2*hour, nil, time.UTC); !errors.As(err, &re) {
		t.Errorf("past the end: %v", err)
	}
	ch, err := cat.ChooseSnapshot(7, nil, time.UTC)
	if err != nil || ch.Epoch != jan1+hour || ch.Range.SnapshotID != 7 {
		t.Errorf("snapshot 7: %+v %v", ch, err)
	}
	// Snapshot 1's last epoch is also snapshot 7's first: RisingWave reads 1.
	if ch, err := cat.ChooseSnapshot(1, nil, time.UTC); err != nil || ch.Epoch != jan1 || ch.Range.SnapshotID != 1 {
		t.Errorf("snapshot 1: %+v %v", ch, err)
	}
	if _, err := cat.ChooseSnapshot(3, nil, time.UTC); err == nil || !strings.Contains(err.Error(), "snapshots: 1, 7") {
		t.Errorf("missing snapshot: %v", err)
	}
}

func TestChoosePerTable(t *testing.T) {
	// A v1.10 manifest: table 1001 committed to 03:00, table 1002 to 02:00
	// with safe epoch 01:00; entry 2 predates v1.10 (global rule).
	m := &metasnap.Manifest{SnapshotMetadata: []metasnap.SnapshotMetadata{
		{ID: 1, SafeEpoch: 0, MaxCommittedEpoch: jan1 + 3*hour, StateTableInfo: map[uint32]metasnap.StateTableInfo{
			1001: {CommittedEpoch: jan1 + 3*hour},
			1002: {CommittedEpoch: jan1 + 2*hour, SafeEpoch: jan1 + hour},
		}},
		{ID: 2, SafeEpoch: jan1 + 5*hour, MaxCommittedEpoch: jan1 + 6*hour},
	}}
	cat := FromManifest(m)
	if !cat.HasPerTable() {
		t.Fatal("HasPerTable")
	}
	t1001, t1002, t9 := uint32(1001), uint32(1002), uint32(9)
	if ch, err := cat.ChooseTime(at(2.5), &t1001, time.UTC); err != nil || ch.Epoch != jan1+2*hour+hour/2 || !ch.Range.PerTable {
		t.Errorf("1001 at 2.5h: %+v %v", ch, err)
	}
	// 2.5h is past table 1002's committed epoch: its latest earlier covered moment.
	if ch, err := cat.ChooseTime(at(2.5), &t1002, time.UTC); err != nil || ch.Epoch != jan1+2*hour || ch.Exact {
		t.Errorf("1002 at 2.5h: %+v %v", ch, err)
	}
	// Before 1002's safe epoch.
	if _, err := cat.ChooseTime(at(0.5), &t1002, time.UTC); err == nil || !strings.Contains(err.Error(), "for table 1002") {
		t.Errorf("1002 at 0.5h: %v", err)
	}
	// Without a table: the range valid for all tables, 01:00..02:00.
	r, ok := cat.Snapshots[0].Range(nil)
	if !ok || r.Lo != jan1+hour || r.Hi != jan1+2*hour {
		t.Errorf("intersection: %+v", r)
	}
	// The pre-v1.10 entry serves any table.
	if ch, err := cat.ChooseTime(at(5.5), &t9, time.UTC); err != nil || ch.Range.SnapshotID != 2 || ch.Range.PerTable {
		t.Errorf("table 9 at 5.5h: %+v %v", ch, err)
	}
	if _, err := cat.ChooseSnapshot(1, &t9, time.UTC); err == nil || !strings.Contains(err.Error(), "no epochs for table 9") {
		t.Errorf("snapshot 1 table 9: %v", err)
	}
}

func TestParseStateTableInfo(t *testing.T) {
	got, err := parseStateTableInfo([]byte(`{"1001": {"committedEpoch": "5690621952000000", "safeEpoch": "65536", "compactionGroupId": "2"},
		"1002": {"committed_epoch": 131072}, "1003": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got[1001] != (TableEpochs{SafeEpoch: 65536, CommittedEpoch: jan1}) || got[1002].CommittedEpoch != 131072 || len(got) != 3 {
		t.Errorf("%+v", got)
	}
	for _, bad := range []string{`{"x": {}}`, `{"1": {"committedEpoch": "-1"}}`, `[]`} {
		if _, err := parseStateTableInfo([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func strp(s string) *string { return &s }

func TestRender(t *testing.T) {
	res := &Result{
		Columns: []Column{{"id", oidInt8}, {"name", 1043}, {"ok", oidBool}, {"doc", oidJSONB}},
		Rows: [][]*string{
			{strp("1"), strp("one"), strp("t"), strp(`{"a": 1}`)},
			{strp("22"), nil, strp("f"), nil},
		},
	}
	var b bytes.Buffer
	if err := RenderTable(&b, res); err != nil {
		t.Fatal(err)
	}
	want := " id | name | ok |   doc    \n" +
		"----+------+----+----------\n" +
		"  1 | one  | t  | {\"a\": 1}\n" +
		" 22 |      | f  | \n" +
		"(2 rows)\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := RenderCSV(&b, res); err != nil {
		t.Fatal(err)
	}
	if want := "id,name,ok,doc\n1,one,t,\"{\"\"a\"\": 1}\"\n22,,f,\n"; b.String() != want {
		t.Errorf("csv:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := RenderJSON(&b, res); err != nil {
		t.Fatal(err)
	}
	if want := "[\n  {\"id\": 1, \"name\": \"one\", \"ok\": true, \"doc\": {\"a\": 1}},\n  {\"id\": 22, \"name\": null, \"ok\": false, \"doc\": null}\n]\n"; b.String() != want {
		t.Errorf("json:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	RenderJSON(&b, &Result{Columns: res.Columns})
	if b.String() != "[]\n" {
		t.Errorf("empty json %q", b.String())
	}
	b.Reset()
	RenderTable(&b, &Result{Columns: []Column{{"count", oidInt8}}, Rows: [][]*string{{strp("3")}}})
	if want := " count \n-------\n     3\n(1 row)\n"; b.String() != want {
		t.Errorf("count:\n%q\nwant\n%q", b.String(), want)
	}
	if err := Render(&b, res, "xml"); err == nil {
		t.Error("xml accepted")
	}
}

func TestPsqlrc(t *testing.T) {
	rc := Psqlrc(PsqlOptions{Epoch: jan1, Banner: []string{"as of 'then'", `back\slash`}, Prompt: "[as of x] "}, "/home/u/my rc")
	for _, want := range []string{
		`\i '/home/u/my rc'`,
		"SET QUERY_EPOCH = 5690621952000000;",
		`\echo 'as of ''then'''`,
		`\echo 'back\\slash'`,
		`\set PROMPT1 '[as of x] ' :PROMPT1`,
		`\set QUIET :rwsnap_saved_quiet`,
	} {
		if !strings.Contains(rc, want) {
			t.Errorf("psqlrc lacks %q:\n%s", want, rc)
		}
	}
	if strings.Index(rc, `\i `) > strings.Index(rc, "SET QUERY_EPOCH") {
		t.Error("the user's psqlrc must run before the SET, so it cannot undo it")
	}
	conn, pw := splitPassword("postgres://root:s3cret@h:4566/dev?sslmode=disable")
	if conn != "postgres://root@h:4566/dev?sslmode=disable" || pw != "s3cret" {
		t.Errorf("splitPassword = %q %q", conn, pw)
	}
	if conn, pw := splitPassword("host=h user=root"); conn != "host=h user=root" || pw != "" {
		t.Errorf("key/value: %q %q", conn, pw)
	}
}
