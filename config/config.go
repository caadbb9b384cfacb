// Package config reads rwsnap's configuration file: named clusters (how to
// reach their etcd meta store and meta node) and named repositories (backup
// locations), so an operator types --cluster prod --repo offsite instead
// of a dozen flags, and one schedule daemon can protect a fleet.
//
// Secrets (passwords, URLs with credentials) are references: "env:NAME"
// reads an environment variable, "file:/path" a file (trailing newline
// trimmed). A secret written inline is refused unless the file is readable
// by its owner only (mode 0600 or stricter), because a config file is
// easily copied, committed or shown.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rwsnap/rwsnap/objstore"
)

// EnvPath names the config file when --config is not given.
const EnvPath = "RWSNAP_CONFIG"

// DefaultPath is ~/.config/rwsnap/config.yaml (XDG_CONFIG_HOME honoured).
func DefaultPath() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "rwsnap", "config.yaml")
}

// File is a parsed configuration file.
type File struct {
	Clusters     map[string]*Cluster    `yaml:"clusters"`
	Repositories map[string]*Repository `yaml:"repositories"`

	// Path is where it was read from.
	Path string `yaml:"-"`
	// private says the file is readable by its owner only: inline
	// secrets are allowed then.
	private bool
}

// Cluster is one RisingWave cluster.
type Cluster struct {
	Etcd Etcd `yaml:"etcd"`
	// MetaAddr is the meta node's gRPC address (risectl's RW_META_ADDR).
	MetaAddr string `yaml:"meta_addr"`
	// PgURL is a frontend, for params set --pg-url and time travel; a
	// password in it is a secret.
	PgURL string `yaml:"pg_url"`
	// RisingWaveVersion is the cluster's release (e.g. v1.10.1), for
	// people and for commands that cannot read it from the meta store.
	RisingWaveVersion string `yaml:"risingwave_version"`
	// Repository names the cluster's default repository.
	Repository string `yaml:"repository"`
	// Schedule is this cluster's job in `rwsnap schedule --config`.
	Schedule *Schedule `yaml:"schedule"`
}

// Etcd says how to reach a cluster's meta store.
type Etcd struct {
	Endpoints []string `yaml:"endpoints"`
	Username  string   `yaml:"username"`
	Password  string   `yaml:"password" secret:"always"`
	CACert    string   `yaml:"cacert"`
	Cert      string   `yaml:"cert"`
	Key       string   `yaml:"key"`
}

// Repository is a backup location.
type Repository struct {
	URL       string `yaml:"url"` // secret when it holds credentials (minio://AK:SK@...)
	Directory string `yaml:"directory"`
	// DataURL and DataDirectory are an optional second location for the
	// SST objects (data backups).
	DataURL       string `yaml:"data_url"`
	DataDirectory string `yaml:"data_directory"`
}

// Schedule is one cluster's scheduled job.
type Schedule struct {
	Every   Duration `yaml:"every"`
	Jitter  Duration `yaml:"jitter"`
	Timeout Duration `yaml:"timeout"` // of one attempt (--job-timeout); 0: the daemon's
	Retries *int     `yaml:"retries"`
	Remarks string   `yaml:"remarks"`
	// Repository overrides the cluster's default repository for the job.
	Repository string `yaml:"repository"`
	Keep       Keep   `yaml:"keep"`
	// WithData also copies the SSTs each snapshot references into the
	// repository's data location (--with-data).
	WithData bool `yaml:"with_data"`
}

// Keep is the retention policy (the --keep-* flags).
type Keep struct {
	Last    int      `yaml:"last"`
	Within  Duration `yaml:"within"`
	Hourly  int      `yaml:"hourly"`
	Daily   int      `yaml:"daily"`
	Weekly  int      `yaml:"weekly"`
	Monthly int      `yaml:"monthly"`
}

// Duration is a time.Duration written as Go does ("1h30m").
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 90s, 15m, 1h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Load reads and checks a config file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("config file %s does not exist: %w", path, err)
		}
		return nil, fmt.Errorf("read config file %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	f := &File{Path: path, private: fi.Mode().Perm()&0o077 == 0}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a misspelt key is an error, not silently ignored
	// An empty file is an empty config (yaml reports io.EOF).
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if err := f.check(fi.Mode().Perm()); err != nil {
		return nil, err
	}
	return f, nil
}

// check refuses inline secrets in a file others can read, and references
// to undefined repositories.
func (f *File) check(perm fs.FileMode) error {
	var problems []string
	for _, name := range sortedKeys(f.Clusters) {
		c := f.Clusters[name]
		if c == nil {
			problems = append(problems, fmt.Sprintf("clusters.%s is empty", name))
			continue
		}
		at := "clusters." + name
		if !f.private {
			problems = append(problems, inlineSecrets(at, "", reflect.ValueOf(c).Elem())...)
		}
		if c.Repository != "" && f.Repositories[c.Repository] == nil {
			problems = append(problems, fmt.Sprintf("%s.repository %q is not under repositories (%s)", at, c.Repository, strings.Join(sortedKeys(f.Repositories), ", ")))
		}
		if s := c.Schedule; s != nil {
			if s.Repository != "" && f.Repositories[s.Repository] == nil {
				problems = append(problems, fmt.Sprintf("%s.schedule.repository %q is not under repositories", at, s.Repository))
			}
			if s.Every < 0 {
				problems = append(problems, fmt.Sprintf("%s.schedule.every %s: must be positive (e.g. 1h)", at, time.Duration(s.Every)))
			} else if s.Every == 0 {
				problems = append(problems, fmt.Sprintf("%s.schedule.every is required (e.g. 1h)", at))
			} else if s.Jitter > s.Every {
				problems = append(problems, fmt.Sprintf("%s.schedule.jitter is longer than its every", at))
			}
		}
	}
	for _, name := range sortedKeys(f.Repositories) {
		r := f.Repositories[name]
		if r == nil || r.URL == "" {
			problems = append(problems, fmt.Sprintf("repositories.%s has no url", name))
			continue
		}
		if !f.private {
			problems = append(problems, inlineSecrets("repositories."+name, "", reflect.ValueOf(r).Elem())...)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	msg := strings.Join(problems, "; ")
	if !f.private && slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "inline") }) {
		msg += fmt.Sprintf(": %s is mode %04o, readable by others, so secrets must be references (env:NAME or file:/path), or make the file private (chmod 600 %s)",
			f.Path, perm, f.Path)
	}
	return fmt.Errorf("config file %s: %s", f.Path, msg)
}

// IsInlineSecret says whether v is a literal secret rather than a
// reference (env:, file:) or nothing.
func IsInlineSecret(v string) bool {
	return v != "" && !strings.HasPrefix(v, "env:") && !strings.HasPrefix(v, "file:")
}

// HasInlineCredentials says whether a value carries a secret literally:
// minio://AK:SK@..., postgres://USER:PASSWORD@..., a mistyped
// minio:/AK:SK@..., password=... in a DSN, a pasted private key. It is
// objstore.HasSecret, the rule the redaction of every output follows, so
// what must not sit in a readable file and what is hidden when shown are
// the same.
func HasInlineCredentials(u string) bool {
	if u == "" || strings.HasPrefix(u, "env:") || strings.HasPrefix(u, "file:") {
		return false
	}
	return objstore.HasSecret(u)
}

// inlineSecrets walks every key under at (a cluster or a repository) and
// names each one holding a secret literally: a key tagged secret:"always"
// (a password) unless it is a reference, and any other text key (URLs,
// endpoints, paths, and keys added later) that HasInlineCredentials finds
// a secret in.
func inlineSecrets(at, key string, v reflect.Value) []string {
	var out []string
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		k := name
		if key != "" {
			k = key + "." + name
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				continue
			}
			fv = fv.Elem()
		}
		switch fv.Kind() {
		case reflect.Struct:
			out = append(out, inlineSecrets(at, k, fv)...)
		case reflect.String:
			out = append(out, inlineSecret(at, k, fv.String(), sf.Tag.Get("secret") == "always")...)
		case reflect.Slice:
			if fv.Type().Elem().Kind() == reflect.String {
				for j := range fv.Len() {
					out = append(out, inlineSecret(at, fmt.Sprintf("%s[%d]", k, j), fv.Index(j).String(), false)...)
				}
			}
		}
	}
	return out
}

func inlineSecret(at, key, v string, always bool) []string {
	switch {
	case always && IsInlineSecret(v):
		return []string{fmt.Sprintf("%s.%s is written inline", at, key)}
	case HasInlineCredentials(v):
		return []string{fmt.Sprintf("%s has credentials inline in its %s (%s)", at, key, objstore.Redact(v))}
	}
	return nil
}

// Resolve turns a value that may be a reference into the value itself.
func Resolve(v string) (string, error) {
	switch {
	case strings.HasPrefix(v, "env:"):
		name := strings.TrimPrefix(v, "env:")
		val, ok := os.LookupEnv(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s (referenced as %s) is not set", name, v)
		}
		return val, nil
	case strings.HasPrefix(v, "file:"):
		p := strings.TrimPrefix(v, "file:")
		b, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("read secret file %s: %w", p, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return v, nil
}

// Cluster returns a cluster by name, or an error listing the known ones.
func (f *File) Cluster(name string) (*Cluster, error) {
	if c := f.Clusters[name]; c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("config file %s has no cluster %q (it names: %s)", f.Path, name, listOrNone(sortedKeys(f.Clusters)))
}

// Repository returns a repository by name, or an error listing the known
// ones.
func (f *File) Repository(name string) (*Repository, error) {
	if r := f.Repositories[name]; r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("config file %s has no repository %q (it names: %s)", f.Path, name, listOrNone(sortedKeys(f.Repositories)))
}

// Scheduled lists the clusters that have a schedule, by name.
func (f *File) Scheduled() []string {
	var out []string
	for _, n := range sortedKeys(f.Clusters) {
		if f.Clusters[n] != nil && f.Clusters[n].Schedule != nil {
			out = append(out, n)
		}
	}
	return out
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
