package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/rwversion"
)

// errFormatRefused marks a format-2 entry: it is refused, never retried.
var errFormatRefused = errors.New("not an etcd snapshot")

// snapshotLine is the oldest RisingWave release line that can have written
// the snapshot, and why.
func snapshotLine(s *metasnap.MetaSnapshot, v *hummockpb.HummockVersion) (rwversion.Version, string) {
	m := s.Metadata
	switch {
	case m.HasSecrets:
		return rwversion.V2_0, "it carries v2.0's secret list"
	case len(v.GetStateTableInfo()) > 0:
		return rwversion.V1_10, "its hummock version has state_table_info"
	case len(v.GetTableChangeLogs()) > 0:
		return rwversion.V1_9, "its hummock version has table change logs"
	case s.Count(metasnap.SecSubscriptions) > 0:
		return rwversion.V1_8, "it holds subscriptions"
	}
	return rwversion.Oldest, ""
}

// CheckLine refuses to restore a snapshot for an older release line than
// the one that wrote it (--rw-version): that meta node could not read what
// would be written (a v1.x meta node knows no cf/catalog_secret, and a
// v1.x-mode restore would drop the secrets).
func CheckLine(s *metasnap.MetaSnapshot, v *hummockpb.HummockVersion, want *rwversion.Version) error {
	if want == nil {
		return nil
	}
	min, why := snapshotLine(s, v)
	if want.Less(min) {
		return fmt.Errorf("%w: snapshot %d was written by RisingWave %s or newer (%s), but --rw-version is %s: RisingWave cannot be downgraded; restore it for the release that wrote it (--rw-version %s or omit the flag)", rwversion.ErrContradiction, s.ID, min, why, want, min)
	}
	return nil
}

// withReadRetry runs read (the manifest and snapshot reads) with risectl's
// --read-attempt-timeout-ms per attempt and --read-retry-attempts retries
// (restore.rs@v1.10.2). Answers that another attempt cannot change (an id
// not in the manifest, a refused format, a malformed entry, corruption) are
// not retried.
func withReadRetry(ctx context.Context, o Options, log *slog.Logger, read func(context.Context) error) error {
	attempts := o.ReadRetryAttempts + 1
	if o.ReadRetryAttempts <= 0 {
		attempts = 1
	}
	var err error
	for i := 1; i <= attempts; i++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if o.ReadAttemptTimeout > 0 {
			actx, cancel = context.WithTimeout(ctx, o.ReadAttemptTimeout)
		}
		err = read(actx)
		timedOut := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil || ctx.Err() != nil || errors.Is(err, metasnap.ErrSnapshotNotFound) || errors.Is(err, metasnap.ErrMalformedEntry) ||
			errors.Is(err, metasnap.ErrChecksum) || errors.Is(err, metasnap.ErrUnsupportedFormat) || errors.Is(err, errFormatRefused) {
			return err
		}
		if timedOut {
			err = fmt.Errorf("read attempt %d timed out after %s (--read-attempt-timeout-ms): %w", i, o.ReadAttemptTimeout, err)
		}
		if i < attempts {
			log.Warn("reading the backup failed; retrying (--read-retry-attempts)", "attempt", i, "of", attempts, "err", err)
		}
	}
	return err
}
