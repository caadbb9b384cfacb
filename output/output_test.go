package output

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

type inner struct {
	IDs []uint64 `json:"ids"`
}

type res struct {
	Names []string          `json:"names"`
	Inner inner             `json:"inner"`
	Ptr   *inner            `json:"ptr"`
	List  []inner           `json:"list"`
	Map   map[string]*inner `json:"map"`
	Raw   json.RawMessage   `json:"raw,omitempty"`
}

func (r *res) WriteTable(w io.Writer) error {
	_, err := io.WriteString(w, "table\n")
	return err
}

func TestPrintJSONHasNoNullLists(t *testing.T) {
	r := &res{Ptr: &inner{}, List: []inner{{}}, Map: map[string]*inner{"a": {}}}
	var b bytes.Buffer
	if err := Print(&b, JSON, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "null") {
		t.Fatalf("null in JSON:\n%s", b.String())
	}
	for _, want := range []string{`"names": []`, `"ids": []`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b.String())
		}
	}
	// The caller's value is not changed.
	if r.Names != nil || r.Ptr.IDs != nil || r.List[0].IDs != nil || r.Map["a"].IDs != nil {
		t.Errorf("Print changed its argument: %+v", r)
	}
	b.Reset()
	if err := Print(&b, Table, r); err != nil || b.String() != "table\n" {
		t.Fatalf("table: %q %v", b.String(), err)
	}
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in    string
		extra []Format
		want  Format
		err   string
	}{
		{"table", nil, Table, ""},
		{"json", nil, JSON, ""},
		{"yaml", nil, "", `--output "yaml": want table or json`},
		{"", nil, "", `--output "": want table or json`},
		{"csv", []Format{"csv"}, "csv", ""},
		{"xml", []Format{"csv"}, "", `--output "xml": want table, json or csv`},
	} {
		got, err := Parse(tt.in, tt.extra...)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && err.Error() != tt.err) {
			t.Errorf("Parse(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestTimes(t *testing.T) {
	local := time.FixedZone("X", 3600)
	if got := Time(time.Date(2026, 11, 20, 11, 0, 0, 250e6, local)); got != "2026-11-20T10:00:00.25Z" {
		t.Errorf("Time = %s", got)
	}
	if got := Time(time.Time{}); got != "" {
		t.Errorf("zero Time = %q", got)
	}
	// 2021-04-01T00:00:00Z is epoch 0; one second later is 1000<<16.
	if got := EpochTime(1000 << 16); got != "2021-04-01T00:00:01Z" {
		t.Errorf("EpochTime = %s", got)
	}
	if got := EpochTime(0); got != "" {
		t.Errorf("EpochTime(0) = %q", got)
	}
}

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"before upgrade", "before upgrade"},
		{"ünïcödé ✓ and a \\ backslash", "ünïcödé ✓ and a \\ backslash"},
		{"line1\nline2\ttab\rcr", `line1\nline2\ttab\rcr`},
		{"\x1b[2J\x1b[Hfake prompt$ ", `\x1b[2J\x1b[Hfake prompt$ `},
		{"bell\x07 del\x7f nul\x00", `bell\x07 del\x7f nul\x00`},
		{"c1 \u009b31m csi", `c1 \u009b31m csi`},
		{"bad utf8 \xff\xfe end", `bad utf8 \xff\xfe end`},
		{"a real \uFFFD stays", "a real \uFFFD stays"},
	} {
		if got := Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := EscapeLines("first\nsecond \x1b[31m"); got != "first\nsecond \\x1b[31m" {
		t.Errorf("EscapeLines: %q", got)
	}
}
