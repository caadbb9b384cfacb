// Package etcdsnap reads one revision of an etcd key space from etcd's own
// snapshot stream (Maintenance.Snapshot: the bbolt database file followed by
// its sha256). The file is spooled to an unlinked temporary file and read
// with pread through a small reader of the bbolt format, never mmap-ed
// whole; the latest version of every key is found by a bounded-memory
// external sort.
package etcdsnap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
)

// The bbolt on-disk format (go.etcd.io/bbolt internal/common, format
// version 2), little endian as bbolt writes it on every platform etcd
// supports.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	branchElemSize   = 16 // pos u32, ksize u32, pgid u64
	leafElemSize     = 16 // flags u32, pos u32, ksize u32, vsize u32
	bucketHeaderSize = 16 // root pgid u64, sequence u64
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	bucketLeafFlag   = 0x01
	metaSize         = 64 // the meta struct after the page header
	metaChecksumOff  = 56 // fnv64a of the meta bytes before the checksum
	maxTreeDepth     = 64
)

// ErrCorrupt means the spooled database is not a well-formed bbolt file.
var ErrCorrupt = errors.New("etcd snapshot is not a well-formed bbolt database")

type meta struct {
	pageSize uint32
	root     uint64 // root bucket's page
	pgid     uint64 // high water mark: pages in use are below it
	txid     uint64
}

// boltFile reads a bbolt database through ReadAt.
type boltFile struct {
	r        io.ReaderAt
	size     int64
	pageSize int64
	meta     meta
}

func parseMeta(b []byte) (meta, error) {
	if len(b) < pageHeaderSize+metaSize {
		return meta{}, fmt.Errorf("%w: short meta page", ErrCorrupt)
	}
	if binary.LittleEndian.Uint16(b[8:]) != metaPageFlag {
		return meta{}, fmt.Errorf("%w: page is not a meta page", ErrCorrupt)
	}
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	if binary.LittleEndian.Uint32(m[0:]) != boltMagic {
		return meta{}, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(m[4:]); v != boltVersion {
		return meta{}, fmt.Errorf("%w: format version %d, want %d", ErrCorrupt, v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:metaChecksumOff])
	if h.Sum64() != binary.LittleEndian.Uint64(m[metaChecksumOff:]) {
		return meta{}, fmt.Errorf("%w: meta page checksum mismatch", ErrCorrupt)
	}
	return meta{
		pageSize: binary.LittleEndian.Uint32(m[8:]),
		root:     binary.LittleEndian.Uint64(m[16:]),
		pgid:     binary.LittleEndian.Uint64(m[40:]),
		txid:     binary.LittleEndian.Uint64(m[48:]),
	}, nil
}

// openBolt picks the valid meta page with the highest txid, as bbolt does.
func openBolt(r io.ReaderAt, size int64) (*boltFile, error) {
	buf := make([]byte, pageHeaderSize+metaSize)
	var metas []meta
	var firstErr error
	read := func(off int64) {
		if off+int64(len(buf)) > size {
			return
		}
		if _, err := r.ReadAt(buf, off); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		m, err := parseMeta(buf)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		metas = append(metas, m)
	}
	read(0)
	if len(metas) == 1 {
		read(int64(metas[0].pageSize))
	} else {
		// Page 0 is damaged: find page 1 at the page sizes bbolt uses.
		for _, ps := range []int64{4096, 8192, 16384, 32768, 65536} {
			if read(ps); len(metas) > 0 {
				break
			}
		}
	}
	var best *meta
	for i := range metas {
		if best == nil || metas[i].txid > best.txid {
			best = &metas[i]
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no valid meta page: %w", firstErr)
	}
	ps := int64(best.pageSize)
	if ps < 512 || ps > 1<<20 || ps&(ps-1) != 0 {
		return nil, fmt.Errorf("%w: page size %d", ErrCorrupt, ps)
	}
	if best.pgid > uint64(size/ps) || best.root < 2 || best.root >= best.pgid {
		return nil, fmt.Errorf("%w: %d pages in use (root %d) in a file of %d bytes", ErrCorrupt, best.pgid, best.root, size)
	}
	return &boltFile{r: r, size: size, pageSize: ps, meta: *best}, nil
}

// page is one page (with its overflow) and where it lies in the file.
type page struct {
	buf []byte
	off int64 // file offset of buf[0]
}

func (p page) flags() uint16 { return binary.LittleEndian.Uint16(p.buf[8:]) }
func (p page) count() int    { return int(binary.LittleEndian.Uint16(p.buf[10:])) }

// readPage reads page id and its overflow pages into buf (grown as needed).
func (f *boltFile) readPage(id uint64, buf []byte) (page, error) {
	if id < 2 || id >= f.meta.pgid {
		return page{}, fmt.Errorf("%w: page %d outside 2..%d", ErrCorrupt, id, f.meta.pgid)
	}
	off := int64(id) * f.pageSize
	if cap(buf) < int(f.pageSize) {
		buf = make([]byte, f.pageSize)
	}
	buf = buf[:f.pageSize]
	if _, err := f.r.ReadAt(buf, off); err != nil {
		return page{}, fmt.Errorf("read page %d: %w", id, err)
	}
	if got := binary.LittleEndian.Uint64(buf); got != id {
		return page{}, fmt.Errorf("%w: page %d says it is page %d", ErrCorrupt, id, got)
	}
	overflow := uint64(binary.LittleEndian.Uint32(buf[12:]))
	if overflow > 0 {
		if id+overflow >= f.meta.pgid {
			return page{}, fmt.Errorf("%w: page %d overflows past the high water mark", ErrCorrupt, id)
		}
		n := int64(overflow+1) * f.pageSize
		if int64(cap(buf)) < n {
			nb := make([]byte, n)
			copy(nb, buf)
			buf = nb
		}
		buf = buf[:n]
		if _, err := f.r.ReadAt(buf[f.pageSize:], off+f.pageSize); err != nil {
			return page{}, fmt.Errorf("read page %d: %w", id, err)
		}
	}
	return page{buf: buf, off: off}, nil
}

// leafElem is one key/value of a leaf page; valueOff is the file offset of
// value[0].
type leafElem struct {
	flags    uint32
	key      []byte
	value    []byte
	valueOff int64
}

func (p page) leaf(i int) (leafElem, error) {
	at := pageHeaderSize + i*leafElemSize
	if at+leafElemSize > len(p.buf) {
		return leafElem{}, fmt.Errorf("%w: leaf element %d past its page", ErrCorrupt, i)
	}
	e := p.buf[at:]
	flags := binary.LittleEndian.Uint32(e)
	pos := int(binary.LittleEndian.Uint32(e[4:]))
	ks := int(binary.LittleEndian.Uint32(e[8:]))
	vs := int(binary.LittleEndian.Uint32(e[12:]))
	k := at + pos
	if pos < 0 || ks < 0 || vs < 0 || k < at || k+ks+vs > len(p.buf) || k+ks+vs < k {
		return leafElem{}, fmt.Errorf("%w: leaf element %d out of its page", ErrCorrupt, i)
	}
	return leafElem{flags: flags, key: p.buf[k : k+ks], value: p.buf[k+ks : k+ks+vs], valueOff: p.off + int64(k+ks)}, nil
}

func (p page) branch(i int) (key []byte, child uint64, err error) {
	at := pageHeaderSize + i*branchElemSize
	if at+branchElemSize > len(p.buf) {
		return nil, 0, fmt.Errorf("%w: branch element %d past its page", ErrCorrupt, i)
	}
	e := p.buf[at:]
	pos := int(binary.LittleEndian.Uint32(e))
	ks := int(binary.LittleEndian.Uint32(e[4:]))
	k := at + pos
	if pos < 0 || ks < 0 || k < at || k+ks > len(p.buf) {
		return nil, 0, fmt.Errorf("%w: branch element %d out of its page", ErrCorrupt, i)
	}
	return p.buf[k : k+ks], binary.LittleEndian.Uint64(e[8:]), nil
}

// bucket is a bucket's root: a page id, or an inline page.
type bucket struct {
	root   uint64
	inline page
}

func parseBucket(e leafElem) (bucket, error) {
	if e.flags&bucketLeafFlag == 0 {
		return bucket{}, fmt.Errorf("%w: %q is not a bucket", ErrCorrupt, e.key)
	}
	if len(e.value) < bucketHeaderSize {
		return bucket{}, fmt.Errorf("%w: bucket %q header too short", ErrCorrupt, e.key)
	}
	root := binary.LittleEndian.Uint64(e.value)
	if root != 0 {
		return bucket{root: root}, nil
	}
	in := page{buf: e.value[bucketHeaderSize:], off: e.valueOff + bucketHeaderSize}
	if len(in.buf) < pageHeaderSize {
		return bucket{}, fmt.Errorf("%w: inline bucket %q too short", ErrCorrupt, e.key)
	}
	return bucket{inline: in}, nil
}

// walker walks a bucket's tree in key order, reading pages into buffers
// reused per tree level.
type walker struct {
	f    *boltFile
	bufs [maxTreeDepth][]byte
}

// each calls fn for every leaf element of b, in key order. The element's
// slices are valid only during the call.
func (w *walker) each(b bucket, fn func(leafElem) error) error {
	if b.root == 0 {
		return w.visit(b.inline, 0, fn)
	}
	return w.visitID(b.root, 0, fn)
}

func (w *walker) visitID(id uint64, depth int, fn func(leafElem) error) error {
	if depth >= maxTreeDepth {
		return fmt.Errorf("%w: tree deeper than %d", ErrCorrupt, maxTreeDepth)
	}
	p, err := w.f.readPage(id, w.bufs[depth])
	if err != nil {
		return err
	}
	w.bufs[depth] = p.buf[:cap(p.buf)]
	return w.visit(p, depth, fn)
}

func (w *walker) visit(p page, depth int, fn func(leafElem) error) error {
	switch p.flags() {
	case leafPageFlag:
		for i := range p.count() {
			e, err := p.leaf(i)
			if err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	case branchPageFlag:
		for i := range p.count() {
			_, child, err := p.branch(i)
			if err != nil {
				return err
			}
			if err := w.visitID(child, depth+1, fn); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: page at offset %d has flags %#x, want a branch or leaf page", ErrCorrupt, p.off, p.flags())
}

// findBucket returns the top-level bucket name.
func (f *boltFile) findBucket(name string) (bucket, bool, error) {
	w := &walker{f: f}
	var out bucket
	found := false
	errStop := errors.New("stop")
	err := w.each(bucket{root: f.meta.root}, func(e leafElem) error {
		if string(e.key) != name {
			return nil
		}
		b, err := parseBucket(e)
		if err != nil {
			return err
		}
		// An inline bucket lives in the walker's buffer: copy it out.
		if b.root == 0 {
			b.inline.buf = append([]byte(nil), b.inline.buf...)
		}
		out, found = b, true
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return bucket{}, false, err
	}
	return out, found, nil
}
