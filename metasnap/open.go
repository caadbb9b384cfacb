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
