package metasnap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/objstore"
)

// ErrSnapshotNotFound means an id is not in the manifest.
var ErrSnapshotNotFound = errors.New("snapshot not found")

// MaxSnapshots is RisingWave's MAX_META_SNAPSHOT_NUM: a meta node refuses a
// new backup job when MORE than that many snapshots exist (backup_manager.rs
// start_backup_job, `current_number > MAX_META_SNAPSHOT_NUM`, the same in
// v1.0 .. v2.0.7), so a location may hold MaxSnapshots+1. rwsnap applies the
// same rule, inside the manifest compare-and-swap, and warns from
// WarnSnapshots.
const (
	MaxSnapshots  = 100
	WarnSnapshots = 90
)

// Size limits, checked before an object is read (the CLI's
// --max-snapshot-size and --max-manifest-size): a snapshot is streamed, so
// its limit only guards against absurd objects (a sparse file, a misplaced
// dump; etcd's own quota tops out at 8 GiB); a manifest is read into
// memory, as RisingWave does, and even 100 entries pinning 100k SSTs each
// stay far below its limit.
var (
	MaxSnapshotBytes int64 = 8 << 30
	MaxManifestBytes int64 = 1 << 30
)

// casAttempts bounds manifest compare-and-swap retries under contention.
const casAttempts = 32

// Storage is one backup location: an object store plus a directory, laid
// out as RisingWave's ObjectStoreMetaSnapshotStorage (storage.rs).
type Storage struct {
	Store objstore.Store
	Dir   string
	// MayBeNew says the user expects the location may hold no manifest
	// yet: ReadExistingManifest then treats a missing manifest.json as an
	// empty one instead of an error.
	MayBeNew bool

	raw      string // the directory as given, for verbatim keys
	verbatim bool
}

// NewStorage returns the backup location store+dir with the directory
// normalised as OpenDAL does (fs:// in every RisingWave release, S3/MinIO
// from v2.0): no leading or trailing slash, no empty segment.
func NewStorage(store objstore.Store, dir string) *Storage {
	return &Storage{Store: store, Dir: NormalizeDir(dir)}
}

// NewStorageVerbatim is NewStorage for RisingWave v1.x's native S3/MinIO
// client, which puts backup_storage_directory into keys as is
// (storage.rs format!("{}/manifest.json", dir)): "backup/" gives
// "backup//manifest.json".
func NewStorageVerbatim(store objstore.Store, dir string) *Storage {
	s := NewStorage(store, dir)
	s.raw, s.verbatim = dir, true
	return s
}

// NormalizeDir is OpenDAL's normalize_path for a directory.
func NormalizeDir(dir string) string {
	parts := strings.FieldsFunc(dir, func(r rune) bool { return r == '/' })
	return strings.Join(parts, "/")
}

// verbatimHint explains a failure on a verbatim key with an empty segment.
func (s *Storage) verbatimHint() string {
	if !s.verbatim || !strings.Contains(s.ManifestKey(), "//") && !strings.HasPrefix(s.ManifestKey(), "/") {
		return ""
	}
	return fmt.Sprintf(" (RisingWave v1.x's S3/MinIO client puts backup_storage_directory %q into keys verbatim, here %q; a store that refuses such object names, as MinIO does, fails RisingWave's own backups the same way: set backup_storage_directory to %q)",
		s.raw, s.ManifestKey(), s.Dir)
}

// Verbatim says whether keys use the directory as given.
func (s *Storage) Verbatim() bool { return s.verbatim }

func (s *Storage) key(name string) string {
	if s.verbatim {
		return s.raw + "/" + name
	}
	if s.Dir == "" {
		return name
	}
	return s.Dir + "/" + name
}

// ManifestKey is <dir>/manifest.json.
func (s *Storage) ManifestKey() string { return s.key("manifest.json") }

// SnapshotKey is <dir>/<id>.snapshot.
func (s *Storage) SnapshotKey(id uint64) string {
	return s.key(strconv.FormatUint(id, 10) + ".snapshot")
}

// String names the location for messages (secrets redacted).
func (s *Storage) String() string { return s.Store.String() + " directory " + strconv.Quote(s.Dir) }

// ReadManifest returns the manifest and its version tag ("" if absent). A
// missing manifest is an empty one, as in RisingWave.
func (s *Storage) ReadManifest(ctx context.Context) (*Manifest, string, error) {
	b, info, err := objstore.GetLimited(ctx, s.Store, s.ManifestKey(), MaxManifestBytes)
	if errors.Is(err, objstore.ErrNotFound) {
		return &Manifest{SnapshotMetadata: []SnapshotMetadata{}}, "", nil
	}
	if errors.Is(err, objstore.ErrTooLarge) {
		return nil, "", fmt.Errorf("read manifest of %s: %w (--max-manifest-size)", s, err)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read manifest of %s: %w%s", s, err, s.verbatimHint())
	}
	m, err := DecodeManifest(b)
	if err != nil {
		return nil, "", fmt.Errorf("manifest of %s: %w", s, err)
	}
	return m, info.ETag, nil
}

// ErrNoManifest means a backup location holds no manifest.json.
var ErrNoManifest = errors.New("no manifest.json")

// ReadExistingManifest is ReadManifest for commands that work on snapshots
// already stored (list, verify, delete, prune, copy, restore, time travel):
// a location with no manifest.json is far more often a mistyped URL or
// directory than an empty healthy location, so it is an error naming what
// was looked for and where, unless s.MayBeNew. (Taking a backup into a
// fresh location uses ReadManifest: RisingWave starts from an empty
// manifest there.)
func (s *Storage) ReadExistingManifest(ctx context.Context) (*Manifest, string, error) {
	m, etag, err := s.ReadManifest(ctx)
	if err != nil || etag != "" || s.MayBeNew {
		return m, etag, err
	}
	// ReadManifest's "" tag means absent; make sure (a store that had no
	// tag for an existing object must not turn into an error).
	if _, err := s.Store.Stat(ctx, s.ManifestKey()); err == nil {
		return m, etag, nil
	} else if !errors.Is(err, objstore.ErrNotFound) {
		return nil, "", fmt.Errorf("read manifest of %s: %w", s, err)
	}
	hint := ""
	if found := s.manifestsNearby(ctx); len(found) > 0 {
		hint = fmt.Sprintf(" A manifest.json exists in directory %s of the same storage: pass --backup-storage-directory %s if that is the one.",
			strings.Join(quoteAll(found), ", "), found[0])
	}
	return nil, "", fmt.Errorf("%w at %s: looked for the object %q there and found none.%s This is not a backup location yet: check --backup-storage-url and --backup-storage-directory (or the cluster's backup_storage_url and backup_storage_directory params) for a typo; if the location is new and no snapshot was ever stored there, pass --may-be-new to treat it as empty",
		ErrNoManifest, s, s.ManifestKey(), hint)
}

// manifestsNearby looks for manifest.json in the directories a backup
// location is usually in (RisingWave's default for a cluster is
// <data_directory>/backup, e.g. hummock_001/backup, while risectl's
// restore-meta defaults to backup), with a few Stats rather than a listing
// of what may be a bucket of millions of SSTs.
func (s *Storage) manifestsNearby(ctx context.Context) []string {
	dir := strings.Trim(s.Dir, "/")
	candidates := []string{"backup", "hummock_001/backup", "hummock_002/backup", path.Join(dir, "backup")}
	if parent := path.Dir(dir); parent != "." && parent != "/" {
		candidates = append(candidates, parent)
	}
	var found []string
	for _, c := range candidates {
		if c == dir || slices.Contains(found, c) {
			continue
		}
		if _, err := s.Store.Stat(ctx, path.Join(c, "manifest.json")); err == nil {
			found = append(found, c)
		}
	}
	return found
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strconv.Quote(v)
	}
	return out
}

// UpdateManifest applies fn to the current manifest and writes the result
// with compare-and-swap, retrying with a fresh read when another writer got
// there first, so concurrent writers never lose each other's entries. fn
// must be safe to call more than once (retry is true from the second call:
// the previous write may have landed even though its answer was lost);
// returning errNoChange skips the write.
func (s *Storage) UpdateManifest(ctx context.Context, fn func(m *Manifest, retry bool) error) (*Manifest, error) {
	for attempt := 0; ; attempt++ {
		m, etag, err := s.ReadManifest(ctx)
		if err != nil {
			return nil, err
		}
		if err := fn(m, attempt > 0); err != nil {
			if errors.Is(err, errNoChange) {
				return m, nil
			}
			return nil, err
		}
		m.ManifestID++
		b, err := EncodeManifest(m)
		if err != nil {
			return nil, err
		}
		// Crash tests: killed here, the old manifest must stand (#N: the
		// N-th attempt).
		faultpoint.Hit("metasnap.before-manifest-write")
		_, err = s.Store.PutIf(ctx, s.ManifestKey(), b, etag)
		if err == nil {
			faultpoint.Hit("metasnap.after-manifest-write")
			return m, nil
		}
		if !errors.Is(err, objstore.ErrPreconditionFailed) {
			return nil, fmt.Errorf("write manifest of %s: %w", s, err)
		}
		if attempt+1 >= casAttempts {
			return nil, fmt.Errorf("write manifest of %s: %d concurrent updates in a row, giving up (nothing was lost; retry): %w", s, casAttempts, err)
		}
		// Crash tests: killed between two attempts (a lost race or a lost
		// answer), the storage must still be consistent.
		faultpoint.Hit("metasnap.manifest-retry")
		// Jittered backoff spreads out writers racing on the same manifest.
		d := time.Duration(5+rand.IntN(20*(attempt+1))) * time.Millisecond
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(d):
		}
	}
}

var errNoChange = errors.New("no change")

// ErrTooManySnapshots is RisingWave's refusal of a backup into a location
// that already holds more than MaxSnapshots snapshots.
var ErrTooManySnapshots = errors.New("too many existent meta snapshots")

// CheckCapacity applies RisingWave's cap to a manifest holding n snapshots
// before one more is added: refused when n > MaxSnapshots unless force.
func CheckCapacity(n int, force bool) error {
	if n > MaxSnapshots && !force {
		return fmt.Errorf("%w: %d snapshots already, RisingWave refuses backups when more than %d exist: delete or prune some first, or pass --force", ErrTooManySnapshots, n, MaxSnapshots)
	}
	return nil
}

// CreateOptions tune Create.
type CreateOptions struct {
	// Force adds the entry even past RisingWave's snapshot cap.
	Force bool
	// Also is another pending marker the entry relies on (its data copy's):
	// like the snapshot's own, it must be Held when the entry is written.
	Also *Pending
}

// Create stores a snapshot: the object first, then the manifest entry
// ("update manifest last"), so a crash in between leaves only an orphan
// object that no reader sees and that verify reports. RisingWave's cap is
// enforced (CreateChunksWith to force past it).
func (s *Storage) Create(ctx context.Context, encoded []byte, entry SnapshotMetadata) (*Manifest, error) {
	return s.CreateStream(ctx, entry, CreateOptions{}, func(w io.Writer) error {
		_, err := w.Write(encoded)
		return err
	})
}

// CreateStream is Create for a snapshot written as a stream by write
// (WriteSnapshot): the object is stored only if write succeeds (a failed
// stream leaves nothing behind), then the manifest entry is added. The cap
// is checked on the manifest read before the upload (to spare a doomed
// upload) and again on the manifest each compare-and-swap attempt is about
// to replace, so concurrent backups cannot overshoot it; a backup refused
// there removes the object it uploaded.
func (s *Storage) CreateStream(ctx context.Context, entry SnapshotMetadata, o CreateOptions, write func(w io.Writer) error) (*Manifest, error) {
	m, _, err := s.ReadManifest(ctx)
	if err != nil {
		return nil, err
	}
	if m.Find(entry.ID) != nil {
		return nil, fmt.Errorf("snapshot id %d is already in the manifest of %s", entry.ID, s)
	}
	if err := CheckCapacity(len(m.SnapshotMetadata), o.Force); err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	// The marker goes first, so `prune --orphans` sees this backup while its
	// object is uploaded and not yet in the manifest (issue 11 item 4).
	pending, err := WritePending(ctx, s.Store, s.Dir, PendingMarker{Kind: PendingKindSnapshot, IDs: []uint64{entry.ID}})
	if err != nil {
		return nil, err
	}
	defer pending.Release(ctx)
	if err := objstore.PutStream(ctx, s.Store, s.SnapshotKey(entry.ID), write); err != nil {
		return nil, fmt.Errorf("upload snapshot %d to %s: %w", entry.ID, s, err)
	}
	// Crash tests: killed here, the object is an orphan verify reports.
	faultpoint.Hit("metasnap.after-snapshot-upload")
	m, err = s.UpdateManifest(ctx, func(m *Manifest, retry bool) error {
		if m.Find(entry.ID) != nil {
			if retry {
				// Ids are unique (etcd CAS): this is our own earlier write.
				return errNoChange
			}
			return fmt.Errorf("snapshot id %d appeared in the manifest of %s concurrently", entry.ID, s)
		}
		// A marker that went stale may have let `prune --orphans` (or the
		// data GC) remove what the entry would name: commit nothing then.
		for _, p := range []*Pending{pending, o.Also} {
			if err := p.Held(); err != nil {
				return fmt.Errorf("snapshot %d not added to the manifest of %s: %w", entry.ID, s, err)
			}
		}
		if err := CheckCapacity(len(m.SnapshotMetadata), o.Force); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		m.SnapshotMetadata = append(m.SnapshotMetadata, entry)
		return nil
	})
	if errors.Is(err, ErrTooManySnapshots) {
		// Concurrent backups filled the location after the first check:
		// the object is ours alone (ids are unique), so remove it.
		if derr := s.Store.Delete(ctx, s.SnapshotKey(entry.ID)); derr != nil {
			return nil, fmt.Errorf("%w (and removing the uploaded object %s failed: %v; `rwsnap meta prune --orphans` removes it)", err, s.SnapshotKey(entry.ID), derr)
		}
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w (snapshot object %s was uploaded but is not in the manifest: an orphan RisingWave ignores; `rwsnap meta prune --orphans` removes it)", err, s.SnapshotKey(entry.ID))
	}
	// Never report success for an entry without its object (a cleaner
	// that ignores pending markers may have removed it meanwhile).
	if _, err := s.Store.Stat(ctx, s.SnapshotKey(entry.ID)); err != nil {
		return nil, fmt.Errorf("snapshot %d is in the manifest of %s but its object %s is gone (removed by a cleaner during the backup?); delete the entry and back up again: %w", entry.ID, s, s.SnapshotKey(entry.ID), err)
	}
	return m, nil
}

// Delete removes snapshots: manifest first, then the objects, so a crash
// leaves orphans, never a manifest entry without its object. Every id must
// be in the manifest; otherwise nothing changes.
func (s *Storage) Delete(ctx context.Context, ids []uint64) (*Manifest, error) {
	if len(ids) == 0 {
		return nil, errors.New("no snapshot ids given")
	}
	if _, _, err := s.ReadExistingManifest(ctx); err != nil {
		return nil, err
	}
	want := map[uint64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	m, err := s.UpdateManifest(ctx, func(m *Manifest, retry bool) error {
		var missing []string
		for id := range want {
			// On a retry, a missing id was removed by our own earlier write
			// or by a concurrent delete: either way it is gone.
			if m.Find(id) == nil && !retry {
				missing = append(missing, strconv.FormatUint(id, 10))
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			return fmt.Errorf("%w: %s not in the manifest of %s (it lists %s); nothing deleted",
				ErrSnapshotNotFound, strings.Join(missing, ", "), s, FormatIDs(m.IDs()))
		}
		kept := m.SnapshotMetadata[:0:0]
		for _, e := range m.SnapshotMetadata {
			if !want[e.ID] {
				kept = append(kept, e)
			}
		}
		m.SnapshotMetadata = kept
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Crash tests: killed here, the deleted snapshots' objects are orphans.
	faultpoint.Hit("metasnap.delete.after-manifest")
	keys := make([]string, 0, len(want))
	for id := range want {
		keys = append(keys, s.SnapshotKey(id))
	}
	sort.Strings(keys)
	if err := s.Store.Delete(ctx, keys...); err != nil {
		return m, fmt.Errorf("snapshots removed from the manifest, but deleting their objects failed (they are orphans now; `prune --orphans` removes them): %w", err)
	}
	return m, nil
}

// Load reads, checksums and decodes snapshot id whole, every list in
// memory (once: the object is decoded as it streams in). Commands that do
// not need every list in memory use Scan or OpenSnapshot.
func (s *Storage) Load(ctx context.Context, id uint64) (*MetaSnapshot, int64, error) {
	rc, info, err := s.openObject(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	defer rc.Close()
	snap, err := decodeFrom(rc, info.Size)
	if err != nil {
		return nil, info.Size, fmt.Errorf("snapshot %d at %s: %w", id, s.SnapshotKey(id), err)
	}
	if snap.ID != id {
		return nil, info.Size, fmt.Errorf("snapshot object %s holds id %d, not %d", s.SnapshotKey(id), snap.ID, id)
	}
	return snap, info.Size, nil
}

// openObject opens snapshot id's object after checking its size against
// MaxSnapshotBytes.
func (s *Storage) openObject(ctx context.Context, id uint64) (io.ReadCloser, objstore.ObjectInfo, error) {
	rc, info, err := objstore.OpenLimited(ctx, s.Store, s.SnapshotKey(id), MaxSnapshotBytes)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, info, fmt.Errorf("snapshot %d: object %s missing from %s: %w", id, s.SnapshotKey(id), s.Store, err)
	}
	if errors.Is(err, objstore.ErrTooLarge) {
		return nil, info, fmt.Errorf("snapshot %d: %w (--max-snapshot-size)", id, err)
	}
	if err != nil {
		return nil, info, fmt.Errorf("read snapshot %d from %s: %w", id, s, err)
	}
	return rc, info, nil
}

// Scan streams snapshot id once, checking its checksum and structure and
// keeping only its Head (lists are hashed and skipped): memory stays flat
// whatever the snapshot's size.
func (s *Storage) Scan(ctx context.Context, id uint64) (*Head, error) {
	rc, info, err := s.openObject(ctx, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	h, err := Scan(rc, info.Size, nil)
	if err != nil {
		return nil, fmt.Errorf("snapshot %d at %s: %w", id, s.SnapshotKey(id), err)
	}
	if h.ID != id {
		return nil, fmt.Errorf("snapshot object %s holds id %d, not %d", s.SnapshotKey(id), h.ID, id)
	}
	return h, nil
}

// SnapshotObjects lists the ids of every <id>.snapshot object in the
// directory, in the manifest or not.
func (s *Storage) SnapshotObjects(ctx context.Context) (map[uint64]objstore.ObjectInfo, error) {
	prefix := s.key("")
	objs, err := s.Store.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s, err)
	}
	out := map[uint64]objstore.ObjectInfo{}
	for _, o := range objs {
		name := strings.TrimPrefix(o.Key, prefix)
		if strings.Contains(name, "/") || path.Ext(name) != ".snapshot" {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, ".snapshot"), 10, 64)
		if err != nil {
			continue
		}
		out[id] = o
	}
	return out, nil
}

// Orphans reads the manifest and returns it with the snapshot objects it
// does not name (left by interrupted backups or deletes).
func (s *Storage) Orphans(ctx context.Context) (*Manifest, map[uint64]objstore.ObjectInfo, error) {
	// Without a manifest every snapshot object would look like an orphan.
	m, _, err := s.ReadExistingManifest(ctx)
	if err != nil {
		return nil, nil, err
	}
	objs, err := s.SnapshotObjects(ctx)
	if err != nil {
		return nil, nil, err
	}
	for id := range objs {
		if m.Find(id) != nil {
			delete(objs, id)
		}
	}
	return m, objs, nil
}

// FormatIDs lists snapshot ids for messages: "1001, 1002", or "no snapshots".
func FormatIDs(ids []uint64) string {
	if len(ids) == 0 {
		return "no snapshots"
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(parts, ", ")
}
