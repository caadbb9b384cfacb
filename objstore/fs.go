package objstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Suffixes of the fs store's own files; List hides them and keys may not use
// them.
const (
	// ObjectMode is the mode of every object an fs:// store writes:
	// owner read-write, group read (a backup-reader group may copy or
	// verify), nothing for others. os.CreateTemp's 0600 would make backups
	// unreadable to such a group; 0644 would show the cluster's metadata
	// to every local user.
	ObjectMode = 0o640
	partSuffix = ".part"
	lockSuffix = ".lock"
)

// fsStore keeps each object in a file under root, named by its key.
//
// Writes go to a temp file that is fsynced and renamed over the target, so
// readers see whole objects. Every write (Put, PutIf, Delete) runs its
// check-and-rename under an exclusive lock on the object's directory that
// works across processes (flock; a lock file where flock is unavailable).
// The ETag is "mtime-ns-size"; under that lock each new version gets an
// mtime strictly after the version it replaces, so a tag names one version
// and compare-and-swap cannot be fooled by two same-size writes landing in
// one coarse filesystem clock tick.
type fsStore struct {
	root string // absolute
	url  string
}

func newFS(root, url string) (*fsStore, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("objstore: %s: %w", url, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("objstore: %s: %s is not a directory", url, abs)
	}
	// A missing root is fine: the first write creates it, reads find nothing.
	return &fsStore{root: abs, url: url}, nil
}

func (s *fsStore) Scheme() string { return "fs" }
func (s *fsStore) String() string { return s.url }
func (s *fsStore) Close() error   { return nil }

// path maps a key to its file, refusing keys that a directory tree cannot
// store one-to-one.
func (s *fsStore) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("objstore: %s: object key %q has an empty, '.' or '..' path segment", s.url, key)
		}
	}
	if strings.HasSuffix(key, partSuffix) || strings.HasSuffix(key, lockSuffix) {
		return "", fmt.Errorf("objstore: %s: object key %q ends in %s or %s, which the fs store reserves", s.url, key, partSuffix, lockSuffix)
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

func fsETag(fi fs.FileInfo) string {
	return strconv.FormatInt(fi.ModTime().UnixNano(), 16) + "-" + strconv.FormatInt(fi.Size(), 16)
}

func (s *fsStore) info(key string, fi fs.FileInfo) ObjectInfo {
	return ObjectInfo{Key: key, Size: fi.Size(), ETag: fsETag(fi), ModTime: fi.ModTime()}
}

// isMissing reports errors meaning "no such object": the file or one of its
// parent directories is absent, or a parent is a file.
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func (s *fsStore) Open(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, ObjectInfo{}, err
	}
	p, err := s.path(key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	f, err := os.Open(p)
	if isMissing(err) {
		return nil, ObjectInfo{}, fmt.Errorf("objstore: %s: get %q: %w", s.url, key, ErrNotFound)
	} else if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("objstore: %s: get %q: %w", s.url, key, err)
	}
	// Stat the open file, not the path: a rename may replace the path, but
	// this inode keeps the version whose tag we return.
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, ObjectInfo{}, fmt.Errorf("objstore: %s: get %q: %w", s.url, key, err)
	}
	if fi.IsDir() {
		f.Close()
		return nil, ObjectInfo{}, fmt.Errorf("objstore: %s: get %q: %w", s.url, key, ErrNotFound)
	}
	return f, s.info(key, fi), nil
}

func (s *fsStore) Get(ctx context.Context, key string) ([]byte, ObjectInfo, error) {
	rc, info, err := s.Open(ctx, key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	defer rc.Close()
	data, err := readSized(rc, info.Size)
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("objstore: %s: get %q: %w", s.url, key, err)
	}
	return data, info, nil
}

func (s *fsStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	p, err := s.path(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if isMissing(err) || (err == nil && fi.IsDir()) {
		return ObjectInfo{}, fmt.Errorf("objstore: %s: stat %q: %w", s.url, key, ErrNotFound)
	} else if err != nil {
		return ObjectInfo{}, fmt.Errorf("objstore: %s: stat %q: %w", s.url, key, err)
	}
	return s.info(key, fi), nil
}

func (s *fsStore) Put(ctx context.Context, key string, data []byte) error {
	_, err := s.put(ctx, key, data, false, "")
	return err
}

func (s *fsStore) PutIf(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	return s.put(ctx, key, data, true, ifMatch)
}

// PutChunks implements ChunkWriter: the chunks go through one buffered
// writer into the temporary file.
func (s *fsStore) PutChunks(ctx context.Context, key string, chunks [][]byte) error {
	_, err := s.putFrom(ctx, key, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		for _, c := range chunks {
			if _, err := bw.Write(c); err != nil {
				return err
			}
		}
		return bw.Flush()
	}, false, "")
	return err
}

// PutStream implements StreamPutter: write goes through one buffered
// writer into the temporary file, which is renamed into place only if
// write succeeded.
func (s *fsStore) PutStream(ctx context.Context, key string, write func(io.Writer) error) error {
	_, err := s.putFrom(ctx, key, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}, false, "")
	return err
}

func (s *fsStore) put(ctx context.Context, key string, data []byte, cond bool, ifMatch string) (etag string, err error) {
	return s.putFrom(ctx, key, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, cond, ifMatch)
}

func (s *fsStore) putFrom(ctx context.Context, key string, write func(io.Writer) error, cond bool, ifMatch string) (etag string, err error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	p, err := s.path(key)
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("objstore: %s: put %q: %w", s.url, key, err)
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}

	// Write and fsync outside the lock: large objects must not serialize
	// other writers of the directory.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(p)+".*"+partSuffix)
	if err != nil {
		return fail(err)
	}
	tmpName := tmp.Name()
	if err := tmp.Chmod(ObjectMode); err != nil {
		tmp.Close()
		os.Remove(tmpName)
		return fail(err)
	}
	renamed := false
	defer func() {
		if !renamed {
			os.Remove(tmpName)
		}
	}()
	err = write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}

	unlock, err := lockDir(ctx, dir)
	if err != nil {
		return fail(err)
	}
	fi, err := s.installLocked(tmpName, p, cond, ifMatch)
	unlock()
	if err != nil {
		return fail(err)
	}
	renamed = true
	// Make the rename durable. Outside the lock: it does not affect the
	// outcome of any compare-and-swap.
	if err := syncDir(dir); err != nil {
		return fail(err)
	}
	return fsETag(fi), nil
}

// installLocked checks the precondition and renames tmp over p; the caller
// holds the directory lock.
func (s *fsStore) installLocked(tmp, p string, cond bool, ifMatch string) (fs.FileInfo, error) {
	cur, err := os.Stat(p)
	exists := err == nil
	if err != nil && !isMissing(err) {
		return nil, err
	}
	if exists && cur.IsDir() {
		return nil, fmt.Errorf("%s is a directory", p)
	}
	if cond && ((ifMatch == "" && exists) || (ifMatch != "" && (!exists || fsETag(cur) != ifMatch))) {
		return nil, ErrPreconditionFailed
	}
	// Give the new version an mtime (and so a tag) strictly after the one it
	// replaces. The file's own mtime comes from the kernel's coarse clock and
	// could equal it.
	var floor time.Time
	if exists {
		floor = cur.ModTime()
	}
	t := time.Now()
	var fi fs.FileInfo
	for step := time.Microsecond; ; step *= 10 {
		if !t.After(floor) {
			t = floor.Add(step)
		}
		if err := os.Chtimes(tmp, t, t); err != nil {
			return nil, err
		}
		if fi, err = os.Stat(tmp); err != nil {
			return nil, err
		}
		// Filesystems with coarse timestamps round t down; step up until
		// the stored mtime moves past floor.
		if fi.ModTime().After(floor) {
			break
		}
		if step > 10*time.Second {
			return nil, fmt.Errorf("cannot give %s a newer mtime than %s", tmp, floor)
		}
	}
	if err := os.Rename(tmp, p); err != nil {
		return nil, err
	}
	return fi, nil
}

func (s *fsStore) Delete(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := s.path(key)
		if err != nil {
			return err
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(dir); isMissing(err) {
			continue
		}
		// Under the lock, so a concurrent PutIf cannot check a version and
		// then resurrect the object after this delete.
		unlock, err := lockDir(ctx, dir)
		if isMissing(err) {
			continue
		} else if err != nil {
			return fmt.Errorf("objstore: %s: delete %q: %w", s.url, key, err)
		}
		err = os.Remove(p)
		unlock()
		if err != nil && !isMissing(err) {
			return fmt.Errorf("objstore: %s: delete %q: %w", s.url, key, err)
		}
	}
	return nil
}

func (s *fsStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	// Walk only the deepest directory the prefix names.
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		// No valid key lies under an empty, "." or ".." segment; and
		// walking one could leave root.
		for _, seg := range strings.Split(prefix[:i], "/") {
			if seg == "" || seg == "." || seg == ".." {
				return nil, nil
			}
		}
		start = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	var out []ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if isMissing(err) {
				return nil // vanished while walking, or start is absent
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() || strings.HasSuffix(name, partSuffix) || strings.HasSuffix(name, lockSuffix) {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if isMissing(err) {
			return nil
		} else if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		out = append(out, s.info(key, fi))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: %s: list %q: %w", s.url, prefix, err)
	}
	// WalkDir's order is per directory ("a/b" before "a-c"); keys sort as
	// strings ("a-c" before "a/b").
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	// Some filesystems cannot fsync a directory; the rename stands anyway.
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}

// lockFileStale is when a lock file left by a crashed process is broken.
// Holders keep it for milliseconds (a stat and a rename).
const lockFileStale = 30 * time.Second

// lockFile is the portable lock: create dir/.rwsnap.lock exclusively, remove
// it to unlock. A lock file older than lockFileStale was left by a crash.
func lockFile(ctx context.Context, dir string) (func(), error) {
	name := filepath.Join(dir, ".rwsnap"+lockSuffix)
	delay := time.Millisecond
	for {
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%d\n", os.Getpid())
			f.Close()
			return func() { os.Remove(name) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if fi, err := os.Stat(name); err == nil && time.Since(fi.ModTime()) > lockFileStale {
			os.Remove(name)
			continue
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for lock %s: %w", name, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}
