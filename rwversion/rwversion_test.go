package rwversion

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]Version{"1.10": V1_10, "v1.10.2": V1_10, "2.0.7": V2_0, "1.9.1-rc.1": V1_9, " v1.7 ": V1_7} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1", "latest", "1.x"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
	if _, err := ParseKnown("2.1"); err == nil || !strings.Contains(err.Error(), "v2.1 removed etcd") {
		t.Errorf("ParseKnown(2.1) = %v", err)
	}
	if _, err := ParseKnown("0.19"); err == nil {
		t.Errorf("ParseKnown(0.19) succeeded")
	}
}

func TestRulesTable(t *testing.T) {
	// Each fact below is one line of docs/format.md's table.
	cases := []struct {
		v    Version
		what string
		got  bool
	}{
		{V1_7, "v1.7 snapshot has no subscription list", !For(V1_7).Snapshot.Subscriptions},
		{V1_8, "v1.8 snapshot has the subscription list", For(V1_8).Snapshot.Subscriptions},
		{V1_10, "v1.10 snapshot has no secret list", !For(V1_10).Snapshot.Secrets},
		{V2_0, "v2.0 snapshot has the secret list", For(V2_0).Snapshot.Secrets},
		{V2_0, "v2.0 restores cf/catalog_secret", For(V2_0).Restore.Secrets},
		{V1_10, "v1.10 does not restore cf/catalog_secret", !For(V1_10).Restore.Secrets},
		{V1_8, "v1.8 restores subscriptions", For(V1_8).Restore.Subscriptions},
		{V1_9, "v1.9 drops change logs on any commit", For(V1_9).Replay.ChangeLogs == DropOnAnyCommit},
		{V1_10, "v1.10 drops change logs per table", For(V1_10).Replay.ChangeLogs == DropOnTableCommit},
		{V1_10, "v1.10 members from state_table_info", For(V1_10).Replay.Members == MembersFromStateTableInfo},
		{V1_9, "v1.9 members from member_table_ids", For(V1_9).Replay.Members == MembersFromLevels},
		{V1_5, "v1.5 drops remarks", !For(V1_5).Manifest.Remarks},
		{V1_6, "v1.6 keeps remarks", For(V1_6).Manifest.Remarks},
		{V1_2, "v1.2 has no FAILED status", !For(V1_2).Catalog.FailedStatus},
		{V1_3, "v1.3 has FAILED", For(V1_3).Catalog.FailedStatus},
		{V1_9, "v1.9 rw_meta_snapshot has the epoch columns", !For(V1_9).Catalog.MetaSnapshotV110},
		{V1_10, "v1.10 rw_meta_snapshot has state_table_info", For(V1_10).Catalog.MetaSnapshotV110},
		{V1_2, "v1.2 names --hummock-storage-dir", For(V1_2).Risectl.HummockDirFlag == "hummock-storage-dir"},
		{V1_3, "v1.3 names --hummock-storage-directory", For(V1_3).Risectl.HummockDirFlag == "hummock-storage-directory"},
		{V2_0, "v2.0 deletes by --snapshot-ids", For(V2_0).Risectl.DeleteByFlag},
		{V1_10, "v1.10 S3 is native (verbatim keys)", !For(V1_10).Storage.OpenDALS3},
		{V2_0, "v2.0 S3 is OpenDAL (normalised keys)", For(V2_0).Storage.OpenDALS3},
	}
	for _, c := range cases {
		if !c.got {
			t.Errorf("%s: wrong", c.what)
		}
	}
	if got := For(V1_8).Catalog.ReadBackupError(42); got != "Read backup error backup include epoch 42 not found." {
		t.Errorf("v1.8 text %q", got)
	}
	if got := For(V1_9).Catalog.ReadBackupError(42); got != "Read backup error: backup include epoch 42 not found" {
		t.Errorf("v1.9 text %q", got)
	}
}

var (
	V1_2 = Version{1, 2}
	V1_5 = Version{1, 5}
)

func params(extra ...string) map[string]bool {
	m := map[string]bool{"state_store": true, "data_directory": true}
	for _, p := range extra {
		m[p] = true
	}
	return m
}

func TestDetect(t *testing.T) {
	cases := []struct {
		name    string
		e       Evidence
		want    string
		wantErr string
	}{
		{"bare v1.x", Evidence{SystemParams: params()}, "v1.0–v1.10", ""},
		{"subscriptions", Evidence{SystemParams: params(), CFs: map[string]bool{"cf/catalog_subscription": true}}, "v1.8–v1.10", ""},
		{"change logs", Evidence{SystemParams: params(), ChangeLogs: true}, "v1.9–v1.10", ""},
		{"state_table_info", Evidence{SystemParams: params(), StateTableInfo: true}, "v1.10", ""},
		{"legacy members", Evidence{SystemParams: params(), LegacyMembers: true}, "v1.0–v1.9", ""},
		{"legacy members with state_table_info", Evidence{SystemParams: params(), LegacyMembers: true, StateTableInfo: true}, "v1.10", ""},
		{"v2.0 params", Evidence{SystemParams: params(V20Params...)}, "v2.0", ""},
		{"manifest rw_version", Evidence{SystemParams: params(), ManifestRWVersion: "1.9.2"}, "v1.9–v1.10", ""},
		{"partial v2.0 params", Evidence{SystemParams: params("license_key")}, "", "license_key but not all"},
		{"rw_version beyond params", Evidence{SystemParams: params(), ManifestRWVersion: "2.0.3"}, "", "lacks v2.0's"},
		{"rw_version outside the era", Evidence{SystemParams: params(V20Params...), ManifestRWVersion: "2.2.0"}, "", "outside"},
	}
	for _, c := range cases {
		r, err := Detect(c.e)
		if c.wantErr != "" {
			if err == nil || !errors.Is(err, ErrUnknownLayout) || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil || r.String() != c.want {
			t.Errorf("%s: %v, %v; want %s", c.name, r, err, c.want)
		}
	}
}

func TestResolve(t *testing.T) {
	r, _ := Detect(Evidence{SystemParams: params(), StateTableInfo: true})
	v19 := V1_9
	_, err := Resolve(r, &v19)
	if !errors.Is(err, ErrContradiction) || !strings.Contains(err.Error(), "state_table_info") || !strings.Contains(err.Error(), "v1.10") {
		t.Fatalf("Resolve(v1.9) = %v", err)
	}
	v110 := V1_10
	got, err := Resolve(r, &v110)
	if err != nil || got.Lo != V1_10 || got.Hi != V1_10 {
		t.Fatalf("Resolve(v1.10) = %v, %v", got, err)
	}
	// v1.0-v1.10 has four replay rule sets: v1.0-v1.8, v1.9, v1.10.
	r, _ = Detect(Evidence{SystemParams: params()})
	var names []string
	for _, c := range DistinctReplay(r) {
		names = append(names, c.Name())
	}
	if strings.Join(names, " ") != "v1.10 v1.9 v1.0–v1.8" {
		t.Fatalf("DistinctReplay = %v", names)
	}
}
