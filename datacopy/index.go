package datacopy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

// States of a snapshot's data copy, as list shows them.
const (
	StateComplete = "complete" // every referenced object copied and verified
	StatePartial  = "partial"  // some copied, or copied but not yet verified
	StateNone     = "none"     // no data copy
)

// Object is one SST object of a snapshot's index: its size and the MD5 of
// its bytes (hex), computed while copying or taken from an S3 ETag that is
// the content MD5 (see objstore.ContentMD5).
type Object struct {
	ID   uint64 `json:"id"`
	Size int64  `json:"size"`
	MD5  string `json:"md5"`
}

// Index lists the objects of one snapshot in the copy.
type Index struct {
	Format     int    `json:"format"`
	SnapshotID uint64 `json:"snapshot_id"`
	ClusterID  string `json:"cluster_id"`
	// State is complete only when every object of the snapshot's entry is
	// in Objects, was verified after the copy, and Missing is empty.
	State string `json:"state"`
	// Source is the hummock location copied from (redacted).
	Source  string    `json:"source"`
	Objects []Object  `json:"objects"`
	Missing []uint64  `json:"missing"` // referenced, not found at the source
	Updated time.Time `json:"updated"`
}

const indexFormat = 1

// Bytes sums the objects' sizes.
func (x *Index) Bytes() int64 {
	var n int64
	for _, o := range x.Objects {
		n += o.Size
	}
	return n
}

// StateFor is the data state of a manifest entry given its index (nil:
// none). An index that does not cover every SST of the entry is partial
// whatever it says.
func StateFor(e metasnap.SnapshotMetadata, x *Index) string {
	if x == nil {
		return StateNone
	}
	if x.State != StateComplete || len(x.Missing) > 0 {
		return StatePartial
	}
	have := make(map[uint64]bool, len(x.Objects))
	for _, o := range x.Objects {
		have[o.ID] = true
	}
	for _, id := range e.SSTs {
		if !have[id] {
			return StatePartial
		}
	}
	return StateComplete
}

// ReadIndex reads snapshot id's index (ErrNotFound when there is none).
func (l *Location) ReadIndex(ctx context.Context, id uint64) (*Index, error) {
	b, _, err := l.Store.Get(ctx, l.IndexKey(id))
	if err != nil {
		if errors.Is(err, objstore.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("read data index of snapshot %d in %s: %w", id, l, err)
	}
	var x Index
	if err := json.Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("data index %s of snapshot %d is not readable: %w", l.IndexKey(id), id, err)
	}
	if x.SnapshotID != id {
		return nil, fmt.Errorf("data index %s names snapshot %d, not %d", l.IndexKey(id), x.SnapshotID, id)
	}
	return &x, nil
}

// WriteIndex stores an index (sorted by object id).
func (l *Location) WriteIndex(ctx context.Context, x *Index) error {
	x.Format = indexFormat
	x.Updated = time.Now().UTC()
	sort.Slice(x.Objects, func(i, j int) bool { return x.Objects[i].ID < x.Objects[j].ID })
	if x.Objects == nil {
		x.Objects = []Object{}
	}
	if x.Missing == nil {
		x.Missing = []uint64{}
	}
	b, err := json.Marshal(x)
	if err != nil {
		return err
	}
	if err := l.Store.Put(ctx, l.IndexKey(x.SnapshotID), b); err != nil {
		return fmt.Errorf("write data index of snapshot %d to %s: %w", x.SnapshotID, l, err)
	}
	return nil
}

// IndexIDs lists the snapshot ids that have an index.
func (l *Location) IndexIDs(ctx context.Context) ([]uint64, error) {
	objs, err := l.Store.List(ctx, l.indexPrefix())
	if err != nil {
		return nil, fmt.Errorf("list data indexes in %s: %w", l, err)
	}
	var ids []uint64
	for _, o := range objs {
		name := strings.TrimSuffix(strings.TrimPrefix(o.Key, l.indexPrefix()), ".json")
		if id, err := strconv.ParseUint(name, 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Indexes reads every index of the copy, by snapshot id.
func (l *Location) Indexes(ctx context.Context) (map[uint64]*Index, error) {
	ids, err := l.IndexIDs(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]*Index, len(ids))
	for _, id := range ids {
		x, err := l.ReadIndex(ctx, id)
		if errors.Is(err, objstore.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out[id] = x
	}
	return out, nil
}

// States returns the data state of every entry of m (reading the indexes).
func (l *Location) States(ctx context.Context, m *metasnap.Manifest) (map[uint64]string, error) {
	xs, err := l.Indexes(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]string, len(m.SnapshotMetadata))
	for _, e := range m.SnapshotMetadata {
		out[e.ID] = StateFor(e, xs[e.ID])
	}
	return out, nil
}
