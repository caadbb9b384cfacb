package rwsim

import (
	"fmt"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"

	pb "github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/rwversion"
)

// What each simulated release does differently, as its meta node writes
// it (rwsnap's rwversion has the rules for reading it back; rwsim states
// the results directly, so it stays an independent oracle):
//
//	v1.2   v1.7's etcd layout (nothing in the meta store tells v1.0-v1.8
//	         apart), with v1.2's meta node (metanode.Config.RWVersion
//	         "1.2.0"): no FAILED job status (a failed job is NOT_FOUND, no
//	         message: backup_manager.rs@v1.2.0 get_backup_job_status), no
//	         remarks, manifest entries without format_version or remarks.
//	v1.5   v1.7's etcd layout with v1.5's meta node ("1.5.4"): FAILED
//	         exists, remarks do not (BackupMetaRequest has none before
//	         v1.6, and its manifest rewrite drops every entry's remarks).
//	v1.7   member_table_ids kept by GroupMetaChange deltas; gc_object_ids.
//	v1.9   + subscriptions (cf/catalog_subscription) and table change logs:
//	         each commit carries a change_log_delta for every subscribed
//	         table; a table whose subscription is dropped gets none, and
//	         v1.9 drops its log at that commit. gc_object_ids is reserved.
//	v1.10  + state_table_info: every commit sets every table's committed
//	         epoch, new tables and splits go through state_table_info_delta,
//	         member_table_ids are never written (groups are built with
//	         NO_MEMBER_TABLE_IDS), a dropped table keeps its watermarks
//	         (removed only with new ones in the same delta), stale
//	         watermarks are cleared per table at its own safe epoch.
//	v2.0   + secrets (cf/catalog_secret, in the snapshot), v2.0's system
//	         params, the snapshot's trailing secret list.

// Modes are the release lines rwsim simulates.
var Modes = []rwversion.Version{{Major: 1, Minor: 2}, {Major: 1, Minor: 5}, rwversion.V1_7, rwversion.V1_9, rwversion.V1_10, rwversion.V2_0}

// ModeRelease is the rw_version a meta node of the mode writes.
func ModeRelease(v rwversion.Version) string {
	switch v {
	case rwversion.Version{Major: 1, Minor: 2}:
		return "1.2.0"
	case rwversion.Version{Major: 1, Minor: 5}:
		return "1.5.4"
	case rwversion.V1_9:
		return "1.9.2"
	case rwversion.V1_10:
		return "1.10.2"
	case rwversion.V2_0:
		return "2.0.7"
	}
	return "1.7.0"
}

func checkMode(v rwversion.Version) error {
	if !slices.Contains(Modes, v) {
		return fmt.Errorf("rwsim simulates RisingWave v1.2, v1.5, v1.7, v1.9, v1.10 and v2.0, not %s", v)
	}
	return nil
}

func (c *Cluster) v19() bool  { return c.opts.RWVersion.AtLeast(rwversion.V1_9) }
func (c *Cluster) v110() bool { return c.opts.RWVersion.AtLeast(rwversion.V1_10) }
func (c *Cluster) v20() bool  { return c.opts.RWVersion.AtLeast(rwversion.V2_0) }

// membersOf is the group's member tables by rwsim's own record (v1.10 no
// longer keeps them in the version).
func (c *Cluster) membersOf(gid uint64) []uint32 { return c.members[gid] }

// setMembers records the group's members; before v1.10 the version's
// member_table_ids follow.
func (c *Cluster) setMembers(gid uint64, ids []uint32) {
	c.members[gid] = ids
	if !c.v110() {
		if l := c.version.Levels[gid]; l != nil {
			l.MemberTableIds = slices.Clone(ids)
		}
	}
}

// setTableInfo sets table t's state_table_info (v1.10+) in the version and
// in delta d, as an absolute value.
func (c *Cluster) setTableInfo(d *pb.HummockVersionDelta, t uint32, committed, safe, gid uint64) {
	if c.version.StateTableInfo == nil {
		c.version.StateTableInfo = map[uint32]*pb.StateTableInfo{}
	}
	c.version.StateTableInfo[t] = &pb.StateTableInfo{CommittedEpoch: committed, SafeEpoch: safe, CompactionGroupId: gid}
	if d.StateTableInfoDelta == nil {
		d.StateTableInfoDelta = map[uint32]*pb.StateTableInfoDelta{}
	}
	d.StateTableInfoDelta[t] = &pb.StateTableInfoDelta{CommittedEpoch: committed, SafeEpoch: safe, CompactionGroupId: gid}
}

// commitTableInfo: a v1.10 commit sets every table to {epoch, its safe
// epoch, its group}.
func (c *Cluster) commitTableInfo(d *pb.HummockVersionDelta, epoch uint64) {
	if !c.v110() {
		return
	}
	for _, gid := range sortedKeys(c.members) {
		for _, t := range c.members[gid] {
			safe := uint64(0)
			if info := c.version.StateTableInfo[t]; info != nil {
				safe = info.SafeEpoch
			}
			c.setTableInfo(d, t, epoch, safe, gid)
		}
	}
}

// compactTableInfo: compaction raises the tables' safe epochs to
// min(the new global safe epoch, their committed epoch)
// (compaction.rs@v1.10.0:195).
func (c *Cluster) compactTableInfo(d *pb.HummockVersionDelta) {
	if !c.v110() {
		return
	}
	for _, t := range sortedKeys(c.version.StateTableInfo) {
		info := c.version.StateTableInfo[t]
		if s := min(d.SafeEpoch, info.CommittedEpoch); s > info.SafeEpoch {
			c.setTableInfo(d, t, info.CommittedEpoch, s, info.CompactionGroupId)
		}
	}
}

// subscribe creates a subscription on table t (v1.8+ catalog row); from
// the next commit on, its change log is kept (v1.9+).
func (c *Cluster) subscribe(t uint32, name string) {
	id := uint32(c.gens.table.alloc(1)) // subscriptions take catalog ids
	val := msg(nil).uint(1, uint64(id)).str(2, name).
		str(3, fmt.Sprintf("CREATE SUBSCRIPTION %s FROM %d WITH (retention = '1D')", name, t)).
		uint(6, 86400).uint(8, 1).uint(9, 2).uint(10, uint64(t)).uintOpt(11, c.lastEpoch).uintOpt(12, c.lastEpoch).
		uint(13, superUserID).strOpt(15, ModeRelease(c.opts.RWVersion)).strOpt(16, ModeRelease(c.opts.RWVersion)).uint(19, 2)
	c.subscribed[t] = c.putCatalog(metastore.CFSubscription, id, val)
}

// unsubscribe drops t's subscription: the next commit carries no change
// log for t, and the log is dropped there.
func (c *Cluster) unsubscribe(t uint32) {
	c.pending = append(c.pending, kv{key: c.subscribed[t], del: true})
	delete(c.subscribed, t)
}

// changeLogs adds the change_log_delta of a commit at epoch (v1.9+): for
// every subscribed table, the commit's SSTs holding it as new values; logs
// older than the last three commits are truncated. A table with a log but
// no subscription gets no entry, and its log goes (v1.9: any commit;
// v1.10: its committed epoch advanced, which every v1.10 commit does).
func (c *Cluster) changeLogs(d *pb.HummockVersionDelta, epoch uint64, perGroup map[uint64][]*pb.SstableInfo) {
	if !c.v19() || (len(c.subscribed) == 0 && len(c.version.TableChangeLogs) == 0) {
		return
	}
	for t := range c.version.TableChangeLogs {
		if _, ok := c.subscribed[t]; !ok {
			delete(c.version.TableChangeLogs, t)
		}
	}
	if len(c.subscribed) == 0 {
		if len(c.version.TableChangeLogs) == 0 {
			c.version.TableChangeLogs = nil
		}
		return
	}
	c.logEpochs = append(c.logEpochs, epoch)
	var truncate uint64
	if n := len(c.logEpochs); n > 3 {
		truncate = c.logEpochs[n-4]
	}
	d.ChangeLogDelta = map[uint32]*pb.HummockVersionDelta_ChangeLogDelta{}
	if c.version.TableChangeLogs == nil {
		c.version.TableChangeLogs = map[uint32]*pb.TableChangeLog{}
	}
	for _, t := range sortedKeys(c.subscribed) {
		var newValue []*pb.SstableInfo
		for _, gid := range sortedKeys(perGroup) {
			for _, s := range perGroup[gid] {
				if slices.Contains(s.TableIds, t) {
					newValue = append(newValue, proto.Clone(s).(*pb.SstableInfo))
				}
			}
		}
		entry := &pb.EpochNewChangeLog{NewValue: newValue, Epochs: []uint64{epoch}}
		d.ChangeLogDelta[t] = &pb.HummockVersionDelta_ChangeLogDelta{NewLog: proto.Clone(entry).(*pb.EpochNewChangeLog), TruncateEpoch: truncate}
		cl := c.version.TableChangeLogs[t]
		if cl == nil {
			cl = &pb.TableChangeLog{}
			c.version.TableChangeLogs[t] = cl
		}
		cl.ChangeLogs = append(cl.ChangeLogs, entry)
		// Entries are one epoch each: those at or before truncate go.
		cl.ChangeLogs = slices.DeleteFunc(cl.ChangeLogs, func(e *pb.EpochNewChangeLog) bool { return e.Epochs[0] <= truncate })
	}
}

// clearWatermarks applies a delta's safe epochs to the watermarks: before
// v1.10 every table at a raised global safe epoch; from v1.10 each table
// that still has state_table_info at its own safe epoch.
func (c *Cluster) clearWatermarks(d *pb.HummockVersionDelta) {
	v := c.version
	if !c.v110() {
		if d.SafeEpoch != v.SafeEpoch {
			for _, tw := range v.TableWatermarks {
				clearStaleWatermarks(tw, d.SafeEpoch)
			}
		}
		return
	}
	for t, tw := range v.TableWatermarks {
		if info := v.StateTableInfo[t]; info != nil {
			clearStaleWatermarks(tw, info.SafeEpoch)
		}
	}
}

// liveChangeLogObjects are the objects table change logs reference: they
// stay pinned, so never stale.
func (c *Cluster) liveChangeLogObjects(live map[uint64]bool) {
	for _, cl := range c.version.TableChangeLogs {
		for _, e := range cl.ChangeLogs {
			for _, s := range append(slices.Clone(e.OldValue), e.NewValue...) {
				live[s.ObjectId] = true
			}
		}
	}
}

// v20Bootstrap adds what a v2.0 cluster has beyond v1.10: its system
// params (mod.rs@v2.0.1:92-94) and a secret whose value is ciphertext under
// the meta node's secret-store key (src/common/secret/src/encryption.rs).
func (c *Cluster) v20Bootstrap() {
	c.params = append(c.params, [][2]string{{"use_new_object_prefix_strategy", strconv.FormatBool(c.opts.NewObjectPrefixStrategy)}, {"license_key", ""}, {"time_travel_retention_ms", "0"}}...)
	for _, p := range c.params[len(c.params)-3:] {
		c.pending = append(c.pending, kv{key: string(metastore.EtcdKey(metastore.CFSystemParams, []byte(p[0]))), val: []byte(p[1])})
	}
	id := uint32(c.gens.secret.alloc(1))
	cipher := make([]byte, 48) // nonce + AES-GCM ciphertext + tag
	c.rng.Read(cipher)
	c.putCatalog(metastore.CFSecret, id, msg(nil).uint(1, uint64(id)).str(2, "msk_password").uint(3, 1).bytes(4, cipher).uint(5, superUserID).uint(6, 2))
}
