package restore

import (
	"fmt"

	"github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/rwversion"
)

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
	case len(m.Subscriptions) > 0:
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
		return fmt.Errorf("snapshot %d was written by RisingWave %s or newer (%s), but --rw-version is %s: RisingWave cannot be downgraded; restore it for the release that wrote it (--rw-version %s or omit the flag)", s.ID, min, why, want, min)
	}
	return nil
}
