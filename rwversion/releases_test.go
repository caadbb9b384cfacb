package rwversion

import (
	"errors"
	"strings"
	"testing"
)

// TestParsePin: exactly the etcd-era lines and the release tags v1.0.0 to
// v2.0.7 are accepted; everything else is refused, listing what is.
func TestParsePin(t *testing.T) {
	ok := map[string]Pin{
		"1.10":    {Line: V1_10},
		"v1.10":   {Line: V1_10},
		"1.10.2":  {Line: V1_10, Release: "1.10.2"},
		"v2.0.7":  {Line: V2_0, Release: "2.0.7"},
		"2.0.1":   {Line: V2_0, Release: "2.0.1"},
		"1.0.0":   {Line: V1_0, Release: "1.0.0"},
		"1.5.4":   {Line: Version{1, 5}, Release: "1.5.4"},
		"2.0":     {Line: V2_0},
		"1.0":     {Line: V1_0},
		"v1.1.4":  {Line: Version{1, 1}, Release: "1.1.4"},
		"1.9.2":   {Line: V1_9, Release: "1.9.2"},
		"1.7.4":   {Line: V1_7, Release: "1.7.4"},
		"1.8.2":   {Line: V1_8, Release: "1.8.2"},
		"1.6.1":   {Line: V1_6, Release: "1.6.1"},
		"v1.10.0": {Line: V1_10, Release: "1.10.0"},
	}
	for in, want := range ok {
		got, err := ParsePin(in)
		if err != nil || got != want {
			t.Errorf("ParsePin(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"2.0.8", "2.1.0", "2.1", "0.19.0", "0.19", "1.7.99999", "1.10.1-rc", "1.10.0-rc.1", "2.0.0",
		"v", "", "1.x", "1", "1.10.2.1", " 1.10", "1.10 ", "+1.10", "-1.10", "1.-1", "01.10", "1.010", "V1.10",
		"99999999999999999999.0", "1.99999999999999999999", "1.1.5", "1.2.1", "3.0", "vv1.10", "1..10", "1.10."} {
		_, err := ParsePin(in)
		if err == nil {
			t.Errorf("ParsePin(%q) accepted", in)
			continue
		}
		if !strings.Contains(err.Error(), "rwsnap accepts") || !strings.Contains(err.Error(), "2.0.7") || !strings.Contains(err.Error(), "1.10") {
			t.Errorf("ParsePin(%q): error does not list what is accepted: %v", in, err)
		}
	}
	if _, err := ParsePin("2.1.0"); err == nil || !strings.Contains(err.Error(), "v2.1 removed etcd") {
		t.Errorf("2.1.0: %v", err)
	}
}

// TestReleasesTable: the table is the 37 release tags, each of a known
// line, oldest first, with every line present.
func TestReleasesTable(t *testing.T) {
	if len(Releases) != 37 || Releases[0] != "1.0.0" || Releases[len(Releases)-1] != "2.0.7" {
		t.Fatalf("%d releases, %s..%s", len(Releases), Releases[0], Releases[len(Releases)-1])
	}
	seen := map[Version]bool{}
	for i, r := range Releases {
		p, err := ParsePin(r)
		if err != nil {
			t.Fatal(err)
		}
		seen[p.Line] = true
		if i > 0 {
			if c, ok := CompareReleases(Releases[i-1], r); !ok || c >= 0 {
				t.Errorf("%s not after %s", r, Releases[i-1])
			}
		}
	}
	for _, l := range Lines {
		if !seen[l] {
			t.Errorf("line %s has no release", l)
		}
	}
}

// TestCheckPin: the line must be in the detected range, and an exact
// release must not be older than what the manifest says the cluster ran.
func TestCheckPin(t *testing.T) {
	r110 := Range{Lo: V1_10, Hi: V1_10, LoReason: "state_table_info"}
	for _, tc := range []struct {
		pin      string
		manifest string
		refuse   bool
	}{
		{"1.10", "", false},
		{"1.10.2", "", false},
		{"1.10.1", "1.10.2", true},
		{"1.10.2", "1.10.1", false},
		{"1.10", "1.10.2", false},
		{"1.9", "", true},
		{"2.0.7", "", true},
	} {
		p, err := ParsePin(tc.pin)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckPin(r110, p, tc.manifest)
		if (err != nil) != tc.refuse || (err != nil && !errors.Is(err, ErrContradiction)) {
			t.Errorf("CheckPin(%s, manifest %q) = %v", tc.pin, tc.manifest, err)
		}
		if err != nil && !strings.Contains(err.Error(), "v1.10") {
			t.Errorf("error does not say what the store looks like: %v", err)
		}
	}
}
