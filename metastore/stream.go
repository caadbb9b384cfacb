package metastore

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Range reads use etcd 3.7's RangeStream where the server has it and paged
// Gets otherwise (etcd 3.4-3.6, which RisingWave v1.x clusters often run).

// RangeModeEnv forces the read path: "stream", "paged", or "auto" (the
// default: by the server's version, falling back to paged reads when a
// server refuses streams). For benchmarks and tests.
const RangeModeEnv = "RWSNAP_ETCD_RANGE"

var errNoStreaming = errors.New("etcd server has no RangeStream")

// streamModes remembers per client whether its server streams ranges.
var streamModes sync.Map // *clientv3.Client -> bool

// streamingSupported says whether ranges on cli should be streamed.
func streamingSupported(ctx context.Context, cli *clientv3.Client) bool {
	switch strings.ToLower(os.Getenv(RangeModeEnv)) {
	case "paged":
		return false
	case "stream":
		return true
	}
	if v, ok := streamModes.Load(cli); ok {
		return v.(bool)
	}
	ok := serverStreams(ctx, cli)
	streamModes.Store(cli, ok)
	return ok
}

// noStreaming records that cli's server refused a stream.
func noStreaming(cli *clientv3.Client) { streamModes.Store(cli, false) }

// serverStreams asks the first endpoint that answers for its version:
// RangeStream is in etcd 3.7 and later. When no status can be had (a role
// without permission, say) the stream is tried and its refusal noticed.
func serverStreams(ctx context.Context, cli *clientv3.Client) bool {
	for _, ep := range cli.Endpoints() {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cli.Status(sctx, ep)
		cancel()
		if err == nil {
			return VersionAtLeast(st.Version, 3, 7)
		}
	}
	return true
}

// VersionAtLeast compares a "major.minor.patch" version.
func VersionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}
