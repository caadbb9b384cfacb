package metasnap

import (
	"bytes"
	"context"
	"log/slog"
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
	rd, err := readConsistent(ctx, opts, id, log)
	if err != nil {
		return nil, SnapshotMetadata{}, err
	}
	defer rd.close()
	defer rd.bar.Finish()
	log.Info("meta store read as RisingWave "+rd.lines.Range.String(), "replay_rules", rd.lines.Replay, "why", rd.lines.Range.Why())
	var buf bytes.Buffer
	if _, _, err := WriteSnapshot(&buf, id, rd.body); err != nil {
		return nil, SnapshotMetadata{}, err
	}
	return buf.Bytes(), rd.entry, nil
}

// ReadAsBackup reads the meta store as Backup would (the checkpoint, etcd
// at one revision, the replay under the detected release's rules, every
// refusal included) without allocating an id or writing anything: what a
// direct backup-meta --dry-run checks. remarks are checked as a backup's.
func ReadAsBackup(ctx context.Context, opts BackupOptions) (Lines, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.OwnLocation && opts.ManifestRWVersion == "" && opts.Target != nil {
		if m, _, err := opts.Target.ReadManifest(ctx); err == nil {
			opts.ManifestRWVersion = newestRWVersion(m)
		}
	}
	rd, err := readConsistent(ctx, opts, 0, log)
	if err != nil {
		return Lines{}, err
	}
	rd.close()
	rd.bar.Finish()
	return rd.lines, nil
}
