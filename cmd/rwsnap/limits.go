package main

import (
	"math"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

const catLimits = "limits"

// limitFlags bound the objects rwsnap reads: each is checked against its
// size before one byte is read, so an absurd object (a sparse file, a
// misplaced dump) is refused with a clear error instead of exhausting
// memory or disk.
func limitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "max-snapshot-size", Category: catLimits, Value: "8GiB", Usage: "refuse snapshot objects larger than this (snapshots are streamed; the limit guards against absurd objects: etcd's own quota tops out at 8 GiB)", EnvVars: []string{"RWSNAP_MAX_SNAPSHOT_SIZE"}},
		&cli.StringFlag{Name: "max-manifest-size", Category: catLimits, Value: "1GiB", Usage: "refuse manifest.json objects larger than this (a manifest is read into memory)", EnvVars: []string{"RWSNAP_MAX_MANIFEST_SIZE"}},
	}
}

func applyLimits(c *cli.Context) error {
	str := func(c *cli.Context, n string) string { return c.String(n) }
	for _, l := range []struct {
		flag string
		dst  *int64
	}{{"max-snapshot-size", &metasnap.MaxSnapshotBytes}, {"max-manifest-size", &metasnap.MaxManifestBytes}} {
		v := lookup(c, l.flag, str)
		n, err := parseSize(v)
		if err != nil {
			return usagef("--%s %q: %v (e.g. 8GiB, 512MiB, 1000000)", l.flag, v, err)
		}
		*l.dst = n
	}
	// Objects read whole (checkpoints, SSTs) are bounded by the larger.
	objstore.MaxGetBytes = max(metasnap.MaxSnapshotBytes, metasnap.MaxManifestBytes)
	return nil
}

// parseSize reads "8GiB", "512MiB", "64KiB", "1.5GiB", "10GB" or a byte
// count.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	// !(f > 0) also refuses NaN; a size must be at least one byte and fit
	// in an int64 (1e99, Inf and 0.1 B would silently switch a limit off).
	if err != nil || !(f > 0) || math.IsInf(f, 0) {
		return 0, strconv.ErrSyntax
	}
	b := f * float64(mult)
	if b < 1 || b >= math.MaxInt64 {
		return 0, strconv.ErrSyntax
	}
	return int64(b), nil
}
