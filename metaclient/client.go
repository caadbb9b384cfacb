package metaclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rwsnap/rwsnap/internal/timeouts"
	"github.com/rwsnap/rwsnap/metaclient/backuppb"
	"github.com/rwsnap/rwsnap/metaclient/memberpb"
)

var (
	// ErrUnreachable: nothing answered gRPC at the meta address.
	ErrUnreachable = errors.New("cannot reach the RisingWave meta node")
	// ErrNotMetaNode: a gRPC server answered but lacks the meta services.
	ErrNotMetaNode = errors.New("not a RisingWave v1.x meta node")
	// ErrFollower: the address is a follower whose leader cannot be used.
	ErrFollower = errors.New("the meta node is a follower")
	// ErrNoLeader: the meta members name no leader (election under way).
	ErrNoLeader = errors.New("no meta leader elected")
)

// DialOptions configure Dial.
type DialOptions struct {
	// Addr is the meta address as given (http://host:port or host:port).
	Addr string
	// Source says where Addr came from ("--meta-addr / RW_META_ADDR",
	// "the leader's address in etcd", ...), so errors can say what to fix.
	Source string
	// Timeout bounds each connection attempt and probe; default 5s, the
	// connect timeout of RisingWave's meta client.
	Timeout time.Duration
	// CallTimeout bounds each BackupService call; default 2 minutes.
	CallTimeout time.Duration
	Logger      *slog.Logger
}

// Client is a connection to the meta leader's BackupService.
type Client struct {
	conn        *grpc.ClientConn
	addr        string // host:port of the node serving BackupService
	backup      backuppb.BackupServiceClient
	callTimeout time.Duration
	log         *slog.Logger
}

// Addr is the meta node in use, as http://host:port.
func (c *Client) Addr() string { return URL(c.addr) }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// maxHops bounds leader following: a member names the leader, and the
// leader may have changed once more while we moved to it.
const maxHops = 3

// Dial connects to the meta leader as RisingWave's meta client does
// (meta_client.rs: connect, then force_refresh_leader asks
// MetaMemberService.Members and moves to the member marked leader). Given
// a follower's address it follows to the leader. When the advertised
// leader address is not reachable from here (port forwards, NAT) but the
// given address itself serves BackupService, that address is used.
//
// rwsnap does not register as a worker the way risectl does
// (AddWorkerNode with WORKER_TYPE_RISE_CTL, then DeleteWorkerNode on
// exit): BackupService does not check the caller, and a registration
// left behind by a killed rwsnap would linger in the cluster until its
// heartbeat timeout.
func Dial(ctx context.Context, o DialOptions) (*Client, error) {
	if o.Timeout <= 0 {
		o.Timeout = timeouts.Connect
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = timeouts.Operation
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	src := o.Source
	if src == "" {
		src = "--meta-addr / " + EnvAddr
	}
	addrs, err := ParseAddrs(o.Addr)
	if err != nil {
		return nil, err
	}
	// First contact: the first address that answers, as risectl's
	// try_build_rpc_channel does for an address list.
	var (
		conn   *grpc.ClientConn
		addr   string
		leader string
		tried  []string
		last   error
	)
	for _, a := range addrs {
		c, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("meta address %s: %w", URL(a), err)
		}
		tried = append(tried, URL(a))
		l, err := askLeader(ctx, c, o.Timeout)
		if err == nil {
			conn, addr, leader = c, a, l
			break
		}
		c.Close()
		if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
			return nil, explainFirst(a, src, err)
		}
		last = err
	}
	if conn == nil {
		return nil, rpcError(ErrUnreachable, last, "%s: tried %s (from %s): %s. Set --meta-addr or %s to the meta node's address (as for risectl, e.g. %s)",
			ErrUnreachable, strings.Join(tried, ", "), src, short(last), EnvAddr, DefaultAddr)
	}
	// Follow the leader the members name, as force_refresh_leader does.
	var asked string // the member that named the current leader
	var prev *grpc.ClientConn
	closePrev := func() {
		if prev != nil {
			prev.Close()
			prev = nil
		}
	}
	for hop := 0; ; hop++ {
		if leader == "" {
			conn.Close()
			closePrev()
			return nil, fmt.Errorf("%w: the meta node at %s (from %s) lists members but none is the leader; an election is probably under way, retry in a few seconds", ErrNoLeader, URL(addr), src)
		}
		if sameAddr(leader, addr) {
			closePrev()
			return newClient(conn, addr, o, log), nil
		}
		if hop+1 >= maxHops {
			conn.Close()
			closePrev()
			return nil, fmt.Errorf("%w: meta members kept naming a different leader (last %s); the leadership is changing, retry in a few seconds", ErrNoLeader, URL(leader))
		}
		log.Info("meta node is not the leader; following", "asked", URL(addr), "leader", URL(leader))
		closePrev()
		prev, asked = conn, addr
		next, err := grpc.NewClient(leader, grpc.WithTransportCredentials(insecure.NewCredentials()))
		var nextLeader string
		if err == nil {
			if nextLeader, err = askLeader(ctx, next, o.Timeout); err != nil {
				next.Close()
			}
		}
		if err != nil {
			// If the member we asked serves BackupService itself, it is the
			// leader under another address (e.g. a port forward): use it.
			if servesBackup(ctx, prev, o.Timeout) {
				log.Warn("the meta leader's advertised address does not answer from here; using the given address, which serves the backup service",
					"given", URL(asked), "advertised", URL(leader), "err", short(err))
				return newClient(prev, asked, o, log), nil
			}
			closePrev()
			return nil, fmt.Errorf("%w: %s (from %s) is a follower; its members name %s as the leader, which rwsnap could not reach: %s. Set --meta-addr or %s to an address where the leader answers",
				ErrFollower, URL(asked), src, URL(leader), short(err), EnvAddr)
		}
		conn, addr, leader = next, leader, nextLeader
	}
}

func newClient(conn *grpc.ClientConn, addr string, o DialOptions, log *slog.Logger) *Client {
	return &Client{conn: conn, addr: addr, backup: backuppb.NewBackupServiceClient(conn), callTimeout: o.CallTimeout, log: log}
}

// askLeader returns the leader's host:port per MetaMemberService.Members,
// or "" if no member is marked leader.
func askLeader(ctx context.Context, conn *grpc.ClientConn, timeout time.Duration) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := memberpb.NewMetaMemberServiceClient(conn).Members(cctx, &memberpb.MembersRequest{})
	if err != nil {
		return "", err
	}
	for _, m := range resp.GetMembers() {
		if m.GetIsLeader() && m.GetAddress() != nil {
			return net.JoinHostPort(m.GetAddress().GetHost(), strconv.Itoa(int(m.GetAddress().GetPort()))), nil
		}
	}
	return "", nil
}

// servesBackup probes BackupService with its cheapest call.
func servesBackup(ctx context.Context, conn *grpc.ClientConn, timeout time.Duration) bool {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := backuppb.NewBackupServiceClient(conn).GetMetaSnapshotManifest(cctx, &backuppb.GetMetaSnapshotManifestRequest{})
	return err == nil
}

// explainFirst turns the first contact's failure into what to fix.
func explainFirst(addr, src string, err error) error {
	switch status.Code(err) {
	case codes.Unimplemented:
		return rpcError(ErrNotMetaNode, err, "%s: %s (from %s) answers gRPC but does not serve meta.MetaMemberService, which every RisingWave meta node serves: is this RisingWave v1.x's meta node (default port 5690)? Set --meta-addr or %s to the meta node's address",
			ErrNotMetaNode, URL(addr), src, EnvAddr)
	case codes.Unavailable, codes.DeadlineExceeded:
		return rpcError(ErrUnreachable, err, "%s: tried %s (from %s): %s. Set --meta-addr or %s to the meta node's address (as for risectl, e.g. %s)",
			ErrUnreachable, URL(addr), src, short(err), EnvAddr, DefaultAddr)
	}
	return fmt.Errorf("ask the meta node at %s (from %s) for its leader: %w", URL(addr), src, err)
}

// rpcErr is an error whose text is written for people (without the
// "rpc error: code = ..." noise) but that still matches both its kind
// (errors.Is) and the gRPC status (status.Code) of its cause.
type rpcErr struct {
	text        string
	kind, cause error
}

func (e *rpcErr) Error() string   { return e.text }
func (e *rpcErr) Unwrap() []error { return []error{e.kind, e.cause} }

func rpcError(kind, cause error, format string, args ...any) error {
	return &rpcErr{text: fmt.Sprintf(format, args...), kind: kind, cause: cause}
}

// short is a gRPC error's description without the "rpc error: code = ..."
// wrapping, for one-line messages.
func short(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}

// sameAddr compares host:port addresses, treating localhost and the
// loopback addresses as one host.
func sameAddr(a, b string) bool {
	if a == b {
		return true
	}
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	loop := func(h string) bool { return h == "localhost" || h == "127.0.0.1" || h == "::1" }
	return loop(ha) && loop(hb)
}

// callErr names a failed BackupService call and, for the two failures a
// user can act on, what to do.
func (c *Client) callErr(what string, err error) error {
	switch status.Code(err) {
	case codes.Unimplemented:
		return rpcError(ErrNotMetaNode, err, "%s: %s: %s does not implement backup_service.BackupService (is this RisingWave v1.x's meta leader? followers serve only meta.MetaMemberService): %s",
			what, ErrNotMetaNode, c.Addr(), short(err))
	case codes.Unavailable:
		return rpcError(ErrUnreachable, err, "%s: %s at %s: %s", what, ErrUnreachable, c.Addr(), short(err))
	}
	return rpcError(err, err, "%s (meta node %s): %s", what, c.Addr(), short(err))
}

func (c *Client) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.callTimeout)
}

// BackupMeta starts a backup job on the meta node and returns its id.
func (c *Client) BackupMeta(ctx context.Context, remarks string) (uint64, error) {
	req := &backuppb.BackupMetaRequest{}
	if remarks != "" {
		req.Remarks = &remarks
	}
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := c.backup.BackupMeta(cctx, req)
	if err != nil {
		return 0, c.backupMetaErr(err)
	}
	return resp.GetJobId(), nil
}

// JobStatus is GetBackupJobStatus's answer.
type JobStatus struct {
	ID      uint64
	Status  backuppb.BackupJobStatus
	Message string
}

// JobStatus asks for a job's status (only the meta node's latest job is
// known; others answer NOT_FOUND).
func (c *Client) JobStatus(ctx context.Context, id uint64) (JobStatus, error) {
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := c.backup.GetBackupJobStatus(cctx, &backuppb.GetBackupJobStatusRequest{JobId: id})
	if err != nil {
		return JobStatus{}, c.callErr(fmt.Sprintf("get status of backup job %d", id), err)
	}
	return JobStatus{ID: id, Status: resp.GetJobStatus(), Message: resp.GetMessage()}, nil
}

// DeleteSnapshots asks the meta node to delete snapshots (it ignores ids
// it does not know).
func (c *Client) DeleteSnapshots(ctx context.Context, ids []uint64) error {
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	if _, err := c.backup.DeleteMetaSnapshot(cctx, &backuppb.DeleteMetaSnapshotRequest{SnapshotIds: ids}); err != nil {
		return c.callErr(fmt.Sprintf("delete meta snapshots %v", ids), err)
	}
	return nil
}

// Manifest returns the meta node's cached manifest.
func (c *Client) Manifest(ctx context.Context) (*backuppb.MetaSnapshotManifest, error) {
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := c.backup.GetMetaSnapshotManifest(cctx, &backuppb.GetMetaSnapshotManifestRequest{})
	if err != nil {
		return nil, c.callErr("get the meta snapshot manifest", err)
	}
	if resp.GetManifest() == nil {
		return nil, fmt.Errorf("meta node %s answered GetMetaSnapshotManifest without a manifest", c.Addr())
	}
	return resp.GetManifest(), nil
}
