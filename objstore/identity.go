package objstore

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Where is what an object store URL points at, independent of how it is
// spelled: the scheme family, the server (host resolved to addresses,
// default port filled in), the bucket, and for fs the absolute, cleaned,
// symlink-resolved directory. Credentials are not part of it.
type Where struct {
	// Scheme is "fs", "s3" (AWS), "minio" (an S3-compatible endpoint) or
	// "memory".
	Scheme string
	// TLS: minio over https.
	TLS bool
	// Host is the server's name as given, lower-cased, without brackets;
	// Port its port ("80"/"443" when the URL has none).
	Host, Port string
	// Addrs are Host's addresses, sorted; nil when it did not resolve.
	// Loopback addresses (127.0.0.0/8, ::1) are all "loopback": one machine.
	Addrs []string
	// Bucket of s3 and minio.
	Bucket string
	// Path is fs's directory: absolute, cleaned, symlinks resolved as far
	// as the path exists.
	Path string
	// Raw is the URL with secrets redacted, for messages.
	Raw string
}

// resolveTimeout bounds one host lookup: identity must not hang a command.
const resolveTimeout = 3 * time.Second

// Locate parses a RisingWave object store URL into where it points. Host
// names are resolved (bounded by resolveTimeout); a name that does not
// resolve keeps Addrs nil and is compared by name.
func Locate(ctx context.Context, rawURL string) (Where, error) {
	loc, err := parseURL(rawURL)
	if err != nil {
		return Where{}, err
	}
	w := Where{Scheme: loc.scheme, Bucket: loc.bucket, Raw: Redact(rawURL)}
	switch loc.scheme {
	case "fs":
		w.Path = CanonicalPath(loc.path)
	case "minio":
		hostport := loc.endpoint
		if rest, ok := strings.CutPrefix(hostport, "https://"); ok {
			w.TLS, hostport = true, rest
		} else {
			hostport = strings.TrimPrefix(hostport, "http://")
		}
		hostport = strings.TrimRight(hostport, "/")
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			host, port = strings.Trim(hostport, "[]"), "80"
			if w.TLS {
				port = "443"
			}
		}
		w.Host, w.Port = strings.ToLower(host), port
		w.Addrs = resolve(ctx, w.Host)
	}
	return w, nil
}

// CanonicalPath is a local directory as the file system sees it: absolute,
// cleaned (no //, /./, trailing slash, ..), and with symlinks resolved for
// the longest prefix that exists (the rest, not created yet, is kept).
func CanonicalPath(p string) string {
	abs, err := filepath.Abs(filepath.Clean(p))
	if err != nil {
		abs = filepath.Clean(p)
	}
	var rest []string
	cur := abs
	for {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(append([]string{r}, rest...)...)
		} else if !errors.Is(err, os.ErrNotExist) {
			return abs
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs
		}
		rest = append([]string{filepath.Base(cur)}, rest...)
		cur = parent
	}
}

// resolve returns host's addresses, sorted, loopback ones as "loopback";
// nil if it does not resolve in time.
func resolve(ctx context.Context, host string) []string {
	if host == "" {
		return nil
	}
	var ips []string
	if ip := net.ParseIP(host); ip != nil {
		ips = []string{ip.String()}
	} else {
		ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		defer cancel()
		got, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil || len(got) == 0 {
			return nil
		}
		ips = got
	}
	out := make([]string, 0, len(ips))
	for _, a := range ips {
		if ip := net.ParseIP(a); ip != nil && ip.IsLoopback() {
			a = "loopback"
		} else if ip != nil {
			a = ip.String()
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// SameServer says whether two S3-compatible endpoints are certainly one
// server (same scheme, port and a shared address or, unresolved, the same
// name); false means "not proven", not "different".
func (w Where) SameServer(o Where) bool {
	if w.Scheme != o.Scheme || w.TLS != o.TLS {
		return false
	}
	if w.Scheme == "s3" {
		return true // AWS: the bucket name is global
	}
	if w.Port != o.Port {
		return false
	}
	if w.Host == o.Host {
		return true
	}
	for _, a := range w.Addrs {
		if slices.Contains(o.Addrs, a) {
			return true
		}
	}
	return false
}
