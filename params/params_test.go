package params

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"

	"go.etcd.io/etcd/client/v3/concurrency"
)

func seed(t *testing.T, backupURL string) *embedetcd.Cluster {
	t.Helper()
	c := etcdtest.StartT(t, embedetcd.Config{})
	cli := etcdtest.ClientT(t, c)
	for k, v := range map[string]string{
		"barrier_interval_ms": "1000", "checkpoint_frequency": "1", "sstable_size_mb": "256", "bloom_false_positive": "0.001",
		"state_store": "hummock+" + backupURL, "data_directory": "hummock_001", "backup_storage_url": backupURL,
		"backup_storage_directory": "backup", "pause_on_next_bootstrap": "false", "some_newer_param": "x",
	} {
		if _, err := cli.Put(context.Background(), "cf/system_params/"+k, v); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestSetEveryType(t *testing.T) {
	c := seed(t, "fs://"+t.TempDir())
	cli := etcdtest.ClientT(t, c)
	ctx := context.Background()
	tests := []struct{ name, value string }{
		{"barrier_interval_ms", "500"},                  // u32
		{"checkpoint_frequency", "10000000000"},         // u64
		{"enable_tracing", "true"},                      // bool, not stored before
		{"max_concurrent_creating_streaming_jobs", "4"}, // u32
		{"bloom_false_positive", "0.01"},                // f64, immutable
	}
	for _, tt := range tests {
		plan, err := Check(ctx, cli, tt.name, tt.value, SetOptions{Force: true})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if err := Apply(ctx, cli, plan); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		v, err := Get(ctx, cli, tt.name)
		if err != nil || v.Value != tt.value || !v.Stored {
			t.Fatalf("%s = %+v, %v", tt.name, v, err)
		}
	}
	all, err := List(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	v1 := 0 // a v1.x store lists v1.x's parameters, not v2.0's
	for _, p := range metastore.Params {
		if p.Since == "" {
			v1++
		}
	}
	if len(all) != v1+1 || all[len(all)-1].Name != "some_newer_param" {
		t.Fatalf("list: %d entries, last %q", len(all), all[len(all)-1].Name)
	}
}

func TestSetRefusals(t *testing.T) {
	dir := t.TempDir()
	c := seed(t, "fs://"+dir)
	cli := etcdtest.ClientT(t, c)
	ctx := context.Background()
	tests := []struct {
		name, value string
		o           SetOptions
		want        string
	}{
		{"barrier_interval_ms", "fast", SetOptions{}, "wants a u32"},
		{"barrier_interval_ms", "-5", SetOptions{}, "wants a u32"},
		{"enable_tracing", "yes", SetOptions{}, "wants a bool"},
		{"bloom_false_positive", "0.1", SetOptions{}, "immutable"},
		{"state_store", "hummock+s3://x", SetOptions{}, "immutable"},
		{"barier_interval_ms", "1", SetOptions{}, `did you mean "barrier_interval_ms"`},
		{"totally_unrelated", "1", SetOptions{}, "rwsnap params list shows all"},
		{"backup_storage_url", " ", SetOptions{}, "cannot be empty"},
	}
	for _, tt := range tests {
		_, err := Check(ctx, cli, tt.name, tt.value, tt.o)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("set %s=%q: err = %v, want %q", tt.name, tt.value, err, tt.want)
		}
	}
	// The backup location guard: refuse while it holds snapshots.
	store, _ := objstore.Open(ctx, "fs://"+dir)
	st := metasnap.NewStorage(store, "backup")
	if _, err := st.UpdateManifest(ctx, func(m *metasnap.Manifest, _ bool) error {
		m.SnapshotMetadata = append(m.SnapshotMetadata, metasnap.SnapshotMetadata{ID: 1}, metasnap.SnapshotMetadata{ID: 2})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, err := Check(ctx, cli, "backup_storage_directory", "backup_1", SetOptions{})
	if err == nil || !strings.Contains(err.Error(), "holds 2 snapshots") || !strings.Contains(err.Error(), "copy-meta-snapshots") {
		t.Fatalf("moving a backup location with snapshots: %v", err)
	}
	plan, err := Check(ctx, cli, "backup_storage_directory", "backup_1", SetOptions{Force: true})
	if err != nil || len(plan.Warnings) != 1 {
		t.Fatalf("forced: %v %v", plan, err)
	}
	// Same location written differently is not a move.
	if _, err := Check(ctx, cli, "backup_storage_directory", "backup/", SetOptions{}); err != nil {
		t.Fatalf("same directory: %v", err)
	}
	// A live meta node: no direct write, the SQL is offered instead.
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := concurrency.NewElection(sess, metastore.ElectionPrefix).Campaign(ctx, "127.0.0.1:5690"); err != nil {
		t.Fatal(err)
	}
	plan, err = Check(ctx, cli, "barrier_interval_ms", "2000", SetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = Apply(ctx, cli, plan)
	if err == nil || !strings.Contains(err.Error(), "ALTER SYSTEM SET barrier_interval_ms TO '2000';") {
		t.Fatalf("live leader: %v", err)
	}
	if v, _ := Get(ctx, cli, "barrier_interval_ms"); v.Value != "1000" {
		t.Fatalf("written despite a live leader: %v", v)
	}
}

func TestApplyDetectsConcurrentChange(t *testing.T) {
	c := seed(t, "fs://"+t.TempDir())
	cli := etcdtest.ClientT(t, c)
	ctx := context.Background()
	plan, err := Check(ctx, cli, "barrier_interval_ms", "2000", SetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "cf/system_params/barrier_interval_ms", "3000"); err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, cli, plan); err == nil || !strings.Contains(err.Error(), "changed while") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Get(ctx, cli, "nope"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown: %v", err)
	}
}

func TestAlterSQLQuotes(t *testing.T) {
	p := &Plan{Name: "backup_storage_directory", New: "it's"}
	if got := p.AlterSQL(); got != "ALTER SYSTEM SET backup_storage_directory TO 'it''s';" {
		t.Fatal(got)
	}
}

// A suggested ALTER SYSTEM SET never carries the redaction marker as the
// value (pasted, it would set the secret to "***"): a placeholder, and a
// note saying so; and it survives the final redaction of error texts.
func TestSuggestedSQLUsesPlaceholders(t *testing.T) {
	p := &Plan{Name: "backup_storage_url", New: "minio://ak:s3cr3t/+k@minio:9000/bkp"}
	got := p.SuggestedSQL()
	if strings.Contains(got, "s3cr3t") || strings.Contains(got, "***") {
		t.Fatalf("suggested SQL: %s", got)
	}
	if !strings.Contains(got, "TO 'minio://ak:<SECRET_KEY>@minio:9000/bkp';") || !strings.Contains(got, "replace <SECRET_KEY>") {
		t.Fatalf("suggested SQL lacks the placeholder or the note: %s", got)
	}
	if objstore.RedactText(got) != got {
		t.Fatalf("redaction mangles the suggestion: %s", objstore.RedactText(got))
	}
	// license_key is a secret as a whole.
	lk := &Plan{Name: "license_key", New: "LIC-s3cr3t-value"}
	if got := lk.SuggestedSQL(); strings.Contains(got, "s3cr3t") || !strings.Contains(got, "TO '<LICENSE_KEY>';") || !strings.Contains(got, "replace <LICENSE_KEY>") {
		t.Fatalf("license_key suggestion: %s", got)
	}
	if got := lk.shownSQL(); strings.Contains(got, "s3cr3t") {
		t.Fatalf("license_key in an error: %s", got)
	}
	if p := (&Plan{Name: "barrier_interval_ms", New: "500"}); p.SuggestedSQL() != p.AlterSQL() {
		t.Fatalf("no secret, no note: %s", p.SuggestedSQL())
	}
}

// v2.0's three parameters: listed and settable on a v2.0 store, refused on
// an older one (RisingWave v1.x would ignore the key), and the immutable
// prefix strategy guarded like v1.x's immutable ones.
func TestV20Params(t *testing.T) {
	ctx := context.Background()
	old := seed(t, "fs://"+t.TempDir())
	oldCli := etcdtest.ClientT(t, old)
	for name, value := range map[string]string{"time_travel_retention_ms": "1", "license_key": "k", "use_new_object_prefix_strategy": "true"} {
		if _, err := Check(ctx, oldCli, name, value, SetOptions{Force: true}); err == nil || !strings.Contains(err.Error(), "v2.0") {
			t.Errorf("%s on a v1.x store: %v, want a refusal naming v2.0", name, err)
		}
	}
	all, err := List(ctx, oldCli)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range all {
		if v.Since != "" {
			t.Errorf("a v1.x store lists %s", v.Name)
		}
	}

	c := seed(t, "fs://"+t.TempDir())
	cli := etcdtest.ClientT(t, c)
	for k, v := range map[string]string{"use_new_object_prefix_strategy": "true", "license_key": "", "time_travel_retention_ms": "0"} {
		if _, err := cli.Put(ctx, "cf/system_params/"+k, v); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := Check(ctx, cli, "time_travel_retention_ms", "600000", SetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, cli, plan); err != nil {
		t.Fatal(err)
	}
	if v, err := Get(ctx, cli, "time_travel_retention_ms"); err != nil || v.Value != "600000" || v.Type != metastore.ParamU64 {
		t.Fatalf("time_travel_retention_ms = %+v, %v", v, err)
	}
	if _, err := Check(ctx, cli, "time_travel_retention_ms", "-1", SetOptions{}); err == nil {
		t.Error("a negative u64 was accepted")
	}
	if _, err := Check(ctx, cli, "use_new_object_prefix_strategy", "false", SetOptions{}); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Errorf("use_new_object_prefix_strategy: %v, want immutable", err)
	}
	if _, err := Check(ctx, cli, "license_key", "eyJhbGciOi.secret.sig", SetOptions{}); err != nil {
		t.Errorf("license_key: %v", err)
	}
}
