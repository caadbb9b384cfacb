package datacopy

import (
	"context"
	"errors"
	"fmt"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

// Check is the data verdict on one snapshot.
type Check struct {
	ID       uint64   `json:"snapshot_id"`
	State    string   `json:"state"`
	Objects  int      `json:"objects"`
	Bytes    int64    `json:"bytes"`
	ReadData bool     `json:"read_data"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems"`
}

// maxProblems bounds the problems listed per snapshot.
const maxProblems = 20

// Verify checks the data copy of each entry against its index: the index
// covers every SST of the entry, each object is in the copy with its
// recorded size (and, where the store gives the content MD5, its recorded
// MD5) and, with readData, re-reads and re-hashes every byte (restic's
// check --read-data).
func Verify(ctx context.Context, l *Location, entries []metasnap.SnapshotMetadata, readData bool) ([]Check, error) {
	objs, err := l.listObjects(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Check, 0, len(entries))
	for _, e := range entries {
		c := Check{ID: e.ID, ReadData: readData, Problems: []string{}}
		add := func(format string, args ...any) {
			if len(c.Problems) < maxProblems {
				c.Problems = append(c.Problems, fmt.Sprintf(format, args...))
			}
		}
		x, err := l.ReadIndex(ctx, e.ID)
		switch {
		case errors.Is(err, objstore.ErrNotFound):
			c.State = StateNone
			add("no data copy in %s (run `rwsnap meta backup-data %d`)", l, e.ID)
			out = append(out, c)
			continue
		case err != nil:
			return nil, err
		}
		c.State = StateFor(e, x)
		rec := make(map[uint64]Object, len(x.Objects))
		for _, o := range x.Objects {
			rec[o.ID] = o
		}
		if len(x.Missing) > 0 {
			add("%d referenced objects were missing from the hummock location when copied: %s", len(x.Missing), metasnap.FormatIDs(x.Missing[:min(len(x.Missing), 10)]))
		}
		for _, id := range uniq(e.SSTs) {
			r, ok := rec[id]
			if !ok {
				if !contains(x.Missing, id) {
					add("object %d is not in the index", id)
				}
				continue
			}
			info, ok := objs[id]
			switch {
			case !ok:
				add("object %d (%s) is missing from the data copy", id, l.ObjectKey(id))
				continue
			case info.Size != r.Size:
				add("object %d is %d bytes, the index records %d", id, info.Size, r.Size)
				continue
			}
			if m, ok := objstore.ContentMD5(l.Store, info); ok && m != r.MD5 {
				add("object %d: the store's checksum (ETag) %s differs from the recorded MD5 %s", id, m, r.MD5)
				continue
			}
			if readData {
				m, err := hashObject(ctx, l.Store, info.Key, r.Size)
				if err != nil {
					add("object %d: %v", id, err)
					continue
				}
				if m != r.MD5 {
					add("object %d: its bytes hash to MD5 %s, the index records %s", id, m, r.MD5)
					continue
				}
			}
			c.Objects++
			c.Bytes += r.Size
		}
		c.OK = c.State == StateComplete && len(c.Problems) == 0
		if c.State == StatePartial && len(c.Problems) == 0 {
			add("the data copy is partial (interrupted or not yet verified; rerun `rwsnap meta backup-data %d`)", e.ID)
		}
		out = append(out, c)
	}
	return out, nil
}

func contains(ids []uint64, id uint64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
