package metastore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Config says how to reach a RisingWave etcd meta store. The flag names
// follow risectl (--etcd-endpoints, --etcd-auth, --etcd-username,
// --etcd-password).
type Config struct {
	Endpoints   []string
	Auth        bool
	Username    string
	Password    string // never logged
	TLS         *tls.Config
	DialTimeout time.Duration
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
		timeout = 5 * time.Second
	}
	c := clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          timeout,
		DialKeepAliveTime:    3 * time.Second, // risectl's keep-alive (3s, 5s)
		DialKeepAliveTimeout: 5 * time.Second,
		TLS:                  cfg.TLS,
		Logger:               zap.NewNop(),
		MaxCallRecvMsgSize:   512 << 20,
	}
	if cfg.Auth {
		if cfg.Username == "" {
			return nil, errors.New("--etcd-auth needs --etcd-username (and --etcd-password or RWSNAP_ETCD_PASSWORD)")
		}
		c.Username, c.Password = cfg.Username, cfg.Password
	}
	cli, err := clientv3.New(c)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %s (%s): %w", strings.Join(cfg.Endpoints, ","), hint(err), err)
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := cli.Get(pctx, "cf/cluster_id", clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd at %s does not answer (%s): %w", strings.Join(cfg.Endpoints, ","), hint(err), err)
	}
	return cli, nil
}

func hint(err error) string {
	s := err.Error()
	if strings.Contains(s, "authentication") || strings.Contains(s, "user name") || strings.Contains(s, "user ID") || strings.Contains(s, "permission") {
		return "check --etcd-auth, --etcd-username and the password"
	}
	return "is etcd running there?"
}
