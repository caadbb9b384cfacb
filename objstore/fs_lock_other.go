//go:build !unix

package objstore

import "context"

// lockDir uses the portable lock file where flock does not exist.
func lockDir(ctx context.Context, dir string) (func(), error) {
	return lockFile(ctx, dir)
}
