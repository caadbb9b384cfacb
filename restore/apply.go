package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/internal/progress"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
)

// Apply writes the plan under own's claim (see Claim): every model in
// batched transactions conditional on the claim, the hummock checkpoint,
// then cf/cluster_id. Each step is idempotent, so a rerun after a crash at
// any point completes. The caller reads back, then own.Finish removes the
// marker.
// A checkpoint already at the hummock location is copied into the backup
// location before it is replaced (its key is returned).
func Apply(ctx context.Context, cli *clientv3.Client, own *Owner, hs objstore.Store, backup *metasnap.Storage, plan *Plan, log *slog.Logger) (int, string, error) {
	bar := progress.New("restore", int64(plan.Keys()), "keys")
	defer bar.Finish()
	written := 0
	var last *Group
	for i := range plan.Groups {
		g := &plan.Groups[i]
		if g.Kind == "cluster_id" {
			last = g
			continue
		}
		n, err := putBatched(ctx, cli, own, g, bar)
		written += n
		if err != nil {
			return written, "", fmt.Errorf("write %s: %w (the restore is resumable: run the same command again)", g.Kind, err)
		}
		log.Debug("restored", "kind", g.Kind, "keys", g.N)
	}
	faultpoint.Hit("restore.before-checkpoint")
	// The object store cannot make the upload conditional on the claim:
	// check it just before.
	if err := own.Check(ctx); err != nil {
		return written, "", err
	}
	replaced, err := writeCheckpoint(ctx, hs, backup, plan, log)
	if err != nil {
		return written, "", err
	}
	faultpoint.Hit("restore.after-checkpoint")
	n, err := putBatched(ctx, cli, own, last, bar)
	written += n
	if err != nil {
		return written, replaced, fmt.Errorf("write cluster id: %w", err)
	}
	faultpoint.Hit("restore.before-readback")
	return written, replaced, nil
}

// putBatched streams a group's KVs into transactions within the server's
// limits (txnLimits: operations and bytes; a larger single value goes
// alone), txnParallelism at a time: etcd pipelines concurrent transactions
// through raft, so this beats one-at-a-time. The batches are cut while the
// group is read, so the first write goes out at once and memory holds only
// the batches in flight. Order inside a group does not matter: a restore
// is complete only when cf/cluster_id, written after all groups, is there.
func putBatched(ctx context.Context, cli *clientv3.Client, own *Owner, g *Group, bar *progress.Bar) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lim := limitsOf(cli)
	var (
		mu      sync.Mutex
		written int
		first   error
		wg      sync.WaitGroup
	)
	work := make(chan []KV, txnParallelism)
	for range txnParallelism {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				err := putTxn(ctx, cli, own, b, lim, bar)
				mu.Lock()
				if err != nil && first == nil {
					first = err
					cancel()
				} else if err == nil {
					written += len(b)
				}
				mu.Unlock()
			}
		}()
	}
	// Each batch owns one buffer holding its keys and values: a streamed
	// value is only valid during the callback.
	var (
		batch []KV
		arena []byte
		size  int
	)
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case work <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
		batch, arena, size = nil, nil, 0
		return nil
	}
	err := g.Each(func(kv KV) error {
		sz := len(kv.Key) + len(kv.Value)
		if len(batch) >= lim.maxOps() || (len(batch) > 0 && size+sz > lim.maxBytes()) {
			if err := send(); err != nil {
				return err
			}
		}
		// Buffers grow with what the batch holds (a batch of 128 small
		// rows needs ~40 KiB, not its 1 MiB limit): a fixed 1 MiB per batch
		// made gigabytes of garbage at 1M keys, and the heap's peak (RSS)
		// grew with the store.
		if cap(arena)-len(arena) < len(kv.Value) {
			arena = make([]byte, 0, max(64<<10, len(kv.Value))) // the old one stays with its KVs
		}
		off := len(arena)
		arena = append(arena, kv.Value...)
		batch = append(batch, KV{Key: kv.Key, Value: arena[off:len(arena):len(arena)]})
		size += sz
		return nil
	})
	if err == nil {
		err = send()
	}
	close(work)
	wg.Wait()
	if first == nil && err != nil && !errors.Is(err, context.Canceled) {
		first = err
	}
	if first == nil {
		first = ctx.Err()
	}
	return written, first
}

// txnLimits are the largest transaction a client's server is taken to
// accept: firstTxnOps operations and maxTxnBytes bytes until it refuses
// one, then etcd's default of 128 operations, then half of what it refused
// each time (bytes likewise), so a server with any --max-txn-ops or
// --max-request-bytes is written at the most it takes, learnt once per
// client.
type txnLimits struct{ ops, bytes atomic.Int64 }

var serverTxnLimits sync.Map // *clientv3.Client -> *txnLimits

func limitsOf(cli *clientv3.Client) *txnLimits {
	if l, ok := serverTxnLimits.Load(cli); ok {
		return l.(*txnLimits)
	}
	l := &txnLimits{}
	l.ops.Store(firstTxnOps)
	l.bytes.Store(maxTxnBytes)
	v, _ := serverTxnLimits.LoadOrStore(cli, l)
	return v.(*txnLimits)
}

func (l *txnLimits) maxOps() int   { return int(l.ops.Load()) }
func (l *txnLimits) maxBytes() int { return int(l.bytes.Load()) }

// putTxn writes one batch, conditional on own's claim, in as many
// transactions as the server's limits need. Puts are idempotent, so a
// transaction that failed on a transient etcd error (leader change,
// timeout, member down) is retried a few times before the restore gives
// up, and one refused as too large is sent again split.
func putTxn(ctx context.Context, cli *clientv3.Client, own *Owner, kvs []KV, lim *txnLimits, bar *progress.Bar) error {
	if len(kvs) == 0 {
		return nil
	}
	if n := fitting(kvs, lim); n < len(kvs) {
		for len(kvs) > 0 {
			if err := putTxn(ctx, cli, own, kvs[:n], lim, bar); err != nil {
				return err
			}
			kvs = kvs[n:]
			n = fitting(kvs, lim)
		}
		return nil
	}
	ops := make([]clientv3.Op, len(kvs))
	size := 0
	for i, kv := range kvs {
		// The batch's buffer is never written again: no copy of the value.
		ops[i] = clientv3.OpPut(kv.Key, unsafe.String(unsafe.SliceData(kv.Value), len(kv.Value)))
		size += len(kv.Key) + len(kv.Value)
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt*attempt) * 200 * time.Millisecond):
			}
		}
		var resp *clientv3.TxnResponse
		if resp, err = cli.Txn(ctx).If(own.Cmp()).Then(ops...).Commit(); err == nil {
			if !resp.Succeeded {
				return own.lost()
			}
			bar.Add(int64(len(kvs)), int64(size))
			faultpoint.Hit("restore.after-batch")
			return nil
		}
		switch {
		case errors.Is(err, rpctypes.ErrTooManyOps) && len(kvs) > 1:
			// Refused whole: nothing of it was written.
			lowerOps(lim, len(kvs))
			return putTxn(ctx, cli, own, kvs, lim, bar)
		case tooLarge(err) && len(kvs) > 1:
			lowerBytes(lim, size)
			return putTxn(ctx, cli, own, kvs, lim, bar)
		case tooLarge(err):
			return fmt.Errorf("etcd refused a %d-byte transaction (key %q): raise --max-request-bytes on the target etcd to what the source etcd had: %w", size, kvs[0].Key, err)
		}
		if !transient(err) {
			break
		}
	}
	return err
}

// fitting is how many of kvs (at least one) fit in one transaction.
func fitting(kvs []KV, lim *txnLimits) int {
	ops, limit := lim.maxOps(), lim.maxBytes()
	size := 0
	for i, kv := range kvs {
		size += len(kv.Key) + len(kv.Value)
		if i == ops || i > 0 && size > limit {
			return i
		}
	}
	return len(kvs)
}

func lowerOps(lim *txnLimits, refused int) {
	next := int64(refused / 2)
	if refused > maxTxnOps {
		next = maxTxnOps // etcd's default, then halves
	}
	lowerTo(&lim.ops, next)
}

func lowerBytes(lim *txnLimits, refused int) { lowerTo(&lim.bytes, int64(refused/2)) }

func lowerTo(v *atomic.Int64, next int64) {
	next = max(next, 1)
	for {
		cur := v.Load()
		if cur <= next || v.CompareAndSwap(cur, next) {
			return
		}
	}
}

// tooLarge says whether etcd (or the client's own send limit) refused a
// request for its size.
func tooLarge(err error) bool {
	return errors.Is(err, rpctypes.ErrRequestTooLarge) || strings.Contains(err.Error(), "request is too large") ||
		status.Code(err) == codes.ResourceExhausted && strings.Contains(err.Error(), "larger than max")
}

// transient says whether an etcd error may go away by itself.
func transient(err error) bool {
	switch {
	case errors.Is(err, rpctypes.ErrTimeout), errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail),
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost), errors.Is(err, rpctypes.ErrLeaderChanged),
		errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrTooManyRequests):
		return true
	}
	code := status.Code(err)
	return code == codes.Unavailable || code == codes.DeadlineExceeded
}

// writeCheckpoint uploads HummockVersionCheckpoint{version} (no stale
// objects: full GC clears them, as in RisingWave) to DIR/checkpoint/0.
func writeCheckpoint(ctx context.Context, hs objstore.Store, backup *metasnap.Storage, plan *Plan, log *slog.Logger) (string, error) {
	cp, err := hummock.EncodeCheckpoint(plan.Version)
	if err != nil {
		return "", err
	}
	key := plan.CheckpointKey()
	old, _, err := hs.Get(ctx, key)
	switch {
	case errors.Is(err, objstore.ErrNotFound):
	case err != nil:
		return "", fmt.Errorf("read existing checkpoint %s: %w", key, err)
	case bytes.Equal(old, cp):
		return "", nil // a rerun: already written
	default:
		// Never lose what was there: keep it beside the snapshots.
		saved := backup.Dir + "/replaced-checkpoints/" + time.Now().UTC().Format("20060102T150405.000Z") + "-" + strings.ReplaceAll(strings.Trim(plan.HummockDir, "/"), "/", "_")
		if err := backup.Store.Put(ctx, saved, old); err != nil {
			return "", fmt.Errorf("save the existing checkpoint %s before replacing it: %w", key, err)
		}
		log.Warn("replacing an existing hummock checkpoint; the old one is saved", "checkpoint", key, "saved_to", saved)
		if err := hs.Put(ctx, key, cp); err != nil {
			return saved, fmt.Errorf("write hummock checkpoint %s: %w", key, err)
		}
		return saved, nil
	}
	if err := hs.Put(ctx, key, cp); err != nil {
		return "", fmt.Errorf("write hummock checkpoint %s: %w", key, err)
	}
	return "", nil
}

// VerifyTarget reads everything back: etcd must hold exactly the plan's
// keys and values, and the checkpoint must decode to the snapshot's version.
func VerifyTarget(ctx context.Context, cli *clientv3.Client, hs objstore.Store, plan *Plan) error {
	if err := verifyKeys(ctx, cli, plan); err != nil {
		return err
	}
	b, _, err := hs.Get(ctx, plan.CheckpointKey())
	if err != nil {
		return fmt.Errorf("read-back of checkpoint %s: %w", plan.CheckpointKey(), err)
	}
	cp, err := hummock.DecodeCheckpoint(b)
	if err != nil {
		return fmt.Errorf("read-back of checkpoint %s: %w", plan.CheckpointKey(), err)
	}
	if cp.GetVersion().GetId() != plan.HummockVersionID || len(cp.GetStaleObjects()) != 0 {
		return fmt.Errorf("read-back: checkpoint %s holds version %d, want %d", plan.CheckpointKey(), cp.GetVersion().GetId(), plan.HummockVersionID)
	}
	return nil
}

// verifyKeys is the read-back of etcd: exactly the plan's keys and values.
func verifyKeys(ctx context.Context, cli *clientv3.Client, plan *Plan) error {
	found := 0
	_, err := scanTarget(ctx, cli, plan, func(k, v []byte, match int) error {
		if key := string(k); key == MarkerKey || key == OwnerKey {
			return nil // removed once this read-back passes
		}
		if found == plan.Keys()/2 {
			faultpoint.Hit("restore.during-readback")
		}
		switch match {
		case matchAbsent:
			return fmt.Errorf("unexpected key %q in the target etcd", k)
		case matchDiffers:
			return fmt.Errorf("key %q holds %d bytes that differ from the snapshot's", k, len(v))
		}
		found++
		return nil
	})
	if err != nil {
		return fmt.Errorf("read-back: %w", err)
	}
	if found != plan.Keys() {
		return fmt.Errorf("read-back: the target etcd holds %d of the %d restored keys", found, plan.Keys())
	}
	return nil
}
