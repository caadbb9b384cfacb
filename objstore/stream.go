package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge is returned (wrapped) for an object larger than the caller's
// limit, before any of it is read.
var ErrTooLarge = errors.New("object is larger than the limit")

// MaxGetBytes bounds what Get reads into memory: an object larger than it
// (a sparse file, a misplaced dump) is refused with ErrTooLarge before one
// byte is allocated for it. Callers that know a tighter bound use
// GetLimited; large objects are streamed with OpenLimited.
var MaxGetBytes int64 = 8 << 30

// StreamPutter is implemented by stores that write one object from a
// stream: fs through one buffered writer into its temporary file, S3 as a
// multipart upload.
type StreamPutter interface {
	PutStream(ctx context.Context, key string, write func(w io.Writer) error) error
}

// PutStream stores the bytes write produces as one object, atomically like
// Put: nothing is stored unless write returns nil (the temporary file is
// removed, the multipart upload aborted). Stores that cannot stream buffer
// the object in memory.
func PutStream(ctx context.Context, s Store, key string, write func(w io.Writer) error) error {
	if sp, ok := s.(StreamPutter); ok {
		return sp.PutStream(ctx, key, write)
	}
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		return err
	}
	return s.Put(ctx, key, buf.Bytes())
}

// OpenLimited opens an object for streaming after checking its size
// against limit (0: MaxGetBytes).
func OpenLimited(ctx context.Context, s Store, key string, limit int64) (io.ReadCloser, ObjectInfo, error) {
	if limit <= 0 {
		limit = MaxGetBytes
	}
	rc, info, err := s.Open(ctx, key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	if info.Size > limit {
		rc.Close()
		return nil, ObjectInfo{}, tooLarge(s, key, info.Size, limit)
	}
	return rc, info, nil
}

// GetLimited is Get for an object that may not exceed limit bytes; the
// size is checked before anything is read.
func GetLimited(ctx context.Context, s Store, key string, limit int64) ([]byte, ObjectInfo, error) {
	if info, err := s.Stat(ctx, key); err == nil && info.Size > limit {
		return nil, ObjectInfo{}, tooLarge(s, key, info.Size, limit)
	}
	rc, info, err := OpenLimited(ctx, s, key, limit)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	defer rc.Close()
	b, err := readSized(io.LimitReader(rc, limit+1), info.Size)
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("objstore: %s: get %q: %w", s, key, err)
	}
	if int64(len(b)) > limit {
		return nil, ObjectInfo{}, tooLarge(s, key, int64(len(b)), limit)
	}
	return b, info, nil
}

func tooLarge(s Store, key string, size, limit int64) error {
	return fmt.Errorf("objstore: %s: %q is %s, more than the %s limit (no legitimate object of this kind is that large; if it is, raise the limit): %w",
		s, key, FormatBytes(size), FormatBytes(limit), ErrTooLarge)
}

// FormatBytes renders a size for messages: 64 GiB, 1.5 MiB, 512 B.
func FormatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f, u := float64(n), 0
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%d B", n)
	}
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d %s", int64(f), units[u])
	}
	return fmt.Sprintf("%.1f %s", f, units[u])
}
