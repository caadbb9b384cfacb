// Package objstore is rwsnap's one seam to object storage: the backup
// location (backup_storage_url + backup_storage_directory) and the hummock
// location (state_store without "hummock+", data_directory). URLs follow
// RisingWave's syntax so a system parameter can be pasted as is.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) when an object does not exist.
var ErrNotFound = errors.New("object not found")

// ErrPreconditionFailed is returned (wrapped) by PutIf when the object changed
// since the caller read it, or exists when the caller expected it absent.
var ErrPreconditionFailed = errors.New("precondition failed: object changed concurrently")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ETag    string // opaque version tag; compare only for equality
	ModTime time.Time
}

// Store is a flat key space of immutable-once-written objects. Keys use "/"
// as separator and never start with "/". Implementations are safe for
// concurrent use.
type Store interface {
	// Get returns the whole object and its version tag.
	Get(ctx context.Context, key string) ([]byte, ObjectInfo, error)
	// Open streams an object; the caller closes the reader.
	Open(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)
	// Put writes the object atomically: readers see the old or the new
	// bytes, never a part.
	Put(ctx context.Context, key string, data []byte) error
	// PutIf writes only if the object's current tag equals ifMatch, or, with
	// ifMatch == "", only if the object does not exist. It returns the new tag,
	// or ErrPreconditionFailed.
	PutIf(ctx context.Context, key string, data []byte, ifMatch string) (string, error)
	// Delete removes objects; missing ones are not an error.
	Delete(ctx context.Context, keys ...string) error
	// List returns every object whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Stat returns an object's info, or ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Scheme is the URL scheme the store was opened with ("fs", "s3",
	// "minio", "memory"); RisingWave's SST path rule depends on it.
	Scheme() string
	// String is the store's URL with secrets redacted.
	String() string
	Close() error
}

// readSized reads a whole object whose size is known without a second
// buffer: bytes.Buffer.ReadFrom grows (and copies everything) when fewer
// than 512 bytes are free, which doubles peak memory for a large snapshot.
// A size of 0 or less means unknown.
func readSized(r io.Reader, size int64) ([]byte, error) {
	if size > MaxGetBytes {
		return nil, fmt.Errorf("%s is more than the %s an object read into memory may have: %w", FormatBytes(size), FormatBytes(MaxGetBytes), ErrTooLarge)
	}
	if size <= 0 {
		b, err := io.ReadAll(io.LimitReader(r, MaxGetBytes+1))
		if err == nil && int64(len(b)) > MaxGetBytes {
			return nil, fmt.Errorf("object is more than the %s an object read into memory may have: %w", FormatBytes(MaxGetBytes), ErrTooLarge)
		}
		return b, err
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("read %d bytes: %w", size, err)
	}
	var one [1]byte
	if n, _ := r.Read(one[:]); n > 0 {
		return nil, fmt.Errorf("object is longer than its announced %d bytes", size)
	}
	return buf, nil
}
