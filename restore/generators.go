package restore

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/rwsnap/rwsnap/metasnap"
)

// Why a restore reads the newest snapshot: RisingWave's restore (LoaderV1 in
// src/meta/src/backup_restore/restore_impl/v1.rs, v1.7 to v2.0.7) replaces
// the restored snapshot's default cf with the newest snapshot's. The
// default cf holds the id generators (SST object ids, backup ids, catalog,
// fragment and actor ids): restored from an older snapshot, the cluster
// would hand out ids again that it already used after that snapshot, and a
// reused SST object id overwrites an object that newer snapshots pin.

// sstGeneratorKey is the default-cf key of the SST object id generator
// (src/meta/src/manager/id.rs: "{category}_id_next_generator").
const sstGeneratorKey = "hummock_ss_table_id_next_generator"

// LoadFrom is Load with the id generators taken from snapshot gensFrom
// instead of the newest (0: the newest, RisingWave's rule). It returns a
// warning to show when the generators do not come from the newest.
func LoadFrom(ctx context.Context, backup *metasnap.Storage, id, gensFrom uint64) (target, gens *metasnap.MetaSnapshot, warning string, err error) {
	if gensFrom == 0 {
		target, gens, err = Load(ctx, backup, id)
		if err != nil && target == nil && gens == nil {
			err = suggestGenerators(ctx, backup, id, err)
		}
		return target, gens, "", err
	}
	m, _, err := backup.ReadManifest(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	e := m.Find(gensFrom)
	switch {
	case e == nil:
		return nil, nil, "", fmt.Errorf("--id-generators-from-snapshot %d: %w: the manifest of %s lists %s", gensFrom, metasnap.ErrSnapshotNotFound, backup, metasnap.FormatIDs(m.IDs()))
	case gensFrom < id:
		return nil, nil, "", fmt.Errorf("--id-generators-from-snapshot %d is older than the restored snapshot %d: its id generators would go back further still; give %d or a newer snapshot", gensFrom, id, id)
	case e.FormatVersion >= metasnap.FormatV2:
		return nil, nil, "", fmt.Errorf("--id-generators-from-snapshot %d: snapshot %d has format_version %d (a SQL meta store's): it has no etcd id generators", gensFrom, gensFrom, e.FormatVersion)
	}
	newestID := slices.Max(m.IDs())
	if gensFrom == newestID {
		target, gens, err = Load(ctx, backup, id)
		return target, gens, "", err
	}
	// Load the target alone (id is the "newest" of a one-entry view), then
	// the chosen source.
	if target, _, err = loadOne(ctx, backup, m, id); err != nil {
		return nil, nil, "", err
	}
	if gensFrom != id {
		if gens, err = backup.LoadHead(ctx, gensFrom); err != nil {
			target.Close()
			return nil, nil, "", fmt.Errorf("--id-generators-from-snapshot %d cannot be read: %w", gensFrom, err)
		}
	}
	src := target
	if gens != nil {
		src = gens
	}
	warning = fmt.Sprintf("the id generators come from snapshot %d, not from the newest snapshot %d as RisingWave's restore takes them: ids the cluster handed out after snapshot %d (SST objects, backups, catalog objects, fragments, actors) may be handed out again by the restored cluster", gensFrom, newestID, gensFrom)
	if at, ok := generatorValue(src, sstGeneratorKey); ok {
		var risk []uint64
		maxSST := uint64(0)
		for _, s := range m.SnapshotMetadata {
			for _, o := range s.SSTs {
				if o >= at {
					maxSST = max(maxSST, o)
					if !slices.Contains(risk, s.ID) {
						risk = append(risk, s.ID)
					}
				}
			}
		}
		if len(risk) > 0 {
			warning += fmt.Sprintf("; the SST id generator restarts at %d while snapshots %s pin SST objects up to %d: the restored cluster may overwrite those objects, so do not restore those snapshots afterwards (or copy them elsewhere first)", at, metasnap.FormatIDs(risk), maxSST)
		}
	}
	return target, gens, warning, nil
}

// loadOne loads snapshot id after Load's manifest checks.
func loadOne(ctx context.Context, backup *metasnap.Storage, m *metasnap.Manifest, id uint64) (*metasnap.MetaSnapshot, bool, error) {
	e := m.Find(id)
	if e == nil {
		return nil, false, fmt.Errorf("%w: snapshot id %d not found in the manifest of %s (it lists %s)", metasnap.ErrSnapshotNotFound, id, backup, metasnap.FormatIDs(m.IDs()))
	}
	if e.FormatVersion >= metasnap.FormatV2 {
		return nil, false, fmt.Errorf("snapshot %d has format_version %d: SQL meta store snapshots are not supported (rwsnap restores etcd meta stores)", id, e.FormatVersion)
	}
	s, err := backup.LoadStream(ctx, id)
	return s, true, err
}

// suggestGenerators adds the way forward to Load's error when the newest
// snapshot is what could not be read: the newest readable snapshot at or
// after the target, to name in --id-generators-from-snapshot.
func suggestGenerators(ctx context.Context, backup *metasnap.Storage, id uint64, loadErr error) error {
	m, _, err := backup.ReadManifest(ctx)
	if err != nil || m.Find(id) == nil {
		return loadErr
	}
	newestID := slices.Max(m.IDs())
	if newestID == id {
		return loadErr
	}
	if _, err := backup.Scan(ctx, id); err != nil {
		return loadErr // the target itself is unreadable
	}
	ids := m.IDs()
	slices.Sort(ids)
	for i := len(ids) - 1; i >= 0 && ids[i] >= id; i-- {
		c := ids[i]
		if c == newestID {
			continue
		}
		if e := m.Find(c); e.FormatVersion >= metasnap.FormatV2 {
			continue
		}
		if c == id {
			break
		}
		if _, err := backup.Scan(ctx, c); err == nil {
			return fmt.Errorf("%w\nRisingWave restores the id generators (SST object ids among them) from the newest snapshot, so that the restored cluster never reuses an id; to restore snapshot %d anyway, take them from the newest readable snapshot with --id-generators-from-snapshot %d (ids handed out after it may be reused: see docs/operations.md)", loadErr, id, c)
		}
	}
	return fmt.Errorf("%w\nRisingWave restores the id generators (SST object ids among them) from the newest snapshot, so that the restored cluster never reuses an id; no newer snapshot is readable: to restore snapshot %d with its own generators, add --id-generators-from-snapshot %d (ids handed out after it may be reused: see docs/operations.md)", loadErr, id, id)
}

// generatorValue reads a memcomparable u64 id generator from a snapshot's
// default cf.
func generatorValue(s *metasnap.MetaSnapshot, key string) (uint64, bool) {
	for _, kv := range s.Metadata.DefaultCF {
		if string(kv.Key) == key && len(kv.Value) == 8 {
			return binary.BigEndian.Uint64(kv.Value), true
		}
	}
	return 0, false
}
