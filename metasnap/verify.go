package metasnap

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
)

// VerifyOptions selects what verify checks.
type VerifyOptions struct {
	IDs []uint64 // empty: every manifest entry
	// CheckSSTs also checks that every SST object the snapshot pins exists.
	CheckSSTs bool
	// Hummock and DataDir locate SSTs; when Hummock is nil the snapshot's
	// own state_store and data_directory params are used.
	Hummock objstore.Store
	DataDir string
}

// SnapshotCheck is the verdict on one snapshot.
type SnapshotCheck struct {
	ID       uint64   `json:"id"`
	OK       bool     `json:"ok"`
	Bytes    int      `json:"bytes"`
	SSTs     int      `json:"ssts"`
	Problems []string `json:"problems,omitempty"`
}

// VerifyReport is the verdict on a backup location.
type VerifyReport struct {
	ManifestID uint64          `json:"manifest_id"`
	Snapshots  []SnapshotCheck `json:"snapshots"`
	// Orphans are snapshot objects no manifest entry names (left by an
	// interrupted backup or delete); `prune --orphans` removes them.
	Orphans []uint64 `json:"orphans"`
}

// OK says every checked snapshot passed.
func (r *VerifyReport) OK() bool {
	for _, s := range r.Snapshots {
		if !s.OK {
			return false
		}
	}
	return true
}

// Verify checks manifest -> object -> checksum -> decode -> replayed version
// consistent with the manifest entry -> (optionally) SST objects present.
func Verify(ctx context.Context, st *Storage, opts VerifyOptions) (*VerifyReport, error) {
	m, orphans, err := st.Orphans(ctx)
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{ManifestID: m.ManifestID, Snapshots: []SnapshotCheck{}, Orphans: []uint64{}}
	for id := range orphans {
		rep.Orphans = append(rep.Orphans, id)
	}
	slices.Sort(rep.Orphans)
	ids := opts.IDs
	if len(ids) == 0 {
		ids = m.IDs()
	}
	for _, id := range ids {
		entry := m.Find(id)
		if entry == nil {
			return nil, fmt.Errorf("%w: %d is not in the manifest of %s (it lists %s)", ErrSnapshotNotFound, id, st, FormatIDs(m.IDs()))
		}
		rep.Snapshots = append(rep.Snapshots, verifyOne(ctx, st, entry, opts))
	}
	return rep, nil
}

func verifyOne(ctx context.Context, st *Storage, e *SnapshotMetadata, opts VerifyOptions) (c SnapshotCheck) {
	c = SnapshotCheck{ID: e.ID, SSTs: len(e.SSTs)}
	fail := func(format string, args ...any) { c.Problems = append(c.Problems, fmt.Sprintf(format, args...)) }
	defer func() { c.OK = len(c.Problems) == 0 }()
	if e.Err != nil {
		fail("%v", e.Err)
		return c
	}
	// One streamed pass: checksum and structure checked, the lists hashed
	// and skipped, only the small parts kept.
	head, err := st.Scan(ctx, e.ID)
	if err != nil {
		fail("%v", err)
		return c
	}
	c.Bytes = int(head.Size)
	if head.ID != e.ID {
		fail("object header says snapshot %d, manifest entry %d", head.ID, e.ID)
	}
	if e.FormatVersion >= FormatV2 || head.FormatVersion >= FormatV2 {
		// A RisingWave SQL meta store's snapshot (RisingWave >= 1.9, or 2.x
		// after leaving etcd): its sections depend on the release that wrote
		// it, so checksum and header are what can be checked.
		if head.FormatVersion != e.FormatVersion {
			fail("object header says format_version %d, manifest entry %d", head.FormatVersion, e.FormatVersion)
		}
		return c
	}
	if err := CheckFormat(head); err != nil {
		fail("%v", err)
		return c
	}
	snap := &MetaSnapshot{FormatVersion: head.FormatVersion, ID: head.ID, Metadata: &head.Meta}
	v, err := hummock.DecodeVersion(snap.Metadata.HummockVersion)
	if err != nil {
		fail("hummock version: %v", err)
		return c
	}
	if v.GetId() != e.HummockVersionID {
		fail("hummock version id %d, manifest says %d", v.GetId(), e.HummockVersionID)
	}
	if v.GetMaxCommittedEpoch() != e.MaxCommittedEpoch || v.GetSafeEpoch() != e.SafeEpoch {
		fail("epochs [%d, %d], manifest says [%d, %d]", v.GetSafeEpoch(), v.GetMaxCommittedEpoch(), e.SafeEpoch, e.MaxCommittedEpoch)
	}
	got := hummock.ObjectIDs(v)
	want := slices.Clone(e.SSTs)
	slices.Sort(want)
	want = slices.Compact(want)
	if !slices.Equal(got, want) {
		fail("version references %d SST objects, manifest pins %d (%s)", len(got), len(want), diffIDs(got, want))
	}
	if _, err := metastore.DecodeSystemParams(snap.Metadata.SystemParams); err != nil {
		fail("%v", err)
	}
	if snap.Metadata.ClusterID == "" {
		fail("cluster id is empty")
	}
	if opts.CheckSSTs && len(c.Problems) == 0 {
		if missing, err := missingSSTs(ctx, snap, got, opts); err != nil {
			fail("check SSTs: %v", err)
		} else if len(missing) > 0 {
			fail("%d of %d SST objects missing from hummock storage: %s", len(missing), len(got), summarizeIDs(missing))
		}
	}
	return c
}

// missingSSTs lists the data directory once and returns the pinned object
// ids absent from it (SST path rule: reference §3.1).
func missingSSTs(ctx context.Context, snap *MetaSnapshot, ids []uint64, opts VerifyOptions) ([]uint64, error) {
	store, dataDir := opts.Hummock, opts.DataDir
	if store == nil {
		sp, err := metastore.DecodeSystemParams(snap.Metadata.SystemParams)
		if err != nil {
			return nil, err
		}
		url, ok := strings.CutPrefix(sp.GetStateStore(), "hummock+")
		if !ok {
			return nil, fmt.Errorf("state_store %q is not a hummock+ URL: pass --hummock-storage-url", objstore.RedactText(sp.GetStateStore()))
		}
		s, err := objstore.Open(ctx, url)
		if err != nil {
			return nil, fmt.Errorf("open the snapshot's state store: %w", err)
		}
		defer s.Close()
		store = s
		if dataDir == "" { // --hummock-storage-directory alone overrides it
			dataDir = sp.GetDataDirectory()
		}
	}
	objs, err := store.List(ctx, strings.Trim(dataDir, "/")+"/")
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", store, err)
	}
	present := make(map[uint64]bool, len(objs))
	for _, o := range objs {
		if id, ok := hummock.ParseSSTObjectID(o.Key); ok {
			present[id] = true
		}
	}
	var missing []uint64
	for _, id := range ids {
		if !present[id] {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

func diffIDs(got, want []uint64) string {
	var extra, lack []uint64
	for _, id := range got {
		if _, ok := slices.BinarySearch(want, id); !ok {
			extra = append(extra, id)
		}
	}
	for _, id := range want {
		if _, ok := slices.BinarySearch(got, id); !ok {
			lack = append(lack, id)
		}
	}
	return fmt.Sprintf("unpinned: %s; pinned but unused: %s", summarizeIDs(extra), summarizeIDs(lack))
}

func summarizeIDs(ids []uint64) string {
	if len(ids) == 0 {
		return "none"
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	parts := make([]string, 0, 10)
	for i, id := range ids {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("... (%d more)", len(ids)-10))
			break
		}
		parts = append(parts, fmt.Sprint(id))
	}
	return strings.Join(parts, ", ")
}
