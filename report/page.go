package report

import (
	"context"
	"net/http"
	"sync"

	"github.com/rwsnap/rwsnap/metasnap"
)

// Page serves the latest rendered report (schedule's `/`), rebuilt by
// Refresh after every job.
type Page struct {
	st    *metasnap.Storage
	opts  Options
	mu    sync.Mutex
	html  []byte
	built bool
}

// NewPage serves the report of st built with opts; opts.Cache is created
// when nil, so a refresh only reads the snapshots it has not seen.
func NewPage(st *metasnap.Storage, opts Options) *Page {
	if opts.Cache == nil {
		opts.Cache = NewCache()
	}
	return &Page{st: st, opts: opts}
}

// Refresh rebuilds the page; on error the previous page stays.
func (p *Page) Refresh(ctx context.Context) error {
	r, err := Build(ctx, p.st, p.opts)
	if err != nil {
		return err
	}
	b, err := r.HTML()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.html, p.built = b, true
	p.mu.Unlock()
	return nil
}

// ServeHTTP writes the page with the same Content-Security-Policy it
// carries, so a browser loads nothing else for it.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	p.mu.Lock()
	b, built := p.html, p.built
	p.mu.Unlock()
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("Cache-Control", "no-store")
	if !built {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("the backup report is being built; reload in a moment\n"))
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b)
}
