package metasnap

import (
	"context"
	"fmt"
	"io"
	"os"
)

// Snapshot is a snapshot object opened for streaming: verified (checksum
// and structure) by one pass, its small parts in Head, and its lists read
// again on demand with Section, from the very bytes that were verified.
//
// Where those bytes come from is the one choice here. A local object (fs)
// is read through the file opened for the check: the same inode, whatever
// renames happen meanwhile. Any other store's object is spooled to an
// unlinked temporary file (in $TMPDIR) while it is checked: one download,
// and what is applied is exactly what was verified, which a second GET
// cannot promise. The spool is a disk file, not memory, and being unlinked
// at once it vanishes with the process, even after kill -9.
type Snapshot struct {
	*Head
	src   io.ReaderAt
	close func() error
}

// OpenSnapshot opens snapshot id for streaming. item, when not nil, sees
// every list message during the verifying pass (to plan or validate in the
// same pass), before the checksum is known: nothing may be acted on until
// OpenSnapshot returns. The caller closes the Snapshot.
func (s *Storage) OpenSnapshot(ctx context.Context, id uint64, item ItemFunc) (*Snapshot, error) {
	rc, info, err := s.openObject(ctx, id)
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{}
	var r io.Reader = rc
	if f, ok := rc.(*os.File); ok {
		snap.src, snap.close = f, f.Close
	} else {
		defer rc.Close()
		tmp, err := os.CreateTemp("", "rwsnap-snapshot-*")
		if err != nil {
			return nil, fmt.Errorf("snapshot %d: spool file: %w", id, err)
		}
		os.Remove(tmp.Name())
		snap.src, snap.close = tmp, tmp.Close
		r = io.TeeReader(rc, tmp)
	}
	h, err := Scan(r, info.Size, item)
	if err == nil && h.ID != id {
		err = fmt.Errorf("snapshot object %s holds id %d, not %d", s.SnapshotKey(id), h.ID, id)
	}
	if err == nil {
		err = CheckFormat(h)
	}
	if err != nil {
		snap.close()
		return nil, fmt.Errorf("snapshot %d at %s: %w", id, s.SnapshotKey(id), err)
	}
	snap.Head = h
	return snap, nil
}

// Section streams the messages of one list section; msg is only valid
// during the call.
func (s *Snapshot) Section(sec Section, item func(i int, msg []byte) error) error {
	return ScanSection(s.src, s.Head, sec, item)
}

// Close releases the object (and removes the spool).
func (s *Snapshot) Close() error {
	if s == nil || s.close == nil {
		return nil
	}
	return s.close()
}

// LoadStream opens snapshot id for streaming (OpenSnapshot) and returns it
// as a MetaSnapshot whose small parts are decoded and whose lists stay in
// the object: Count and Each reach them. The caller closes it.
func (s *Storage) LoadStream(ctx context.Context, id uint64) (*MetaSnapshot, error) {
	snap, err := s.OpenSnapshot(ctx, id, nil)
	if err != nil {
		return nil, err
	}
	return &MetaSnapshot{FormatVersion: snap.FormatVersion, ID: snap.ID, Metadata: &snap.Meta, Stream: snap}, nil
}

// LoadHead checks snapshot id in one streamed pass and keeps only its small
// parts (default cf, hummock version, params, cluster id) and list counts:
// what a restore needs of the snapshot that supplies the id generators.
// Its lists cannot be read (Each fails).
func (s *Storage) LoadHead(ctx context.Context, id uint64) (*MetaSnapshot, error) {
	h, err := s.Scan(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := CheckFormat(h); err != nil {
		return nil, fmt.Errorf("snapshot %d at %s: %w", id, s.SnapshotKey(id), err)
	}
	return &MetaSnapshot{FormatVersion: h.FormatVersion, ID: h.ID, Metadata: &h.Meta, Stream: &Snapshot{Head: h}}, nil
}

// Count is the number of messages in a list section, whether the lists are
// in memory or in the object.
func (m *MetaSnapshot) Count(sec Section) int {
	if m.Stream != nil {
		return m.Stream.Count(sec)
	}
	if l := m.Metadata.list(sec); l != nil {
		return len(*l)
	}
	return 0
}

// Each calls fn for every message of a list section in stored order, from
// memory or streamed from the object (then msg is only valid during the
// call).
func (m *MetaSnapshot) Each(sec Section, fn func(i int, msg []byte) error) error {
	if m.Stream != nil {
		if m.Stream.src == nil {
			return fmt.Errorf("snapshot %d was only checked, not opened for reading its %s list", m.ID, sec)
		}
		return m.Stream.Section(sec, fn)
	}
	l := m.Metadata.list(sec)
	if l == nil {
		return fmt.Errorf("%s is not a list", sec)
	}
	for i, msg := range *l {
		if err := fn(i, msg); err != nil {
			return err
		}
	}
	return nil
}

// Close releases a streamed snapshot's object; a no-op for one decoded
// whole.
func (m *MetaSnapshot) Close() error {
	if m == nil {
		return nil
	}
	return m.Stream.Close()
}
