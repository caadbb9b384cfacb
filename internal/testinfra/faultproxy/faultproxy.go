// Package faultproxy is a loopback HTTP reverse proxy that injects faults
// into the traffic between rwsnap and an S3 server (MinIO in the tests):
// error statuses, delays, connection resets, lost answers, cut and silently
// shortened response bodies, slow bodies. Each fault applies to a bounded
// number of matching requests, so tests show that operations retry through
// transient faults and fail cleanly on persistent ones.
//
// The proxy keeps the client's Host header: S3 requests are signed over it
// (SigV4), so the server checks the signature against the address the
// client used, the proxy's.
package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Action is what a rule does to a matching request.
type Action int

const (
	// Status answers with Rule.Code (default 503) and an S3 XML error,
	// without forwarding the request.
	Status Action = iota
	// Delay waits Rule.Delay, then forwards the request.
	Delay
	// Reset resets the TCP connection (RST) without forwarding.
	Reset
	// DropResponse forwards the request, so it takes effect upstream, then
	// resets the connection instead of answering: the answer is lost.
	DropResponse
	// Truncate forwards, then sends the headers (Content-Length intact)
	// and half the body, and closes the connection: the client sees a
	// short read.
	Truncate
	// ShortBody forwards, then sends half the body with a Content-Length
	// that matches it: a silent truncation that only a checksum catches.
	ShortBody
	// SlowBody forwards, then trickles the body in 1 KiB chunks, Rule.Delay
	// (default 5ms) apart.
	SlowBody
	// Hold stops the request at Rule.Gate until the test releases it, then
	// forwards it: the client is paused at a known point while the test
	// breaks something else (an etcd member).
	Hold
)

// Gate pauses requests of a Hold rule.
type Gate struct {
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
	rel     sync.Once
}

// NewGate returns a closed gate.
func NewGate() *Gate {
	return &Gate{arrived: make(chan struct{}), release: make(chan struct{})}
}

// Arrived is closed when the first request reaches the gate.
func (g *Gate) Arrived() <-chan struct{} { return g.arrived }

// Release lets held requests (and later ones) through.
func (g *Gate) Release() { g.rel.Do(func() { close(g.release) }) }

func (a Action) String() string {
	switch a {
	case Status:
		return "status"
	case Delay:
		return "delay"
	case Reset:
		return "reset"
	case DropResponse:
		return "drop-response"
	case Truncate:
		return "truncate"
	case ShortBody:
		return "short-body"
	case SlowBody:
		return "slow-body"
	case Hold:
		return "hold"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Rule selects requests and the fault they get.
type Rule struct {
	// Name identifies the rule in Hits; default: the action's name.
	Name string
	// Method matches the HTTP method; "" matches any.
	Method string
	// Path is a substring of the URL path ("/bucket/key"); "" matches any.
	Path string
	// Query is a substring of the raw query ("delete" for DeleteObjects);
	// "" matches any.
	Query string
	// Skip lets the first Skip matching requests through untouched.
	Skip int
	// Times is how many matching requests get the fault: 0 means 1, a
	// negative value means every one (a persistent fault).
	Times  int
	Action Action
	Code   int           // Status: the HTTP status (default 503)
	Delay  time.Duration // Delay, SlowBody
	Gate   *Gate         // Hold
}

type rule struct {
	Rule
	seen, hits int
}

// Fault is one injected fault, for test logs.
type Fault struct {
	Rule   string
	Method string
	Path   string
}

// Proxy is a running fault-injecting reverse proxy.
type Proxy struct {
	ln     net.Listener
	srv    *http.Server
	rp     *httputil.ReverseProxy
	target string

	mu       sync.Mutex
	rules    []*rule
	faults   []Fault
	requests int
}

type ctxKey struct{}

var errDrop = errors.New("faultproxy: answer dropped")

// Start proxies 127.0.0.1:<free port> to target ("HOST:PORT", http).
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target}
	up := &url.URL{Scheme: "http", Host: target}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.Out.Host = pr.In.Host // the signed Host header
		},
		// Pass bytes on as they come: SlowBody must reach the client slowly.
		FlushInterval:  -1,
		ModifyResponse: p.modify,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, errDrop) {
				reset(w)
				return
			}
			http.Error(w, "faultproxy: upstream: "+err.Error(), http.StatusBadGateway)
		},
		// Aborted copies are the point of Truncate; keep logs quiet.
		ErrorLog: discardLog,
	}
	p.rp.Transport = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16, DisableCompression: true}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 30 * time.Second, ErrorLog: discardLog}
	go p.srv.Serve(ln)
	return p, nil
}

// Addr is the proxy's "127.0.0.1:PORT".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Add appends rules; the first matching rule with faults left applies.
func (p *Proxy) Add(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range rules {
		if r.Name == "" {
			r.Name = r.Action.String()
		}
		if r.Times == 0 {
			r.Times = 1
		}
		p.rules = append(p.rules, &rule{Rule: r})
	}
}

// Clear removes every rule (counters of past faults stay).
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Hits is how many faults the rules named name injected so far.
func (p *Proxy) Hits(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, f := range p.faults {
		if f.Rule == name {
			n++
		}
	}
	return n
}

// Faults lists every injected fault in order.
func (p *Proxy) Faults() []Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Fault(nil), p.faults...)
}

// Requests counts every request the proxy received.
func (p *Proxy) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// Close stops the proxy and drops open connections.
func (p *Proxy) Close() error {
	return p.srv.Close()
}

// match picks the rule for r and counts it.
func (p *Proxy) match(r *http.Request) *rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	for _, ru := range p.rules {
		if ru.Method != "" && ru.Method != r.Method {
			continue
		}
		if !strings.Contains(r.URL.Path, ru.Path) || !strings.Contains(r.URL.RawQuery, ru.Query) {
			continue
		}
		ru.seen++
		if ru.seen <= ru.Skip {
			return nil
		}
		if ru.Times >= 0 && ru.hits >= ru.Times {
			continue
		}
		ru.hits++
		p.faults = append(p.faults, Fault{Rule: ru.Name, Method: r.Method, Path: r.URL.Path})
		return ru
	}
	return nil
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	ru := p.match(r)
	if ru == nil {
		p.rp.ServeHTTP(w, r)
		return
	}
	switch ru.Action {
	case Status:
		code := ru.Code
		if code == 0 {
			code = http.StatusServiceUnavailable
		}
		s3Code := map[int]string{500: "InternalError", 503: "ServiceUnavailable"}[code]
		if s3Code == "" {
			s3Code = "FaultInjected"
		}
		// Read the request body first, as a server does before answering.
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(code)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>fault injected by faultproxy</Message><Resource>%s</Resource><RequestId>faultproxy</RequestId></Error>`, s3Code, r.URL.Path)
		return
	case Reset:
		reset(w)
		return
	case Hold:
		ru.Gate.once.Do(func() { close(ru.Gate.arrived) })
		select {
		case <-ru.Gate.release:
		case <-r.Context().Done():
			return
		}
		p.rp.ServeHTTP(w, r)
		return
	case Delay:
		t := time.NewTimer(ru.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		p.rp.ServeHTTP(w, r)
		return
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, ru)))
}

// modify applies the response-side faults.
func (p *Proxy) modify(resp *http.Response) error {
	ru, _ := resp.Request.Context().Value(ctxKey{}).(*rule)
	if ru == nil {
		return nil
	}
	switch ru.Action {
	case DropResponse:
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return errDrop
	case Truncate:
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		// ReverseProxy aborts the connection when the body copy fails; the
		// Content-Length promised the full size.
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b[:len(b)/2]), errReader{}))
	case ShortBody:
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		b = b[:len(b)/2]
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	case SlowBody:
		d := ru.Delay
		if d <= 0 {
			d = 5 * time.Millisecond
		}
		resp.Body = &slowReader{rc: resp.Body, pause: d}
	}
	return nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

type slowReader struct {
	rc    io.ReadCloser
	pause time.Duration
}

func (s *slowReader) Read(b []byte) (int, error) {
	time.Sleep(s.pause)
	if len(b) > 1024 {
		b = b[:1024]
	}
	return s.rc.Read(b)
}

func (s *slowReader) Close() error { return s.rc.Close() }

// reset closes the client connection with a TCP RST (SO_LINGER 0), as a
// crashed server or a middlebox would.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// discardLog silences the server's "http: panic serving" lines for
// deliberately aborted connections.
var discardLog = log.New(io.Discard, "", 0)
