package objstore

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// supportedSchemes is quoted in every "unsupported URL" error so the user
// learns what to type instead.
const supportedSchemes = "s3://BUCKET, minio://ACCESS_KEY:SECRET_KEY@[http(s)://]HOST:PORT/BUCKET, fs://PATH, memory, memory-shared"

// location is a parsed object store URL.
type location struct {
	scheme    string // "s3", "minio", "fs", "memory"
	raw       string // the URL as given (trimmed); may hold a secret
	bucket    string // s3, minio
	accessKey string // minio
	secretKey string // minio
	endpoint  string // minio: "http://HOST:PORT" or "https://HOST:PORT"
	path      string // fs
}

// Open opens the object store named by a RisingWave object store URL, as
// found in the backup_storage_url system parameter or in state_store without
// its "hummock+" prefix.
func Open(ctx context.Context, rawURL string) (Store, error) {
	loc, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch loc.scheme {
	case "memory":
		return openSharedMemory(loc.raw), nil
	case "fs":
		return newFS(loc.path, loc.raw)
	case "s3", "minio":
		return openS3(ctx, loc)
	}
	// parseURL only returns the schemes above.
	return nil, fmt.Errorf("objstore: unsupported object store URL %q", Redact(rawURL))
}

// parseURL splits a URL the way RisingWave's build_remote_object_store does:
// plain prefix stripping and splitting, no percent-decoding, so a URL pasted
// from a system parameter means the same bucket and credentials here.
func parseURL(rawURL string) (location, error) {
	raw := strings.TrimSpace(rawURL)
	loc := location{raw: raw}
	switch {
	case raw == "":
		return loc, fmt.Errorf("objstore: empty object store URL; supported: %s", supportedSchemes)
	case raw == "memory" || raw == "memory-shared":
		loc.scheme = "memory"
		return loc, nil
	case strings.HasPrefix(raw, "s3://"):
		loc.scheme = "s3"
		bucket, err := parseBucket(raw, strings.TrimPrefix(raw, "s3://"), "s3://BUCKET")
		if err != nil {
			return loc, err
		}
		loc.bucket = bucket
		return loc, nil
	case strings.HasPrefix(raw, "minio://"):
		loc.scheme = "minio"
		return parseMinio(loc)
	case strings.HasPrefix(raw, "fs://"):
		loc.scheme = "fs"
		p := strings.TrimPrefix(raw, "fs://")
		if p == "" {
			return loc, fmt.Errorf("objstore: %q has an empty path; use fs://PATH, e.g. fs:///var/lib/rwsnap or fs://relative/dir", raw)
		}
		loc.path = filepath.Clean(filepath.FromSlash(p))
		return loc, nil
	}
	scheme, _, ok := strings.Cut(raw, "://")
	if ok {
		switch scheme {
		case "gcs", "obs", "oss", "webhdfs", "azblob", "hdfs", "s3-compatible":
			return loc, fmt.Errorf("objstore: %s:// (in %q) is a RisingWave object store rwsnap does not support; supported: %s",
				scheme, Redact(raw), supportedSchemes)
		}
		return loc, fmt.Errorf("objstore: unknown scheme %q in %q; supported: %s", scheme, Redact(raw), supportedSchemes)
	}
	return loc, fmt.Errorf("objstore: %q is not an object store URL; supported: %s", Redact(raw), supportedSchemes)
}

// parseMinio handles minio://ACCESS_KEY:SECRET_KEY@[http(s)://]HOST:PORT/BUCKET. Like
// RisingWave, the access key ends at the first ':' and the secret at the
// first '@' after it, so secrets may hold '/' and '+' (AWS-style keys do).
func parseMinio(loc location) (location, error) {
	const form = "minio://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET"
	red := Redact(loc.raw)
	rest := strings.TrimPrefix(loc.raw, "minio://")
	cred, hostBucket, ok := strings.Cut(rest, "@")
	if !ok {
		return loc, fmt.Errorf("objstore: %q has no credentials; use %s", red, form)
	}
	ak, sk, ok := strings.Cut(cred, ":")
	switch {
	case !ok:
		return loc, fmt.Errorf("objstore: %q: credentials must be ACCESS_KEY:SECRET_KEY; use %s", red, form)
	case ak == "":
		return loc, fmt.Errorf("objstore: %q has an empty access key; use %s", red, form)
	case sk == "":
		return loc, fmt.Errorf("objstore: %q has an empty secret key; use %s", red, form)
	}
	proto := "http://"
	for _, p := range []string{"https://", "http://"} {
		if strings.HasPrefix(hostBucket, p) {
			proto, hostBucket = p, strings.TrimPrefix(hostBucket, p)
			break
		}
	}
	host, bucket, ok := strings.Cut(hostBucket, "/")
	if host == "" {
		return loc, fmt.Errorf("objstore: %q has no HOST:PORT; use %s", red, form)
	}
	if !ok || bucket == "" {
		return loc, fmt.Errorf("objstore: %q has no bucket; use %s", red, form)
	}
	bucket, err := parseBucket(red, bucket, form)
	if err != nil {
		return loc, err
	}
	loc.accessKey, loc.secretKey = ak, sk
	loc.endpoint = proto + host
	loc.bucket = bucket
	return loc, nil
}

// parseBucket checks the bucket part of an s3:// or minio:// URL. RisingWave
// takes everything after the host as the bucket, so a key prefix in the URL
// would be a bucket name S3 rejects; say where the prefix belongs instead.
func parseBucket(redacted, bucket, form string) (string, error) {
	bucket = strings.TrimSuffix(bucket, "/")
	if bucket == "" {
		return "", fmt.Errorf("objstore: %q has no bucket; use %s", Redact(redacted), form)
	}
	if strings.Contains(bucket, "/") {
		return "", fmt.Errorf("objstore: %q: the URL names only a bucket (%s); put the key prefix in backup_storage_directory or data_directory",
			Redact(redacted), form)
	}
	// No bucket holds other characters (S3 and MinIO naming rules, legacy
	// upper case and '_' included); a query or fragment pasted after it
	// (s3://b?region=x) would otherwise be taken as part of its name.
	for _, r := range bucket {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return "", fmt.Errorf("objstore: %q: %q cannot be in a bucket name (%s: letters, digits, '.', '-', '_'); the URL names only a bucket, credentials and region come from the environment",
				Redact(redacted), string(r), form)
		}
	}
	return bucket, nil
}

// Redact hides the secret key of a minio:// URL (minio://AK:***@host/bucket)
// and the password of any other user:password@ URL, so the result can be
// logged. Text without secrets is returned unchanged.
func Redact(rawURL string) string {
	s := strings.TrimSpace(rawURL)
	if rest, ok := strings.CutPrefix(s, "minio://"); ok {
		// Up to the last '@': a secret holding '@' would otherwise show
		// its tail (the host cannot hold one).
		i := strings.LastIndex(rest, "@")
		if i < 0 {
			// No host part: what follows the access key may be the secret.
			if ak, after, ok := strings.Cut(rest, ":"); ok && !portRE.MatchString(after) {
				return "minio://" + ak + ":***"
			}
			return s
		}
		cred, after := rest[:i], rest[i+1:]
		if ak, sk, ok := strings.Cut(cred, ":"); ok {
			if isPlaceholder("minio://"+ak, sk) {
				return s
			}
			return "minio://" + ak + ":***@" + after
		}
		// No ':' means the whole userinfo may be a mistyped secret.
		return "minio://***@" + after
	}
	// Not URL-shaped (a mistyped scheme such as minio:/AK:SK@HOST): hide
	// everything between the first ':' and the last '@'.
	if !strings.Contains(s, "://") {
		if i, j := strings.Index(s, ":"), strings.LastIndex(s, "@"); i >= 0 && j > i {
			return s[:i+1] + "***" + s[j:]
		}
	}
	return RedactText(s)
}

var (
	// portRE is a port after HOST: (minio://HOST:9000/BUCKET has no secret).
	portRE = regexp.MustCompile(`^[0-9]+(/|$)`)
	// RisingWave lets a minio secret hold '/', so only '@' or a space ends it.
	minioSecretRE = regexp.MustCompile(`(minio://[^:@\s]*):\S*@`)
	// In other URLs an unescaped password cannot hold '/'.
	urlSecretRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^:@\s/]*):[^@\s/]*@`)
	// A password as a parameter: libpq's key=value DSN (host=h
	// password=x), or a URL's query (postgres://h/db?password=x), and an
	// AWS secret pasted as one (s3://b?secret_access_key=x).
	paramSecretRE = regexp.MustCompile(`(?i)(^|[\s?&;])((?:ssl)?password=|(?:aws_)?secret(?:_access)?_key=|(?:aws_)?session_token=)('(?:[^'\\]|\\.)*'|[^\s&;]*)`)
	// A PEM private key pasted where a file path was meant (--etcd-key).
	pemKeyRE = regexp.MustCompile(`-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)`)
)

// HasSecret says whether s holds a secret that Redact hides. It is the one
// rule for "this value is a secret written literally" (the config file's
// private-mode check uses it), so what is refused in a readable file and
// what is hidden in output cannot drift apart.
func HasSecret(s string) bool {
	return Redact(s) != strings.TrimSpace(s)
}

// RedactText redacts every URL secret inside arbitrary text, such as an error
// message or a log line that quotes a URL. Placeholders in hint texts
// (minio://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET, <SECRET_KEY>) are no
// secrets and stay readable.
func RedactText(s string) string {
	if strings.Contains(s, "PRIVATE KEY-----") {
		s = pemKeyRE.ReplaceAllString(s, "-----BEGIN ${1}PRIVATE KEY----- *** ${2}")
	}
	if l := strings.ToLower(s); strings.Contains(l, "password=") || strings.Contains(l, "_key=") || strings.Contains(l, "session_token=") {
		s = paramSecretRE.ReplaceAllStringFunc(s, func(m string) string {
			sub := paramSecretRE.FindStringSubmatch(m)
			if v := strings.Trim(sub[3], "'"); v == "" || v == "***" || v == PasswordPlaceholder {
				return m
			}
			return sub[1] + sub[2] + "***"
		})
	}
	if !strings.Contains(s, "@") {
		return s
	}
	s = minioSecretRE.ReplaceAllStringFunc(s, redactMatch)
	return urlSecretRE.ReplaceAllStringFunc(s, redactMatch)
}

// redactMatch redacts one "scheme://user:secret@" match unless the secret
// is a placeholder or already redacted.
func redactMatch(m string) string {
	user, secret := splitMatch(m)
	if isPlaceholder(user, secret) {
		return m
	}
	return user + ":***@"
}

// splitMatch splits a "scheme://user:secret@" match at the first ':' after
// the scheme: as in RisingWave, the user (access key) ends there and the
// secret may hold ':' (all of it is hidden, not just its tail).
func splitMatch(m string) (user, secret string) {
	s := strings.Index(m, "://") + len("://")
	i := s + strings.Index(m[s:], ":")
	return m[:i], m[i+1 : len(m)-1]
}

// Placeholders rwsnap writes in hints and suggested commands where a secret
// goes; never real secrets, so never redacted.
const (
	SecretKeyPlaceholder = "<SECRET_KEY>"
	PasswordPlaceholder  = "<PASSWORD>"
)

// hintCredentials is the userinfo of the URL form quoted in hints
// (minio://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET).
const hintCredentials = "ACCESS_KEY:SECRET_KEY"

// isPlaceholder says whether secret, after prefix ("scheme://user"), is
// no secret: the redaction marker, one of the placeholders above, or the
// hint form's whole ACCESS_KEY:SECRET_KEY. Nothing else, however short or
// placeholder-like (a real secret key may well be "SK" or "SECRET_KEY"
// under a real access key).
func isPlaceholder(prefix, secret string) bool {
	switch secret {
	case "***", SecretKeyPlaceholder, PasswordPlaceholder:
		return true
	}
	_, user, _ := strings.Cut(prefix, "://")
	return user+":"+secret == hintCredentials
}

// WithPlaceholders returns text with every URL secret replaced by an
// obvious placeholder (<SECRET_KEY>, <PASSWORD>), for suggested commands
// that a user pastes: the redaction marker *** would be taken as the
// value. Whoever prints it must say that the placeholder is to be
// replaced.
func WithPlaceholders(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	s = minioSecretRE.ReplaceAllStringFunc(s, func(m string) string {
		user, _ := splitMatch(m)
		return user + ":" + SecretKeyPlaceholder + "@"
	})
	return urlSecretRE.ReplaceAllStringFunc(s, func(m string) string {
		user, secret := splitMatch(m)
		if isPlaceholder(user, secret) {
			return m
		}
		return user + ":" + PasswordPlaceholder + "@"
	})
}

// JoinKey joins a directory (backup_storage_directory, data_directory) and
// an object name with one "/". An empty dir yields name alone, and a trailing
// "/" on dir is not doubled. (RisingWave itself formats "{dir}/{name}"
// verbatim; its parameter validation rejects empty dirs.)
func JoinKey(dir, name string) string {
	dir = strings.TrimRight(dir, "/")
	name = strings.TrimLeft(name, "/")
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// ValidateURL checks that rawURL is an object store URL rwsnap can open,
// without opening it; the error says what to type instead.
func ValidateURL(rawURL string) error {
	_, err := parseURL(rawURL)
	return err
}
