package metasnap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rwsnap/rwsnap/objstore"
)

// Verdict is what rwsnap knows about a location being the cluster's own.
type Verdict int

const (
	// Different: provably another location (another bucket or directory
	// on the same server, or a probe object written there is not seen in
	// the cluster's location).
	Different Verdict = iota
	// Same: provably the cluster's own location (same canonical form, the
	// manifest stored there is the one the live meta node serves, or a
	// probe object written there is seen in the cluster's location).
	Same
	// Unsure: neither could be shown; rwsnap then treats it as the
	// cluster's own (a direct write would be lost if it were).
	Unsure
)

func (v Verdict) String() string {
	switch v {
	case Same:
		return "same"
	case Different:
		return "different"
	}
	return "unsure"
}

// Own says whether to treat the location as the cluster's own: when in
// doubt, yes.
func (v Verdict) Own() bool { return v != Different }

// Identity is the answer of Identify, with the reason for people.
type Identity struct {
	Verdict Verdict
	Reason  string
}

// canonical is a backup location (URL + directory) as what it is.
type canonical struct {
	where objstore.Where
	// dir: for s3/minio the directory with surrounding slashes trimmed
	// (the object key prefix rwsnap and RisingWave use); rawDir as given.
	dir, cleanDir string
}

func canonicalize(ctx context.Context, url, dir string) (canonical, error) {
	w, err := objstore.Locate(ctx, url)
	if err != nil {
		return canonical{}, err
	}
	c := canonical{where: w}
	if w.Scheme == "fs" {
		// The objects are files under PATH/DIR: however the path is split
		// between URL and directory, spelled or linked, the file is one.
		c.where.Path = objstore.CanonicalPath(filepath.Join(w.Path, filepath.FromSlash(dir)))
		return c, nil
	}
	c.dir = strings.Trim(dir, "/")
	c.cleanDir = strings.Trim(path.Clean("/"+dir), "/")
	return c, nil
}

// compare decides from the canonical forms alone.
func compare(a, b canonical) Identity {
	wa, wb := a.where, b.where
	if wa.Scheme == "memory" || wb.Scheme == "memory" {
		if wa.Scheme == wb.Scheme {
			return Identity{Unsure, "both are in-memory stores"}
		}
		return Identity{Different, "one is an in-memory store"}
	}
	if (wa.Scheme == "fs") != (wb.Scheme == "fs") {
		return Identity{Different, "one is a local directory, the other an object store"}
	}
	if wa.Scheme == "fs" {
		if wa.Path == wb.Path {
			return Identity{Same, fmt.Sprintf("both are the directory %s", wa.Path)}
		}
		// Bind mounts and network file systems can join two paths.
		return Identity{Unsure, fmt.Sprintf("the directories %s and %s differ by path", wa.Path, wb.Path)}
	}
	if wa.Bucket != wb.Bucket {
		if wa.SameServer(wb) {
			return Identity{Different, fmt.Sprintf("another bucket (%s, not %s) on the same server", wa.Bucket, wb.Bucket)}
		}
		return Identity{Different, fmt.Sprintf("another bucket (%s, not %s)", wa.Bucket, wb.Bucket)}
	}
	switch {
	case a.dir == b.dir && wa.SameServer(wb):
		return Identity{Same, fmt.Sprintf("the same server, bucket %s and directory %q", wa.Bucket, a.dir)}
	case a.cleanDir != b.cleanDir:
		return Identity{Different, fmt.Sprintf("another directory (%q, not %q) of bucket %s", a.dir, b.dir, wa.Bucket)}
	case a.dir != b.dir:
		// "x//y" and "x/y" are different keys to S3, one directory to
		// some S3-compatible servers.
		return Identity{Unsure, fmt.Sprintf("directories %q and %q differ only in slashes or dots", a.dir, b.dir)}
	}
	return Identity{Unsure, fmt.Sprintf("bucket %s and directory %q at %s:%s and %s:%s, which rwsnap cannot show to be one server or two", wa.Bucket, a.dir, wa.Host, wa.Port, wb.Host, wb.Port)}
}

// CanonicalSame says whether two URL+directory pairs are provably one
// location by their canonical forms alone (no I/O beyond name lookups and
// symlinks).
func CanonicalSame(ctx context.Context, urlA, dirA, urlB, dirB string) bool {
	return canonicalVerdict(ctx, urlA, dirA, urlB, dirB) == Same
}

func canonicalVerdict(ctx context.Context, urlA, dirA, urlB, dirB string) Verdict {
	a, err := canonicalize(ctx, urlA, dirA)
	if err != nil {
		return Unsure
	}
	b, err := canonicalize(ctx, urlB, dirB)
	if err != nil {
		return Unsure
	}
	return compare(a, b).Verdict
}

// IdentifyInput is what Identify looks at.
type IdentifyInput struct {
	// Target is the location a command works on, opened; TargetURL and
	// TargetDir how it was given.
	Target               *Storage
	TargetURL, TargetDir string
	// ClusterURL and ClusterDir are the cluster's backup_storage_url and
	// backup_storage_directory (as derived by ResolveLocations).
	ClusterURL, ClusterDir string
	// MetaManifest, when a meta node is live, returns the manifest it
	// serves (GetMetaSnapshotManifest); nil without one.
	MetaManifest func(ctx context.Context) (*Manifest, error)
	// Probe allows writing (and removing) one small probe object at the
	// target to see whether it appears in the cluster's location. Off for
	// dry runs and reads.
	Probe bool
}

// Identify decides whether the target is the live cluster's own backup
// location by what it is, not how it is spelled: the canonical forms
// (scheme, resolved server and default port, bucket, cleaned and
// symlink-resolved path, however split between URL and directory); then,
// when not settled, the manifest stored at the target compared with the
// one the meta node serves; then, if allowed, a probe object. Every
// command that writes a manifest decides through this function
// (metaclient.Choose calls it).
func Identify(ctx context.Context, in IdentifyInput) Identity {
	if in.ClusterURL == "" {
		return Identity{Different, "the cluster has no backup location"}
	}
	a, errA := canonicalize(ctx, in.TargetURL, in.TargetDir)
	b, errB := canonicalize(ctx, in.ClusterURL, in.ClusterDir)
	id := Identity{Unsure, "a location URL does not parse"}
	if errA == nil && errB == nil {
		id = compare(a, b)
	}
	if id.Verdict != Unsure {
		return id
	}
	if in.Target != nil && in.MetaManifest != nil {
		if same, why := sameManifest(ctx, in.Target, in.MetaManifest); same {
			return Identity{Same, why + " (" + id.Reason + ")"}
		}
	}
	if in.Target != nil && in.Probe {
		v, why := probe(ctx, in.Target, in.ClusterURL, in.ClusterDir)
		if v != Unsure {
			return Identity{v, why}
		}
		id.Reason += "; " + why
	}
	return id
}

// sameManifest: the manifest stored at the target is the one the meta node
// serves (same manifest_id and snapshot ids, at least one change made).
func sameManifest(ctx context.Context, target *Storage, meta func(context.Context) (*Manifest, error)) (bool, string) {
	mm, err := meta(ctx)
	if err != nil || mm.ManifestID == 0 {
		return false, ""
	}
	sm, etag, err := target.ReadManifest(ctx)
	if err != nil || etag == "" {
		return false, ""
	}
	if sm.ManifestID == mm.ManifestID && slices.Equal(sm.IDs(), mm.IDs()) {
		return true, fmt.Sprintf("the manifest stored there is the one the live meta node serves (manifest_id %d)", mm.ManifestID)
	}
	return false, ""
}

// probe writes a uniquely named object at the target and looks for it in
// the cluster's location: the only direct proof that two spellings reach
// the same objects.
func probe(ctx context.Context, target *Storage, clusterURL, clusterDir string) (Verdict, string) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Unsure, "no random probe name: " + err.Error()
	}
	name := ".rwsnap-identity-probe-" + hex.EncodeToString(b[:])
	cs, err := objstore.Open(ctx, clusterURL)
	if err != nil {
		return Unsure, fmt.Sprintf("cannot open the cluster's backup location to compare: %v", err)
	}
	defer cs.Close()
	cluster := NewStorage(cs, clusterDir)
	if err := target.Store.Put(ctx, target.key(name), []byte("rwsnap location identity probe; safe to delete\n")); err != nil {
		return Unsure, fmt.Sprintf("cannot write a probe object at the target: %v", err)
	}
	defer target.Store.Delete(context.WithoutCancel(ctx), target.key(name))
	_, err = cluster.Store.Stat(ctx, cluster.key(name))
	switch {
	case err == nil:
		return Same, fmt.Sprintf("a probe object written there appeared in the cluster's location %s", cluster)
	case errors.Is(err, objstore.ErrNotFound):
		return Different, fmt.Sprintf("a probe object written there did not appear in the cluster's location %s", cluster)
	}
	return Unsure, fmt.Sprintf("cannot look for the probe object in the cluster's location: %v", err)
}
