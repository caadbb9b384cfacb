package report

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/datacopy"
	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
)

// location seeds rwsim and takes n snapshots a minute apart.
func location(t *testing.T, n int) (context.Context, *metasnap.Storage, objstore.Store, *rwsim.Cluster, []uint64, *time.Time) {
	t.Helper()
	ctx := context.Background()
	cli := etcdtest.ClientT(t, etcdtest.StartT(t, embedetcd.Config{}))
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	hs := objstore.NewMemory()
	sim, err := rwsim.Seed(ctx, cli, hs, rwsim.Options{Seed: 3, FragmentSize: 1024, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	st := metasnap.NewStorage(objstore.NewMemory(), "backup")
	var ids []uint64
	for range n {
		res, err := metasnap.Backup(ctx, metasnap.BackupOptions{Etcd: cli, Hummock: hs, DataDir: "hummock_001", Target: st})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Entry.ID)
		now = now.Add(time.Minute)
		if err := sim.Advance(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return ctx, st, hs, sim, ids, &now
}

func TestReport(t *testing.T) {
	ctx, st, hs, _, ids, now := location(t, 4)
	// An orphan (an interrupted backup), a corrupt snapshot, a missing SST.
	b, _, _ := st.Store.Get(ctx, st.SnapshotKey(ids[0]))
	st.Store.Put(ctx, st.SnapshotKey(9999), b)
	bad, _, _ := st.Store.Get(ctx, st.SnapshotKey(ids[1]))
	bad[40] ^= 1
	st.Store.Put(ctx, st.SnapshotKey(ids[1]), bad)
	m, _, _ := st.ReadManifest(ctx)
	gone := m.Find(ids[0]).SSTs[0]
	for _, o := range must(hs.List(ctx, "hummock_001/")) {
		if strings.HasSuffix(o.Key, "/"+itoa(gone)+".data") {
			hs.Delete(ctx, o.Key)
		}
	}

	r, err := Build(ctx, st, Options{Policy: metasnap.PrunePolicy{KeepLast: 2}, Hummock: hs, DataDir: "hummock_001", Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Snapshots) != 4 || len(r.Orphans) != 1 || r.Orphans[0].ID != 9999 || !r.SSTsKnown {
		t.Fatalf("report %+v", r)
	}
	var kept []uint64
	for _, s := range r.Snapshots {
		if s.Keep {
			kept = append(kept, s.ID)
		}
		if s.WindowFrom.After(s.WindowTo) || s.Time.IsZero() || s.Bytes == 0 || s.SSTs == 0 {
			t.Errorf("snapshot %+v", s)
		}
	}
	if !slices.Equal(kept, ids[2:]) {
		t.Errorf("--keep-last 2 keeps %v, want %v", kept, ids[2:])
	}
	problems := strings.Join(r.Problems, "\n")
	for _, want := range []string{"snapshot " + itoa(ids[1]) + " cannot be verified", "checksum", "1 orphan snapshot objects (9999)",
		"snapshot " + itoa(ids[0]) + ": 1 of "} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}
	html, err := r.HTML()
	if err != nil {
		t.Fatal(err)
	}
	page := string(html)
	for _, id := range ids {
		if !strings.Contains(page, `data-snapshot="`+itoa(id)+`"`) || !strings.Contains(page, `data-id="`+itoa(id)+`"`) {
			t.Errorf("page lacks snapshot %d in the table or on the time axis", id)
		}
	}
	if !strings.Contains(page, `http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;`) &&
		!strings.Contains(page, `content="default-src 'none'`) {
		t.Error("page has no CSP forbidding loads")
	}
	// Nothing that loads from anywhere: no src=, no href other than data:,
	// no url( in styles, no @import.
	for _, re := range []string{`(?i)\ssrc=`, `(?i)href="(?:[^d]|d[^a])`, `(?i)url\(`, `(?i)@import`, `(?i)<script`} {
		if regexp.MustCompile(re).MatchString(page) {
			t.Errorf("page matches %s: it could load something", re)
		}
	}
	if strings.Contains(page, ":hummockadmin@") {
		t.Error("page shows a credential")
	}

	// The cache: a second build reads no snapshot it has verified.
	c := NewCache()
	if _, err := Build(ctx, st, Options{Cache: c}); err != nil {
		t.Fatal(err)
	}
	st.Store.Put(ctx, st.SnapshotKey(ids[2]), []byte("x")) // replaced: a different size
	r2, err := Build(ctx, st, Options{Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r2.Snapshots {
		if s.ID == ids[2] && s.Verified {
			t.Error("a changed object was taken from the cache")
		}
		if s.ID == ids[3] && !s.Verified {
			t.Error("a cached good snapshot lost its verdict")
		}
	}
}

func TestReportCapAndEmpty(t *testing.T) {
	ctx := context.Background()
	st := metasnap.NewStorage(objstore.NewMemory(), "b")
	m := &metasnap.Manifest{}
	b, _ := metasnap.EncodeManifest(m)
	st.Store.Put(ctx, st.ManifestKey(), b)
	r, err := Build(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "no snapshots") {
		t.Errorf("empty location: %v", r.Problems)
	}
	if _, err := r.HTML(); err != nil {
		t.Fatal(err)
	}
	for i := range 95 {
		m.SnapshotMetadata = append(m.SnapshotMetadata, metasnap.SnapshotMetadata{ID: uint64(i + 1), FormatVersion: 1, MaxCommittedEpoch: uint64(i+1) << 16})
	}
	b, _ = metasnap.EncodeManifest(m)
	st.Store.Put(ctx, st.ManifestKey(), b)
	r, err = Build(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(r.Problems, func(p string) bool { return strings.Contains(p, "95 snapshots: near RisingWave's cap") }) {
		t.Errorf("cap warning missing: %v", r.Problems[len(r.Problems)-1])
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for v > 0 {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
	}
	return string(b)
}

// TestReportDataCopy: the SST copy's state (datacopy's indexes) per snapshot.
func TestReportDataCopy(t *testing.T) {
	ctx, st, hs, sim, ids, _ := location(t, 2)
	m, _, err := st.ReadManifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data := datacopy.NewLocation(st.Store, "backup/data")
	if _, err := datacopy.Backup(ctx, datacopy.BackupOptions{Source: hs, SourceDir: "hummock_001", Data: data,
		Owner: datacopy.Owner{ClusterID: sim.ClusterID(), Backup: datacopy.BackupIdentity("memory", "backup")}},
		[]metasnap.SnapshotMetadata{*m.Find(ids[0])}); err != nil {
		t.Fatal(err)
	}
	r, err := Build(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.DataCopy || r.Snapshots[0].DataState != datacopy.StateComplete || r.Snapshots[1].DataState != datacopy.StateNone {
		t.Fatalf("data states %q %q (copy %v)", r.Snapshots[0].DataState, r.Snapshots[1].DataState, r.DataCopy)
	}
	if p := r.Snapshots[0].Protection(r); !strings.Contains(p, "copied and verified") {
		t.Errorf("protection %q", p)
	}
}
