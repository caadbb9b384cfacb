package etcdsnap

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// etcd's mvcc layout (server/storage/mvcc, schema): bucket "key" maps a
// revision (8-byte big-endian main, '_', 8-byte big-endian sub, and a
// trailing 't' for a tombstone) to an mvccpb.KeyValue; bucket "meta" holds
// the compaction revisions.
const (
	revBytesLen       = 17
	markedRevBytesLen = 18
	markTombstone     = 't'
)

// DefaultBudget is the sorter's memory budget in bytes.
const DefaultBudget = 32 << 20

// sparseEvery is how many index records one sparse index entry covers.
const sparseEvery = 512

// State is the key space of one etcd revision, read from a snapshot: the
// spooled database (values are read from it by offset) and an index of
// the live keys in key order, both unlinked temporary files.
type State struct {
	// Revision is the store's revision in the snapshot: the highest main
	// revision in the key bucket, or the compaction revision if that is
	// higher (compaction removes the latest revisions of deleted keys).
	Revision int64
	// Keys is the number of live keys.
	Keys int
	// DBSize is the bbolt database's size in bytes.
	DBSize int64
	// SpoolTime and IndexTime are how long receiving the stream and
	// indexing its keys took.
	SpoolTime, IndexTime time.Duration

	spool    *os.File
	pageSize int64
	index    *os.File
	isize    int64
	sparse   []sparseMark
}

type sparseMark struct {
	key []byte
	off int64
}

// Close releases the temporary files.
func (s *State) Close() error {
	if s == nil {
		return nil
	}
	err1 := s.spool.Close()
	err2 := s.index.Close()
	if err1 != nil {
		return err1
	}
	return err2
}

// build reads the bbolt database in spool[0:size) and indexes its latest
// revision of every key.
func build(spool *os.File, size int64, dir string, budget int) (*State, error) {
	f, err := openBolt(spool, size)
	if err != nil {
		return nil, err
	}
	st := &State{DBSize: size, spool: spool, pageSize: f.pageSize}
	if mb, ok, err := f.findBucket("meta"); err != nil {
		return nil, err
	} else if ok {
		w := &walker{f: f}
		err := w.each(mb, func(e leafElem) error {
			switch string(e.key) {
			case "finishedCompactRev", "scheduledCompactRev":
				if len(e.value) < 8 {
					return fmt.Errorf("%w: meta %s of %d bytes", ErrCorrupt, e.key, len(e.value))
				}
				st.Revision = max(st.Revision, int64(binary.BigEndian.Uint64(e.value)))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("meta bucket: %w", err)
		}
	}
	kb, ok, err := f.findBucket("key")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no key bucket: not an etcd v3 database", ErrCorrupt)
	}
	srt := newSorter(dir, budget)
	defer srt.close()
	w := &walker{f: f}
	err = w.each(kb, func(e leafElem) error {
		if e.flags&bucketLeafFlag != 0 || len(e.key) != revBytesLen && len(e.key) != markedRevBytesLen || e.key[8] != '_' {
			return fmt.Errorf("%w: key bucket entry %x is not a revision", ErrCorrupt, e.key)
		}
		main := int64(binary.BigEndian.Uint64(e.key))
		sub := int64(binary.BigEndian.Uint64(e.key[9:]))
		tomb := len(e.key) == markedRevBytesLen && e.key[17] == markTombstone
		st.Revision = max(st.Revision, main)
		key, vstart, vlen, err := parseKV(e.value)
		if err != nil {
			return fmt.Errorf("revision %d_%d: %w", main, sub, err)
		}
		return srt.add(key, main, sub, e.valueOff+int64(vstart), uint32(vlen), tomb)
	})
	if err != nil {
		return nil, err
	}
	idx, err := tempFile(dir, "rwsnap-etcd-index-*")
	if err != nil {
		return nil, err
	}
	st.index = idx
	bw := bufio.NewWriterSize(idx, 1<<20)
	var rec []byte
	err = srt.finish(func(key []byte, voff int64, vlen uint32) error {
		if st.Keys%sparseEvery == 0 {
			st.sparse = append(st.sparse, sparseMark{key: bytes.Clone(key), off: st.isize})
		}
		st.Keys++
		rec = binary.AppendUvarint(rec[:0], uint64(len(key)))
		rec = append(rec, key...)
		rec = binary.AppendUvarint(rec, uint64(voff))
		rec = binary.AppendUvarint(rec, uint64(vlen))
		st.isize += int64(len(rec))
		_, err := bw.Write(rec)
		return err
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		idx.Close()
		return nil, fmt.Errorf("index the snapshot's keys: %w", err)
	}
	return st, nil
}

// parseKV finds the key and where the value lies in an mvccpb.KeyValue
// (key = 1, value = 5).
func parseKV(b []byte) (key []byte, vstart, vlen int, err error) {
	var haveKey bool
	vstart = -1
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return nil, 0, 0, fmt.Errorf("%w: bad mvccpb.KeyValue", ErrCorrupt)
		}
		i += n
		if typ == protowire.BytesType && (num == 1 || num == 5) {
			v, m := protowire.ConsumeBytes(b[i:])
			if m < 0 {
				return nil, 0, 0, fmt.Errorf("%w: bad mvccpb.KeyValue field %d", ErrCorrupt, num)
			}
			if num == 1 {
				key, haveKey = v, true
			} else {
				vstart, vlen = i+m-len(v), len(v)
			}
			i += m
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b[i:])
		if m < 0 {
			return nil, 0, 0, fmt.Errorf("%w: bad mvccpb.KeyValue field %d", ErrCorrupt, num)
		}
		i += m
	}
	if !haveKey {
		return nil, 0, 0, fmt.Errorf("%w: mvccpb.KeyValue without a key", ErrCorrupt)
	}
	if vstart < 0 {
		vstart = 0 // empty value
	}
	return key, vstart, vlen, nil
}

// Range calls fn for every key in [start, end) in key order (end nil means
// no end). key and value are valid only during the call.
func (s *State) Range(start, end []byte, fn func(key, value []byte) error) error {
	vr := valueReader{f: s.spool, block: s.pageSize}
	return s.scan(start, end, func(key []byte, voff int64, vlen int) error {
		v, err := vr.read(voff, vlen)
		if err != nil {
			return fmt.Errorf("read the value of %q from the snapshot: %w", key, err)
		}
		return fn(key, v)
	})
}

// Get returns the value of key, valid until the next call on s.
func (s *State) Get(key []byte) ([]byte, bool, error) {
	var out []byte
	found := false
	err := s.Range(key, append(bytes.Clone(key), 0), func(_, v []byte) error {
		out, found = bytes.Clone(v), true
		return nil
	})
	return out, found, err
}

// Count returns the number of keys in [start, end).
func (s *State) Count(start, end []byte) (int, error) {
	n := 0
	err := s.scan(start, end, func([]byte, int64, int) error { n++; return nil })
	return n, err
}

// scan walks the index from the sparse mark before start.
func (s *State) scan(start, end []byte, fn func(key []byte, voff int64, vlen int) error) error {
	i := sort.Search(len(s.sparse), func(i int) bool { return bytes.Compare(s.sparse[i].key, start) > 0 })
	off := int64(0)
	if i > 0 {
		off = s.sparse[i-1].off
	}
	br := bufio.NewReaderSize(io.NewSectionReader(s.index, off, s.isize-off), 256<<10)
	var key []byte
	bad := func(err error) error {
		if err == nil {
			err = ErrCorrupt
		}
		return fmt.Errorf("read snapshot index: %w", noEOF(err))
	}
	for {
		n, err := binary.ReadUvarint(br)
		if err == io.EOF {
			return nil
		}
		if err != nil || n > 1<<30 {
			return bad(err)
		}
		key = slices.Grow(key[:0], int(n))[:n]
		if _, err := io.ReadFull(br, key); err != nil {
			return bad(err)
		}
		voff, err := binary.ReadUvarint(br)
		if err != nil {
			return bad(err)
		}
		vlen, err := binary.ReadUvarint(br)
		if err != nil {
			return bad(err)
		}
		if bytes.Compare(key, start) < 0 {
			continue
		}
		if end != nil && bytes.Compare(key, end) >= 0 {
			return nil
		}
		if err := fn(key, int64(voff), int(vlen)); err != nil {
			return err
		}
	}
}

// valueReader reads values from the spool through a small direct-mapped
// cache of database pages: the values of keys next to each other in key
// order mostly lie in the same leaf page (etcd writes them in revision
// order), but leaf pages are scattered over the file, so a read-ahead
// window would copy far more than it serves.
type valueReader struct {
	f       *os.File
	block   int64 // the database's page size
	cache   []byte
	tags    []int64 // block number held by each slot, -1 if none
	scratch []byte
}

const cacheSlots = 512

func (r *valueReader) read(off int64, n int) ([]byte, error) {
	blk := off / r.block
	if (off+int64(n)-1)/r.block != blk || n == 0 {
		// Spans pages (an overflow value, or one crossing a boundary).
		r.scratch = slices.Grow(r.scratch[:0], n)[:n]
		if _, err := r.f.ReadAt(r.scratch, off); err != nil {
			return nil, err
		}
		return r.scratch, nil
	}
	if r.cache == nil {
		r.cache = make([]byte, cacheSlots*r.block)
		r.tags = make([]int64, cacheSlots)
		for i := range r.tags {
			r.tags[i] = -1
		}
	}
	slot := int(blk % cacheSlots)
	b := r.cache[int64(slot)*r.block : int64(slot+1)*r.block]
	if r.tags[slot] != blk {
		r.tags[slot] = -1
		if _, err := r.f.ReadAt(b, blk*r.block); err != nil {
			return nil, err
		}
		r.tags[slot] = blk
	}
	in := off - blk*r.block
	return b[in : in+int64(n)], nil
}
