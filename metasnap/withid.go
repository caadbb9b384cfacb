package metasnap

import (
	"bytes"
	"context"
	"log/slog"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/metastore"
)

// BuildSnapshot reads the meta store exactly as Backup does (checkpoint,
// one etcd revision, delta replay) and returns the encoded snapshot object
// and its manifest entry for an id the caller already holds, writing
// nothing. A simulated meta node uses it: its ids come from its own
// preallocated block and it writes its cached manifest itself. Only Etcd,
// Hummock, DataDir, Remarks, Attempts and Logger of opts are used.
func BuildSnapshot(ctx context.Context, opts BackupOptions, id uint64) ([]byte, SnapshotMetadata, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	chunks, entry, _, _, err := buildSnapshot(ctx, opts, id, log)
	return bytes.Join(chunks, nil), entry, err
}

// buildSnapshot is the read-and-encode half of a backup; the encoding
// references the values read from etcd (EncodeChunks).
func buildSnapshot(ctx context.Context, opts BackupOptions, id uint64, log *slog.Logger) ([][]byte, SnapshotMetadata, *metastore.Metadata, Lines, error) {
	snap, version, md, lines, err := readConsistent(ctx, opts, id, log)
	if err != nil {
		return nil, SnapshotMetadata{}, nil, Lines{}, err
	}
	log.Info("meta store read as RisingWave "+lines.Range.String(), "replay_rules", lines.Replay, "why", lines.Range.Why())
	entry := SnapshotMetadata{
		ID:                id,
		HummockVersionID:  version.GetId(),
		SSTs:              hummock.ObjectIDs(version),
		MaxCommittedEpoch: version.GetMaxCommittedEpoch(),
		SafeEpoch:         version.GetSafeEpoch(),
		FormatVersion:     FormatV1,
		StateTableInfo:    stateTableInfo(version),
	}
	if opts.Remarks != "" {
		r := opts.Remarks
		entry.Remarks = &r
	}
	return snap.EncodeChunks(), entry, md, lines, nil
}
