// Package metanode simulates the backup side of a RisingWave v1.x meta
// node for tests: gRPC backup_service.BackupService and
// meta.MetaMemberService on 127.0.0.1, leadership through etcd's election
// API under "__meta_election_", and the hazards rwsnap must live with
// (src/meta/src/backup_restore/backup_manager.rs, src/storage/backup/src/
// storage.rs, v1.7.0):
//   - the manifest is read once, when the node becomes leader, and every
//     later change writes cached+1 over manifest.json without re-reading
//     it, so anything written there meanwhile is lost;
//   - one backup job at a time ("concurrent backup job is not supported");
//   - only the latest job's status is kept, in memory (others NOT_FOUND);
//   - job ids come from a block preallocated from the backup id generator
//     (default/backup_id_next_generator, +1000 per block);
//   - a follower serves MetaMemberService only.
//
// Snapshots are built with rwsnap's own reader (metasnap.BuildSnapshot),
// which follows the same rules as the meta node's snapshot builder.
package metanode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rwsnap/rwsnap/metaclient/backuppb"
	"github.com/rwsnap/rwsnap/metaclient/memberpb"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"

	"github.com/rwsnap/rwsnap/rwversion"
)

// ElectionKey is META_ELECTION_KEY (src/meta/src/rpc/election/mod.rs).
const ElectionKey = metastore.ElectionPrefix

// idPreallocate is ID_PREALLOCATE_INTERVAL of the meta node's stored id
// generators (src/meta/src/manager/id.rs).
const idPreallocate = 1000

// maxSnapshots is MAX_META_SNAPSHOT_NUM; the check is "len > 100", so a
// 101st snapshot is still accepted, as in v1.x.
const maxSnapshots = 100

// Config configures a simulated meta node.
type Config struct {
	// Etcd is the meta store; the node campaigns on it too.
	Etcd *clientv3.Client
	// Hummock and DataDir are the state store and data_directory.
	Hummock objstore.Store
	DataDir string
	// Backup is the node's backup location (backup_storage_url/_directory).
	Backup *metasnap.Storage
	// ListenAddr defaults to 127.0.0.1:0.
	ListenAddr string
	// LeaseTTL is the election lease in seconds (meta_leader_lease_secs,
	// default 10).
	LeaseTTL int
	// JobDelay keeps each job RUNNING at least this long, so tests see
	// progress and can collide with it.
	JobDelay time.Duration
	Logger   *slog.Logger
	// RWVersion is the release the node writes into manifest entries'
	// rw_version (v1.10+ write RW_VERSION; older ones have no field), e.g.
	// rwsim.ModeRelease(mode); "" writes none.
	RWVersion string
}

// rules are the release's rules (v1.7's when RWVersion is "" or unknown).
func (n *Node) rules() rwversion.Rules {
	if v, err := rwversion.Parse(n.cfg.RWVersion); err == nil && rwversion.Known(v) {
		return rwversion.For(v)
	}
	return rwversion.For(rwversion.V1_7)
}

type jobInfo struct {
	id      uint64
	status  backuppb.BackupJobStatus
	message string
}

// Node is one simulated meta node.
type Node struct {
	cfg  Config
	log  *slog.Logger
	lis  net.Listener
	srv  *grpc.Server
	addr string

	ctx    context.Context
	cancel context.CancelFunc
	sess   *concurrency.Session
	bg     sync.WaitGroup

	elected  chan struct{}
	electErr error // set before elected is closed

	mu       sync.Mutex
	leader   bool
	closed   bool
	manifest *metasnap.Manifest // the cache, loaded once on election
	nextID   uint64
	bound    uint64 // first id not in the preallocated block
	running  uint64 // running job id, 0 if none
	latest   jobInfo
	failNext string
	jobDelay time.Duration
}

// Start listens, serves, and campaigns for leadership in the background
// (a follower until elected; WaitLeader waits).
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Etcd == nil || cfg.Hummock == nil || cfg.Backup == nil {
		return nil, errors.New("metanode: Etcd, Hummock and Backup are required")
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 10
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lis, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("metanode: listen on %s: %w", cfg.ListenAddr, err)
	}
	sess, err := concurrency.NewSession(cfg.Etcd, concurrency.WithTTL(cfg.LeaseTTL))
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("metanode: election lease: %w", err)
	}
	n := &Node{cfg: cfg, log: log, lis: lis, addr: lis.Addr().String(), sess: sess, elected: make(chan struct{}), jobDelay: cfg.JobDelay}
	n.ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	n.srv = grpc.NewServer()
	memberpb.RegisterMetaMemberServiceServer(n.srv, &memberService{n: n})
	backuppb.RegisterBackupServiceServer(n.srv, &backupService{n: n})
	n.bg.Add(2)
	go func() {
		defer n.bg.Done()
		_ = n.srv.Serve(lis)
	}()
	go func() {
		defer n.bg.Done()
		n.campaign()
	}()
	return n, nil
}

// campaign runs the election as election/etcd.rs does (campaign with the
// advertise address as value on a kept-alive lease), then takes over the
// backup manager's state. Losing the lease ends leadership.
func (n *Node) campaign() {
	e := concurrency.NewElection(n.sess, ElectionKey)
	err := e.Campaign(n.ctx, n.addr)
	if err == nil {
		err = n.becomeLeader(n.ctx)
	}
	n.electErr = err
	close(n.elected)
	if err != nil {
		return
	}
	n.log.Info("meta node elected leader", "addr", n.addr)
	select {
	case <-n.ctx.Done():
	case <-n.sess.Done():
		n.log.Warn("meta node lost its election lease; stepping down", "addr", n.addr)
	}
	n.mu.Lock()
	n.leader = false
	n.mu.Unlock()
}

// becomeLeader loads what a v1.x leader loads at start: the manifest (once)
// and a block of backup ids.
func (n *Node) becomeLeader(ctx context.Context) error {
	m, _, err := n.cfg.Backup.ReadManifest(ctx)
	if err != nil {
		return fmt.Errorf("metanode: load manifest: %w", err)
	}
	next, bound, err := n.preallocate(ctx, 0)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.manifest, n.nextID, n.bound, n.leader = m, next, bound, true
	return nil
}

// preallocate reserves a block of ids as StoredIdGenerator does: the stored
// value is the first id of the block (1 if absent), and the end of the block
// is written back unconditionally. from > 0 continues an exhausted block.
func (n *Node) preallocate(ctx context.Context, from uint64) (uint64, uint64, error) {
	key := string(metastore.EtcdKey(metastore.CFDefault, []byte(metastore.BackupIDGeneratorKey)))
	cur := from
	if cur == 0 {
		resp, err := n.cfg.Etcd.Get(ctx, key)
		if err != nil {
			return 0, 0, fmt.Errorf("metanode: read %s: %w", key, err)
		}
		cur = 1
		if len(resp.Kvs) > 0 {
			if len(resp.Kvs[0].Value) != 8 {
				return 0, 0, fmt.Errorf("metanode: %s holds %d bytes, want 8", key, len(resp.Kvs[0].Value))
			}
			cur = binary.BigEndian.Uint64(resp.Kvs[0].Value)
		}
	}
	bound := cur + idPreallocate
	if _, err := n.cfg.Etcd.Put(ctx, key, string(metastore.MemcomparableU64(bound))); err != nil {
		return 0, 0, fmt.Errorf("metanode: write %s: %w", key, err)
	}
	return cur, bound, nil
}

// Addr is the gRPC address (host:port), also the election value.
func (n *Node) Addr() string { return n.addr }

// URL is the address as risectl's RW_META_ADDR takes it.
func (n *Node) URL() string { return "http://" + n.addr }

// WaitLeader waits until the node is elected and ready.
func (n *Node) WaitLeader(ctx context.Context) error {
	select {
	case <-n.elected:
		return n.electErr
	case <-ctx.Done():
		return fmt.Errorf("metanode %s: not elected: %w", n.addr, ctx.Err())
	}
}

// IsLeader reports whether the node currently leads.
func (n *Node) IsLeader() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leader
}

// Manifest is a copy of the node's cached manifest (nil before election).
func (n *Node) Manifest() *metasnap.Manifest {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.manifest == nil {
		return nil
	}
	return cloneManifest(n.manifest)
}

// FailNextJob makes the next backup job fail with msg (as an object store
// or meta store error would).
func (n *Node) FailNextJob(msg string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.failNext = msg
}

// SetJobDelay changes how long later jobs stay RUNNING.
func (n *Node) SetJobDelay(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.jobDelay = d
}

// StartBackup starts a job as BackupMeta does (the node's own backups,
// e.g. from risectl or SQL `BACKUP`) and returns its id.
func (n *Node) StartBackup(remarks string) (uint64, error) {
	var r *string
	if remarks != "" {
		r = &remarks
	}
	return n.startJob(r)
}

// Backup runs one of the node's own backups to completion.
func (n *Node) Backup(ctx context.Context, remarks string) (uint64, error) {
	id, err := n.StartBackup(remarks)
	if err != nil {
		return 0, err
	}
	return id, n.WaitJob(ctx, id)
}

// WaitJob waits for job id to finish and returns its failure, if any.
func (n *Node) WaitJob(ctx context.Context, id uint64) error {
	for {
		j := n.status(id)
		switch j.status {
		case backuppb.BackupJobStatus_SUCCEEDED:
			return nil
		case backuppb.BackupJobStatus_RUNNING:
		default:
			return fmt.Errorf("metanode: job %d: %s %s", id, j.status, j.message)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close stops the node the way a meta node shuts down: stop serving,
// abandon running jobs, revoke the election lease (its key disappears at
// once).
func (n *Node) Close() error {
	return n.stop(true)
}

// Kill stops the node as a crash would: the lease is no longer kept alive
// but not revoked, so its election key stays until the TTL runs out.
func (n *Node) Kill() {
	_ = n.stop(false)
}

func (n *Node) stop(revoke bool) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.leader = false
	n.mu.Unlock()
	n.srv.Stop()
	if revoke {
		n.cancel()
		n.bg.Wait()
		// Session.Close revokes the lease; the election key goes with it.
		if err := n.sess.Close(); err != nil {
			return fmt.Errorf("metanode: revoke election lease: %w", err)
		}
		return nil
	}
	n.sess.Orphan() // stop keep-alives; the lease expires after its TTL
	n.cancel()
	n.bg.Wait()
	return nil
}

func (n *Node) status(id uint64) jobInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.latest.id == id {
		return n.latest
	}
	return jobInfo{id: id, status: backuppb.BackupJobStatus_NOT_FOUND}
}

// errFollower is what a follower answers for BackupService: it serves
// only MetaMemberService and health (server.rs), so gRPC reports the
// service as unknown.
func errFollower() error {
	return status.Error(codes.Unimplemented, "unknown service backup_service.BackupService")
}

// startJob is BackupManager::start_backup_job.
func (n *Node) startJob(remarks *string) (uint64, error) {
	if !n.rules().Risectl.Remarks {
		// BackupMetaRequest has no remarks field before v1.6: the node
		// never sees them (an unknown field), and the job succeeds.
		remarks = nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.leader {
		return 0, errFollower()
	}
	if n.running != 0 {
		return 0, status.Errorf(codes.Internal, "concurrent backup job is not supported: existent job %d", n.running)
	}
	if len(n.manifest.SnapshotMetadata) > maxSnapshots {
		return 0, status.Errorf(codes.Internal, "too many existent meta snapshots, expect at most %d", maxSnapshots)
	}
	if n.nextID >= n.bound {
		next, bound, err := n.preallocate(n.ctx, n.bound)
		if err != nil {
			return 0, status.Error(codes.Internal, err.Error())
		}
		n.nextID, n.bound = next, bound
	}
	id := n.nextID
	n.nextID++
	n.running = id
	n.latest = jobInfo{id: id, status: backuppb.BackupJobStatus_RUNNING}
	fail, delay := n.failNext, n.jobDelay
	n.failNext = ""
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		err := n.runJob(id, remarks, fail, delay)
		n.finishJob(id, err)
	}()
	return id, nil
}

// runJob is BackupWorker: build the snapshot with the job id, upload the
// object, then write the cached manifest + the entry.
func (n *Node) runJob(id uint64, remarks *string, fail string, delay time.Duration) error {
	select {
	case <-n.ctx.Done():
		return n.ctx.Err()
	case <-time.After(delay):
	}
	if fail != "" {
		return errors.New(fail)
	}
	opts := metasnap.BackupOptions{Etcd: n.cfg.Etcd, Hummock: n.cfg.Hummock, DataDir: n.cfg.DataDir, Logger: n.log}
	if remarks != nil {
		opts.Remarks = *remarks
	}
	if v, err := rwversion.Parse(n.cfg.RWVersion); err == nil {
		// The entry in the release's shape, with its RW_VERSION (v1.10+).
		opts.RWVersion, opts.RWRelease = &v, n.cfg.RWVersion
	}
	encoded, entry, err := metasnap.BuildSnapshot(n.ctx, opts, id)
	if err != nil {
		return err
	}
	if err := n.cfg.Backup.Store.Put(n.ctx, n.cfg.Backup.SnapshotKey(id), encoded); err != nil {
		return fmt.Errorf("upload snapshot %d: %w", id, err)
	}
	return n.writeManifest(n.ctx, func(m *metasnap.Manifest) {
		m.SnapshotMetadata = append(m.SnapshotMetadata, entry)
	})
}

// writeManifest is storage.rs's update: clone the cache, bump manifest_id,
// change, upload over whatever is stored, keep as the new cache. Like
// serde, it writes every entry back in the release's own struct: keys it
// does not know (v1.0-v1.5 know no remarks, v1.0-v1.9 no state_table_info
// or rw_version, none knows another tool's extra fields) are dropped.
func (n *Node) writeManifest(ctx context.Context, change func(m *metasnap.Manifest)) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := cloneManifest(n.manifest)
	m.ManifestID++
	change(m)
	shape := n.rules().Manifest
	m.Extra = nil
	for i := range m.SnapshotMetadata {
		m.SnapshotMetadata[i] = m.SnapshotMetadata[i].AsWrittenBy(shape)
	}
	b, err := metasnap.EncodeManifest(m)
	if err != nil {
		return err
	}
	if err := n.cfg.Backup.Store.Put(ctx, n.cfg.Backup.ManifestKey(), b); err != nil {
		return fmt.Errorf("upload manifest: %w", err)
	}
	n.manifest = m
	return nil
}

func (n *Node) finishJob(id uint64, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running == id {
		n.running = 0
	}
	if err != nil {
		msg := fmt.Sprintf("failed backup job %d: %v", id, err)
		n.log.Warn(msg)
		n.latest = jobInfo{id: id, status: backuppb.BackupJobStatus_FAILED, message: msg}
		if !n.rules().Catalog.FailedStatus {
			// v1.0-v1.2 have no FAILED status and no message: a job that
			// is neither running nor in the manifest is NOT_FOUND.
			n.latest = jobInfo{id: id, status: backuppb.BackupJobStatus_NOT_FOUND}
		}
		return
	}
	n.log.Info("succeeded backup job " + strconv.FormatUint(id, 10))
	n.latest = jobInfo{id: id, status: backuppb.BackupJobStatus_SUCCEEDED}
}

// deleteSnapshots is BackupManager::delete_backups: manifest first (ids it
// does not know are ignored), then the objects; no check against a running
// job.
func (n *Node) deleteSnapshots(ctx context.Context, ids []uint64) error {
	drop := map[uint64]bool{}
	for _, id := range ids {
		drop[id] = true
	}
	err := n.writeManifest(ctx, func(m *metasnap.Manifest) {
		kept := m.SnapshotMetadata[:0:0]
		for _, e := range m.SnapshotMetadata {
			if !drop[e.ID] {
				kept = append(kept, e)
			}
		}
		m.SnapshotMetadata = kept
	})
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		keys = append(keys, n.cfg.Backup.SnapshotKey(id))
	}
	return n.cfg.Backup.Store.Delete(ctx, keys...)
}

func cloneManifest(m *metasnap.Manifest) *metasnap.Manifest {
	return &metasnap.Manifest{ManifestID: m.ManifestID, SnapshotMetadata: append([]metasnap.SnapshotMetadata{}, m.SnapshotMetadata...)}
}

// backupService is BackupServiceImpl (src/meta/service/src/backup_service.rs).
type backupService struct {
	backuppb.UnimplementedBackupServiceServer
	n *Node
}

func (s *backupService) BackupMeta(_ context.Context, req *backuppb.BackupMetaRequest) (*backuppb.BackupMetaResponse, error) {
	id, err := s.n.startJob(req.Remarks)
	if err != nil {
		return nil, err
	}
	return &backuppb.BackupMetaResponse{JobId: id}, nil
}

func (s *backupService) GetBackupJobStatus(_ context.Context, req *backuppb.GetBackupJobStatusRequest) (*backuppb.GetBackupJobStatusResponse, error) {
	if !s.n.IsLeader() {
		return nil, errFollower()
	}
	j := s.n.status(req.GetJobId())
	return &backuppb.GetBackupJobStatusResponse{JobId: req.GetJobId(), JobStatus: j.status, Message: j.message}, nil
}

func (s *backupService) DeleteMetaSnapshot(ctx context.Context, req *backuppb.DeleteMetaSnapshotRequest) (*backuppb.DeleteMetaSnapshotResponse, error) {
	if !s.n.IsLeader() {
		return nil, errFollower()
	}
	if err := s.n.deleteSnapshots(ctx, req.GetSnapshotIds()); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &backuppb.DeleteMetaSnapshotResponse{}, nil
}

func (s *backupService) GetMetaSnapshotManifest(context.Context, *backuppb.GetMetaSnapshotManifestRequest) (*backuppb.GetMetaSnapshotManifestResponse, error) {
	if !s.n.IsLeader() {
		return nil, errFollower()
	}
	m := s.n.Manifest()
	shape := s.n.rules().Manifest
	pm := &backuppb.MetaSnapshotManifest{ManifestId: m.ManifestID}
	for _, e := range m.SnapshotMetadata {
		fv := e.FormatVersion
		pe := &backuppb.MetaSnapshotMetadata{
			Id: e.ID, HummockVersionId: e.HummockVersionID, MaxCommittedEpoch: e.MaxCommittedEpoch, SafeEpoch: e.SafeEpoch,
		}
		// The proto grew with the struct: format_version v1.4, remarks
		// v1.6, rw_version v1.10 (proto/backup_service.proto per tag).
		if shape.FormatVersion {
			pe.FormatVersion = &fv
		}
		if shape.Remarks {
			pe.Remarks = e.Remarks
		}
		if shape.RWVersion {
			pe.RwVersion = e.RWVersion
		}
		pm.SnapshotMetadata = append(pm.SnapshotMetadata, pe)
	}
	return &backuppb.GetMetaSnapshotManifestResponse{Manifest: pm}, nil
}

// memberService is MetaMemberServiceImpl: every candidate under the
// election prefix, the leader marked (the lowest create revision, as
// etcd's election leader()).
type memberService struct {
	memberpb.UnimplementedMetaMemberServiceServer
	n *Node
}

func (s *memberService) Members(ctx context.Context, _ *memberpb.MembersRequest) (*memberpb.MembersResponse, error) {
	resp, err := s.n.cfg.Etcd.Get(ctx, ElectionKey, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "get election members: %v", err)
	}
	out := &memberpb.MembersResponse{}
	seen := map[string]bool{}
	for i, kv := range resp.Kvs {
		v := string(kv.Value)
		if seen[v] {
			continue
		}
		seen[v] = true
		host, portText, err := net.SplitHostPort(v)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "member id %q: %v", v, err)
		}
		port, err := strconv.Atoi(portText)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "member id %q: %v", v, err)
		}
		out.Members = append(out.Members, &memberpb.MetaMember{
			Address:  &memberpb.HostAddress{Host: host, Port: int32(port)},
			IsLeader: i == 0,
		})
	}
	return out, nil
}
