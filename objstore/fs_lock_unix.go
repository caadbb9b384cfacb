//go:build unix

package objstore

import (
	"context"
	"errors"
	"os"
	"syscall"
)

// lockDir takes an exclusive flock on the directory itself: it excludes other
// processes and other goroutines (each opens its own descriptor), the kernel
// drops it if the holder dies, and it leaves no file behind in directories
// that RisingWave also lists. Where directories cannot be flocked (NFS
// emulates flock with byte-range locks, which need a writable file), it
// falls back to a lock file.
func lockDir(ctx context.Context, dir string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	fd := int(d.Fd())
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		d.Close()
		return lockFile(ctx, dir)
	}
	return func() {
		syscall.Flock(fd, syscall.LOCK_UN)
		d.Close()
	}, nil
}
