package restore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/faultpoint"
)

// One restore owns a target etcd at a time. Two keys say who:
//
//   - MarkerKey (no lease) names the restore (snapshot, plan digest, the
//     first run's id, host, pid and start). It is taken by compare-and-swap
//     before any other write and removed only after the read-back passes,
//     so a target holding it is a half-finished restore that only the same
//     restore (same plan digest) may complete.
//   - OwnerKey (on an etcd lease the running process keeps alive) names the
//     process writing now. A crashed process's lease expires, so a rerun can
//     take over; a live one's does not, so a second process is refused.
//
// Every write of the restore is a transaction conditional on OwnerKey still
// holding this process's value: a process that lost ownership (its lease
// expired while it was cut off) cannot write another key.

// OwnerKey is the lease-bound key of the process running a restore.
const OwnerKey = "__rwsnap_restore_owner"

// wholeKeyspace is the first key and, as a range end, "every key from
// there": the whole etcd keyspace.
const wholeKeyspace = "\x00"

// ownerTTL is the owner lease's time to live: how long a crashed process on
// another host keeps the target before a rerun may take over (a variable for
// tests).
var ownerTTL = 15 * time.Second

// ErrRestoreInProgress means another restore owns the target.
var ErrRestoreInProgress = errors.New("another restore owns the target etcd")

// ErrLostOwnership means this process's claim on the target was lost.
var ErrLostOwnership = errors.New("this restore lost ownership of the target etcd")

// marker is MarkerKey's value.
type marker struct {
	RestoreID  string `json:"restore_id,omitempty"`
	Host       string `json:"host,omitempty"`
	PID        int    `json:"pid,omitempty"`
	SnapshotID uint64 `json:"snapshot_id"`
	GensFrom   uint64 `json:"id_generators_from,omitempty"`
	Digest     string `json:"plan_digest"`
	Started    string `json:"started"`
}

func (m marker) String() string {
	return fmt.Sprintf("restore %s of snapshot %d (host %s, pid %d, started %s)", orUnknown(m.RestoreID), m.SnapshotID, orUnknown(m.Host), m.PID, orUnknown(m.Started))
}

// owner is OwnerKey's value.
type owner struct {
	RestoreID string `json:"restore_id"`
	Host      string `json:"host"`
	PID       int    `json:"pid"`
	Started   string `json:"started"`
}

func (o owner) String() string {
	return fmt.Sprintf("process %s (host %s, pid %d, started %s)", o.RestoreID, o.Host, o.PID, o.Started)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Owner is this process's claim on a target etcd.
type Owner struct {
	cli    *clientv3.Client
	lease  clientv3.LeaseID
	value  string // OwnerKey's value while we own the target
	me     owner
	stop   context.CancelFunc
	log    *slog.Logger
	Marker marker // the restore this process completes

	// revs are the revisions of this process's successful writes, the
	// claim's first: etcd gives every write transaction exactly one, so
	// when they are contiguous nobody else wrote meanwhile (readBack).
	mu   sync.Mutex
	revs []int64
}

// wrote records the revision of one successful write transaction of ours.
func (o *Owner) wrote(rev int64) {
	o.mu.Lock()
	o.revs = append(o.revs, rev)
	o.mu.Unlock()
}

// writes returns the claim's revision and every revision recorded since,
// sorted.
func (o *Owner) writes() []int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	revs := slices.Clone(o.revs)
	slices.Sort(revs)
	return revs
}

// Cmp is the condition every write of this restore carries.
func (o *Owner) Cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.Value(OwnerKey), "=", o.value)
}

// ID is this run's restore id.
func (o *Owner) ID() string { return o.me.RestoreID }

// newRunID is a unique id for one run.
func newRunID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Claim takes the target for this plan: by compare-and-swap on an absent
// marker (a fresh target, resume=false), or on the marker of this same
// restore with no live owner (resume=true, after a crash). Nothing else is
// written before it succeeds; a loser gets ErrRestoreInProgress naming the
// owner, having written nothing.
func Claim(ctx context.Context, cli *clientv3.Client, plan *Plan, resume bool, log *slog.Logger) (*Owner, error) {
	faultpoint.Hit("restore.before-claim")
	host, _ := os.Hostname()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	me := owner{RestoreID: newRunID(), Host: host, PID: os.Getpid(), Started: now}
	ov, _ := json.Marshal(me)
	o := &Owner{cli: cli, value: string(ov), me: me, log: log}
	lease, err := cli.Grant(ctx, int64(ownerTTL/time.Second))
	if err != nil {
		return nil, fmt.Errorf("claim the target etcd: grant a lease: %w", err)
	}
	o.lease = lease.ID
	// Keep the lease alive from now on: waiting for another owner can take
	// longer than its TTL.
	kctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	o.stop = cancel
	ch, err := cli.KeepAlive(kctx, o.lease)
	if err != nil {
		o.Close()
		return nil, fmt.Errorf("keep the restore's claim alive: %w", err)
	}
	go func() {
		for range ch {
		}
	}()
	release := func() { o.Close() }
	mk := marker{RestoreID: me.RestoreID, Host: host, PID: me.PID, SnapshotID: plan.SnapshotID, GensFrom: plan.DefaultCFFrom, Digest: plan.Digest, Started: now}
	mv, _ := json.Marshal(mk)
	putOwner := clientv3.OpPut(OwnerKey, o.value, clientv3.WithLease(o.lease))
	fresh := false
	for attempt := 0; ; attempt++ {
		cur, curRev, own, ownRev, err := readClaim(ctx, cli)
		if err != nil {
			release()
			return nil, err
		}
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		switch {
		case cur == nil && own != nil:
			release()
			return nil, fmt.Errorf("%w: %s holds it (its marker is not written yet, or was just removed); run the command again once it has finished", ErrRestoreInProgress, own)
		case cur == nil && !resume && attempt > 0 && fresh:
			// The whole-keyspace swap failed with no marker there: keys
			// appeared after the emptiness check, e.g. another restore
			// claimed, completed and removed its marker meanwhile.
			release()
			return nil, changedMeanwhile(ctx, cli, plan, fmt.Errorf("%w: keys appeared in the target etcd after this restore found it empty (another restore completed meanwhile?); this restore wrote nothing: check what the target holds, or use a fresh etcd", ErrNotEmpty))
		case cur == nil && !resume:
			// A fresh target: marker and owner in one swap, on the condition
			// that the whole keyspace is still empty (a range compare: every
			// key's create revision is 0 only when there is no key). The
			// emptiness check ran earlier; a restore that claimed, finished
			// and removed its marker since must not be overwritten.
			cmps = []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(wholeKeyspace), "=", 0).WithRange(wholeKeyspace)}
			ops = []clientv3.Op{clientv3.OpPut(MarkerKey, string(mv)), putOwner}
			o.Marker = mk
			fresh = true
		case cur == nil:
			// The marker we resumed from is gone: the restore it named
			// finished, or someone wiped the target.
			release()
			return nil, changedMeanwhile(ctx, cli, plan, fmt.Errorf("%w: the restore marker vanished while this restore was starting; this restore wrote nothing: run the command again", ErrRestoreInProgress))
		case cur.Digest != plan.Digest:
			release()
			return nil, fmt.Errorf("%w: it holds %s, which is a different restore (plan %s, not this one's %s): a different restore cannot complete it; wipe the target etcd (or rerun that exact restore) and start again",
				ErrRestoreInProgress, cur, short(cur.Digest), short(plan.Digest))
		case own == nil:
			// The same restore, with nobody running it: resume.
			cmps = []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(MarkerKey), "=", curRev), clientv3.Compare(clientv3.CreateRevision(OwnerKey), "=", 0)}
			ops = []clientv3.Op{putOwner}
			o.Marker = *cur
		default:
			// The same restore, and a process holds it.
			if !ownerGone(*own, host) {
				if own.Host != host && attempt == 0 {
					// Maybe a crashed process on another host: its lease
					// expires within ownerTTL of its death.
					log.Warn("the target is held by a process on another host; waiting for it to finish or for its claim to expire", "owner", own.String(), "wait", ownerTTL)
					if err := waitGone(ctx, cli, ownRev); err != nil {
						release()
						return nil, err
					}
					continue
				}
				release()
				return nil, fmt.Errorf("%w: %s is running this same restore of snapshot %d now (first started as restore %s at %s); wait for it, or stop it and run the command again", ErrRestoreInProgress, own, cur.SnapshotID, orUnknown(cur.RestoreID), orUnknown(cur.Started))
			}
			// Its process is dead (same host, pid gone): take over now.
			log.Warn("taking over the target from a restore process that is gone", "owner", own.String())
			cmps = []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(MarkerKey), "=", curRev), clientv3.Compare(clientv3.ModRevision(OwnerKey), "=", ownRev)}
			ops = []clientv3.Op{putOwner}
			o.Marker = *cur
		}
		resp, err := cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			release()
			return nil, fmt.Errorf("claim the target etcd (write the restore marker): %w", err)
		}
		if resp.Succeeded {
			o.wrote(resp.Header.Revision)
			break
		}
		if attempt >= 3 {
			release()
			return nil, fmt.Errorf("%w: the restore marker kept changing while this restore tried to claim the target", ErrRestoreInProgress)
		}
		// Lost the swap: someone claimed first. The next round names
		// them (or resumes, if the marker is this same restore's and its
		// owner is gone).
	}
	faultpoint.Hit("restore.after-marker")
	return o, nil
}

// changedMeanwhile explains a claim refused because the target changed
// since CheckTarget, by checking it again: most often another run of this
// same restore (a race of two identical commands, or one that waited for
// the other's lease) completed it in between. That is said as such, never
// resumed or rewritten; otherwise CheckTarget's own refusal, or err.
func changedMeanwhile(ctx context.Context, cli *clientv3.Client, plan *Plan, err error) error {
	_, cerr := CheckTarget(ctx, cli, plan)
	switch {
	case errors.Is(cerr, ErrAlreadyRestored):
		return fmt.Errorf("another run of this same restore completed it while this one was starting, and this one wrote nothing: %w", cerr)
	case cerr != nil:
		return fmt.Errorf("the target etcd changed while this restore was starting, and this one wrote nothing: %w", cerr)
	}
	return err
}

// refuseLiveOwner refuses, before anything is shown or written, a target
// that a live process is restoring: one on this host whose pid runs, or,
// for a different restore, one anywhere whose claim (lease) holds. Claim
// would refuse the same later; saying so first keeps the loser from
// describing the target as an interrupted restore it would resume. An owner
// on another host running this same restore may have crashed with its
// lease not yet expired: Claim waits for that, so it passes here.
func refuseLiveOwner(ctx context.Context, cli *clientv3.Client, plan *Plan) error {
	cur, _, own, _, err := readClaim(ctx, cli)
	if err != nil || own == nil {
		return err
	}
	host, _ := os.Hostname()
	switch {
	case cur == nil:
		return fmt.Errorf("%w: %s holds it (its marker is not written yet, or was just removed); run the command again once it has finished", ErrRestoreInProgress, own)
	case ownerGone(*own, host):
		return nil // a dead process's restore: this one takes it over
	case cur.Digest != plan.Digest:
		return fmt.Errorf("%w: %s is running %s on it now (plan %s, not this one's %s); wait for it to finish and restore into another etcd, or stop it, wipe the target and start again",
			ErrRestoreInProgress, own, cur, short(cur.Digest), short(plan.Digest))
	case own.Host == host:
		return fmt.Errorf("%w: %s is running this same restore of snapshot %d now (first started as restore %s at %s); wait for it, or stop it and run the command again", ErrRestoreInProgress, own, cur.SnapshotID, orUnknown(cur.RestoreID), orUnknown(cur.Started))
	}
	return nil
}

// readClaim reads the marker and the owner.
func readClaim(ctx context.Context, cli *clientv3.Client) (*marker, int64, *owner, int64, error) {
	resp, err := cli.Txn(ctx).Then(clientv3.OpGet(MarkerKey), clientv3.OpGet(OwnerKey)).Commit()
	if err != nil {
		return nil, 0, nil, 0, fmt.Errorf("read the restore marker: %w", err)
	}
	var m *marker
	var mr int64
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
		m = &marker{}
		if err := json.Unmarshal(kvs[0].Value, m); err != nil {
			return nil, 0, nil, 0, fmt.Errorf("%w: the target holds an unreadable restore marker %q (%v): wipe the target etcd and start again", ErrNotEmpty, MarkerKey, err)
		}
		mr = kvs[0].ModRevision
	}
	var ow *owner
	var or int64
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) == 1 {
		ow = &owner{}
		if json.Unmarshal(kvs[0].Value, ow) != nil {
			ow = &owner{RestoreID: "unreadable"}
		}
		or = kvs[0].ModRevision
	}
	return m, mr, ow, or, nil
}

// ownerGone says whether the owning process is known to be dead: on this
// host, with no process of its pid (signal 0 probes without signalling).
func ownerGone(o owner, host string) bool {
	if o.Host != host || o.PID <= 0 || o.PID == os.Getpid() {
		return false
	}
	err := syscall.Kill(o.PID, 0)
	return errors.Is(err, syscall.ESRCH)
}

// waitGone waits up to ownerTTL (plus a third) for the owner key to be
// deleted (lease expiry) or replaced.
func waitGone(ctx context.Context, cli *clientv3.Client, rev int64) error {
	wctx, cancel := context.WithTimeout(ctx, ownerTTL+ownerTTL/3)
	defer cancel()
	for wr := range cli.Watch(wctx, OwnerKey, clientv3.WithRev(rev+1)) {
		if err := wr.Err(); err != nil {
			return fmt.Errorf("watch the restore owner key: %w", err)
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete || ev.Kv.ModRevision > rev {
				return nil
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil // timed out: the next round refuses, naming the owner
}

// Check confirms this process still owns the target (before writes that
// etcd cannot make conditional, such as the hummock checkpoint).
func (o *Owner) Check(ctx context.Context) error {
	resp, err := o.cli.Get(ctx, OwnerKey)
	if err != nil {
		return fmt.Errorf("check the restore's claim: %w", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != o.value {
		return o.lost()
	}
	return nil
}

func (o *Owner) lost() error {
	return fmt.Errorf("%w (restore %s, pid %d): its claim expired or was taken over, so it stopped writing; run the command again", ErrLostOwnership, o.me.RestoreID, o.me.PID)
}

// Finish removes the marker and the owner key in one conditional
// transaction: the restore is complete.
func (o *Owner) Finish(ctx context.Context) error {
	faultpoint.Hit("restore.before-marker-removal")
	resp, err := o.cli.Txn(ctx).If(o.Cmp()).Then(clientv3.OpDelete(MarkerKey), clientv3.OpDelete(OwnerKey)).Commit()
	if err != nil {
		return fmt.Errorf("remove the restore marker: %w (the restore is complete but marked in progress: run the same command again)", err)
	}
	if !resp.Succeeded {
		return o.lost()
	}
	o.Close()
	return nil
}

// Close stops keeping the claim alive and releases it (the marker stays:
// a rerun of the same restore resumes at once).
func (o *Owner) Close() {
	if o == nil {
		return
	}
	if o.stop != nil {
		o.stop()
		o.stop = nil
	}
	o.revoke()
}

func (o *Owner) revoke() {
	if o == nil || o.lease == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, _ = o.cli.Revoke(ctx, o.lease)
	o.lease = 0
}

func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
