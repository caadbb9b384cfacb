package e2e

import (
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/rwsim"
)

// TestParamsSetRefusesWhatRisingWaveRefuses: values RisingWave's
// set_system_param or its object store builder reject are refused with
// exit 2 before anything is written (the whole etcd keyspace is
// unchanged), also with --force.
func TestParamsSetRefusesWhatRisingWaveRefuses(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 79})
	before := dumpEtcd(t, f.cli)
	for _, tc := range []struct{ name, value, why string }{
		{"checkpoint_frequency", "0", "out of range"},
		{"barrier_interval_ms", "0", "out of range"},
		{"barrier_interval_ms", "99", "out of range"},
		{"backup_storage_url", "not-a-url", "not an object store URL"},
		{"backup_storage_url", "hummock+" + f.bucketURL, "hummock+ belongs to state_store"},
		{"backup_storage_url", "s3-compatible://bucket", "s3-compatible"},
		{"backup_storage_url", "minio://host:9000/bucket", "ACCESS_KEY:SECRET_KEY"},
		{"backup_storage_directory", " ", "cannot be empty"},
		{"enable_tracing", "1", "true or false"},
	} {
		for _, extra := range [][]string{nil, {"--force"}} {
			args := append(append([]string{"params", "set", tc.name, tc.value}, f.etcdArgs()...), extra...)
			r := run(t, nil, args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.why) || !strings.Contains(r.stderr, tc.name) {
				t.Errorf("params set %s %q %v: want exit 2 saying %q:\n%s", tc.name, tc.value, extra, tc.why, r)
			}
			if strings.Contains(r.stderr, f.minio.SecretKey) {
				t.Errorf("the refusal printed the secret key")
			}
		}
	}
	if d := stateDiff(before, dumpEtcd(t, f.cli)); len(d) > 0 {
		t.Fatalf("refused params set changed etcd: %v", d)
	}
	// A value RisingWave takes is still set.
	mustRun(t, nil, append([]string{"params", "set", "barrier_interval_ms", "100"}, f.etcdArgs()...)...)
	if got := dumpEtcd(t, f.cli)["cf/system_params/barrier_interval_ms"]; got != "100" {
		t.Fatalf("barrier_interval_ms = %q", got)
	}
}
