package faultproxy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	var upstream atomic.Int32
	var lastHost atomic.Value
	body := strings.Repeat("0123456789", 1000)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstream.Add(1)
		lastHost.Store(r.Host)
		io.WriteString(w, body)
	}))
	defer up.Close()
	p, err := Start(strings.TrimPrefix(up.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// No keep-alive: each request gets its own connection, so a reset
	// cannot be retried transparently by the transport.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) (int, string, error) {
		resp, err := client.Get("http://" + p.Addr() + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}

	p.Add(Rule{Name: "503", Path: "/a", Skip: 1, Times: 2})
	for i, want := range []int{200, 503, 503, 200} {
		code, _, err := get("/a")
		if err != nil || code != want {
			t.Fatalf("request %d: %d %v, want %d", i, code, err, want)
		}
	}
	if p.Hits("503") != 2 || lastHost.Load() != p.Addr() {
		t.Fatalf("hits %d, host %v", p.Hits("503"), lastHost.Load())
	}

	n := upstream.Load()
	p.Add(Rule{Path: "/reset", Action: Reset})
	if _, _, err := get("/reset"); err == nil {
		t.Fatal("reset: no error")
	}
	if upstream.Load() != n {
		t.Fatal("reset forwarded the request")
	}

	p.Add(Rule{Path: "/drop", Action: DropResponse})
	if _, _, err := get("/drop"); err == nil {
		t.Fatal("drop: no error")
	}
	if upstream.Load() != n+1 {
		t.Fatal("drop did not forward the request")
	}

	p.Add(Rule{Path: "/cut", Action: Truncate})
	if _, b, err := get("/cut"); !errors.Is(err, io.ErrUnexpectedEOF) || len(b) != len(body)/2 {
		t.Fatalf("truncate: %d bytes, %v", len(b), err)
	}

	p.Add(Rule{Path: "/short", Action: ShortBody})
	if code, b, err := get("/short"); err != nil || code != 200 || b != body[:len(body)/2] {
		t.Fatalf("short body: %d bytes, %v", len(b), err)
	}

	p.Add(Rule{Path: "/slow", Action: SlowBody, Delay: time.Millisecond}, Rule{Path: "/late", Action: Delay, Delay: 50 * time.Millisecond})
	if _, b, err := get("/slow"); err != nil || b != body {
		t.Fatalf("slow body: %d bytes, %v", len(b), err)
	}
	start := time.Now()
	if _, b, err := get("/late"); err != nil || b != body || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("delay: %d bytes, %v", len(b), err)
	}
	g := NewGate()
	p.Add(Rule{Path: "/held", Action: Hold, Gate: g})
	held := make(chan error)
	go func() {
		_, _, err := get("/held")
		held <- err
	}()
	<-g.Arrived()
	select {
	case err := <-held:
		t.Fatalf("a held request finished: %v", err)
	default:
	}
	g.Release()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	// Every rule is used up: traffic passes.
	for _, path := range []string{"/reset", "/drop", "/cut", "/short"} {
		if code, b, err := get(path); err != nil || code != 200 || b != body {
			t.Fatalf("%s after its faults: %d %v", path, code, err)
		}
	}
	p.Add(Rule{Name: "always", Path: "/x", Times: -1})
	for range 3 {
		if code, _, _ := get("/x"); code != 503 {
			t.Fatalf("persistent fault: %d", code)
		}
	}
	if len(p.Faults()) != 2+1+1+1+1+1+1+1+3 || p.Requests() != 4+1+1+1+1+1+1+1+4+3 {
		t.Fatalf("faults %v, requests %d", p.Faults(), p.Requests())
	}
}
