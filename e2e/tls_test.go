package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/internal/testinfra/testcerts"
	"github.com/rwsnap/rwsnap/rwsim"
)

// TestEtcdTLSClientCerts: the meta store and the restore target serve
// etcd over TLS and require client certificates (etcd's
// --client-cert-auth). rwsnap backs up and restores with etcdctl's flags
// (--etcd-cacert, --etcd-cert, --etcd-key, or RWSNAP_ETCD_*); a missing
// or wrong certificate fails with a message that names the flags.
func TestEtcdTLSClientCerts(t *testing.T) {
	dir := t.TempDir()
	good, err := testcerts.Generate(dir, "good")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := testcerts.Generate(dir, "bad")
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := func() *embedetcd.TLS {
		return &embedetcd.TLS{CertFile: good.ServerCert, KeyFile: good.ServerKey, TrustedCAFile: good.CA, ClientCertAuth: true,
			ClientCertFile: good.ClientCert, ClientKeyFile: good.ClientKey}
	}
	f := newFixtureOn(t, embedetcd.Config{TLS: tlsCfg()}, rwsim.Options{Seed: 61})
	if !strings.HasPrefix(f.endpoints, "https://") {
		t.Fatalf("endpoints %s", f.endpoints)
	}
	certArgs := []string{"--etcd-cacert", good.CA, "--etcd-cert", good.ClientCert, "--etcd-key", good.ClientKey}
	backup := append(append([]string{"meta", "backup-meta", "-o", "json", "-q"}, f.etcdArgs()...), certArgs...)
	id, rev := backupIDFrom(t, mustRun(t, nil, backup...))
	mustRun(t, nil, append(append([]string{"meta", "verify-meta-snapshot", "--all"}, f.etcdArgs()...), certArgs...)...)
	// etcdctl's names work too: --endpoints --cacert --cert --key, and its
	// ETCDCTL_* variables.
	mustRun(t, nil, "meta", "list-meta-snapshots", "--endpoints", f.endpoints, "--cacert", good.CA, "--cert", good.ClientCert, "--key", good.ClientKey)
	mustRun(t, []string{"ETCDCTL_ENDPOINTS=" + f.endpoints, "ETCDCTL_CACERT=" + good.CA, "ETCDCTL_CERT=" + good.ClientCert, "ETCDCTL_KEY=" + good.ClientKey},
		"meta", "list-meta-snapshots")

	b := etcdtest.StartT(t, embedetcd.Config{TLS: tlsCfg(), Members: 3})
	restore := []string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(id),
		"--etcd-endpoints", strings.Join(b.Endpoints(), ","),
		"--backup-storage-url", f.bucketURL, "--backup-storage-directory", "hummock_001/backup",
		"--hummock-storage-url", f.bucketURL}
	// The certificate flags from the environment, as a service unit would.
	env := []string{"RWSNAP_ETCD_CACERT=" + good.CA, "RWSNAP_ETCD_CERT=" + good.ClientCert, "RWSNAP_ETCD_KEY=" + good.ClientKey}
	if r := mustRun(t, env, restore...); !strings.Contains(r.stdout, "restore succeeded") {
		t.Fatalf("restore over TLS: %s", r)
	}
	diffKV(t, dumpEtcd(t, etcdtest.ClientT(t, b)), expectedRestore(t, f.cli, rev, nil))

	list := append([]string{"meta", "list-meta-snapshots"}, f.etcdArgs()...)
	for _, tt := range []struct {
		name string
		code int
		args []string
		want []string
	}{
		{"no TLS flags", 1, nil, []string{"not trusted", "pass --etcd-cacert"}},
		{"no client certificate", 1, []string{"--etcd-cacert", good.CA}, []string{"requires a client certificate", "pass --etcd-cert and --etcd-key"}},
		{"client certificate of another CA", 1, []string{"--etcd-cacert", good.CA, "--etcd-cert", bad.ClientCert, "--etcd-key", bad.ClientKey}, []string{"rejected the client certificate"}},
		{"wrong CA", 1, []string{"--etcd-cacert", bad.CA, "--etcd-cert", good.ClientCert, "--etcd-key", good.ClientKey}, []string{"not trusted", "pass --etcd-cacert", "unknown authority"}},
		{"certificate without key", 2, []string{"--etcd-cacert", good.CA, "--etcd-cert", good.ClientCert}, []string{"--etcd-cert and --etcd-key go together"}},
		{"key of another certificate", 1, []string{"--etcd-cacert", good.CA, "--etcd-cert", good.ClientCert, "--etcd-key", bad.ClientKey}, []string{"--etcd-cert/--etcd-key", "private key does not match"}},
		{"missing CA file", 1, []string{"--etcd-cacert", dir + "/nope.pem"}, []string{"--etcd-cacert", "no such file"}},
		{"CA file without a certificate", 1, []string{"--etcd-cacert", good.ClientKey}, []string{"holds no PEM certificate"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, nil, append(append([]string{}, list...), tt.args...)...)
			if r.code != tt.code {
				t.Fatalf("want exit %d: %s", tt.code, r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			t.Logf("%s", strings.TrimSpace(r.stderr))
		})
	}
}

// backupIDFrom parses backup-meta -o json.
func backupIDFrom(t *testing.T, r result) (uint64, int64) {
	t.Helper()
	var out struct {
		ID       uint64 `json:"id"`
		Revision int64  `json:"revision"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r)
	}
	return out.ID, out.Revision
}
