package datacopy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/rwsnap/rwsnap/objstore"
)

// A journal records the objects a backup run has copied so far, so that a
// killed run's rerun skips them, without rewriting every snapshot's index
// at each checkpoint (a backup-data --all of many snapshots would rewrite
// them all every few seconds). Each checkpoint writes one small segment
// holding only the objects copied since the previous one; the snapshot
// indexes are written once, at the end. A journal claims nothing about any
// snapshot (list and verify never read it) and protects nothing from GC
// (pending markers do): it is only a record of size and MD5 for objects
// that are then also checked against the copy's listing.
type journal struct {
	l    *Location
	run  string
	seq  int
	keys []string
}

func (l *Location) journalPrefix() string { return l.metaDir() + "/journal/" }

func newJournal(l *Location) (*journal, error) {
	var tok [8]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	return &journal{l: l, run: hex.EncodeToString(tok[:])}, nil
}

// write stores one segment with objs (nothing when empty).
func (j *journal) write(ctx context.Context, objs []Object) error {
	if len(objs) == 0 {
		return nil
	}
	j.seq++
	key := j.l.journalPrefix() + j.run + "-" + strconv.Itoa(j.seq) + ".json"
	b, err := json.Marshal(objs)
	if err != nil {
		return err
	}
	if err := j.l.Store.Put(ctx, key, b); err != nil {
		return fmt.Errorf("record the copied objects in %s: %w", j.l, err)
	}
	j.keys = append(j.keys, key)
	return nil
}

// remove deletes this run's segments, once the indexes record everything.
func (j *journal) remove(ctx context.Context) error {
	return j.l.Store.Delete(ctx, j.keys...)
}

// journalObjects reads every journal segment of the copy (killed runs'
// included). A segment that cannot be read is skipped: it only saves work.
func (l *Location) journalObjects(ctx context.Context) ([]Object, []string, error) {
	objs, err := l.Store.List(ctx, l.journalPrefix())
	if err != nil {
		return nil, nil, fmt.Errorf("list the copy journals in %s: %w", l, err)
	}
	var out []Object
	var keys []string
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		keys = append(keys, o.Key)
		b, _, err := l.Store.Get(ctx, o.Key)
		if errors.Is(err, objstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read the copy journal %s in %s: %w", o.Key, l, err)
		}
		var seg []Object
		if json.Unmarshal(b, &seg) == nil {
			out = append(out, seg...)
		}
	}
	return out, keys, nil
}
