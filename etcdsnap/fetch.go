package etcdsnap

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rwsnap/rwsnap/internal/faultpoint"
)

// ErrChecksum means the snapshot stream's bytes do not match the sha256
// etcd appended to them.
var ErrChecksum = errors.New("etcd snapshot stream does not match its sha256")

// Options configures a Read.
type Options struct {
	// Dir holds the temporary files ("" is os.TempDir()).
	Dir string
	// Budget bounds the sorter's memory (0 is DefaultBudget).
	Budget int
}

// Read spools a snapshot stream (the bbolt file and etcd's trailing
// sha256) to an unlinked temporary file, checks the sha256, and indexes the
// revision it holds. The stream is read to its end; the caller closes it.
func Read(ctx context.Context, stream io.Reader, opts Options) (*State, error) {
	spool, err := tempFile(opts.Dir, "rwsnap-etcd-snapshot-*")
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	size, err := spoolChecked(ctx, stream, spool)
	if err != nil {
		spool.Close()
		return nil, err
	}
	// Crash tests: killed with the spool written, nothing is left.
	faultpoint.Hit("etcdsnap.spooled")
	budget := opts.Budget
	if budget <= 0 {
		budget = DefaultBudget
	}
	t1 := time.Now()
	st, err := build(spool, size, opts.Dir, budget)
	if err != nil {
		spool.Close()
		return nil, err
	}
	st.SpoolTime, st.IndexTime = t1.Sub(t0), time.Since(t1)
	return st, nil
}

// spoolChecked copies stream to f, hashing all but its last 32 bytes, and
// returns the database's size once those bytes match the hash.
func spoolChecked(ctx context.Context, stream io.Reader, f *os.File) (int64, error) {
	w := bufio.NewWriterSize(f, 1<<20)
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var tail [sha256.Size]byte // the last bytes seen, not yet hashed
	nt := 0
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n, err := stream.Read(buf)
		if n > 0 {
			total += int64(n)
			if _, werr := w.Write(buf[:n]); werr != nil {
				return 0, spoolError(f, werr)
			}
			data := buf[:n]
			if nt+len(data) <= sha256.Size {
				nt += copy(tail[nt:], data)
			} else {
				// Hash what can no longer be part of the trailing sum.
				keep := sha256.Size
				if len(data) >= keep {
					h.Write(tail[:nt])
					h.Write(data[:len(data)-keep])
					nt = copy(tail[:], data[len(data)-keep:])
				} else {
					drop := nt + len(data) - keep
					h.Write(tail[:drop])
					copy(tail[:], tail[drop:nt])
					nt -= drop
					nt += copy(tail[nt:], data)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("receive the etcd snapshot: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return 0, spoolError(f, err)
	}
	// etcd appends the sha256 to a database whose size is a multiple of
	// its page size (clientv3/snapshot: size % 512 == 32).
	if total%512 != sha256.Size {
		return 0, fmt.Errorf("%w: %d bytes received, not a database followed by a sha256", ErrChecksum, total)
	}
	if !bytes.Equal(h.Sum(nil), tail[:nt]) {
		return 0, fmt.Errorf("%w (%d bytes received)", ErrChecksum, total)
	}
	return total - sha256.Size, nil
}

// spoolError names the spool that could not be written and, when its disk
// is full, what to do about it.
func spoolError(f *os.File, err error) error {
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		return fmt.Errorf("spool the etcd snapshot to %s (its disk is full: point TMPDIR at one with room for etcd's database, or read ranges with RWSNAP_ETCD_READ=range): %w", f.Name(), err)
	}
	return fmt.Errorf("spool the etcd snapshot to %s: %w", f.Name(), err)
}

// FreeSpace is the space available to an unprivileged writer in dir.
func FreeSpace(dir string) (int64, error) {
	dir = displayDir(dir)
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// SpaceNeeded is the temporary disk a Read of a database of dbSize bytes
// may use: the spool, plus the index and sort runs (a fraction of it).
func SpaceNeeded(dbSize int64) int64 { return dbSize + dbSize/2 + 16<<20 }
