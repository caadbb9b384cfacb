package datacopy

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/objstore"
)

// DefaultParallelism is --data-parallelism's default: objects copied at
// once. A streamed copy holds at most one objstore.PartSize buffer, so
// memory stays under DefaultParallelism x a few S3 parts whatever the SST sizes.
const DefaultParallelism = 8

// MaxParallelism bounds --data-parallelism: beyond it a copy only opens
// more connections than any store serves at once (server-side copies run
// ServerCopyFactor times as many).
const MaxParallelism = 256

// CheckParallelism refuses a --data-parallelism outside 1..MaxParallelism,
// with the same words for every command and for a dry run.
func CheckParallelism(n int) error {
	if n < 1 || n > MaxParallelism {
		return fmt.Errorf("--data-parallelism %d: give 1 to %d objects copied at once (default %d; server-side copies and copies into a local directory run %d times as many)", n, MaxParallelism, DefaultParallelism, ServerCopyFactor)
	}
	return nil
}

// ErrChecksum means an object's bytes are not the ones recorded.
var ErrChecksum = errors.New("checksum mismatch")

// copyResult is what one object copy did.
type copyResult struct {
	Object
	ServerSide bool
}

// copyObject copies srcKey to dstKey and returns the object's size and
// MD5. si is the source object as a listing gave it (nil: unknown, it is
// read from the store). On one S3 endpoint the copy is server side: one
// CopyObject, whose response carries the copy's ETag, the content MD5 the
// server computed from the bytes it wrote; with si known nothing else is
// asked (a backup copies at one request per object, as `mc mirror` does),
// without it one HEAD of the copy gives the size. Otherwise the bytes are
// streamed through an MD5 (never a whole object in memory). With want set,
// a size or MD5 that differs from it fails with ErrChecksum and the
// destination object just written is removed.
func copyObject(ctx context.Context, src objstore.Store, srcKey string, si *objstore.ObjectInfo, dst objstore.Store, dstKey string, id uint64, want *Object) (copyResult, error) {
	res := copyResult{Object: Object{ID: id}}
	if si != nil && want != nil && si.Size != want.Size {
		return res, fmt.Errorf("object %d at %s is %d bytes, the index records %d: %w", id, srcKey, si.Size, want.Size, ErrChecksum)
	}
	size := int64(-1)
	if si != nil {
		size = si.Size
	}
	etag, err := objstore.ServerCopy(ctx, src, srcKey, dst, dstKey, size)
	switch {
	case err == nil:
		res.ServerSide = true
		di := objstore.ObjectInfo{Key: dstKey, Size: size, ETag: etag}
		sm, okS := "", false
		if si != nil {
			sm, okS = objstore.ContentMD5(src, *si)
		}
		if !okS {
			// The size is unknown, or the source's ETag cannot vouch for
			// the copy's bytes: one HEAD of the copy says what landed.
			if di, err = dst.Stat(ctx, dstKey); err != nil {
				return res, fmt.Errorf("object %d: stat the copy %s: %w", id, dstKey, err)
			}
			if si != nil && di.Size != si.Size {
				removeBad(ctx, dst, dstKey)
				return res, fmt.Errorf("object %d: the server-side copy %s has %d bytes, the source %s %d: %w", id, dstKey, di.Size, srcKey, si.Size, ErrChecksum)
			}
		}
		res.Size = di.Size
		dm, okD := objstore.ContentMD5(dst, di)
		switch {
		case okS && okD && sm != dm:
			removeBad(ctx, dst, dstKey)
			return res, fmt.Errorf("object %d: the server-side copy %s has ETag %s, the source %s has %s: %w", id, dstKey, dm, srcKey, sm, ErrChecksum)
		case okD:
			res.MD5 = dm
		default:
			// No content MD5 from the store (multipart or encrypted
			// objects): hash what landed.
			if res.MD5, err = hashObject(ctx, dst, dstKey, di.Size); err != nil {
				return res, fmt.Errorf("object %d: %w", id, err)
			}
		}
	case errors.Is(err, objstore.ErrNoServerCopy):
		rc, oi, err := src.Open(ctx, srcKey)
		if err != nil {
			return res, err
		}
		res.Size = oi.Size
		if want != nil && oi.Size != want.Size {
			rc.Close()
			return res, fmt.Errorf("object %d at %s is %d bytes, the index records %d: %w", id, srcKey, oi.Size, want.Size, ErrChecksum)
		}
		h := md5.New()
		err = objstore.PutStream(ctx, dst, dstKey, func(w io.Writer) error {
			n, err := io.Copy(w, io.TeeReader(rc, h))
			if err == nil && n != oi.Size {
				err = fmt.Errorf("read %d bytes of %s, its size is %d", n, srcKey, oi.Size)
			}
			return err
		})
		rc.Close()
		if err != nil {
			return res, err
		}
		res.MD5 = hex.EncodeToString(h.Sum(nil))
		// What landed, not what was sent: a local stat on fs, a HEAD on S3
		// (a streamed copy's cost is its bytes, not this request).
		di, err := dst.Stat(ctx, dstKey)
		if err != nil {
			return res, fmt.Errorf("object %d: stat the copy %s: %w", id, dstKey, err)
		}
		if di.Size != oi.Size {
			removeBad(ctx, dst, dstKey)
			return res, fmt.Errorf("object %d: the copy %s has %d bytes, the source %d: %w", id, dstKey, di.Size, oi.Size, ErrChecksum)
		}
	default:
		return res, err
	}
	if want != nil && (res.MD5 != want.MD5 || res.Size != want.Size) {
		removeBad(ctx, dst, dstKey)
		return res, fmt.Errorf("object %d: the bytes at %s have MD5 %s (%d bytes), the index records %s (%d bytes) (the data copy is damaged; the bad copy at the destination was removed): %w", id, srcKey, res.MD5, res.Size, want.MD5, want.Size, ErrChecksum)
	}
	// Crash tests: killed after an object landed, before it is recorded.
	faultpoint.Hit("datacopy.after-object")
	return res, nil
}

// removeBad deletes an object this copy just wrote and found wrong, so no
// bad bytes stay under an SST's name. Best effort: the caller reports the
// mismatch either way.
func removeBad(ctx context.Context, s objstore.Store, key string) {
	_ = s.Delete(context.WithoutCancel(ctx), key)
}

// hashObject streams an object through MD5 and checks its length.
func hashObject(ctx context.Context, s objstore.Store, key string, size int64) (string, error) {
	rc, _, err := s.Open(ctx, key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := md5.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	if size >= 0 && n != size {
		return "", fmt.Errorf("%s has %d bytes, want %d: %w", key, n, size, ErrChecksum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// contentMD5 is an existing object's MD5: from the store when it knows it,
// else by reading it.
func contentMD5(ctx context.Context, s objstore.Store, info objstore.ObjectInfo) (string, error) {
	if m, ok := objstore.ContentMD5(s, info); ok {
		return m, nil
	}
	return hashObject(ctx, s, info.Key, info.Size)
}

// ServerCopyFactor multiplies --data-parallelism for the copies that hold
// no S3 part buffers in rwsnap: server-side copies (their bytes never pass
// through rwsnap; each costs the server a copy while rwsnap waits on one
// request) and streamed copies into a local directory (a 1 MiB write
// buffer each; their time is the fsync of each object, which overlaps).
// Measured on MinIO (docs/performance.md): 4 x 8 in flight beat 8 on
// both.
const ServerCopyFactor = 4

// copyParallelism is how many objects to copy at once between two stores.
func copyParallelism(ctx context.Context, n int, src, dst objstore.Store) int {
	if n <= 0 {
		n = DefaultParallelism
	}
	if objstore.CanServerCopy(ctx, src, dst) || dst.Scheme() == "fs" {
		n *= ServerCopyFactor
	}
	return n
}

// Parallel runs fn for every id with at most n at once (DefaultParallelism
// when n <= 0), stopping at the first error (which it returns).
func Parallel(ctx context.Context, n int, ids []uint64, fn func(ctx context.Context, id uint64) error) error {
	if n <= 0 {
		n = DefaultParallelism
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan uint64)
	var wg sync.WaitGroup
	for range min(n, max(len(ids), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if err := fn(ctx, id); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
feed:
	for _, id := range ids {
		select {
		case work <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// CopyCompared copies one SST object from src to dst comparing content,
// never size alone (restore --copy-ssts): an object already at dstKey with
// the source's size and MD5 is kept (copied false); a different one is
// refused with ErrDifferentObject unless overwrite. The copy itself is
// checked by MD5 (copyObject).
func CopyCompared(ctx context.Context, src objstore.Store, srcKey string, dst objstore.Store, dstKey string, id uint64, overwrite bool) (int64, bool, error) {
	si, err := src.Stat(ctx, srcKey)
	if err != nil {
		return 0, false, fmt.Errorf("source %s: %w", srcKey, err)
	}
	di, err := dst.Stat(ctx, dstKey)
	switch {
	case err == nil:
		same := di.Size == si.Size
		var sm, dm string
		if same {
			if sm, err = contentMD5(ctx, src, si); err != nil {
				return 0, false, fmt.Errorf("source %s: %w", srcKey, err)
			}
			if dm, err = contentMD5(ctx, dst, di); err != nil {
				return 0, false, fmt.Errorf("destination %s: %w", dstKey, err)
			}
			same = sm == dm
		}
		if same {
			return 0, false, nil
		}
		if !overwrite {
			return 0, false, fmt.Errorf("%w: %s in %s (%d bytes) is not the source's object %d (%d bytes%s); SST ids are unique per cluster, so this location holds another cluster's data: restore into an empty location, or pass --overwrite-existing-ssts to replace it",
				ErrDifferentObject, dstKey, dst, di.Size, id, si.Size, md5Note(sm, dm))
		}
	case !errors.Is(err, objstore.ErrNotFound):
		return 0, false, fmt.Errorf("destination %s: %w", dstKey, err)
	}
	r, err := copyObject(ctx, src, srcKey, &si, dst, dstKey, id, nil)
	if err != nil {
		return 0, false, err
	}
	if sm, ok := objstore.ContentMD5(src, si); ok && sm != r.MD5 {
		removeBad(ctx, dst, dstKey)
		return 0, false, fmt.Errorf("object %d: the copy has MD5 %s, the source's ETag says %s: %w", id, r.MD5, sm, ErrChecksum)
	}
	return r.Size, true, nil
}

func md5Note(a, b string) string {
	if a == "" || b == "" {
		return ""
	}
	return ", MD5 " + a + " vs " + b
}
