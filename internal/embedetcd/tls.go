package embedetcd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// TLS serves the client port over TLS (https endpoints), optionally
// requiring client certificates signed by TrustedCAFile (etcd's
// --client-cert-auth). Peer traffic stays plain: it never leaves loopback.
type TLS struct {
	CertFile, KeyFile string // the server's certificate and key
	TrustedCAFile     string // CA that signed the server and client certs
	ClientCertAuth    bool
	// ClientCertFile and ClientKeyFile are presented by the clients this
	// package makes (Client, enabling auth); required with ClientCertAuth.
	ClientCertFile, ClientKeyFile string
}

func (t *TLS) serverInfo() transport.TLSInfo {
	return transport.TLSInfo{
		CertFile:       t.CertFile,
		KeyFile:        t.KeyFile,
		TrustedCAFile:  t.TrustedCAFile,
		ClientCertAuth: t.ClientCertAuth,
	}
}

// clientConfig is the tls.Config of this package's own clients.
func (t *TLS) clientConfig() (*tls.Config, error) {
	pem, err := os.ReadFile(t.TrustedCAFile)
	if err != nil {
		return nil, fmt.Errorf("embedetcd: TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("embedetcd: TLS CA file holds no certificate")
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if t.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.ClientCertFile, t.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("embedetcd: TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// clientTLS is nil without TLS.
func (c *Cluster) clientTLS() (*tls.Config, error) {
	if c.cfg.TLS == nil {
		return nil, nil
	}
	return c.cfg.TLS.clientConfig()
}

func (c *Cluster) clientScheme() string {
	if c.cfg.TLS != nil {
		return "https"
	}
	return "http"
}
