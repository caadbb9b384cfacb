package etcdsnap

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"unsafe"
)

// entry is one revision of one key: where its value lies in the spool.
type entry struct {
	koff, klen uint32 // the key in the sorter's arena
	main, sub  int64
	voff       int64
	vlen       uint32
	tomb       bool
}

const entrySize = 40 // in-memory bytes per entry, padding included

var _ = [1]struct{}{}[unsafe.Sizeof(entry{})-entrySize] // entrySize is right

// sorter reduces revisions, seen in any order, to the latest one of every
// key, in key order, holding at most budget bytes: past it the sorted
// entries are spilled to a run file and merged at the end.
type sorter struct {
	dir     string
	budget  int
	arena   []byte
	entries []entry
	runs    []*os.File
}

// newSorter allocates the budget up front, three quarters for entries and
// one for their keys, so it never grows past it.
func newSorter(dir string, budget int) *sorter {
	return &sorter{dir: dir, budget: budget,
		entries: make([]entry, 0, max(16, budget*3/4/entrySize)),
		arena:   make([]byte, 0, max(1024, budget/4))}
}

func (s *sorter) add(key []byte, main, sub int64, voff int64, vlen uint32, tomb bool) error {
	if len(s.entries) == cap(s.entries) || len(s.arena)+len(key) > cap(s.arena) {
		if err := s.spill(); err != nil {
			return err
		}
	}
	s.entries = append(s.entries, entry{koff: uint32(len(s.arena)), klen: uint32(len(key)), main: main, sub: sub, voff: voff, vlen: vlen, tomb: tomb})
	s.arena = append(s.arena, key...)
	return nil
}

func (s *sorter) key(e *entry) []byte { return s.arena[e.koff : e.koff+e.klen] }

// sortDedup sorts the held entries by key and keeps each key's latest
// revision (tombstones included: they shadow older runs).
func (s *sorter) sortDedup() {
	slices.SortFunc(s.entries, func(a, b entry) int {
		if c := bytes.Compare(s.key(&a), s.key(&b)); c != 0 {
			return c
		}
		switch {
		case a.main != b.main:
			return cmpInt(a.main, b.main)
		default:
			return cmpInt(a.sub, b.sub)
		}
	})
	out := s.entries[:0]
	for i := range s.entries {
		if i+1 < len(s.entries) && bytes.Equal(s.key(&s.entries[i]), s.key(&s.entries[i+1])) {
			continue // a later revision of the same key follows
		}
		out = append(out, s.entries[i])
	}
	s.entries = out
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// record is an entry with its key, as runs hold it.
type record struct {
	key       []byte
	main, sub int64
	voff      int64
	vlen      uint32
	tomb      bool
}

func appendRecord(b []byte, r *record) []byte {
	b = binary.AppendUvarint(b, uint64(len(r.key)))
	b = append(b, r.key...)
	b = binary.AppendVarint(b, r.main)
	b = binary.AppendVarint(b, r.sub)
	b = binary.AppendVarint(b, r.voff)
	b = binary.AppendUvarint(b, uint64(r.vlen))
	if r.tomb {
		return append(b, 1)
	}
	return append(b, 0)
}

func readRecord(br *bufio.Reader, r *record) error {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return err // io.EOF at a record boundary is the end of the run
	}
	if n > 1<<30 {
		return fmt.Errorf("run record key of %d bytes", n)
	}
	r.key = slices.Grow(r.key[:0], int(n))[:n]
	if _, err := io.ReadFull(br, r.key); err != nil {
		return noEOF(err)
	}
	if r.main, err = binary.ReadVarint(br); err != nil {
		return noEOF(err)
	}
	if r.sub, err = binary.ReadVarint(br); err != nil {
		return noEOF(err)
	}
	if r.voff, err = binary.ReadVarint(br); err != nil {
		return noEOF(err)
	}
	vl, err := binary.ReadUvarint(br)
	if err != nil {
		return noEOF(err)
	}
	r.vlen = uint32(vl)
	t, err := br.ReadByte()
	if err != nil {
		return noEOF(err)
	}
	r.tomb = t == 1
	return nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// spill writes the held entries, sorted and reduced, as a run.
func (s *sorter) spill() error {
	if len(s.entries) == 0 {
		return nil
	}
	s.sortDedup()
	f, err := tempFile(s.dir, "rwsnap-etcd-run-*")
	if err != nil {
		return err
	}
	s.runs = append(s.runs, f)
	w := bufio.NewWriterSize(f, 1<<20)
	var b []byte
	for i := range s.entries {
		e := &s.entries[i]
		b = appendRecord(b[:0], &record{key: s.key(e), main: e.main, sub: e.sub, voff: e.voff, vlen: e.vlen, tomb: e.tomb})
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("write sort run: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write sort run: %w", err)
	}
	s.entries = s.entries[:0]
	s.arena = s.arena[:0]
	return nil
}

// finish emits every live key (its latest revision is not a tombstone) in
// key order, then releases the runs.
func (s *sorter) finish(emit func(key []byte, voff int64, vlen uint32) error) error {
	defer s.close()
	if len(s.runs) == 0 {
		s.sortDedup()
		for i := range s.entries {
			e := &s.entries[i]
			if e.tomb {
				continue
			}
			if err := emit(s.key(e), e.voff, e.vlen); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.spill(); err != nil {
		return err
	}
	s.entries, s.arena = nil, nil
	h := &runHeap{}
	for i, f := range s.runs {
		c := &runCursor{run: i, br: bufio.NewReaderSize(io.NewSectionReader(f, 0, 1<<62), 256<<10)}
		if err := c.next(); err != nil {
			if errors.Is(err, io.EOF) {
				continue
			}
			return err
		}
		*h = append(*h, c)
	}
	heap.Init(h)
	var best record
	have := false
	flush := func() error {
		if have && !best.tomb {
			return emit(best.key, best.voff, best.vlen)
		}
		return nil
	}
	for h.Len() > 0 {
		c := (*h)[0]
		r := &c.rec
		switch {
		case !have || !bytes.Equal(r.key, best.key):
			if err := flush(); err != nil {
				return err
			}
			best.key = append(best.key[:0], r.key...)
			best.main, best.sub, best.voff, best.vlen, best.tomb = r.main, r.sub, r.voff, r.vlen, r.tomb
			have = true
		case r.main > best.main || r.main == best.main && r.sub > best.sub:
			best.main, best.sub, best.voff, best.vlen, best.tomb = r.main, r.sub, r.voff, r.vlen, r.tomb
		}
		if err := c.next(); err != nil {
			if !errors.Is(err, io.EOF) {
				return fmt.Errorf("read sort run: %w", err)
			}
			heap.Pop(h)
			continue
		}
		heap.Fix(h, 0)
	}
	return flush()
}

func (s *sorter) close() {
	for _, f := range s.runs {
		f.Close()
	}
	s.runs = nil
}

type runCursor struct {
	run int
	br  *bufio.Reader
	rec record
}

func (c *runCursor) next() error { return readRecord(c.br, &c.rec) }

type runHeap []*runCursor

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if c := bytes.Compare(h[i].rec.key, h[j].rec.key); c != 0 {
		return c < 0
	}
	return h[i].run < h[j].run
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(*runCursor)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// tempFile creates a file in dir and unlinks it at once: it holds disk only
// while open and leaves nothing behind, even after kill -9.
func tempFile(dir, pattern string) (*os.File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, fmt.Errorf("create temporary file in %s (the snapshot read spools etcd's database there: point TMPDIR at a writable disk with room for it, or read ranges instead with RWSNAP_ETCD_READ=range): %w", displayDir(dir), err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("unlink temporary file %s: %w", f.Name(), err)
	}
	return f, nil
}

func displayDir(dir string) string {
	if dir == "" {
		return os.TempDir()
	}
	return dir
}
