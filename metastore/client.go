package metastore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/rwsnap/rwsnap/internal/timeouts"
)

// Config says how to reach a RisingWave etcd meta store. The flag names
// follow risectl (--etcd-endpoints, --etcd-auth, --etcd-username,
// --etcd-password).
type Config struct {
	Endpoints []string
	Auth      bool
	Username  string
	Password  string // never logged
	// CACert, Cert and Key are etcdctl's --cacert, --cert and --key: the
	// CA that signed etcd's server certificate, and the client certificate
	// and key for etcd's --client-cert-auth. Any of them turns TLS on.
	CACert, Cert, Key string
	TLS               *tls.Config // used as is when set (tests, embedding)
	DialTimeout       time.Duration
}

// tlsConfig builds the TLS configuration from the certificate files.
func (cfg Config) tlsConfig() (*tls.Config, error) {
	if cfg.TLS != nil || (cfg.CACert == "" && cfg.Cert == "" && cfg.Key == "") {
		return cfg.TLS, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACert != "" {
		pem, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-cacert %s holds no PEM certificate", cfg.CACert)
		}
		t.RootCAs = pool
	}
	if (cfg.Cert == "") != (cfg.Key == "") {
		return nil, errors.New("--etcd-cert and --etcd-key go together: the client certificate and its private key")
	}
	if cfg.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// ParseEndpoints splits risectl's comma-separated --etcd-endpoints.
func ParseEndpoints(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// Connect dials etcd and checks that it answers, so a wrong address or
// password fails here with a clear message instead of deep inside a backup.
func Connect(ctx context.Context, cfg Config) (*clientv3.Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("no etcd endpoints: set --etcd-endpoints (or RWSNAP_ETCD_ENDPOINTS), e.g. 127.0.0.1:2379")
	}
	timeout := cfg.DialTimeout
	if timeout == 0 {
		timeout = timeouts.Connect
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	c := clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          timeout,
		DialKeepAliveTime:    3 * time.Second, // risectl's keep-alive (3s, 5s)
		DialKeepAliveTimeout: 5 * time.Second,
		TLS:                  tlsCfg,
		Logger:               zap.NewNop(),
		MaxCallRecvMsgSize:   512 << 20,
		// The server's --max-request-bytes decides what a write may carry
		// (RisingWave's stores raise it for large table fragments); the
		// client's own 2 MiB default would refuse a larger value before
		// the server is asked, with advice that cannot help.
		MaxCallSendMsgSize: 512 << 20,
		// Every unary call (range pages, txns, lease grants) gets
		// timeouts.Operation unless its context is bounded already: a
		// member that stops answering mid-command fails it, not hangs it.
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(operationDeadline),
			grpc.WithInitialWindowSize(streamWindow), grpc.WithInitialConnWindowSize(4 * streamWindow)},
	}
	if cfg.Auth {
		if cfg.Username == "" {
			return nil, errors.New("--etcd-auth needs --etcd-username (and --etcd-password or RWSNAP_ETCD_PASSWORD)")
		}
		c.Username, c.Password = cfg.Username, cfg.Password
	}
	if err := probeTLS(ctx, cfg.Endpoints, tlsCfg); err != nil {
		return nil, err
	}
	cli, err := clientv3.New(c)
	if err != nil {
		if aerr := cfg.authError(err); aerr != nil {
			return nil, aerr
		}
		return nil, fmt.Errorf("connect to etcd %s (%s): %w", strings.Join(cfg.Endpoints, ","), cfg.hint(err), err)
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := cli.Get(pctx, "cf/cluster_id", clientv3.WithCountOnly()); err != nil {
		cli.Close()
		if aerr := cfg.authError(err); aerr != nil {
			return nil, aerr
		}
		return nil, fmt.Errorf("etcd at %s does not answer (%s): %w", strings.Join(cfg.Endpoints, ","), cfg.hint(err), err)
	}
	return cli, nil
}

// authError says plainly what is wrong with the credentials, when etcd
// answered but refused them; nil for other errors. etcd's own words ("user
// name is empty") name neither the flag nor the fix.
func (cfg Config) authError(err error) error {
	at := strings.Join(cfg.Endpoints, ",")
	is := func(e error) bool { return errors.Is(err, e) || strings.Contains(err.Error(), rpctypes.ErrorDesc(e)) }
	switch {
	case is(rpctypes.ErrGRPCUserEmpty):
		return fmt.Errorf("etcd at %s requires authentication and no user was given: pass --etcd-username and --etcd-password (or --user USER:PASSWORD, ETCDCTL_USER): %w", at, err)
	case is(rpctypes.ErrGRPCAuthFailed):
		if cfg.Password == "" {
			return fmt.Errorf("etcd at %s refused user %q: no password was given (pass --etcd-password, RWSNAP_ETCD_PASSWORD or --user %s:PASSWORD): %w", at, cfg.Username, cfg.Username, err)
		}
		return fmt.Errorf("etcd at %s refused user %q: wrong user name or password: %w", at, cfg.Username, err)
	case is(rpctypes.ErrGRPCPermissionDenied):
		return fmt.Errorf("etcd at %s: user %q may not read the meta store (grant it a role with read on the whole keyspace, or use root): %w", at, cfg.Username, err)
	}
	return nil
}

func (cfg Config) hint(err error) string {
	s := err.Error()
	if strings.Contains(s, "authentication") || strings.Contains(s, "user name") || strings.Contains(s, "user ID") || strings.Contains(s, "permission") {
		return "check --etcd-auth, --etcd-username and the password"
	}
	if strings.Contains(s, "certificate") || strings.Contains(s, "tls:") || strings.Contains(s, "handshake") {
		return "TLS failed: check --etcd-cacert (the CA of etcd's server certificate), --etcd-cert and --etcd-key (a client certificate that CA trusts)"
	}
	https := false
	for _, e := range cfg.Endpoints {
		https = https || strings.HasPrefix(e, "https://")
	}
	tlsOn := cfg.TLS != nil || cfg.CACert != "" || cfg.Cert != ""
	switch {
	case https && !tlsOn:
		return "is etcd running there? https endpoints need --etcd-cacert, and --etcd-cert/--etcd-key if etcd checks client certificates"
	case tlsOn && cfg.Cert == "" && cfg.TLS == nil:
		return "is etcd running there? if it requires client certificates, pass --etcd-cert and --etcd-key"
	}
	return "is etcd running there?"
}

// probeTLS does one TLS handshake with the first endpoint that accepts a
// connection, so a certificate problem fails at once with its cause: the
// etcd client only reports "context deadline exceeded" after its dial
// timeout. Unreachable endpoints are left to the client (others may work).
func probeTLS(ctx context.Context, endpoints []string, cfg *tls.Config) error {
	https := false
	for _, e := range endpoints {
		https = https || strings.HasPrefix(e, "https://")
	}
	if cfg == nil && !https {
		return nil
	}
	for _, e := range endpoints {
		host, ok := strings.CutPrefix(e, "https://")
		if !ok && strings.Contains(e, "://") {
			continue // http://, unix://: no TLS to probe
		}
		host, _, _ = strings.Cut(host, "/")
		name, _, err := net.SplitHostPort(host)
		if err != nil {
			continue
		}
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg != nil {
			t = cfg.Clone()
		}
		if t.ServerName == "" {
			t.ServerName = name
		}
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 2 * time.Second}, Config: t}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := d.DialContext(pctx, "tcp", host)
		cancel()
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			continue // not listening; try the next endpoint
		}
		if err == nil {
			// With TLS 1.3 the server judges the client certificate after
			// the client's handshake ends: its verdict is the first read.
			// A server that accepted waits for the client's request, so
			// the read times out: that is success.
			_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return nil
			}
		}
		if err != nil && isTLSError(err) {
			return fmt.Errorf("TLS with etcd at %s failed (%s): %w", e, tlsHint(err, len(t.Certificates) > 0), err)
		}
		return nil
	}
	return nil
}

// tlsHint names the flag to fix. haveCert: a client certificate was given
// (Go sends none when etcd's accepted CAs did not sign it, so etcd then
// says "certificate required" too).
func tlsHint(err error, haveCert bool) string {
	var alert tls.AlertError
	s := err.Error()
	switch {
	case strings.Contains(s, "x509:") || strings.Contains(s, "failed to verify certificate"):
		return "etcd's server certificate is not trusted: pass --etcd-cacert with the CA that signed it"
	case strings.Contains(s, "certificate required") && haveCert:
		return "etcd rejected the client certificate: --etcd-cert must be signed by the CA etcd trusts (its --trusted-ca-file)"
	case strings.Contains(s, "certificate required"):
		return "etcd requires a client certificate: pass --etcd-cert and --etcd-key"
	case errors.As(err, &alert) || strings.Contains(s, "remote error"):
		return "etcd rejected the client certificate: --etcd-cert must be signed by the CA etcd trusts (its --trusted-ca-file)"
	}
	return "check --etcd-cacert, --etcd-cert and --etcd-key"
}

func isTLSError(err error) bool {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		certErr   x509.CertificateInvalidError
		alert     tls.AlertError
		recErr    tls.RecordHeaderError
		verifyErr *tls.CertificateVerificationError
	)
	return errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &certErr) ||
		errors.As(err, &alert) || errors.As(err, &recErr) || errors.As(err, &verifyErr) ||
		strings.Contains(err.Error(), "tls:")
}

// operationDeadline bounds one etcd call by timeouts.Operation.
// streamWindow is gRPC's flow-control window per stream. Left to gRPC it
// grows to 16 MiB a stream (its bandwidth-delay estimate), data the
// server pushes ahead of the reader: at etcd's 10 MiB --max-request-bytes
// a 1M-key backup held 17 MiB of it. 2 MiB a stream still moves 40 MB/s
// per stream at 50 ms round trips.
const streamWindow = 2 << 20

func operationDeadline(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, cancel := timeouts.WithOperation(ctx)
	defer cancel()
	return invoker(ctx, method, req, reply, cc, opts...)
}
