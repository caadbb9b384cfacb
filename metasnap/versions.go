package metasnap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwversion"
)

// ErrAmbiguousVersion means the meta store fits several RisingWave release
// lines whose rules give different snapshots: rwsnap will not guess.
var ErrAmbiguousVersion = errors.New("the RisingWave release cannot be told from the meta store")

// Evidence collects what the meta store read shows about its release.
func Evidence(md *metastore.Metadata, base *hummockpb.HummockVersion, deltas []*hummockpb.HummockVersionDelta, manifestRWVersion string) rwversion.Evidence {
	e := rwversion.Evidence{CFs: map[string]bool{}, SystemParams: map[string]bool{}, ManifestRWVersion: manifestRWVersion}
	if md.Has(metastore.CFSubscription) {
		e.CFs[metastore.CFSubscription] = true
	}
	if md.Has(metastore.CFSecret) {
		e.CFs[metastore.CFSecret] = true
	}
	for k := range md.SystemParams {
		e.SystemParams[k] = true
	}
	e.ChangeLogs = len(base.GetTableChangeLogs()) > 0
	e.StateTableInfo = len(base.GetStateTableInfo()) > 0
	for _, l := range base.GetLevels() {
		e.LegacyMembers = e.LegacyMembers || len(l.GetMemberTableIds()) > 0
	}
	for _, d := range deltas {
		e.ChangeLogs = e.ChangeLogs || len(d.GetChangeLogDelta()) > 0
		e.StateTableInfo = e.StateTableInfo || len(d.GetStateTableInfoDelta()) > 0
		for _, gd := range d.GetGroupDeltas() {
			for _, g := range gd.GetGroupDeltas() {
				if c := g.GetGroupConstruct(); c != nil && c.GetVersion() >= hummockpb.CompatibilityVersion_NO_MEMBER_TABLE_IDS {
					e.StateTableInfo = true
				} else if c != nil && len(c.GetTableIds()) > 0 {
					e.LegacyMembers = true
				}
				if mc := g.GetGroupMetaChange(); mc != nil && len(mc.GetTableIdsAdd()) > 0 {
					e.LegacyMembers = true
				}
				if g.GetGroupTableChange() != nil {
					e.LegacyMembers = true
				}
			}
		}
	}
	return e
}

// newestRWVersion is the rw_version of the newest format-1 entry, "" if none.
func newestRWVersion(m *Manifest) string {
	var best uint64
	out := ""
	for _, s := range m.SnapshotMetadata {
		if s.FormatVersion < FormatV2 && s.RWVersion != nil && s.ID >= best {
			best, out = s.ID, *s.RWVersion
		}
	}
	return out
}

// Lines is what a read decided: the release lines the meta store fits and
// the rules followed for them.
type Lines struct {
	Range  rwversion.Range
	Layout rwversion.SnapshotLayout
	Replay string // name of the replay rule set used, e.g. "v1.10"
}

// replayByVersion detects the release line (or takes the override), then
// replays the deltas with that line's rules. When the candidates span lines
// with different replay rules, every rule set is tried: the same result
// means the difference does not matter for this store; different results
// are refused, naming them, rather than guessed.
func replayByVersion(e rwversion.Evidence, override *rwversion.Version, base *hummockpb.HummockVersion, deltas []*hummockpb.HummockVersionDelta) (*hummockpb.HummockVersion, Lines, error) {
	r, err := rwversion.Detect(e)
	if err != nil {
		return nil, Lines{}, err
	}
	if r, err = rwversion.Resolve(r, override); err != nil {
		return nil, Lines{}, err
	}
	lines := Lines{Range: r}
	layouts := map[rwversion.SnapshotLayout]bool{}
	for _, v := range r.Lines() {
		l := rwversion.For(v).Snapshot
		layouts[l] = true
		lines.Layout.Subscriptions = lines.Layout.Subscriptions || l.Subscriptions
		lines.Layout.Secrets = l.Secrets
	}
	// Item 19 is harmless to lines that predate it (their decoders stop
	// before it); item 20 is not optional for v2.0, and v2.0 is always told
	// apart by its system params, so Secrets is never mixed here.
	secrets := map[bool]bool{}
	for l := range layouts {
		secrets[l.Secrets] = true
	}
	if len(secrets) > 1 {
		return nil, Lines{}, fmt.Errorf("%w: it looks like %s (%s), lines whose snapshots differ (v2.0 adds the secret list): pass --rw-version", ErrAmbiguousVersion, r, r.Why())
	}
	choices := rwversion.DistinctReplay(r)
	var first *hummockpb.HummockVersion
	var firstErr error
	for i, c := range choices {
		v, err := hummock.Replay(base, deltas, c.Rules)
		if i == 0 {
			first, firstErr, lines.Replay = v, err, c.Name()
			continue
		}
		if (err == nil) != (firstErr == nil) || (err == nil && !proto.Equal(first, v)) {
			return nil, Lines{}, fmt.Errorf("%w: it looks like %s (%s), and its hummock delta log replays differently under %s rules than under %s rules: pass --rw-version with the cluster's release (risingwave --version)",
				ErrAmbiguousVersion, r, r.Why(), choices[0].Name(), c.Name())
		}
	}
	if firstErr != nil {
		return nil, Lines{}, firstErr
	}
	if len(choices) > 1 {
		names := make([]string, len(choices))
		for i, c := range choices {
			names[i] = c.Name()
		}
		lines.Replay = strings.Join(names, ", ") + " (same result)"
	}
	return first, lines, nil
}

// ErrAmbiguousDir means a backup_storage_directory spells two different S3
// keys under the releases that could own it, and nothing tells which.
var ErrAmbiguousDir = errors.New("ambiguous backup_storage_directory")

// DirVerbatim says whether keys under dir use it verbatim: RisingWave v1.x's
// native S3/MinIO client does (src/object_store/src/object/s3.rs; storage.rs
// format!("{}/manifest.json", dir), so "backup/" is "backup//manifest.json"),
// OpenDAL normalises (fs:// in every release, S3/MinIO from v2.0, where
// use_opendal() defaults to true). v is the cluster's release when known;
// otherwise, when the two spellings differ, the one whose manifest exists
// wins, and both or neither is ErrAmbiguousDir.
func DirVerbatim(ctx context.Context, store objstore.Store, dir string, v *rwversion.Version) (bool, error) {
	if sc := store.Scheme(); sc != "s3" && sc != "minio" {
		return false, nil
	}
	norm, verb := NewStorage(store, dir), NewStorageVerbatim(store, dir)
	if norm.ManifestKey() == verb.ManifestKey() {
		return false, nil
	}
	if v != nil {
		return !rwversion.For(*v).Storage.OpenDALS3, nil
	}
	_, errN := store.Stat(ctx, norm.ManifestKey())
	_, errV := store.Stat(ctx, verb.ManifestKey())
	if errN == nil && errV != nil {
		// Some stores (MinIO) refuse "//" in object names outright.
		return false, nil
	}
	for _, e := range []error{errN, errV} {
		if e != nil && !errors.Is(e, objstore.ErrNotFound) {
			return false, fmt.Errorf("look for the manifest of %s: %w", norm, e)
		}
	}
	switch {
	case errN == nil && errV != nil:
		return false, nil
	case errV == nil && errN != nil:
		return true, nil
	}
	state := "neither manifest exists"
	if errN == nil {
		state = "both manifests exist"
	}
	return false, fmt.Errorf("%w %q: RisingWave v1.x's S3/MinIO client uses it verbatim (key %s), v2.0 normalises it (key %s), and %s: pass --rw-version (or --etcd-endpoints) to say which release's keys to use",
		ErrAmbiguousDir, dir, verb.ManifestKey(), norm.ManifestKey(), state)
}

// ReleaseInput is what DetectRelease may read.
type ReleaseInput struct {
	// Etcd is the meta store; nil when only a backup location (or a meta
	// node) was given.
	Etcd *clientv3.Client
	// Hummock holds the checkpoint (DataDir's checkpoint/0); nil, or a
	// checkpoint that cannot be read, leaves the checkpoint's facts out.
	Hummock objstore.Store
	DataDir string
	// ManifestRWVersion is the newest rw_version the cluster's own manifest
	// (stored, or as the meta node reports it) records; "" if none.
	ManifestRWVersion string
	Logger            *slog.Logger
}

// DetectRelease reads what the meta store shows about its release (system
// params, whether subscriptions and secrets exist, the hummock deltas and
// checkpoint) without reading the model lists, and narrows the release
// lines as a backup would. It is the check a command runs before it picks
// a path or writes anything.
func DetectRelease(ctx context.Context, in ReleaseInput) (rwversion.Range, error) {
	e := rwversion.Evidence{CFs: map[string]bool{}, SystemParams: map[string]bool{}, ManifestRWVersion: in.ManifestRWVersion}
	if in.Etcd == nil {
		return rwversion.Detect(e)
	}
	md, err := metastore.ReadHead(ctx, in.Etcd, 0)
	if err != nil {
		return rwversion.Range{}, err
	}
	counts, err := metastore.CountCFs(ctx, in.Etcd, md.Revision, []string{metastore.CFSubscription, metastore.CFSecret})
	if err != nil {
		return rwversion.Range{}, err
	}
	md.Counts = map[string]int{metastore.CFSubscription: counts[0], metastore.CFSecret: counts[1]}
	deltas := make([]*hummockpb.HummockVersionDelta, 0, len(md.HummockDeltas))
	for _, kv := range md.HummockDeltas {
		d, err := hummock.DecodeDelta(kv.Value)
		if err != nil {
			return rwversion.Range{}, fmt.Errorf("hummock delta at cf/hummock_1/%x: %w", kv.Key, err)
		}
		deltas = append(deltas, d)
	}
	var base *hummockpb.HummockVersion
	if in.Hummock != nil {
		cpKey := hummock.CheckpointPath(in.DataDir)
		b, _, err := in.Hummock.Get(ctx, cpKey)
		if err == nil {
			cp, derr := hummock.DecodeCheckpoint(b)
			if derr != nil {
				return rwversion.Range{}, fmt.Errorf("hummock checkpoint %s: %w", cpKey, derr)
			}
			base = cp.GetVersion()
		} else if in.Logger != nil {
			in.Logger.Warn("the hummock checkpoint cannot be read; the release is told from etcd alone", "key", cpKey, "store", in.Hummock.String(), "err", err)
		}
	}
	return rwversion.Detect(Evidence(md, base, deltas, in.ManifestRWVersion))
}

// NewestRWVersion is the rw_version of the manifest's newest format-1 entry
// that records one ("" if none): the cluster ran at least that release.
func NewestRWVersion(m *Manifest) string { return newestRWVersion(m) }
