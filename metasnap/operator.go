package metasnap

import (
	"context"
	"fmt"

	"github.com/rwsnap/rwsnap/metastore"
)

// Operator changes and reads one backup location. Commands that write a
// location (backup-meta, delete, prune, schedule) go through an Operator so
// the same code works directly on storage (no meta node running) and
// through a live RisingWave meta node, which caches the manifest and must
// be the one to change it.
type Operator interface {
	// Backup takes a snapshot and adds it to the manifest.
	Backup(ctx context.Context, remarks string) (*BackupResult, error)
	// Delete removes snapshots from the manifest, then their objects.
	Delete(ctx context.Context, ids []uint64) (*Manifest, error)
	// Manifest reads the current manifest.
	Manifest(ctx context.Context) (*Manifest, error)
	// Path names how the operator works ("direct" or "meta node at ADDR"),
	// printed so users know which path was taken.
	Path() string
}

// Direct is the Operator that reads etcd and writes storage itself: right
// when no meta node is live, or for a location the meta node does not own.
type Direct struct {
	Opts BackupOptions // Etcd and Hummock may be nil for Delete/Manifest only
}

// Backup implements Operator.
func (d *Direct) Backup(ctx context.Context, remarks string) (*BackupResult, error) {
	o := d.Opts
	o.Remarks = remarks
	return Backup(ctx, o)
}

// Delete implements Operator. Like Backup, it refuses the cluster's own
// location while a meta node is live (unless forced): the meta node would
// re-add the deleted entries from its cached manifest on its next backup.
func (d *Direct) Delete(ctx context.Context, ids []uint64) (*Manifest, error) {
	if d.Opts.Etcd != nil && d.Opts.OwnLocation && !d.Opts.Force {
		leader, err := metastore.FindLeader(ctx, d.Opts.Etcd)
		if err != nil {
			return nil, err
		}
		if leader != nil {
			return nil, fmt.Errorf("%w (%s) and caches the manifest of %s: deleting there directly would be undone by its next backup; delete through the meta node (risectl meta delete-meta-snapshots), or pass --force if it is certainly stopped", ErrLiveLeader, leader.Addr, d.Opts.Target)
		}
	}
	return d.Opts.Target.Delete(ctx, ids)
}

// Manifest implements Operator.
func (d *Direct) Manifest(ctx context.Context) (*Manifest, error) {
	m, _, err := d.Opts.Target.ReadExistingManifest(ctx)
	return m, err
}

// Path implements Operator.
func (d *Direct) Path() string { return "direct (etcd + " + d.Opts.Target.String() + ")" }

var _ Operator = (*Direct)(nil)
