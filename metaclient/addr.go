// Package metaclient talks to a live RisingWave v1.x meta node the way
// risectl does: gRPC backup_service.BackupService on the leader, found via
// meta.MetaMemberService. While a meta node runs it caches the backup
// manifest and is the only safe writer of its own backup location, so
// rwsnap goes through it there (see Choose).
package metaclient

import (
	"fmt"
	"net"
	"strings"
)

// EnvAddr is risectl's variable for the meta address
// (src/ctl/src/common/meta_service.rs).
const EnvAddr = "RW_META_ADDR"

// DefaultAddr is the address risectl's help suggests and RisingWave's meta
// listens on by default.
const DefaultAddr = "http://127.0.0.1:5690"

// defaultPort is the meta node's default gRPC port, used when an address
// names only a host.
const defaultPort = "5690"

// ParseAddr accepts a meta address as users write it for risectl
// ("http://host:port") or bare ("host:port", "host") and returns host:port,
// the form gRPC dials and meta members advertise.
func ParseAddr(s string) (string, error) {
	a := strings.TrimSpace(s)
	if a == "" {
		return "", fmt.Errorf("empty meta address: set --meta-addr or %s (e.g. %s)", EnvAddr, DefaultAddr)
	}
	if strings.HasPrefix(a, "https://") {
		// v1.x meta nodes serve plaintext gRPC only (tonic without TLS).
		return "", fmt.Errorf("meta address %q: RisingWave v1.x meta nodes serve plain gRPC, use http:// or host:port", a)
	}
	a = strings.TrimPrefix(a, "http://")
	a = strings.TrimRight(a, "/")
	if strings.ContainsAny(a, "/?#@") {
		return "", fmt.Errorf("meta address %q: want http://HOST:PORT or HOST:PORT", s)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		// No port: RisingWave's meta default.
		if strings.Contains(err.Error(), "missing port") {
			return net.JoinHostPort(strings.Trim(a, "[]"), defaultPort), nil
		}
		return "", fmt.Errorf("meta address %q: %w", s, err)
	}
	if host == "" {
		return "", fmt.Errorf("meta address %q has no host", s)
	}
	return net.JoinHostPort(host, port), nil
}

// loadBalancePrefix marks a single load-balanced meta address in
// RisingWave's MetaAddressStrategy (src/common/src/util/meta_addr.rs).
const loadBalancePrefix = "load-balance+"

// ParseAddrs parses a meta address as RisingWave's MetaAddressStrategy
// takes it: one address, a comma-separated list (tried in order), or
// "load-balance+ADDR".
func ParseAddrs(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, loadBalancePrefix); ok {
		if strings.Contains(rest, ",") {
			return nil, fmt.Errorf("meta address %q: there should be only one load balance address", s)
		}
		a, err := ParseAddr(rest)
		if err != nil {
			return nil, err
		}
		return []string{a}, nil
	}
	var out []string
	for _, part := range strings.Split(s, ",") {
		a, err := ParseAddr(part)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// URL shows a host:port address as risectl users write it.
func URL(hostPort string) string { return "http://" + hostPort }
