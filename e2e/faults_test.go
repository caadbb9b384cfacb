package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/internal/testinfra/faultproxy"
	"github.com/rwsnap/rwsnap/rwsim"
)

// Object store faults: rwsnap talks to MinIO through internal/testinfra/faultproxy;
// the direct MinIO URL is used afterwards to check the outcome. The S3
// client retries (aws-sdk-go-v2's standard retryer, 4 attempts with
// jittered exponential backoff), so transient faults must end in success,
// persistent ones in a clean failure, and either way the manifest stays
// valid and every listed snapshot intact.

// faultCase is one command run under some faults.
type faultCase struct {
	name  string
	rules []faultproxy.Rule
	// fail: the command must exit 1 with these in stderr (else exit 0).
	fail []string
	// orphan: the failure leaves one more orphan object.
	orphan bool
}

type faultEnv struct {
	f     *fixture
	p     *faultproxy.Proxy
	url   string // the bucket through the proxy
	total int    // faults injected so far
}

func newFaultEnv(t *testing.T, seed int64) *faultEnv {
	t.Helper()
	f := newFixture(t, rwsim.Options{Seed: seed})
	p, err := faultproxy.Start(f.minio.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return &faultEnv{f: f, p: p, url: strings.Replace(f.bucketURL, f.minio.Endpoint, p.Addr(), 1)}
}

// proxied are the location flags that send backup and hummock traffic
// through the proxy.
func (e *faultEnv) proxied() []string {
	return []string{"--backup-storage-url", e.url, "--backup-storage-directory", "hummock_001/backup", "--hummock-storage-url", e.url}
}

// runCase runs args under c's faults and checks the result, then checks
// the location directly (not through the proxy).
func (e *faultEnv) runCase(t *testing.T, c faultCase, args []string) result {
	t.Helper()
	direct := e.f.minioLoc()
	before := manifestNow(t, direct)
	orphans := verifyAll(t, e.f, direct).Orphans
	reqs, first := e.p.Requests(), len(e.p.Faults())
	e.p.Add(c.rules...)
	start := time.Now()
	r := run(t, nil, args...)
	took := time.Since(start)
	e.p.Clear()
	if c.fail == nil && r.code != 0 {
		t.Fatalf("%s: want success through the faults: %s", c.name, r)
	}
	if c.fail != nil {
		if r.code != 1 {
			t.Fatalf("%s: want a clean failure (exit 1): %s", c.name, r)
		}
		for _, w := range c.fail {
			if !strings.Contains(r.stderr, w) {
				t.Fatalf("%s: stderr lacks %q: %s", c.name, w, r)
			}
		}
		if m := manifestNow(t, direct); m.ManifestID != before.ManifestID && !strings.Contains(r.stderr, "orphans now") {
			t.Fatalf("%s: a failed run changed the manifest %d -> %d", c.name, before.ManifestID, m.ManifestID)
		}
	}
	faults := e.p.Faults()[first:]
	injected := len(faults)
	for _, ru := range c.rules {
		hits := 0
		for _, f := range faults {
			if f.Rule == ru.Name {
				hits++
			}
		}
		name := ru.Name
		switch {
		case ru.Times >= 0 && hits != max(ru.Times, 1):
			t.Fatalf("%s: rule %q injected %d faults, want %d: the fault did not hit (%v)", c.name, name, hits, max(ru.Times, 1), e.p.Faults())
		case ru.Times < 0 && hits < 2:
			t.Fatalf("%s: persistent rule %q injected only %d faults: not retried?", c.name, name, hits)
		}
	}
	e.total += injected
	rep := verifyAll(t, e.f, direct)
	want := len(orphans)
	if c.orphan {
		want++
	}
	if len(rep.Orphans) != want {
		t.Fatalf("%s: orphans %v, had %v", c.name, rep.Orphans, orphans)
	}
	t.Logf("%-40s exit %d, %d faults injected, %d requests, %s", c.name, r.code, injected, e.p.Requests()-reqs, took.Round(10*time.Millisecond))
	if r.code != 0 {
		t.Logf("  %s", strings.TrimSpace(r.stderr))
	}
	return r
}

func TestObjectStoreFaultsBackup(t *testing.T) {
	e := newFaultEnv(t, 31)
	backup := append(append([]string{"meta", "backup-meta", "-q"}, e.f.etcdArgs()...), e.proxied()...)
	for _, c := range []faultCase{
		{name: "503 twice on the snapshot upload", rules: []faultproxy.Rule{{Name: "put snapshot 503", Method: "PUT", Path: ".snapshot", Times: 2}}},
		{name: "500 on manifest read and write", rules: []faultproxy.Rule{
			{Name: "get manifest 500", Method: "GET", Path: "/manifest.json", Code: 500},
			{Name: "put manifest 503", Method: "PUT", Path: "/manifest.json"}}},
		{name: "resets on the checkpoint read", rules: []faultproxy.Rule{{Name: "get checkpoint reset", Method: "GET", Path: "/checkpoint/0", Times: 2, Action: faultproxy.Reset}}},
		{name: "reset on the snapshot upload", rules: []faultproxy.Rule{{Name: "put snapshot reset", Method: "PUT", Path: ".snapshot", Action: faultproxy.Reset}}},
		{name: "manifest written, answer lost", rules: []faultproxy.Rule{{Name: "put manifest lost", Method: "PUT", Path: "/manifest.json", Action: faultproxy.DropResponse}}},
		{name: "slow answers", rules: []faultproxy.Rule{{Name: "delay", Times: 4, Action: faultproxy.Delay, Delay: 300 * time.Millisecond}}},
		{name: "slow checkpoint body", rules: []faultproxy.Rule{{Name: "slow checkpoint", Method: "GET", Path: "/checkpoint/0", Action: faultproxy.SlowBody, Delay: time.Millisecond}}},
		{name: "persistent 503 on the snapshot upload", rules: []faultproxy.Rule{{Name: "put snapshot always 503", Method: "PUT", Path: ".snapshot", Times: -1}},
			fail: []string{"upload snapshot", "exceeded maximum number of attempts, 4", "ServiceUnavailable"}},
		{name: "persistent 503 on the manifest write", rules: []faultproxy.Rule{{Name: "put manifest always 503", Method: "PUT", Path: "/manifest.json", Times: -1}},
			fail: []string{"write manifest", "exceeded maximum number of attempts, 4", "ServiceUnavailable"}, orphan: true},
	} {
		before := manifestNow(t, e.f.minioLoc())
		e.runCase(t, c, backup)
		after := manifestNow(t, e.f.minioLoc())
		if n := len(added(before.IDs(), after.IDs())); (c.fail == nil) != (n == 1) || len(after.SnapshotMetadata) != len(before.SnapshotMetadata)+n || after.ManifestID != before.ManifestID+uint64(n) {
			t.Fatalf("%s: manifest %d %v -> %d %v", c.name, before.ManifestID, before.IDs(), after.ManifestID, after.IDs())
		}
	}
	t.Logf("%d faults injected in all", e.total)
}

func TestObjectStoreFaultsDelete(t *testing.T) {
	e := newFaultEnv(t, 32)
	for range 6 {
		backupID(t, e.f)
	}
	for _, c := range []faultCase{
		{name: "503 twice on the manifest write", rules: []faultproxy.Rule{{Name: "put manifest 503", Method: "PUT", Path: "/manifest.json", Times: 2}}},
		{name: "manifest written, answer lost", rules: []faultproxy.Rule{{Name: "put manifest lost", Method: "PUT", Path: "/manifest.json", Action: faultproxy.DropResponse}}},
		{name: "reset on the manifest read", rules: []faultproxy.Rule{{Name: "get manifest reset", Method: "GET", Path: "/manifest.json", Action: faultproxy.Reset}}},
		{name: "reset on the object delete", rules: []faultproxy.Rule{{Name: "delete objects reset", Method: "POST", Query: "delete", Action: faultproxy.Reset}}},
		{name: "persistent 503 on the object delete", rules: []faultproxy.Rule{{Name: "delete objects always 503", Method: "POST", Query: "delete", Times: -1}},
			fail: []string{"removed from the manifest", "orphans now", "exceeded maximum number of attempts, 4"}, orphan: true},
		{name: "persistent 503 on the manifest write", rules: []faultproxy.Rule{{Name: "put manifest always 503", Method: "PUT", Path: "/manifest.json", Times: -1}},
			fail: []string{"write manifest", "exceeded maximum number of attempts, 4"}},
	} {
		before := manifestNow(t, e.f.minioLoc())
		victim := before.IDs()[0]
		args := append(append([]string{"meta", "delete-meta-snapshots", fmt.Sprint(victim)}, e.f.etcdArgs()...), e.proxied()...)
		e.runCase(t, c, args)
		after := manifestNow(t, e.f.minioLoc())
		gone := after.Find(victim) == nil
		if want := c.fail == nil || c.orphan; gone != want || len(after.SnapshotMetadata) != len(before.SnapshotMetadata)-map[bool]int{true: 1}[gone] {
			t.Fatalf("%s: %d deleted %v (want %v): manifest %v -> %v", c.name, victim, gone, want, before.IDs(), after.IDs())
		}
		if gone {
			// Deleted stays deleted.
			if _, _, err := e.f.hummock.Get(context.Background(), e.f.minioLoc().st.SnapshotKey(victim)); err == nil && !c.orphan {
				t.Fatalf("%s: object of %d still there", c.name, victim)
			}
		}
	}
	t.Logf("%d faults injected in all", e.total)
}

// TestObjectStoreFaultsVerifyRestore: verify and restore-meta read the
// backup location through the proxy. A snapshot body cut short with a
// matching Content-Length (nothing at the HTTP level shows it) is caught
// by the snapshot checksum, never accepted.
func TestObjectStoreFaultsVerifyRestore(t *testing.T) {
	e := newFaultEnv(t, 33)
	backupID(t, e.f)
	id, rev := backupID(t, e.f)
	verify := append(append([]string{"meta", "verify-meta-snapshot", "--all"}, e.f.etcdArgs()...), e.proxied()...)
	for _, c := range []faultCase{
		{name: "verify: 503 twice on a snapshot read", rules: []faultproxy.Rule{{Name: "get snapshot 503", Method: "GET", Path: ".snapshot", Times: 2}}},
		{name: "verify: reset on the list", rules: []faultproxy.Rule{{Name: "list reset", Method: "GET", Query: "list-type", Action: faultproxy.Reset}}},
		{name: "verify: slow snapshot body", rules: []faultproxy.Rule{{Name: "slow snapshot", Method: "GET", Path: ".snapshot", Action: faultproxy.SlowBody, Delay: time.Millisecond}}},
		// A body cut mid-transfer: objstore retries the whole GET.
		{name: "verify: snapshot body cut, connection closed", rules: []faultproxy.Rule{{Name: "cut snapshot", Method: "GET", Path: ".snapshot", Action: faultproxy.Truncate}}},
		{name: "verify: snapshot body silently short", rules: []faultproxy.Rule{{Name: "short snapshot", Method: "GET", Path: ".snapshot", Action: faultproxy.ShortBody}},
			fail: []string{"verification failed"}},
	} {
		r := e.runCase(t, c, verify)
		if c.fail != nil && !strings.Contains(r.stdout, "FAILED") {
			t.Fatalf("%s: no snapshot reported FAILED:\n%s", c.name, r)
		}
		if c.name == "verify: snapshot body silently short" && !strings.Contains(r.stdout, "checksum mismatch") {
			t.Fatalf("%s: the checksum did not catch it:\n%s", c.name, r)
		}
	}

	want := expectedRestore(t, e.f.cli, rev, nil)
	restoreInto := func(b *embedetcd.Cluster) []string {
		return []string{"meta", "restore-meta", "--meta-snapshot-id", fmt.Sprint(id),
			"--etcd-endpoints", strings.Join(b.Endpoints(), ","),
			"--backup-storage-url", e.url, "--backup-storage-directory", "hummock_001/backup",
			"--hummock-storage-url", e.f.bucketURL}
	}
	b := etcdtest.StartT(t, embedetcd.Config{})
	bcli := etcdtest.ClientT(t, b)
	e.runCase(t, faultCase{name: "restore: snapshot body silently short", rules: []faultproxy.Rule{{Name: "short snapshot", Method: "GET", Path: ".snapshot", Action: faultproxy.ShortBody}},
		fail: []string{"checksum mismatch"}}, restoreInto(b))
	if n := len(dumpEtcd(t, bcli)); n != 0 {
		t.Fatalf("a restore of a short snapshot wrote %d keys", n)
	}
	e.runCase(t, faultCase{name: "restore: 503, reset and delay", rules: []faultproxy.Rule{
		{Name: "get manifest reset", Method: "GET", Path: "/manifest.json", Action: faultproxy.Reset},
		{Name: "get snapshot 503", Method: "GET", Path: ".snapshot", Times: 2},
		{Name: "delay", Action: faultproxy.Delay, Delay: 200 * time.Millisecond, Times: 2},
	}}, restoreInto(b))
	diffKV(t, dumpEtcd(t, bcli), want)
	t.Logf("%d faults injected in all", e.total)
}
