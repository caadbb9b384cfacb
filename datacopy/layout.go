// Package datacopy holds the copies of the SST objects meta snapshots
// reference, so that a snapshot is self-contained: backup (incremental,
// server-side on one S3 endpoint, streamed otherwise), verify, garbage
// collection by mark-and-sweep, and restore into a brand-new hummock
// location when the original bucket is gone.
//
// A data location is laid out like a hummock data directory: object
// <id>.data sits where RisingWave's SST path rule for the location's
// scheme puts it (hummock.SSTPath). rwsnap's own bookkeeping lives under
// <dir>/rwsnap/: owner.json (which backup location the copy belongs to),
// index/<snapshot id>.json (the objects of one snapshot with size and MD5),
// pending/ (markers of backups in flight) and gc-lock.json.
package datacopy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/objstore"
)

// DefaultSubdir is the data location's directory inside the backup
// directory when no --data-storage-* flag is given.
const DefaultSubdir = "data"

// Location is one data copy: a store and a directory in it.
type Location struct {
	Store objstore.Store
	Dir   string
}

// NewLocation trims the directory as the other locations do.
func NewLocation(store objstore.Store, dir string) *Location {
	return &Location{Store: store, Dir: strings.Trim(dir, "/")}
}

// String names the location for messages (secrets redacted).
func (l *Location) String() string { return l.Store.String() + " directory " + strconv.Quote(l.Dir) }

func (l *Location) key(name string) string {
	if l.Dir == "" {
		return name
	}
	return l.Dir + "/" + name
}

// ObjectKey is where SST object id lives in the copy.
func (l *Location) ObjectKey(id uint64) string {
	return hummock.SSTPath(l.Dir, id, hummock.PrefixedScheme(l.Store.Scheme()))
}

// metaDir is rwsnap's own directory inside the copy.
func (l *Location) metaDir() string { return l.key("rwsnap") }

// IndexKey is the index of snapshot id.
func (l *Location) IndexKey(id uint64) string {
	return l.metaDir() + "/index/" + strconv.FormatUint(id, 10) + ".json"
}

func (l *Location) indexPrefix() string { return l.metaDir() + "/index/" }
func (l *Location) ownerKey() string    { return l.metaDir() + "/owner.json" }
func (l *Location) gcLockKey() string   { return l.metaDir() + "/gc-lock.json" }

// objectPrefix is what to list to find every SST object of the copy.
func (l *Location) objectPrefix() string { return l.key("") }

// Owner says which backup location a data copy belongs to. GC marks from
// one manifest, so a copy shared by two backup locations (two clusters, or
// two directories of one) would lose the other's objects: rwsnap refuses a
// copy whose owner is another backup location or another cluster.
type Owner struct {
	ClusterID string `json:"cluster_id"`
	// Backup is the backup location (URL without credentials, and
	// directory) whose manifest this copy protects.
	Backup  string    `json:"backup_location"`
	Created time.Time `json:"created"`
}

// ErrOtherOwner means the data location belongs to another backup
// location or cluster.
var ErrOtherOwner = errors.New("the data location belongs to another backup location")

// BackupIdentity is how an Owner names a backup location: the URL without
// credentials (they may differ between users of one location), a trailing
// slash dropped, and the trimmed directory.
func BackupIdentity(url, dir string) string {
	u := objstore.Redact(url)
	if i := strings.Index(u, "://"); i >= 0 {
		rest := u[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 && strings.HasPrefix(u, "minio://") {
			rest = rest[at+1:]
		}
		u = u[:i+3] + rest
	}
	return strings.TrimRight(u, "/") + " directory " + strconv.Quote(strings.Trim(dir, "/"))
}

// Claim records o as the copy's owner if it has none, and refuses a copy
// owned by another backup location or cluster. It is the first write to a
// data location, so an unreachable or read-only location fails here,
// before anything else is written.
func (l *Location) Claim(ctx context.Context, o Owner) error {
	cur, err := l.ReadOwner(ctx)
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		o.Created = time.Now().UTC()
		b, _ := json.Marshal(o)
		if _, err := l.Store.PutIf(ctx, l.ownerKey(), b, ""); err != nil {
			if errors.Is(err, objstore.ErrPreconditionFailed) {
				return l.Claim(ctx, o) // claimed concurrently: check that owner
			}
			return fmt.Errorf("data location %s is not writable: %w", l, err)
		}
		return nil
	case err != nil:
		return err
	}
	return cur.check(o, l)
}

// CheckOwnerIs refuses cur (the copy's owner, from ReadOwner) unless it is
// o, without writing anything (a dry run's check of what Claim refuses).
func (l *Location) CheckOwnerIs(cur *Owner, o Owner) error { return cur.check(o, l) }

func (cur *Owner) check(o Owner, l *Location) error {
	if o.ClusterID != "" && cur.ClusterID != "" && o.ClusterID != cur.ClusterID {
		return fmt.Errorf("%w: %s holds the data of cluster %s (backup location %s), not of cluster %s; give this cluster its own --data-storage-directory",
			ErrOtherOwner, l, cur.ClusterID, cur.Backup, o.ClusterID)
	}
	if o.Backup != "" && cur.Backup != o.Backup {
		return fmt.Errorf("%w: %s protects the snapshots of %s, not of %s (garbage collection marks from one manifest, so one data location serves one backup location); give this backup location its own --data-storage-directory",
			ErrOtherOwner, l, cur.Backup, o.Backup)
	}
	return nil
}

// ReadOwner reads owner.json (ErrNotFound if the copy has none).
func (l *Location) ReadOwner(ctx context.Context) (*Owner, error) {
	b, _, err := l.Store.Get(ctx, l.ownerKey())
	if err != nil {
		if errors.Is(err, objstore.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("data location %s: %w", l, err)
	}
	var o Owner
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("data location %s: %s is not readable: %w", l, l.ownerKey(), err)
	}
	return &o, nil
}

// CheckOwner refuses a copy owned by another cluster or backup location
// without writing anything (for readers: verify, restore).
func (l *Location) CheckOwner(ctx context.Context, o Owner) error {
	cur, err := l.ReadOwner(ctx)
	if err != nil {
		if errors.Is(err, objstore.ErrNotFound) {
			return fmt.Errorf("%s holds no rwsnap data copy (no %s): check --data-storage-url and --data-storage-directory, or run `rwsnap meta backup-data` first: %w", l, l.ownerKey(), err)
		}
		return err
	}
	return cur.check(o, l)
}
