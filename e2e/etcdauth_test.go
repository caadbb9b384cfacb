package e2e

import (
	"testing"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/rwsim"
)

// TestEtcdAuthFlags: a user name turns authentication on (risectl's
// --etcd-auth is not needed), etcdctl's --user USER:PASSWORD and
// ETCDCTL_* variables work, and every mistake is said plainly.
func TestEtcdAuthFlags(t *testing.T) {
	const pw = "etcdPW-Hn4Qs8"
	f := newFixtureOn(t, embedetcd.Config{Auth: true, RootPassword: pw}, rwsim.Options{Seed: 41})
	mustRun(t, nil, "meta", "backup-meta", "-q", "--etcd-endpoints", f.endpoints, "--etcd-username", "root", "--etcd-password", pw)
	mustRun(t, nil, "meta", "list-meta-snapshots", "--endpoints", f.endpoints, "--user", "root:"+pw)
	mustRun(t, []string{"ETCDCTL_ENDPOINTS=" + f.endpoints, "ETCDCTL_USER=root", "ETCDCTL_PASSWORD=" + pw}, "meta", "list-meta-snapshots")
	mustRun(t, []string{"ETCDCTL_USER=root:" + pw}, "params", "get", "state_store", "--endpoints", f.endpoints)

	tests := []struct {
		name string
		code int
		want []string
		env  []string
		args []string
	}{
		{"user without password", 2, []string{`etcd user "root" has no password`, "--etcd-password", "RWSNAP_ETCD_PASSWORD"}, nil,
			[]string{"--etcd-username", "root"}},
		{"--user without password", 2, []string{`etcd user "root" has no password`}, nil, []string{"--user", "root"}},
		{"password without user", 2, []string{"an etcd password was given without a user"}, []string{"RWSNAP_ETCD_PASSWORD=" + pw}, nil},
		{"--etcd-auth alone", 2, []string{"--etcd-auth needs --etcd-username"}, nil, []string{"--etcd-auth"}},
		{"two different users", 2, []string{`--user "bob" and --etcd-username "root" name different users`}, nil,
			[]string{"--user", "bob:x", "--etcd-username", "root", "--etcd-password", pw}},
		{"no credentials", 1, []string{"requires authentication and no user was given", "--etcd-username and --etcd-password"}, nil, nil},
		{"wrong password", 1, []string{`refused user "root": wrong user name or password`}, nil, []string{"--user", "root:wrong-Zx1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"meta", "list-meta-snapshots", "--etcd-endpoints", f.endpoints}, tt.args...)
			expectFailure(t, tt.code, tt.want, pw, tt.env, args...)
			expectFailure(t, tt.code, nil, "wrong-Zx1", tt.env, args...)
		})
	}
}
