// Package restore rebuilds a RisingWave v1.x etcd meta store from a meta
// snapshot, as `risectl meta restore-meta` does, but checking everything
// before the first write, resumable after a crash, and verified afterwards.
package restore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
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

// Group is the KVs of one model, in write order.
type Group struct {
	Kind string
	KVs  []KV
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

	// match is the plan's keys and value hashes in etcd order, built once;
	// it lets the values go once written (see releaseValues).
	match *matcher
	bytes int
}

// Keys counts the KVs the plan writes.
func (p *Plan) Keys() int {
	n := 0
	for _, g := range p.Groups {
		n += len(g.KVs)
	}
	return n
}

// Bytes sums keys and values.
func (p *Plan) Bytes() int { return p.bytes }

// releaseValues drops the plan's references to the snapshot's bytes once
// they are written, so the read-back (which compares hashes) does not keep
// the whole snapshot alive next to the pages it reads.
func (p *Plan) releaseValues() {
	for gi := range p.Groups {
		for i := range p.Groups[gi].KVs {
			p.Groups[gi].KVs[i].Value = nil
		}
	}
}

// All returns every KV in write order.
func (p *Plan) All() []KV {
	var out []KV
	for _, g := range p.Groups {
		out = append(out, g.KVs...)
	}
	return out
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
		fmt.Fprintf(w, "    %-22s %6d\n", g.Kind, len(g.KVs))
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
	add := func(kind string, kvs []KV) {
		p.Groups = append(p.Groups, Group{Kind: kind, KVs: kvs})
	}
	kvs := make([]KV, len(defaultCF))
	for i, kv := range defaultCF {
		kvs[i] = KV{Key: string(metastore.EtcdKey(metastore.CFDefault, kv.Key)), Value: kv.Value}
	}
	add("default_cf", kvs)
	add("version_stats", []KV{{Key: string(metastore.EtcdKey(metastore.CFVersionStats, metastore.U64Key(0))), Value: m.VersionStats}})
	models := []struct {
		kind string
		cf   string
		msgs [][]byte
	}{
		{"compaction_groups", metastore.CFCompactionGroup, m.CompactionGroups},
		{"table_fragments", metastore.CFTableFragments, m.TableFragments},
		{"user_info", metastore.CFUserInfo, m.UserInfo},
		{"database", metastore.CFDatabase, m.Databases},
		{"schema", metastore.CFSchema, m.Schemas},
		{"table", metastore.CFTable, m.Tables},
		{"index", metastore.CFIndex, m.Indexes},
		{"sink", metastore.CFSink, m.Sinks},
		{"view", metastore.CFView, m.Views},
		{"source", metastore.CFSource, m.Sources},
		{"function", metastore.CFFunction, m.Functions},
		{"connection", metastore.CFConnection, m.Connections},
		{"subscription", metastore.CFSubscription, m.Subscriptions},
		// v2.0.x (restore_impl/v1.rs@v2.0.1:202). The values are ciphertext
		// under the meta node's secret-store key, which must travel apart.
		{"secret", metastore.CFSecret, m.Secrets},
	}
	for _, model := range models {
		kvs := make([]KV, 0, len(model.msgs))
		seen := map[uint64]bool{}
		for i, msg := range model.msgs {
			// Every model's key is its field 1: id, table_id or group id.
			id, ok := metastore.DecodeU64Key(msg)
			if !ok {
				return nil, fmt.Errorf("snapshot %d: %s #%d is not a valid protobuf message", target.ID, model.kind, i)
			}
			if seen[id] {
				return nil, fmt.Errorf("snapshot %d: two %s entries with id %d", target.ID, model.kind, id)
			}
			seen[id] = true
			kvs = append(kvs, KV{Key: string(metastore.EtcdKey(model.cf, metastore.U64Key(id))), Value: msg})
		}
		add(model.kind, kvs)
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
	add("system_params", kvs)
	// cf/cluster_id last: a meta node treats its absence as a first launch.
	add("cluster_id", []KV{{Key: string(metastore.EtcdKey(metastore.CFClusterID, []byte(metastore.ClusterIDKey))), Value: []byte(m.ClusterID)}})
	all := p.All()
	h := sha256.New()
	for _, kv := range all {
		fmt.Fprintf(h, "%d:%s%d:", len(kv.Key), kv.Key, len(kv.Value))
		h.Write(kv.Value)
	}
	h.Write(m.HummockVersion)
	p.Digest = hex.EncodeToString(h.Sum(nil))
	for _, kv := range all {
		p.bytes += len(kv.Key) + len(kv.Value)
	}
	p.match = newMatcher(all)
	return p, nil
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

// matcher compares etcd's keys, which arrive in byte order, with the plan
// by walking the plan sorted the same way, comparing value lengths and
// xxhash64s: no map of every key and no copy of every value.
type matcher struct {
	kvs []keySum
}

type keySum struct {
	key string
	sum uint64
	n   int
}

const (
	matchEqual = iota
	matchDiffers
	matchAbsent
)

func newMatcher(kvs []KV) *matcher {
	m := &matcher{kvs: make([]keySum, len(kvs))}
	for i, kv := range kvs {
		m.kvs[i] = keySum{key: kv.Key, sum: xxhash.Sum64(kv.Value), n: len(kv.Value)}
	}
	sort.Slice(m.kvs, func(i, j int) bool { return m.kvs[i].key < m.kvs[j].key })
	return m
}

// walk starts a pass over etcd's keys in ascending order.
func (m *matcher) walk() *matchWalk { return &matchWalk{m: m} }

type matchWalk struct {
	m *matcher
	i int
}

// match must be called with ascending keys.
func (w *matchWalk) match(k, v []byte) int {
	kvs := w.m.kvs
	key := string(k)
	for w.i < len(kvs) && kvs[w.i].key < key {
		w.i++
	}
	if w.i == len(kvs) || kvs[w.i].key != key {
		return matchAbsent
	}
	if kvs[w.i].n != len(v) || kvs[w.i].sum != xxhash.Sum64(v) {
		return matchDiffers
	}
	return matchEqual
}
