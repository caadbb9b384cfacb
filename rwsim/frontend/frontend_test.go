package frontend_test

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim/frontend"
)

// Epochs of the fixture, 2024-01-01 10:00/11:00/12:00 UTC, computed by hand:
// 2024-01-01T10:00:00Z = 1704103200000 ms; minus 1617235200000 = 86868000000;
// << 16 = 86868000000 * 65536 = 5692981248000000. One hour is
// 3600000 << 16 = 235929600000.
const (
	e1 = uint64(5692981248000000)
	e2 = e1 + 235929600000
	e3 = e2 + 235929600000
)

func fixture(t *testing.T, opts frontend.Options, entries ...metasnap.SnapshotMetadata) (*frontend.Server, uint32) {
	t.Helper()
	return fixtureAt(t, metasnap.NewStorage(objstore.NewMemory(), "backup"), opts, entries...)
}

// fixtureAt writes the manifest entries to st and starts a frontend on it
// with table t: row 1 "one" inserted at e1 and deleted at e3, row 2 "two"
// inserted at e2, row 3 "three" inserted at e3.
func fixtureAt(t *testing.T, st *metasnap.Storage, opts frontend.Options, entries ...metasnap.SnapshotMetadata) (*frontend.Server, uint32) {
	t.Helper()
	ctx := context.Background()
	for _, e := range entries {
		e := e
		if _, err := st.UpdateManifest(ctx, func(m *metasnap.Manifest, _ bool) error {
			m.SnapshotMetadata = append(m.SnapshotMetadata, e)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	opts.Backup = st
	srv, err := frontend.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	id, err := srv.CreateTable("t", frontend.Column{Name: "id", Type: frontend.Int8}, frontend.Column{Name: "v", Type: frontend.Varchar})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(srv.Insert("t", e1, 1, "one"))
	must(srv.Insert("t", e2, 2, "two"))
	if _, err := srv.Delete("t", e3, func(v []any) bool { return v[0].(int64) == 1 }); err != nil {
		t.Fatal(err)
	}
	must(srv.Insert("t", e3, 3, "three"))
	return srv, id
}

func connect(t *testing.T, srv *frontend.Server) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func ids(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var out []string
	for rows.Next() {
		var id int64
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return strings.Join(out, ",")
}

func TestPgxEpochsV17(t *testing.T) {
	srv, _ := fixture(t, frontend.Options{Shape: frontend.V17},
		metasnap.SnapshotMetadata{ID: 1, HummockVersionID: 10, SafeEpoch: 0, MaxCommittedEpoch: e2},
		metasnap.SnapshotMetadata{ID: 2, HummockVersionID: 20, SafeEpoch: e2, MaxCommittedEpoch: e3})
	conn := connect(t, srv)
	ctx := context.Background()
	check := func(epoch uint64, want string) {
		t.Helper()
		if _, err := conn.Exec(ctx, "SET QUERY_EPOCH = "+itoa(epoch)); err != nil {
			t.Fatal(err)
		}
		if got := ids(t, conn, "SELECT * FROM t ORDER BY id"); got != want {
			t.Errorf("epoch %d: rows %q, want %q", epoch, got, want)
		}
	}
	check(0, "two,three")
	check(e1, "one")
	check(e1+65536, "one")
	check(e2, "one,two")
	check(e3, "two,three")
	check(65536, "") // inside snapshot 1's range, before any row: no rows, as RisingWave's test

	// Past every snapshot: RisingWave's text and SQLSTATE.
	if _, err := conn.Exec(ctx, "SET QUERY_EPOCH TO "+itoa(e3+65536)); err != nil {
		t.Fatal("SET must not validate:", err)
	}
	_, err := conn.Exec(ctx, "SELECT count(*) FROM t")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "XX000" ||
		!strings.Contains(pgErr.Message, "Read backup error backup include epoch "+itoa(e3+65536)+" not found.") {
		t.Fatalf("want backup error, got %v", err)
	}
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM rw_catalog.rw_meta_snapshot").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rw_meta_snapshot count = %d, %v", n, err)
	}
	var s string
	if err := conn.QueryRow(ctx, "SHOW QUERY_EPOCH").Scan(&s); err != nil || s != itoa(e3+65536) {
		t.Fatalf("SHOW QUERY_EPOCH = %q, %v", s, err)
	}
	if _, err := conn.Exec(ctx, "SET QUERY_EPOCH = abc"); err == nil || !strings.Contains(err.Error(), "Invalid value `abc` for `query_epoch`") {
		t.Fatalf("non-numeric QUERY_EPOCH: %v", err)
	}
	// Binary results (pgx's default for int8 and timestamp) decode.
	var id, safe int64
	var ts *time.Time
	var mts time.Time
	if err := conn.QueryRow(ctx, "SELECT meta_snapshot_id, safe_epoch, safe_epoch_ts, max_committed_epoch_ts FROM rw_catalog.rw_meta_snapshot ORDER BY meta_snapshot_id DESC LIMIT 1").
		Scan(&id, &safe, &ts, &mts); err != nil {
		t.Fatal(err)
	}
	if id != 2 || safe != int64(e2) || ts == nil || !ts.Equal(time.Date(2024, 1, 1, 11, 0, 0, 0, time.UTC)) ||
		!mts.Equal(time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("row: %d %d %v %v", id, safe, ts, mts)
	}
}

func TestPgxPerTableV110(t *testing.T) {
	srv, tid := fixture(t, frontend.Options{Shape: frontend.V110},
		metasnap.SnapshotMetadata{ID: 1, HummockVersionID: 10, SafeEpoch: 0, MaxCommittedEpoch: e3, RWVersion: ptr("1.10.0"),
			StateTableInfo: map[uint32]metasnap.StateTableInfo{
				1001: {CommittedEpoch: e2, SafeEpoch: e1, CompactionGroupID: 2}}})
	if tid != 1001 {
		t.Fatalf("table id %d", tid)
	}
	conn := connect(t, srv)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "SET QUERY_EPOCH = "+itoa(e2)); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, conn, "SELECT id, v FROM t ORDER BY 1"); got != "one,two" {
		t.Fatalf("rows %q", got)
	}
	// e3 is within the global range but past table 1001's committed epoch.
	if _, err := conn.Exec(ctx, "SET QUERY_EPOCH = "+itoa(e3)); err != nil {
		t.Fatal(err)
	}
	_, err := conn.Exec(ctx, "SELECT * FROM t")
	if err == nil || !strings.Contains(err.Error(), "Read backup error: backup include epoch "+itoa(e3)+" not found") {
		t.Fatalf("want v1.10 backup error, got %v", err)
	}
	var sti, ver string
	if err := conn.QueryRow(ctx, "SELECT state_table_info, rw_version FROM rw_catalog.rw_meta_snapshot").Scan(&sti, &ver); err != nil || ver != "1.10.0" {
		t.Fatal(ver, err)
	}
	want := `{"1001": {"committedEpoch": "` + itoa(e2) + `", "safeEpoch": "` + itoa(e1) + `", "compactionGroupId": "2"}}`
	if sti != want {
		t.Fatalf("state_table_info %s, want %s", sti, want)
	}
}

func TestNoCatalog(t *testing.T) {
	srv, _ := fixture(t, frontend.Options{NoCatalog: true})
	conn := connect(t, srv)
	_, err := conn.Exec(context.Background(), "SELECT * FROM rw_catalog.rw_meta_snapshot")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Fatalf("want undefined_table, got %v", err)
	}
}

func TestCancel(t *testing.T) {
	srv, _ := fixture(t, frontend.Options{})
	cfg, err := pgx.ParseConfig(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 5 * time.Second}
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = conn.Exec(ctx, "SELECT pg_sleep(30)")
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("cancel: %v after %s", err, time.Since(start))
	}
	if conn.IsClosed() {
		t.Fatal("a cancel request must leave the connection usable")
	}
	var s string
	if err := conn.QueryRow(context.Background(), "SHOW query_epoch").Scan(&s); err != nil || s != "0" {
		t.Fatalf("after cancel: %q %v", s, err)
	}
}

func TestPsqlSimpleProtocol(t *testing.T) {
	psql := psqlPath(t)
	srv, _ := fixture(t, frontend.Options{},
		metasnap.SnapshotMetadata{ID: 1, HummockVersionID: 10, SafeEpoch: 0, MaxCommittedEpoch: e3})
	script := "SET QUERY_EPOCH = " + itoa(e2) + ";\nSELECT * FROM t ORDER BY id;\nSHOW QUERY_EPOCH;\n" +
		"SET QUERY_EPOCH = 0; SELECT count(*) FROM t;\nSELECT * FROM rw_catalog.rw_meta_snapshot;\n"
	cmd := exec.Command(psql, "-X", "-v", "ON_ERROR_STOP=1", srv.URL())
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	for _, want := range []string{"  1 | one", "  2 | two", "(2 rows)", itoa(e2), "     2\n", "meta_snapshot_id", "2024-01-01 12:00:00"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("psql output lacks %q:\n%s", want, out)
		}
	}
}

func psqlPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql not found: install postgresql-client (make test does); these tests drive the real psql binary")
	}
	return p
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func ptr(s string) *string { return &s }
