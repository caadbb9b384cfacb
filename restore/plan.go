// Package restore rebuilds a RisingWave v1.x etcd meta store from a meta
// snapshot, as `risectl meta restore-meta` does, but checking everything
// before the first write, resumable after a crash, and verified afterwards.
package restore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
)

// KV is one etcd key/value to write (full etcd key).
type KV struct {
	Key   string
	Value []byte
}

// Group is the KVs of one model, in write order. Small groups (default cf,
// version stats, params, cluster id) and every group of a snapshot decoded
// whole hold their KVs; the model lists of a streamed snapshot stay in it
// and are read again for each pass (write, checks, read-back), so a
// restore's memory does not grow with the snapshot.
type Group struct {
	Kind string
	KVs  []KV // nil for a streamed group
	N    int  // KVs in the group

	prefix string
	// each streams a group's KVs in snapshot order; kv is only valid
	// during the call.
	each func(fn func(kv KV) error) error
	// index is the group's keys and value hashes in key order when its
	// stream is not (RisingWave writes lists in etcd key order; a snapshot
	// from elsewhere may not be), so the checks can walk it in etcd order.
	index []keySum
	bytes int    // keys and values
	sum   uint64 // xxhash64 of the group's keys and values, for the digest
}

// Each calls fn for every KV of the group in write order; kv (its value)
// is only valid during the call.
func (g *Group) Each(fn func(kv KV) error) error {
	if g.each == nil {
		for _, kv := range g.KVs {
			if err := fn(kv); err != nil {
				return err
			}
		}
		return nil
	}
	return g.each(fn)
}

// ParamChange is a system parameter the restore rewrites.
type ParamChange struct {
	Name, Before, After string
}

// Plan is everything a restore will write, computed before any write.
type Plan struct {
	SnapshotID       uint64
	DefaultCFFrom    uint64 // the newest snapshot, whose id generators are used
	HummockVersionID uint64
	Version          *hummockpb.HummockVersion
	Groups           []Group // in write order; cluster id comes last
	ParamChanges     []ParamChange
	HummockURL       string
	HummockDir       string
	Digest           string // identifies the plan, for resuming

	bytes int
}

// Keys counts the KVs the plan writes.
func (p *Plan) Keys() int {
	n := 0
	for _, g := range p.Groups {
		n += g.N
	}
	return n
}

// Bytes sums keys and values.
func (p *Plan) Bytes() int { return p.bytes }

// All returns every KV in write order, copied into memory: for tests and
// tools, not for restoring (Apply streams the groups).
func (p *Plan) All() ([]KV, error) {
	var out []KV
	for i := range p.Groups {
		err := p.Groups[i].Each(func(kv KV) error {
			out = append(out, KV{Key: kv.Key, Value: bytes.Clone(kv.Value)})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CheckpointKey is where the hummock checkpoint goes.
func (p *Plan) CheckpointKey() string { return hummock.CheckpointPath(p.HummockDir) }

// Describe prints the plan for people (--dry-run).
func (p *Plan) Describe(w io.Writer) {
	fmt.Fprintf(w, "restore snapshot %d (hummock version %d)", p.SnapshotID, p.HummockVersionID)
	if p.DefaultCFFrom != p.SnapshotID {
		fmt.Fprintf(w, ", id generators from newer snapshot %d", p.DefaultCFFrom)
	}
	fmt.Fprintf(w, "\n  %d keys, %d bytes to write:\n", p.Keys(), p.Bytes())
	for _, g := range p.Groups {
		fmt.Fprintf(w, "    %-22s %6d\n", g.Kind, g.N)
	}
	if len(p.ParamChanges) == 0 {
		fmt.Fprintln(w, "  system parameters: as in the snapshot")
	}
	for _, c := range p.ParamChanges {
		fmt.Fprintf(w, "  param %s: %s -> %s\n", c.Name, objstore.RedactText(c.Before), objstore.RedactText(c.After))
	}
	fmt.Fprintf(w, "  hummock checkpoint: %s at %s\n", p.CheckpointKey(), objstore.Redact(p.HummockURL))
}

// PlanOptions are the inputs of BuildPlan beyond the snapshots.
type PlanOptions struct {
	HummockURL               string
	HummockDir               string
	OverwriteHummockEndpoint bool
	OverwriteBackupURL       string
	OverwriteBackupDir       string
}

// BuildPlan derives every etcd key RisingWave v1.x's restore writes from the
// target snapshot, with default_cf taken from newest (nil: the target is
// the newest), checking the id-generator rule and the hummock location.
func BuildPlan(target, newest *metasnap.MetaSnapshot, o PlanOptions) (*Plan, error) {
	m := target.Metadata
	v, err := hummock.DecodeVersion(m.HummockVersion)
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: %w", target.ID, err)
	}
	p := &Plan{SnapshotID: target.ID, DefaultCFFrom: target.ID, HummockVersionID: v.GetId(), Version: v,
		HummockURL: o.HummockURL, HummockDir: o.HummockDir}
	defaultCF := m.DefaultCF
	if newest != nil && newest.ID != target.ID {
		if err := checkNewer(target, newest); err != nil {
			return nil, err
		}
		defaultCF = newest.Metadata.DefaultCF
		p.DefaultCFFrom = newest.ID
	}
	params, err := planParams(target, o, p)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	add := func(kind, prefix string, kvs []KV) {
		p.Groups = append(p.Groups, Group{Kind: kind, KVs: kvs, N: len(kvs), prefix: prefix})
	}
	kvs := make([]KV, len(defaultCF))
	for i, kv := range defaultCF {
		kvs[i] = KV{Key: string(metastore.EtcdKey(metastore.CFDefault, kv.Key)), Value: kv.Value}
	}
	add("default_cf", metastore.Prefix(metastore.CFDefault), kvs)
	add("version_stats", metastore.Prefix(metastore.CFVersionStats), []KV{{Key: string(metastore.EtcdKey(metastore.CFVersionStats, metastore.U64Key(0))), Value: m.VersionStats}})
	models := []struct {
		kind string
		cf   string
		sec  metasnap.Section
	}{
		{"compaction_groups", metastore.CFCompactionGroup, metasnap.SecCompactionGroups},
		{"table_fragments", metastore.CFTableFragments, metasnap.SecTableFragments},
		{"user_info", metastore.CFUserInfo, metasnap.SecUserInfo},
		{"database", metastore.CFDatabase, metasnap.SecDatabases},
		{"schema", metastore.CFSchema, metasnap.SecSchemas},
		{"table", metastore.CFTable, metasnap.SecTables},
		{"index", metastore.CFIndex, metasnap.SecIndexes},
		{"sink", metastore.CFSink, metasnap.SecSinks},
		{"view", metastore.CFView, metasnap.SecViews},
		{"source", metastore.CFSource, metasnap.SecSources},
		{"function", metastore.CFFunction, metasnap.SecFunctions},
		{"connection", metastore.CFConnection, metasnap.SecConnections},
		{"subscription", metastore.CFSubscription, metasnap.SecSubscriptions},
		// v2.0.x (restore_impl/v1.rs@v2.0.1:202). The values are ciphertext
		// under the meta node's secret-store key, which must travel apart.
		{"secret", metastore.CFSecret, metasnap.SecSecrets},
	}
	for _, model := range models {
		g, err := planModel(target, model.kind, model.cf, model.sec)
		if err != nil {
			return nil, err
		}
		p.Groups = append(p.Groups, g)
	}
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	kvs = make([]KV, 0, len(names))
	for _, n := range names {
		kvs = append(kvs, KV{Key: string(metastore.EtcdKey(metastore.CFSystemParams, []byte(n))), Value: []byte(params[n])})
	}
	add("system_params", metastore.Prefix(metastore.CFSystemParams), kvs)
	// cf/cluster_id last: a meta node treats its absence as a first launch.
	cid := string(metastore.EtcdKey(metastore.CFClusterID, []byte(metastore.ClusterIDKey)))
	add("cluster_id", cid, []KV{{Key: cid, Value: []byte(m.ClusterID)}})
	// The digest names the plan (for resuming): every group's kind, size
	// and the xxhash64 of its keys and values, then the hummock version.
	// One pass over the values, no per-key formatting.
	for i := range p.Groups {
		g := &p.Groups[i]
		if g.each == nil {
			g.index = indexOf(g.KVs)
			gh := xxhash.New()
			var lb [8]byte
			for _, kv := range g.KVs {
				binary.LittleEndian.PutUint32(lb[:4], uint32(len(kv.Key)))
				binary.LittleEndian.PutUint32(lb[4:], uint32(len(kv.Value)))
				gh.Write(lb[:])
				gh.WriteString(kv.Key)
				gh.Write(kv.Value)
				g.bytes += len(kv.Key) + len(kv.Value)
			}
			g.sum = gh.Sum64()
		}
		p.bytes += g.bytes
		fmt.Fprintf(h, "%s:%d:%016x;", g.Kind, g.N, g.sum)
	}
	h.Write(m.HummockVersion)
	p.Digest = hex.EncodeToString(h.Sum(nil))
	return p, nil
}

// planModel plans one model list: one pass over its messages checks that
// every one is a protobuf message with an id (its field 1: id, table_id or
// group id), that no id repeats, and whether the derived keys come in etcd
// key order (then the checks stream the list; otherwise they walk a sorted
// index of keys and value hashes of this group alone).
func planModel(target *metasnap.MetaSnapshot, kind, cf string, sec metasnap.Section) (Group, error) {
	g := Group{Kind: kind, N: target.Count(sec), prefix: metastore.Prefix(cf)}
	keyOf := func(i int, msg []byte) (string, error) {
		id, ok := metastore.DecodeU64Key(msg)
		if !ok {
			return "", fmt.Errorf("snapshot %d: %s #%d is not a valid protobuf message", target.ID, kind, i)
		}
		return string(metastore.EtcdKey(cf, metastore.U64Key(id))), nil
	}
	g.each = func(fn func(kv KV) error) error {
		return target.Each(sec, func(i int, msg []byte) error {
			k, err := keyOf(i, msg)
			if err != nil {
				return err
			}
			return fn(KV{Key: k, Value: msg})
		})
	}
	// One pass: validity, key order, the digest's hash and the byte count.
	gh := xxhash.New()
	var lb [8]byte
	prev, sorted := "", true
	err := g.each(func(kv KV) error {
		if kv.Key <= prev && prev != "" {
			sorted = false
		}
		prev = kv.Key
		binary.LittleEndian.PutUint32(lb[:4], uint32(len(kv.Key)))
		binary.LittleEndian.PutUint32(lb[4:], uint32(len(kv.Value)))
		gh.Write(lb[:])
		gh.WriteString(kv.Key)
		gh.Write(kv.Value)
		g.bytes += len(kv.Key) + len(kv.Value)
		return nil
	})
	if err != nil {
		return g, err
	}
	g.sum = gh.Sum64()
	if sorted {
		return g, nil // keys strictly ascending: no id repeats
	}
	// Out of key order: index this group (keys and value hashes) once.
	index := make([]keySum, 0, g.N)
	if err := g.each(func(kv KV) error {
		index = append(index, keySum{key: kv.Key, sum: xxhash.Sum64(kv.Value), n: len(kv.Value)})
		return nil
	}); err != nil {
		return g, err
	}
	sortIndex(index)
	for i := 1; i < len(index); i++ {
		if index[i].key == index[i-1].key {
			id, _ := metastore.DecodeU64Key([]byte(strings.TrimPrefix(index[i].key, g.prefix)))
			return g, fmt.Errorf("snapshot %d: two %s entries with id %d", target.ID, kind, id)
		}
	}
	g.index = index
	return g, nil
}

// checkNewer applies RisingWave's rule for id generators (restore_impl v1):
// every default-cf key of the target must exist in the newest snapshot with
// a value not smaller byte-wise, so SST object ids never go backwards.
func checkNewer(target, newest *metasnap.MetaSnapshot) error {
	have := make(map[string][]byte, len(newest.Metadata.DefaultCF))
	for _, kv := range newest.Metadata.DefaultCF {
		have[string(kv.Key)] = kv.Value
	}
	for _, kv := range target.Metadata.DefaultCF {
		nv, ok := have[string(kv.Key)]
		if !ok {
			return fmt.Errorf("newest snapshot %d lacks default-cf key %q that snapshot %d has (violates the superset requirement for id generators); delete the newer snapshot or restore it instead", newest.ID, kv.Key, target.ID)
		}
		if bytes.Compare(nv, kv.Value) < 0 {
			return fmt.Errorf("newest snapshot %d has a smaller %q (%x) than snapshot %d (%x) (violates the monotonicity requirement for id generators)", newest.ID, kv.Key, nv, target.ID, kv.Value)
		}
	}
	return nil
}

// planParams checks (or, with the overwrite flags, rewrites) the hummock
// and backup location params.
func planParams(target *metasnap.MetaSnapshot, o PlanOptions, p *Plan) (map[string]string, error) {
	sp, err := metastore.DecodeSystemParams(target.Metadata.SystemParams)
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: %w", target.ID, err)
	}
	params := metastore.SystemParamsToKV(sp)
	wantStore := "hummock+" + o.HummockURL
	if !o.OverwriteHummockEndpoint {
		got := params[metastore.ParamStateStore]
		if rest, ok := strings.CutPrefix(got, "hummock+"); !ok || !metasnap.SameURL(rest, o.HummockURL) {
			return nil, fmt.Errorf("storage_url mismatch: the snapshot's state_store is %q but --hummock-storage-url is %q: point --hummock-storage-url at the cluster's state store, or move the cluster with --overwrite-hummock-storage-endpoint --overwrite-backup-storage-url URL --overwrite-backup-storage-directory DIR",
				objstore.RedactText(got), objstore.Redact(o.HummockURL))
		}
		if got := params[metastore.ParamDataDirectory]; got != o.HummockDir {
			return nil, fmt.Errorf("storage_directory mismatch: the snapshot's data_directory is %q but --hummock-storage-directory is %q", got, o.HummockDir)
		}
		return params, nil
	}
	set := func(name, value string) {
		if params[name] != value {
			p.ParamChanges = append(p.ParamChanges, ParamChange{Name: name, Before: params[name], After: value})
			params[name] = value
		}
	}
	set(metastore.ParamStateStore, wantStore)
	set(metastore.ParamDataDirectory, o.HummockDir)
	set(metastore.ParamBackupStorageURL, o.OverwriteBackupURL)
	set(metastore.ParamBackupStorageDirectory, o.OverwriteBackupDir)
	return params, nil
}

// keySum is a key with its value's length and xxhash64.
type keySum struct {
	key string
	sum uint64
	n   int
}

func indexOf(kvs []KV) []keySum {
	out := make([]keySum, len(kvs))
	for i, kv := range kvs {
		out[i] = keySum{key: kv.Key, sum: xxhash.Sum64(kv.Value), n: len(kv.Value)}
	}
	sortIndex(out)
	return out
}

func sortIndex(ks []keySum) {
	slices.SortFunc(ks, func(a, b keySum) int { return strings.Compare(a.key, b.key) })
}

// How a key etcd holds matches the plan (scanTarget).
const (
	matchEqual = iota
	matchDiffers
	matchAbsent
)

// sorted yields every KV of the plan as a keySum in etcd key order: the
// groups by their prefix (column families are disjoint key ranges), each
// from its index or, when its list is in key order, streamed from the
// snapshot. Nothing is held but one group's index, if any.
func (p *Plan) sorted(yield func(keySum) bool) error {
	order := make([]*Group, len(p.Groups))
	for i := range p.Groups {
		order[i] = &p.Groups[i]
	}
	slices.SortStableFunc(order, func(a, b *Group) int { return strings.Compare(a.prefix, b.prefix) })
	last := ""
	stop := errors.New("stop")
	for _, g := range order {
		if g.index != nil || g.each == nil {
			for _, ks := range g.index {
				if ks.key <= last && last != "" {
					return fmt.Errorf("restore plan: %s key %q out of order", g.Kind, ks.key)
				}
				last = ks.key
				if !yield(ks) {
					return nil
				}
			}
			continue
		}
		err := g.each(func(kv KV) error {
			if kv.Key <= last && last != "" {
				return fmt.Errorf("restore plan: %s key %q out of order", g.Kind, kv.Key)
			}
			last = kv.Key
			if !yield(keySum{key: kv.Key, sum: xxhash.Sum64(kv.Value), n: len(kv.Value)}) {
				return stop
			}
			return nil
		})
		if errors.Is(err, stop) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}
