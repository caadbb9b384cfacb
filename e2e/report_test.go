package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/rwsim"
)

// chromium runs Debian's headless chromium on url with a fresh profile and
// a network log, and returns the DOM after load (--dump-dom) and the URLs
// of the requests the page made (pageSite names it in the log: "file://"
// or "http://127.0.0.1:PORT"). Requests of the browser itself (time sync,
// sign-in probes, started by no page) are not the page's and are left
// out. extra adds flags (e.g. --screenshot=FILE).
func chromium(t *testing.T, url, pageSite string, extra ...string) (dom string, requested []string) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("Debian's chromium is required (make test installs it: apt-get install chromium): %v", err)
	}
	dir := t.TempDir()
	netlog := filepath.Join(dir, "netlog.json")
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--disable-default-apps", "--user-data-dir=" + filepath.Join(dir, "profile"), "--log-net-log=" + netlog,
		// Nothing leaves the machine, whoever asks.
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--window-size=1400,1600", "--hide-scrollbars"}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--dump-dom", url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, stderr.String())
	}
	return string(out), pageRequests(t, netlog, pageSite)
}

// pageRequests reads a chromium net log: the URL of every request started
// for the page (its initiator or network isolation key is the page's site).
func pageRequests(t *testing.T, path, site string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("chromium wrote no network log: %v", err)
	}
	var log struct {
		Constants struct {
			LogEventTypes map[string]int `json:"logEventTypes"`
		} `json:"constants"`
		Events []struct {
			Type   int            `json:"type"`
			Params map[string]any `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal(b, &log); err != nil {
		// A log cut short misses its closing brackets.
		fixed := strings.TrimRight(strings.TrimSpace(string(b)), ",") + "]}"
		if err2 := json.Unmarshal([]byte(fixed), &log); err2 != nil {
			t.Fatalf("parse the net log: %v", err)
		}
	}
	start, ok := log.Constants.LogEventTypes["URL_REQUEST_START_JOB"]
	if !ok {
		t.Fatal("the net log has no URL_REQUEST_START_JOB event type")
	}
	var out []string
	for _, e := range log.Events {
		if e.Type != start {
			continue
		}
		url, _ := e.Params["url"].(string)
		initiator, _ := e.Params["initiator"].(string)
		nik, _ := e.Params["network_isolation_key"].(string)
		if strings.HasPrefix(initiator, site) || initiator == "null" && site == "file://" || strings.Contains(nik, site) {
			out = append(out, url)
		}
	}
	return out
}

// onlySelf fails the test when the page requested anything but itself.
func onlySelf(t *testing.T, requested []string, page string) {
	t.Helper()
	for _, u := range requested {
		if u != page && !strings.HasPrefix(u, "data:") {
			t.Errorf("the page made a request to %s (only %s may be loaded)", u, page)
		}
	}
}

// TestChromiumNetLogSeesPageRequests: the check above can fail: a page
// with one remote image is caught.
func TestChromiumNetLogSeesPageRequests(t *testing.T) {
	file := filepath.Join(t.TempDir(), "leaky.html")
	os.WriteFile(file, []byte(`<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body><img src="http://example.invalid/x.png">x</body></html>`), 0o644)
	_, requested := chromium(t, "file://"+file, "file://")
	if len(requested) != 1 || requested[0] != "http://example.invalid/x.png" {
		t.Fatalf("page requests %v, want the remote image", requested)
	}
}

func snapshotRows(dom string) map[string]bool {
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`<tr[^>]*data-snapshot="(\d+)"`).FindAllStringSubmatch(dom, -1) {
		out[m[1]] = true
	}
	return out
}

// TestReportInChromium writes the report of a location with several
// snapshots, an orphan and a retention policy, opens it in headless Debian
// chromium, and checks it renders every snapshot and requests nothing but
// itself. RWSNAP_DOCS_SCREENSHOT=1 also writes docs/report.png.
func TestReportInChromium(t *testing.T) {
	clock := time.Now().Add(-6 * time.Hour)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	f := newFixture(t, rwsim.Options{Seed: 41, Now: now})
	ctx := context.Background()
	var ids []string
	for i := range 6 {
		b := mustRun(t, nil, append([]string{"meta", "backup-meta", "-o", "json", "--remarks", fmt.Sprintf("hourly %d", i)}, f.etcdArgs()...)...)
		var res struct{ ID uint64 }
		if err := json.Unmarshal([]byte(b.stdout), &res); err != nil || res.ID == 0 {
			t.Fatalf("backup-meta: %v %s", err, b)
		}
		ids = append(ids, fmt.Sprint(res.ID))
		mu.Lock()
		clock = clock.Add(time.Hour)
		mu.Unlock()
		for range 3 {
			if err := f.sim.Advance(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// An interrupted backup's object.
	st := metasnap.NewStorage(f.hummock, "hummock_001/backup")
	b, _, err := st.Store.Get(ctx, st.SnapshotKey(1001))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Store.Put(ctx, st.SnapshotKey(77777), b); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "backups.html")
	mustRun(t, nil, append([]string{"meta", "report", "--html", file, "--keep-last", "3", "--keep-within", "90m"}, f.etcdArgs()...)...)
	page, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(page), ":"+testminioSecret(f)+"@") {
		t.Error("the page shows the MinIO secret key")
	}

	shot := filepath.Join(t.TempDir(), "report.png")
	url := "file://" + file
	dom, requested := chromium(t, url, "file://", "--screenshot="+shot)
	onlySelf(t, requested, url)
	rows := snapshotRows(dom)
	for _, id := range ids {
		if !rows[id] {
			t.Errorf("the rendered page has no row for snapshot %s", id)
		}
	}
	if len(rows) != len(ids) {
		t.Errorf("rendered rows %v, want %v", rows, ids)
	}
	for _, want := range []string{`id="snapshot-count">6<`, "orphan snapshot objects (77777)", "would be pruned", "keep (", "<svg"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10000 {
		t.Errorf("no screenshot: %v", err)
	}
	if os.Getenv("RWSNAP_DOCS_SCREENSHOT") == "1" {
		png, _ := os.ReadFile(shot)
		if err := os.WriteFile("../docs/report.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// testminioSecret is the secret key in the fixture's bucket URL.
func testminioSecret(f *fixture) string {
	m := regexp.MustCompile(`://[^:]+:([^@]+)@`).FindStringSubmatch(f.bucketURL)
	if m == nil {
		return "\x00"
	}
	return m[1]
}

// TestScheduleServesReport: the daemon serves the report at / on its
// metrics address, rebuilt after each job, and chromium loading it makes
// no other request.
func TestScheduleServesReport(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 42})
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rwsnapBin, append([]string{"schedule", "--every", "2s", "--keep-last", "5",
		"--metrics-addr", addr, "--retry-backoff", "100ms"}, f.etcdArgs()...)...)
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var taken []string
	runLine := regexp.MustCompile(`backup job succeeded: snapshot (\d+)`)
	for len(taken) < 2 && sc.Scan() {
		m := runLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		taken = append(taken, m[1])
		// The page was rebuilt before the run's line was printed.
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Fatalf("GET /: %d %v", resp.StatusCode, resp.Header)
		}
		rows := snapshotRows(string(body))
		for _, id := range taken {
			if !rows[id] {
				t.Errorf("after run %d the page lacks snapshot %s (rows %v)", len(taken), id, rows)
			}
		}
	}
	go io.Copy(io.Discard, pr)
	if len(taken) < 2 {
		t.Fatalf("schedule took %d snapshots:\n%s", len(taken), logs.String())
	}
	url := "http://" + addr + "/"
	dom, requested := chromium(t, url, "http://127.0.0.1")
	onlySelf(t, requested, url)
	if len(requested) == 0 || requested[0] != url {
		t.Errorf("the net log does not show the page itself being loaded: %v", requested)
	}
	rows := snapshotRows(dom)
	for _, id := range taken {
		if !rows[id] {
			t.Errorf("chromium's page lacks snapshot %s", id)
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics still served: %v %v", resp, err)
	}
	resp.Body.Close()
}
