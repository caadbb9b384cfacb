package main

import (
	"strings"
	"testing"
)

// Integer flags are decimal: strconv's base 0 would read a snapshot id
// typed with a leading zero as octal (01011 = 521), another snapshot.
func TestDecimalFlags(t *testing.T) {
	app := newApp(nil, nil)
	for _, tt := range []struct {
		args []string
		env  string
		bad  bool
	}{
		{args: []string{"meta", "restore-meta", "--meta-snapshot-id", "1011"}},
		{args: []string{"meta", "restore-meta", "--meta-snapshot-id=0"}},
		{args: []string{"meta", "restore-meta", "--meta-snapshot-id", "01011"}, bad: true},
		{args: []string{"meta", "restore-meta", "--meta-snapshot-id=0x3f3"}, bad: true},
		{args: []string{"meta", "restore-meta", "--id-generators-from-snapshot", "0o1763"}, bad: true},
		{args: []string{"meta", "restore-meta", "--meta-snapshot-id", "1_011"}, bad: true},
		{args: []string{"meta", "prune", "--keep-last", "010"}, bad: true},
		{args: []string{"meta", "prune"}, env: "010", bad: true},
		{args: []string{"meta", "prune"}, env: "10"},
		{args: []string{"meta", "prune"}, env: ""},
		{args: []string{"meta", "list-meta-snapshots", "--", "--keep-last", "010"}},
	} {
		t.Setenv("RWSNAP_KEEP_LAST", tt.env)
		err := checkDecimalFlags(app, append([]string{"rwsnap"}, tt.args...))
		if (err != nil) != tt.bad {
			t.Errorf("%v (RWSNAP_KEEP_LAST=%q): %v, want refused %v", tt.args, tt.env, err, tt.bad)
		}
		if err != nil && !strings.Contains(err.Error(), "decimal") {
			t.Errorf("%v: %v does not say decimal", tt.args, err)
		}
	}
}

func TestParseSizeRefusesNonsense(t *testing.T) {
	for _, s := range []string{"NaN", "Inf", "1e99", "0.1", "1e-9", "99999999999999999999GiB", "0", "-1", "0.5B"} {
		if n, err := parseSize(s); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", s, n)
		}
	}
	for s, want := range map[string]int64{"8GiB": 8 << 30, "1B": 1, "1.5KiB": 1536, "10MB": 10e6} {
		if n, err := parseSize(s); err != nil || n != want {
			t.Errorf("parseSize(%q) = %d, %v, want %d", s, n, err, want)
		}
	}
}
