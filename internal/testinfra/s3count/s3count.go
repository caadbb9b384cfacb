// Package s3count is a reverse proxy in front of an S3 server (MinIO in
// the tests) that counts the requests passing through it by S3 operation
// and bucket, so a test or a bench can say how many requests a copy makes
// per object. Test-only infrastructure.
package s3count

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"sort"
	"strings"
	"sync"
)

// Proxy forwards to one S3 endpoint and counts.
type Proxy struct {
	// Endpoint is host:port to use instead of the server's.
	Endpoint string
	srv      *http.Server
	ln       net.Listener
	mu       sync.Mutex
	counts   map[string]int
}

// Start listens on 127.0.0.1 and forwards to target (host:port). The
// Host header is forwarded as the client sent it, so SigV4 signatures
// (which cover it) stay valid.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Endpoint: ln.Addr().String(), ln: ln, counts: map[string]int{}}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Scheme, pr.Out.URL.Host = "http", target
		pr.Out.Host = pr.In.Host
	}}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.counts[Op(r)+" "+bucket(r.URL.Path)]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go p.srv.Serve(ln)
	return p, nil
}

// Close stops the proxy.
func (p *Proxy) Close() error { return p.srv.Close() }

// Reset zeroes the counts and returns the ones so far.
func (p *Proxy) Reset() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.counts
	p.counts = map[string]int{}
	return c
}

// Op names the S3 operation of a path-style request.
func Op(r *http.Request) string {
	q := r.URL.Query()
	has := func(k string) bool { _, ok := q[k]; return ok }
	switch r.Method {
	case http.MethodHead:
		if strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0 {
			return "HeadBucket"
		}
		return "HeadObject"
	case http.MethodGet:
		switch {
		case q.Get("list-type") == "2":
			return "ListObjectsV2"
		case strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0:
			if len(q) > 0 {
				return "GetBucket?" + firstKey(q)
			}
			return "ListObjects"
		}
		return "GetObject"
	case http.MethodPut:
		copySrc := r.Header.Get("X-Amz-Copy-Source") != ""
		switch {
		case has("partNumber") && copySrc:
			return "UploadPartCopy"
		case has("partNumber"):
			return "UploadPart"
		case copySrc:
			return "CopyObject"
		}
		return "PutObject"
	case http.MethodPost:
		switch {
		case has("delete"):
			return "DeleteObjects"
		case has("uploads"):
			return "CreateMultipartUpload"
		case has("uploadId"):
			return "CompleteMultipartUpload"
		}
		return "POST"
	case http.MethodDelete:
		if has("uploadId") {
			return "AbortMultipartUpload"
		}
		return "DeleteObject"
	}
	return r.Method
}

func firstKey(q map[string][]string) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys[0]
}

func bucket(path string) string {
	b, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return b
}

// Format prints counts sorted, each also per object when objects > 0.
func Format(c map[string]int, objects int) string {
	keys := make([]string, 0, len(c))
	total := 0
	for k, n := range c {
		keys = append(keys, k)
		total += n
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		if objects > 0 {
			fmt.Fprintf(&b, "%s %d (%.2f/object); ", k, c[k], float64(c[k])/float64(objects))
		} else {
			fmt.Fprintf(&b, "%s %d; ", k, c[k])
		}
	}
	if objects > 0 {
		fmt.Fprintf(&b, "total %d (%.2f/object)", total, float64(total)/float64(objects))
	} else {
		fmt.Fprintf(&b, "total %d", total)
	}
	return b.String()
}
