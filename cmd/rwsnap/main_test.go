package main

import (
	"io"
	"strings"
	"testing"
)

func TestFlagsFirst(t *testing.T) {
	app := newApp(nil, nil)
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	tests := []struct{ in, want string }{
		{"rwsnap meta delete-meta-snapshots 3 4 --etcd-endpoints x", "rwsnap meta delete-meta-snapshots --etcd-endpoints x -- 3 4"},
		{"rwsnap -q meta delete-meta-snapshots 3 --output=json -q", "rwsnap -q meta delete-meta-snapshots --output=json -q -- 3"},
		{"rwsnap meta verify-meta-snapshot --all --check-ssts", "rwsnap meta verify-meta-snapshot --all --check-ssts"},
		{"rwsnap meta verify-meta-snapshot 1 -- -2", "rwsnap meta verify-meta-snapshot -- 1 -2"},
		{"rwsnap meta backup-meta --remarks 'x' --force", "rwsnap meta backup-meta --remarks 'x' --force"},
		{"rwsnap nosuch 1 --x", "rwsnap nosuch 1 --x"},
		{"rwsnap meta", "rwsnap meta"},
	}
	for _, tt := range tests {
		got := strings.Join(flagsFirst(app, strings.Fields(tt.in)), " ")
		if got != tt.want {
			t.Errorf("flagsFirst(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func TestEnvNames(t *testing.T) {
	if got := env("etcd-password")[0]; got != "RWSNAP_ETCD_PASSWORD" {
		t.Fatal(got)
	}
}
