package metasnap

import (
	"context"
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

// Delete implements Operator.
func (d *Direct) Delete(ctx context.Context, ids []uint64) (*Manifest, error) {
	return d.Opts.Target.Delete(ctx, ids)
}

// Manifest implements Operator.
func (d *Direct) Manifest(ctx context.Context) (*Manifest, error) {
	m, _, err := d.Opts.Target.ReadManifest(ctx)
	return m, err
}

// Path implements Operator.
func (d *Direct) Path() string { return "direct (etcd + " + d.Opts.Target.String() + ")" }

var _ Operator = (*Direct)(nil)
