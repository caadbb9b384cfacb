// Package embedetcd runs real etcd servers inside the current process
// (go.etcd.io/etcd/server/v3/embed), on loopback ports, for tests, benchmarks
// and `rwsnap playground`. RisingWave v1.x keeps its meta store in etcd, so
// rwsnap is always exercised against the real server rather than a fake.
//
// This file must not import "testing": the playground command links it into
// the rwsnap binary. The test helper lives in package etcdtest.
package embedetcd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// RootUser is the etcd user created when Config.Auth is set. etcd requires a
// user named "root" with the root role before auth can be enabled.
const RootUser = "root"

// Config describes the cluster to start.
type Config struct {
	// Dir holds one data directory per member (Dir/member-<i>). Required.
	Dir string
	// Members is the cluster size; 0 means 1.
	Members int
	// Auth enables etcd authentication with user "root" and RootPassword.
	Auth bool
	// RootPassword is the password of the root user when Auth is set;
	// empty means "rootpw".
	RootPassword string
	// Logger receives etcd's error-level logs and our own member
	// lifecycle lines; nil keeps everything quiet.
	Logger *slog.Logger
	// QuotaBackendBytes raises etcd's backend size limit (default 2 GiB);
	// benchmarks with a million keys need more.
	QuotaBackendBytes int64
	// MaxTxnOps and MaxRequestBytes set etcd's --max-txn-ops and
	// --max-request-bytes (0: etcd's defaults, 128 and 1.5 MiB).
	MaxTxnOps       uint
	MaxRequestBytes uint
	// UnsafeNoFsync skips fsync, for benchmarks and throwaway playgrounds
	// where durability across power loss does not matter.
	UnsafeNoFsync bool
	// StartTimeout bounds how long Start waits for the cluster to serve;
	// 0 means 30s.
	StartTimeout time.Duration
	// TLS serves clients over TLS (see tls.go); nil means plain http.
	TLS *TLS
}

// Cluster is a running set of embedded etcd members.
type Cluster struct {
	cfg     Config
	log     *slog.Logger
	members []*member

	mu     sync.Mutex
	closed bool
}

type member struct {
	name      string
	dir       string
	peerURL   url.URL
	clientURL url.URL

	mu   sync.Mutex
	etcd *embed.Etcd // nil while stopped
}

// Start starts a new cluster and waits until it serves requests (and, with
// Auth, until root exists and auth is on).
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedetcd: Config.Dir is required")
	}
	if cfg.Members <= 0 {
		cfg.Members = 1
	}
	if cfg.Auth && cfg.RootPassword == "" {
		cfg.RootPassword = "rootpw"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{cfg: cfg, log: log}

	// Free ports are found by binding :0 and releasing it. Another process
	// may grab a port in between; a whole-cluster retry covers that rare race.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if err := c.allocate(); err != nil {
			return nil, err
		}
		lastErr = c.startAll(ctx)
		if lastErr == nil {
			break
		}
		c.stopAll()
		if !isAddrInUse(lastErr) {
			return nil, lastErr
		}
		// Wipe the half-initialised data dirs: a new port set means a new
		// cluster identity.
		for _, m := range c.members {
			_ = os.RemoveAll(m.dir)
		}
	}
	if lastErr != nil {
		return nil, lastErr
	}
	if cfg.Auth {
		if err := c.enableAuth(ctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) allocate() error {
	n := c.cfg.Members
	ports, err := freePorts(2 * n)
	if err != nil {
		return fmt.Errorf("embedetcd: find free ports: %w", err)
	}
	c.members = make([]*member, n)
	for i := range n {
		c.members[i] = &member{
			name:      fmt.Sprintf("m%d", i),
			dir:       filepath.Join(c.cfg.Dir, fmt.Sprintf("member-%d", i)),
			peerURL:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])},
			clientURL: url.URL{Scheme: c.clientScheme(), Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])},
		}
	}
	return nil
}

func (c *Cluster) initialCluster() string {
	parts := make([]string, len(c.members))
	for i, m := range c.members {
		parts[i] = m.name + "=" + m.peerURL.String()
	}
	return strings.Join(parts, ",")
}

// startAll starts every member concurrently: with several members, none can
// become ready before a quorum of peers is up.
func (c *Cluster) startAll(ctx context.Context) error {
	errs := make([]error, len(c.members))
	var wg sync.WaitGroup
	for i := range c.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.startMember(ctx, i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Cluster) stopAll() {
	for _, m := range c.members {
		m.stop()
	}
}

func (c *Cluster) startMember(ctx context.Context, i int) error {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.etcd != nil {
		return nil
	}
	ec := embed.NewConfig()
	ec.Name = m.name
	ec.Dir = m.dir
	ec.ListenPeerUrls = []url.URL{m.peerURL}
	ec.AdvertisePeerUrls = []url.URL{m.peerURL}
	ec.ListenClientUrls = []url.URL{m.clientURL}
	ec.AdvertiseClientUrls = []url.URL{m.clientURL}
	// No metrics listener: it would need yet another port.
	ec.ListenMetricsUrls = nil
	ec.InitialCluster = c.initialCluster()
	ec.InitialClusterToken = "rwsnap-embedetcd"
	// On a restart the WAL in Dir wins over these settings, so "new" is
	// right for both the first start and StartMember.
	ec.ClusterState = embed.ClusterStateFlagNew
	if c.cfg.TLS != nil {
		ec.ClientTLSInfo = c.cfg.TLS.serverInfo()
	}
	ec.UnsafeNoFsync = c.cfg.UnsafeNoFsync
	if c.cfg.MaxTxnOps > 0 {
		ec.MaxTxnOps = c.cfg.MaxTxnOps
	}
	if c.cfg.MaxRequestBytes > 0 {
		ec.MaxRequestBytes = c.cfg.MaxRequestBytes
	}
	if c.cfg.QuotaBackendBytes > 0 {
		ec.QuotaBackendBytes = c.cfg.QuotaBackendBytes
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(c.zapLogger(m.name))
	ec.LogLevel = "error"

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return fmt.Errorf("embedetcd: start member %s: %w", m.name, err)
	}
	timeout := time.NewTimer(c.cfg.StartTimeout)
	defer timeout.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("embedetcd: member %s failed: %w", m.name, err)
	case <-timeout.C:
		e.Close()
		return fmt.Errorf("embedetcd: member %s not ready after %s", m.name, c.cfg.StartTimeout)
	case <-ctx.Done():
		e.Close()
		return fmt.Errorf("embedetcd: start member %s: %w", m.name, ctx.Err())
	}
	m.etcd = e
	c.log.Debug("etcd member started", "member", m.name, "client", m.clientURL.String())
	return nil
}

func (m *member) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.etcd != nil {
		m.etcd.Close()
		m.etcd = nil
	}
}

// zapLogger builds etcd's logger: error level only, forwarded to the slog
// logger (or dropped when there is none). etcd logs every peer hiccup at
// warn/info, which would drown test output during fault tests.
func (c *Cluster) zapLogger(name string) *zap.Logger {
	if c.cfg.Logger == nil {
		return zap.NewNop()
	}
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	w := &slogWriter{log: c.cfg.Logger.With("etcd_member", name)}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), zapcore.ErrorLevel))
}

// slogWriter turns zap's encoded lines into slog error records.
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			w.log.Error("etcd: " + line)
		}
	}
	return len(p), nil
}

func (c *Cluster) enableAuth(ctx context.Context) error {
	cli, err := c.newClient(ctx, "", "", c.Endpoints())
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.UserAdd(ctx, RootUser, c.cfg.RootPassword); err != nil {
		return fmt.Errorf("embedetcd: add root user: %w", err)
	}
	if _, err := cli.UserGrantRole(ctx, RootUser, "root"); err != nil {
		return fmt.Errorf("embedetcd: grant root role: %w", err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		return fmt.Errorf("embedetcd: enable auth: %w", err)
	}
	return nil
}

// Endpoints lists every member's client URL (also stopped members: a client
// balances over them and skips dead ones).
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.clientURL.String()
	}
	return eps
}

// MemberEndpoint is member i's client URL.
func (c *Cluster) MemberEndpoint(i int) string { return c.members[i].clientURL.String() }

// Members is the cluster size.
func (c *Cluster) Members() int { return len(c.members) }

// AuthEnabled reports whether the cluster requires credentials.
func (c *Cluster) AuthEnabled() bool { return c.cfg.Auth }

// RootPassword is the root user's password ("" without Auth).
func (c *Cluster) RootPassword() string {
	if !c.cfg.Auth {
		return ""
	}
	return c.cfg.RootPassword
}

// Client connects to all members, as root when Auth is on. The caller
// closes it.
func (c *Cluster) Client(ctx context.Context) (*clientv3.Client, error) {
	if c.cfg.Auth {
		return c.ClientAs(ctx, RootUser, c.cfg.RootPassword)
	}
	return c.newClient(ctx, "", "", c.Endpoints())
}

// ClientAs connects with explicit credentials; a wrong user or password
// fails here, with an error that says so.
func (c *Cluster) ClientAs(ctx context.Context, user, password string) (*clientv3.Client, error) {
	return c.newClient(ctx, user, password, c.Endpoints())
}

func (c *Cluster) newClient(ctx context.Context, user, password string, endpoints []string) (*clientv3.Client, error) {
	tlsCfg, err := c.clientTLS()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		TLS:         tlsCfg,
		Endpoints:   endpoints,
		Username:    user,
		Password:    password,
		DialTimeout: 5 * time.Second,
		Context:     context.WithoutCancel(ctx),
		// The client logs retries at warn level; keep test output clean.
		Logger: zap.NewNop(),
	})
	if err != nil {
		if errors.Is(err, rpctypes.ErrAuthFailed) {
			return nil, fmt.Errorf("embedetcd: etcd authentication failed for user %q (wrong user name or password): %w", user, err)
		}
		return nil, fmt.Errorf("embedetcd: connect to %s: %w", strings.Join(endpoints, ","), err)
	}
	return cli, nil
}

// StopMember stops member i, keeping its data directory so StartMember can
// bring it back (fault tests: lost quorum, leader change).
func (c *Cluster) StopMember(i int) error {
	if i < 0 || i >= len(c.members) {
		return fmt.Errorf("embedetcd: no member %d", i)
	}
	c.members[i].stop()
	c.log.Debug("etcd member stopped", "member", c.members[i].name)
	return nil
}

// StartMember restarts a stopped member on its old ports and data. With
// several members it returns once the member has rejoined, which needs a
// quorum of the others to be running.
func (c *Cluster) StartMember(ctx context.Context, i int) error {
	if i < 0 || i >= len(c.members) {
		return fmt.Errorf("embedetcd: no member %d", i)
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return errors.New("embedetcd: cluster closed")
	}
	return c.startMember(ctx, i)
}

// MemberRunning reports whether member i is started.
func (c *Cluster) MemberRunning(i int) bool {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.etcd != nil
}

// Close stops every member. Data directories are left to the caller.
func (c *Cluster) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	// Followers first, the leader last: a leader stopping while peers run
	// first tries to hand leadership over, and members stopping in parallel
	// wait out request timeouts; this order roughly halves Close's time.
	var leader *member
	for _, m := range c.members {
		m.mu.Lock()
		isLeader := m.etcd != nil && m.etcd.Server.Leader() == m.etcd.Server.MemberID()
		m.mu.Unlock()
		if isLeader {
			leader = m
			continue
		}
		m.stop()
	}
	if leader != nil {
		leader.stop()
	}
}

func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func isAddrInUse(err error) bool {
	return err != nil && strings.Contains(err.Error(), "address already in use")
}

var _ io.Writer = (*slogWriter)(nil)
