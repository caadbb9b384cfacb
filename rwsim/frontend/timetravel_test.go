package frontend_test

// End-to-end tests of rwsnap's time travel against the simulated frontend,
// with real clients: pgx (extended protocol, through package timetravel),
// the rwsnap binary, and the system psql (simple protocol).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim/frontend"
	"github.com/rwsnap/rwsnap/timetravel"
)

// The fixture's snapshots: 1 serves e1..e2 (10:00..11:00 UTC), 2 serves
// e2..e3 (11:00..12:00).
var twoSnapshots = []metasnap.SnapshotMetadata{
	{ID: 1, HummockVersionID: 10, SafeEpoch: e1, MaxCommittedEpoch: e2, FormatVersion: 1, Remarks: ptr("before two")},
	{ID: 2, HummockVersionID: 20, SafeEpoch: e2, MaxCommittedEpoch: e3, FormatVersion: 1},
}

func utc(hh, mm int) time.Time { return time.Date(2024, 1, 1, hh, mm, 0, 0, time.UTC) }

// sqlOf lists the statements the server ran, in order.
func sqlOf(srv *frontend.Server) []string {
	var out []string
	for _, e := range srv.Executed() {
		out = append(out, e.SQL)
	}
	return out
}

func sawSet(srv *frontend.Server) bool {
	for _, s := range sqlOf(srv) {
		if strings.HasPrefix(strings.ToUpper(s), "SET") {
			return true
		}
	}
	return false
}

func TestQueryAtTimePgx(t *testing.T) {
	for _, shape := range []frontend.Shape{frontend.V17, frontend.V110} {
		t.Run(fmt.Sprint("shape", shape), func(t *testing.T) {
			entries := twoSnapshots
			var table *uint32
			if shape == frontend.V110 {
				// v1.10: the same ranges, per table 1001 (t's id).
				id := uint32(1001)
				table = &id
				entries = nil
				for _, e := range twoSnapshots {
					e.StateTableInfo = map[uint32]metasnap.StateTableInfo{1001: {SafeEpoch: e.SafeEpoch, CommittedEpoch: e.MaxCommittedEpoch, CompactionGroupID: 2}}
					e.RWVersion = ptr("1.10.0")
					entries = append(entries, e)
				}
			}
			srv, _ := fixture(t, frontend.Options{Shape: shape}, entries...)
			ctx := context.Background()
			conn, err := timetravel.Connect(ctx, srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			cat, err := timetravel.ReadSnapshots(ctx, conn)
			if err != nil {
				t.Fatal(err)
			}
			wantShape := map[frontend.Shape]timetravel.Shape{frontend.V17: timetravel.ShapeV17, frontend.V110: timetravel.ShapeV110}[shape]
			if cat.Shape != wantShape || len(cat.Snapshots) != 2 {
				t.Fatalf("catalog %v with %d snapshots", cat.Shape, len(cat.Snapshots))
			}
			for _, tt := range []struct {
				at   time.Time
				rows string
			}{
				{utc(10, 0), "1 one"},
				{utc(10, 30), "1 one"},
				{utc(11, 0), "1 one|2 two"},
				{utc(11, 59), "1 one|2 two"},
				{utc(12, 0), "2 two|3 three"},
			} {
				ch, err := cat.ChooseTime(tt.at, table, time.UTC)
				if err != nil {
					t.Fatalf("%s: %v", tt.at, err)
				}
				if want := timetravel.FromTime(tt.at); ch.Epoch != want || !ch.Exact {
					t.Fatalf("%s: epoch %d, want %d", tt.at, ch.Epoch, want)
				}
				srv.ClearLog()
				res, err := timetravel.Query(ctx, conn, ch.Epoch, "SELECT * FROM t ORDER BY id")
				if err != nil {
					t.Fatalf("%s: %v", tt.at, err)
				}
				var got []string
				for _, r := range res.Rows {
					got = append(got, *r[0]+" "+*r[1])
				}
				if strings.Join(got, "|") != tt.rows || res.Columns[0].Name != "id" || res.Columns[1].Name != "v" {
					t.Errorf("%s: rows %q, want %q", tt.at, strings.Join(got, "|"), tt.rows)
				}
				log := sqlOf(srv)
				want := []string{timetravel.SetEpochSQL(ch.Epoch), "SELECT * FROM t ORDER BY id", "SET QUERY_EPOCH = 0"}
				if strings.Join(log, ";") != strings.Join(want, ";") {
					t.Errorf("server ran %q, want %q", log, want)
				}
				if ex := srv.Executed(); !ex[1].Extended {
					t.Error("pgx should run the query through the extended protocol")
				}
				var s string
				if err := conn.QueryRow(ctx, "SHOW QUERY_EPOCH").Scan(&s); err != nil || s != "0" {
					t.Fatalf("after the query SHOW QUERY_EPOCH = %q, %v", s, err)
				}
			}
			// Out of range: refused before anything is sent.
			srv.ClearLog()
			if _, err := cat.ChooseTime(utc(12, 1), table, time.UTC); err == nil {
				t.Fatal("12:01 is after the last snapshot")
			}
			if _, err := cat.ChooseTime(utc(9, 59), table, time.UTC); err == nil {
				t.Fatal("09:59 is before the first snapshot")
			}
			if len(srv.Executed()) != 0 {
				t.Fatalf("server saw %q", sqlOf(srv))
			}
		})
	}
}

func TestQueryResetsOnErrorAndCancel(t *testing.T) {
	srv, _ := fixture(t, frontend.Options{}, twoSnapshots...)
	ctx := context.Background()
	conn, err := timetravel.Connect(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	show := func() string {
		t.Helper()
		var s string
		if err := conn.QueryRow(ctx, "SHOW QUERY_EPOCH").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// An epoch no snapshot serves (Query trusts its caller): RisingWave's
	// error comes back and the session is still reset.
	bad := e3 + 65536
	_, err = timetravel.Query(ctx, conn, bad, "SELECT count(*) FROM t")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("Read backup error backup include epoch %d not found", bad)) {
		t.Fatalf("want RisingWave's backup error, got %v", err)
	}
	if s := show(); s != "0" {
		t.Fatalf("after an error QUERY_EPOCH = %s", s)
	}
	// A query error (unknown table) also resets.
	if _, err := timetravel.Query(ctx, conn, e2, "SELECT * FROM nope"); err == nil || show() != "0" {
		t.Fatalf("unknown table: %v", err)
	}
	// Cancellation (Ctrl-C): the server cancels the query, the connection
	// survives, and the reset runs on a fresh context.
	srv.ClearLog()
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = timetravel.Query(cctx, conn, e2, "SELECT pg_sleep(30)")
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("cancelled query: %v after %s", err, time.Since(start))
	}
	if conn.IsClosed() {
		t.Fatal("connection closed by the cancel")
	}
	if s := show(); s != "0" {
		t.Fatalf("after a cancel QUERY_EPOCH = %s", s)
	}
	log := sqlOf(srv)
	if len(log) < 3 || log[2] != "SET QUERY_EPOCH = 0" {
		t.Fatalf("server ran %q", log)
	}
}

func TestNotRisingWaveAndUnreachable(t *testing.T) {
	srv, _ := fixture(t, frontend.Options{NoCatalog: true})
	ctx := context.Background()
	conn, err := timetravel.Connect(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := timetravel.ReadSnapshots(ctx, conn); !errors.Is(err, timetravel.ErrNotRisingWave) {
		t.Fatalf("want ErrNotRisingWave, got %v", err)
	}
	addr := closedAddr(t)
	_, err = timetravel.Connect(ctx, "postgres://root:s3cret@"+addr+"/dev")
	if err == nil || !strings.Contains(err.Error(), "connect to RisingWave frontend") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("unreachable: %v", err)
	}
}

// closedAddr is a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	srv, err := frontend.Start(context.Background(), frontend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	srv.Close()
	return addr
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// rwsnapBin builds cmd/rwsnap once per test run.
func rwsnapBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rwsnap-tt-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "rwsnap")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/rwsnap")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/rwsnap: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type runResult struct {
	code           int
	stdout, stderr string
}

func rwsnap(t *testing.T, stdin string, env []string, args ...string) runResult {
	t.Helper()
	cmd := exec.Command(rwsnapBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return runResult{code, out.String(), errb.String()}
}

// cliFixture is a frontend on a backup location in a directory, so the CLI
// can also read the manifest itself.
func cliFixture(t *testing.T, opts frontend.Options) (*frontend.Server, string) {
	t.Helper()
	dir := t.TempDir()
	store, err := objstore.Open(context.Background(), "fs://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := fixtureAt(t, metasnap.NewStorage(store, "backup"), opts, twoSnapshots...)
	return srv, "fs://" + dir
}

func TestCLIQuery(t *testing.T) {
	psqlPath(t)
	srv, _ := cliFixture(t, frontend.Options{})
	url := srv.URL()

	r := rwsnap(t, "", nil, "timetravel", "query", "--pg-url", url, "--at", "2024-01-01 10:30:00+00", "-c", "SELECT * FROM t ORDER BY id")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	// Exactly the rows of 10:30, in psql's layout.
	if want := " id |  v  \n----+-----\n  1 | one\n(1 row)\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "QUERY_EPOCH = 5693099212800000") || !strings.Contains(r.stderr, "meta snapshot 1") {
		t.Errorf("stderr does not say what was pinned: %s", r.stderr)
	}
	// The same session was reset after the query.
	log := sqlOf(srv)
	if n := len(log); n < 3 || log[n-3] != "SET QUERY_EPOCH = 5693099212800000" || log[n-1] != "SET QUERY_EPOCH = 0" {
		t.Errorf("server ran %q", log)
	}

	r = rwsnap(t, "", nil, "timetravel", "query", "--pg-url", url, "--at", "2024-01-01T11:30:00Z", "-c", "SELECT id, v FROM t ORDER BY id DESC", "-o", "csv")
	if r.code != 0 || r.stdout != "id,v\n2,two\n1,one\n" {
		t.Errorf("csv: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = rwsnap(t, "", nil, "timetravel", "query", "--pg-url", url, "--epoch", "5693217177600000", "-c", "SELECT count(*) FROM t", "-o", "json")
	var rows []map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rows) != nil || len(rows) != 1 || rows[0]["count"] != float64(2) {
		t.Errorf("json (e2 = 11:00, two rows): exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = rwsnap(t, "", nil, "timetravel", "query", "--pg-url", url, "--snapshot", "2", "-c", "SELECT v FROM t ORDER BY v")
	if r.code != 0 || !strings.Contains(r.stdout, "three\n two\n") && !strings.Contains(r.stdout, " three\n two\n") {
		t.Errorf("--snapshot 2 (12:00: two, three): exit %d %q %s", r.code, r.stdout, r.stderr)
	}

	// PG* variables instead of --pg-url.
	host, port, _ := strings.Cut(srv.Addr(), ":")
	r = rwsnap(t, "", []string{"PGHOST=" + host, "PGPORT=" + port, "PGUSER=root", "PGDATABASE=dev", "PGSSLMODE=disable", "RWSNAP_PG_URL="},
		"timetravel", "query", "--at", "2024-01-01T12:00:00Z", "-c", "SELECT count(*) FROM t")
	if r.code != 0 || !strings.Contains(r.stdout, "     2\n(1 row)") {
		t.Errorf("PG* env: exit %d %q %s", r.code, r.stdout, r.stderr)
	}

	// A failing query exits 1 with RisingWave's message.
	r = rwsnap(t, "", nil, "timetravel", "query", "--pg-url", url, "--at", "2024-01-01T12:00:00Z", "-c", "SELECT * FROM missing")
	if r.code != 1 || !strings.Contains(r.stderr, "table or source not found: missing") {
		t.Errorf("failing query: exit %d %s", r.code, r.stderr)
	}
}

func TestCLIRefusesOutOfRangeBeforeSet(t *testing.T) {
	srv, _ := cliFixture(t, frontend.Options{})
	for _, at := range []string{"2024-01-01 12:00:00.001Z", "2024-01-01 09:00Z", "-1h"} {
		srv.ClearLog()
		r := rwsnap(t, "", nil, "timetravel", "query", "--pg-url", srv.URL(), "--at", at, "-c", "SELECT * FROM t")
		if r.code != 1 {
			t.Errorf("--at %s: exit %d, want 1: %s", at, r.code, r.stderr)
		}
		for _, want := range []string{"no meta snapshot covers", "covered ranges",
			"snapshot 1: 2024-01-01 10:00:00.000 UTC .. 2024-01-01 11:00:00.000 UTC",
			"snapshot 2: 2024-01-01 11:00:00.000 UTC .. 2024-01-01 12:00:00.000 UTC"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("--at %s: stderr lacks %q:\n%s", at, want, r.stderr)
			}
		}
		if sawSet(srv) {
			t.Errorf("--at %s: server saw a SET: %q", at, sqlOf(srv))
		}
	}
}

func TestCLIEpochAndList(t *testing.T) {
	srv, backupURL := cliFixture(t, frontend.Options{})
	manifest := []string{"--backup-storage-url", backupURL, "--backup-storage-directory", "backup"}
	for _, src := range [][]string{{"--pg-url", srv.URL()}, manifest} {
		r := rwsnap(t, "", nil, append([]string{"timetravel", "epoch", "--at", "2024-01-01 10:30+00"}, src...)...)
		if r.code != 0 || !strings.HasSuffix(r.stdout, "\nSET QUERY_EPOCH = 5693099212800000;\n") ||
			!strings.Contains(r.stdout, "-- as of 2024-01-01 10:30:00.000 UTC") {
			t.Errorf("epoch %v: exit %d %q %s", src, r.code, r.stdout, r.stderr)
		}
		r = rwsnap(t, "", nil, append([]string{"timetravel", "list"}, src...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "2024-01-01 10:00:00.000  2024-01-01 11:00:00.000  5692981248000000  5693217177600000  before two") {
			t.Errorf("list %v: exit %d\n%s%s", src, r.code, r.stdout, r.stderr)
		}
	}
	r := rwsnap(t, "", nil, append([]string{"timetravel", "epoch", "--snapshot", "1", "-o", "json"}, manifest...)...)
	var v map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v["epoch"] != float64(e2) || v["sql"] != "SET QUERY_EPOCH = 5693217177600000;" {
		t.Errorf("epoch --snapshot 1 -o json: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	// Manifest mode never needs a frontend.
	if len(srv.Executed()) != 2 { // only the --pg-url runs of epoch and list, reading rw_meta_snapshot once each
		t.Errorf("server ran %q", sqlOf(srv))
	}
}

func TestCLIPsql(t *testing.T) {
	psqlPath(t)
	srv, _ := cliFixture(t, frontend.Options{})
	tmp := t.TempDir()
	env := []string{"TMPDIR=" + tmp, "HOME=" + t.TempDir(), "PSQLRC="}
	script := "SHOW QUERY_EPOCH;\nSELECT * FROM t ORDER BY id;\n"

	// psql reading a script on stdin.
	r := rwsnap(t, script, env, "timetravel", "psql", "--pg-url", srv.URL(), "--at", "2024-01-01T11:30:00Z")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"rwsnap: as of 2024-01-01 11:30:00.000 UTC",
		"rwsnap: QUERY_EPOCH = 5693335142400000, read from meta snapshot 2",
		"\n 5693335142400000\n(1 row)\n",
		"  1 | one\n  2 | two\n(2 rows)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("psql output lacks %q:\n%s\nstderr: %s", want, r.stdout, r.stderr)
		}
	}
	// The banner suggests no SET that would leave the prompt's time wrong.
	if strings.Contains(r.stdout, "SET QUERY_EPOCH = 0 returns") || !strings.Contains(r.stdout, "the prompt shows this point in time for the whole session") {
		t.Errorf("banner:\n%s", r.stdout)
	}
	// The banner comes before the script's output, and the SET ran quietly.
	if strings.Index(r.stdout, "rwsnap: as of") > strings.Index(r.stdout, "query_epoch") || strings.Contains(r.stdout, "\nSET\n") {
		t.Errorf("banner/quiet:\n%s", r.stdout)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "rwsnap-psqlrc-*")); len(left) != 0 {
		t.Errorf("temporary psqlrc left behind: %v", left)
	}

	// psql -f script, with the user's own startup file run first.
	userRC := filepath.Join(t.TempDir(), "psqlrc")
	os.WriteFile(userRC, []byte("\\echo user-psqlrc-ran\n"), 0o600)
	scriptFile := filepath.Join(t.TempDir(), "s.sql")
	os.WriteFile(scriptFile, []byte(script), 0o600)
	r = rwsnap(t, "", []string{"TMPDIR=" + tmp, "PSQLRC=" + userRC}, "timetravel", "psql", "--pg-url", srv.URL(), "--snapshot", "1", "--", "-f", scriptFile)
	if r.code != 0 || !strings.Contains(r.stdout, "user-psqlrc-ran") || !strings.Contains(r.stdout, " 5693217177600000\n") ||
		!strings.Contains(r.stdout, "  1 | one\n  2 | two\n(2 rows)") {
		t.Errorf("psql -f: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// psql's own status passes through: 3 is "a script failed with
	// ON_ERROR_STOP set".
	badScript := filepath.Join(t.TempDir(), "bad.sql")
	os.WriteFile(badScript, []byte("SELECT * FROM missing;\n"), 0o600)
	r = rwsnap(t, "", env, "timetravel", "psql", "--pg-url", srv.URL(), "--snapshot", "1", "--", "-v", "ON_ERROR_STOP=1", "-f", badScript)
	if r.code != 3 || !strings.Contains(r.stderr, "missing") {
		t.Errorf("failing script: exit %d (want psql's 3)\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// -X would skip the startup file: refused.
	r = rwsnap(t, "", env, "timetravel", "psql", "--pg-url", srv.URL(), "--snapshot", "1", "--", "-X")
	if r.code != 2 {
		t.Errorf("-X: exit %d %s", r.code, r.stderr)
	}
	// Out of range: psql never starts.
	r = rwsnap(t, script, env, "timetravel", "psql", "--pg-url", srv.URL(), "--at", "2024-01-02 00:00Z")
	if r.code != 1 || strings.Contains(r.stdout, "query_epoch") || !strings.Contains(r.stderr, "covered ranges") {
		t.Errorf("out of range: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
}

func TestCLIBadInput(t *testing.T) {
	srv, _ := cliFixture(t, frontend.Options{})
	noCat, _ := cliFixture(t, frontend.Options{NoCatalog: true})
	unreachable := "postgres://root:s3cret@" + closedAddr(t) + "/dev"
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"unparseable time", []string{"epoch", "--pg-url", srv.URL(), "--at", "yesterday"}, 2,
			[]string{`unrecognised time "yesterday"`, "RFC 3339", "YYYY-MM-DD HH:MM", "-2h"}},
		{"spill bits", []string{"epoch", "--pg-url", srv.URL(), "--epoch", "5693217177600001"}, 2,
			[]string{"not a committed epoch", "nearest committed epoch is 5693217177600000 (2024-01-01 11:00:00.000 UTC)"}},
		{"no point", []string{"query", "--pg-url", srv.URL(), "-c", "SELECT 1"}, 2, []string{"--at TIME, --epoch N or --snapshot ID"}},
		{"two points", []string{"epoch", "--pg-url", srv.URL(), "--at", "now", "--epoch", "65536"}, 2, []string{"only one of --at, --epoch"}},
		{"no sql", []string{"query", "--pg-url", srv.URL(), "--at", "now"}, 2, []string{"-c"}},
		{"bad output", []string{"query", "--pg-url", srv.URL(), "--at", "now", "-c", "SELECT 1", "-o", "xml"}, 2, []string{`--output "xml": want table, json or csv`}},
		{"bad table", []string{"epoch", "--pg-url", srv.URL(), "--at", "now", "--table", "t"}, 2, []string{"numeric table id"}},
		{"unknown snapshot", []string{"epoch", "--pg-url", srv.URL(), "--snapshot", "9"}, 1, []string{"meta snapshot 9 does not exist (snapshots: 1, 2)"}},
		{"unreachable", []string{"list", "--pg-url", unreachable}, 1, []string{"connect to RisingWave frontend", "is the frontend running"}},
		{"not risingwave", []string{"list", "--pg-url", noCat.URL()}, 1, []string{"not a RisingWave frontend"}},
		{"half a location", []string{"list", "--backup-storage-url", "fs:///nonexistent"}, 2, []string{"both --backup-storage-url and --backup-storage-directory"}},
	}
	for _, tt := range tests {
		srv.ClearLog()
		r := rwsnap(t, "", nil, append([]string{"timetravel"}, tt.args...)...)
		if r.code != tt.code {
			t.Errorf("%s: exit %d, want %d: %s", tt.name, r.code, tt.code, r.stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", tt.name, w, r.stderr)
			}
		}
		if strings.Contains(r.stderr, "s3cret") {
			t.Errorf("%s: password in the message: %s", tt.name, r.stderr)
		}
		if tt.code == 2 && len(srv.Executed()) != 0 {
			t.Errorf("%s: a usage error reached the server: %q", tt.name, sqlOf(srv))
		}
	}
}

func TestCLICtrlCResets(t *testing.T) {
	srv, _ := cliFixture(t, frontend.Options{})
	cmd := exec.Command(rwsnapBin(t), "timetravel", "query", "--pg-url", srv.URL(), "--at", "2024-01-01T11:00:00Z", "-c", "SELECT pg_sleep(30)")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(strings.Join(sqlOf(srv), ";"), "pg_sleep") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("query never started: %q", sqlOf(srv))
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	// 130: stopped by SIGINT, as a shell reports it.
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || time.Since(start) > 10*time.Second {
		t.Fatalf("Ctrl-C: %v after %s: %s", err, time.Since(start), errb.String())
	}
	log := sqlOf(srv)
	if log[len(log)-1] != "SET QUERY_EPOCH = 0" {
		t.Fatalf("no reset after Ctrl-C: %q", log)
	}
}

func TestCLIPerTableV110(t *testing.T) {
	// A v1.10 cluster: table 1001 (t) committed to e3, table 1002 only to e2.
	entry := metasnap.SnapshotMetadata{ID: 5, HummockVersionID: 50, SafeEpoch: e1, MaxCommittedEpoch: e3, FormatVersion: 1, RWVersion: ptr("1.10.0"),
		StateTableInfo: map[uint32]metasnap.StateTableInfo{
			1001: {SafeEpoch: e1, CommittedEpoch: e3, CompactionGroupID: 2},
			1002: {SafeEpoch: e1, CommittedEpoch: e2, CompactionGroupID: 3},
		}}
	srv, _ := fixture(t, frontend.Options{Shape: frontend.V110}, entry)
	r := rwsnap(t, "", nil, "timetravel", "query", "--pg-url", srv.URL(), "--at", "2024-01-01T11:30:00Z", "--table", "1001", "-c", "SELECT count(*) FROM t")
	if r.code != 0 || !strings.Contains(r.stdout, "     2\n(1 row)") || !strings.Contains(r.stderr, "range of table 1001") {
		t.Errorf("--table 1001: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	// Without --table the range valid for every table ends at e2 (11:00):
	// 11:30 is after it and refused.
	r = rwsnap(t, "", nil, "timetravel", "epoch", "--pg-url", srv.URL(), "--at", "2024-01-01T11:30:00Z")
	if r.code != 1 || !strings.Contains(r.stderr, "snapshot 5: 2024-01-01 10:00:00.000 UTC .. 2024-01-01 11:00:00.000 UTC") ||
		!strings.Contains(r.stderr, "per-table") {
		t.Errorf("no --table: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = rwsnap(t, "", nil, "timetravel", "epoch", "--pg-url", srv.URL(), "--at", "2024-01-01T10:30:00Z", "--table", "9")
	if r.code != 1 || !strings.Contains(r.stderr, "for table 9") {
		t.Errorf("--table 9: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = rwsnap(t, "", nil, "timetravel", "list", "--pg-url", srv.URL())
	if r.code != 0 || !strings.Contains(r.stdout, "v1.10 columns") || !strings.Contains(r.stdout, "[2 tables, range valid for all]") {
		t.Errorf("list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
