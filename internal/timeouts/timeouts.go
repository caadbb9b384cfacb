// Package timeouts holds the two limits every network client of rwsnap
// applies (etcd, S3/MinIO, pgwire, the meta node's gRPC), so a port that
// accepts but never answers fails a command with a clear error instead of
// hanging it. The CLI sets them from --connect-timeout and --io-timeout.
package timeouts

import (
	"context"
	"time"
)

var (
	// Connect bounds establishing a connection (TCP, TLS, the protocol's
	// handshake or first answer).
	Connect = 10 * time.Second
	// Operation bounds one request: an etcd call, a meta node call, a
	// query rwsnap runs itself, the wait for an S3 response's headers.
	Operation = 20 * time.Second
)

// WithOperation returns ctx bounded by Operation unless it already has a
// sooner deadline.
func WithOperation(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= Operation {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, Operation)
}
