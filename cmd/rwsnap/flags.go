package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwversion"
)

// env names the RWSNAP_ variable of a flag.
func env(name string) []string {
	b := []byte("RWSNAP_" + name)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return []string{string(b)}
}

const (
	catEtcd    = "etcd meta store"
	catStorage = "storage locations"
	catOutput  = "output"
)

// etcdFlags are risectl's (restore-meta) etcd flags, with etcdctl's names
// and ETCDCTL_* variables as aliases: people paste from both tools.
func etcdFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "etcd-endpoints", Aliases: []string{"endpoints"}, Category: catEtcd, Usage: "comma-separated etcd endpoints of the meta store, e.g. 127.0.0.1:2379 (etcdctl: --endpoints, ETCDCTL_ENDPOINTS)", EnvVars: append(env("etcd-endpoints"), "ETCDCTL_ENDPOINTS")},
		&cli.StringFlag{Name: "etcd-username", Category: catEtcd, Usage: "etcd user; turns authentication on", EnvVars: env("etcd-username")},
		&cli.StringFlag{Name: "etcd-password", Category: catEtcd, Usage: "etcd password of --etcd-username; prefer the environment variable, flags show in the process list", EnvVars: append(env("etcd-password"), "ETCDCTL_PASSWORD")},
		&cli.StringFlag{Name: "user", Category: catEtcd, Usage: "etcdctl's USER[:PASSWORD], the same as --etcd-username and --etcd-password (ETCDCTL_USER)", EnvVars: append(env("user"), "ETCDCTL_USER")},
		&cli.BoolFlag{Name: "etcd-auth", Category: catEtcd, Usage: "risectl's switch for authentication; implied by a user name", EnvVars: env("etcd-auth")},
		// risectl has no TLS flags; these are etcdctl's --cacert, --cert, --key.
		&cli.StringFlag{Name: "etcd-cacert", Aliases: []string{"cacert"}, Category: catEtcd, Usage: "PEM file of the CA that signed etcd's server certificate (turns TLS on; https:// endpoints)", EnvVars: append(env("etcd-cacert"), "ETCDCTL_CACERT")},
		&cli.StringFlag{Name: "etcd-cert", Aliases: []string{"cert"}, Category: catEtcd, Usage: "PEM client certificate for etcd's --client-cert-auth (with --etcd-key)", EnvVars: append(env("etcd-cert"), "ETCDCTL_CERT")},
		&cli.StringFlag{Name: "etcd-key", Aliases: []string{"key"}, Category: catEtcd, Usage: "PEM private key of --etcd-cert", EnvVars: append(env("etcd-key"), "ETCDCTL_KEY")},
	}
}

// locationFlags override what the cluster's system params say.
func locationFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "backup-storage-url", Category: catStorage, Usage: "where snapshots live, RisingWave URL syntax: s3://BUCKET, minio://AK:SK@HOST:PORT/BUCKET, fs://PATH (default: the cluster's backup_storage_url param)", EnvVars: env("backup-storage-url")},
		&cli.StringFlag{Name: "backup-storage-directory", Category: catStorage, Usage: "directory inside the backup storage (default: the cluster's backup_storage_directory param)", EnvVars: env("backup-storage-directory")},
		&cli.StringFlag{Name: "hummock-storage-url", Category: catStorage, Usage: "the state store, without 'hummock+' (default: the cluster's state_store param)", EnvVars: env("hummock-storage-url")},
		&cli.StringFlag{Name: "hummock-storage-directory", Category: catStorage, Usage: "the state store's data directory (default: the cluster's data_directory param)", EnvVars: env("hummock-storage-directory")},
		rwVersionFlag(),
	}
}

func withFlags(groups ...[]cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// etcdConfig is the etcd connection the flags describe. A user name
// (--etcd-username or --user) turns authentication on, as in etcdctl; a
// password without a user, or a user without a password, is refused here
// with what to type, rather than by etcd in its own words.
func etcdConfig(c *cli.Context) (metastore.Config, error) {
	cfg := metastore.Config{
		Endpoints: metastore.ParseEndpoints(c.String("etcd-endpoints")),
		Auth:      c.Bool("etcd-auth"),
		Username:  c.String("etcd-username"),
		Password:  c.String("etcd-password"),
		CACert:    c.String("etcd-cacert"),
		Cert:      c.String("etcd-cert"),
		Key:       c.String("etcd-key"),
	}
	if u := c.String("user"); u != "" {
		name, pw, hasPW := strings.Cut(u, ":")
		if cfg.Username != "" && cfg.Username != name {
			return cfg, usagef("--user %q and --etcd-username %q name different users; give one", name, cfg.Username)
		}
		cfg.Username = name
		if hasPW {
			cfg.Password = pw
		}
	}
	if (cfg.Cert == "") != (cfg.Key == "") {
		return cfg, usagef("--etcd-cert and --etcd-key go together: give both the client certificate and its private key, or neither")
	}
	switch {
	case cfg.Username != "":
		cfg.Auth = true
		if cfg.Password == "" {
			return cfg, usagef("etcd user %q has no password: pass --etcd-password (better: RWSNAP_ETCD_PASSWORD or ETCDCTL_PASSWORD in the environment) or --user %s:PASSWORD", cfg.Username, cfg.Username)
		}
	case cfg.Password != "":
		return cfg, usagef("an etcd password was given without a user: pass --etcd-username (or --user USER)")
	case cfg.Auth:
		return cfg, usagef("--etcd-auth needs --etcd-username and --etcd-password (or --user USER:PASSWORD)")
	}
	return cfg, nil
}

func overrides(c *cli.Context) metasnap.Overrides {
	return metasnap.Overrides{
		BackupURL:  c.String("backup-storage-url"),
		BackupDir:  c.String("backup-storage-directory"),
		HummockURL: c.String("hummock-storage-url"),
		DataDir:    c.String("hummock-storage-directory"),
	}
}

// cluster is what a command learned about the cluster before acting.
type cluster struct {
	etcd   *clientv3.Client // nil when not needed and not given
	loc    metasnap.Locations
	backup *metasnap.Storage // set by openLocation
	// pin is --rw-version once checkRWVersion found the cluster agrees.
	pin *rwversion.Pin
}

func (cl *cluster) Close() {
	if cl.backup != nil {
		cl.backup.Store.Close()
	}
	if cl.etcd != nil {
		cl.etcd.Close()
	}
}

// openLocation is openCluster plus the backup location it resolved; the
// cluster's Close closes both.
func openLocation(ctx context.Context, c *cli.Context, needEtcd bool) (*cluster, *metasnap.Storage, error) {
	cl, err := openCluster(ctx, c, needEtcd)
	if err != nil {
		return nil, nil, err
	}
	if cl.backup, err = openBackup(ctx, cl.loc); err != nil {
		cl.Close()
		return nil, nil, err
	}
	// The directory as the cluster's release uses it in keys.
	if verbatim, err := backupDirVerbatim(ctx, c, cl, cl.backup.Store, cl.loc.BackupDir); err != nil {
		cl.Close()
		return nil, nil, err
	} else if verbatim {
		cl.backup = metasnap.NewStorageVerbatim(cl.backup.Store, cl.loc.BackupDir)
	}
	// --may-be-new where a command has it; false (a missing manifest is
	// an error) for the others.
	cl.backup.MayBeNew = c.Bool("may-be-new")
	// A --rw-version the cluster contradicts is refused before any path is
	// chosen or anything written, on every command that takes it.
	if err := checkRWVersion(ctx, c, cl, cl.backup); err != nil {
		cl.Close()
		return nil, nil, err
	}
	return cl, cl.backup, nil
}

// openCluster connects to etcd (required when needEtcd, or when the backup
// location must come from the cluster's params) and resolves locations.
func openCluster(ctx context.Context, c *cli.Context, needEtcd bool) (*cluster, error) {
	// A --rw-version naming no etcd-era release is refused before any
	// connection.
	if _, err := rwPinFrom(c); err != nil {
		return nil, err
	}
	o := overrides(c)
	cl := &cluster{}
	haveEtcd := c.String("etcd-endpoints") != ""
	if !haveEtcd && (needEtcd || o.BackupURL == "" || o.BackupDir == "") {
		return nil, usagef("--etcd-endpoints is required (or give both --backup-storage-url and --backup-storage-directory to work on a backup location without the cluster)")
	}
	params := map[string]string{}
	if haveEtcd {
		ec, err := etcdConfig(c)
		if err != nil {
			return nil, err
		}
		cli, err := metastore.Connect(ctx, ec)
		if err != nil {
			return nil, err
		}
		cl.etcd = cli
		if params, err = metastore.ReadSystemParams(ctx, cli); err != nil {
			cl.Close()
			return nil, err
		}
		if len(params) == 0 {
			cl.Close()
			return nil, fmt.Errorf("%w (etcd %s)", metastore.ErrNotRisingWave, c.String("etcd-endpoints"))
		}
	}
	loc, err := metasnap.ResolveLocations(params, o)
	if err != nil {
		cl.Close()
		return nil, err
	}
	cl.loc = loc
	slog.Debug("locations", "backup", objstore.Redact(loc.BackupURL), "backup_dir", loc.BackupDir,
		"hummock", objstore.Redact(loc.HummockURL), "data_dir", loc.DataDir, "own_location", loc.OwnLocation)
	return cl, nil
}

// openBackup opens the backup location.
func openBackup(ctx context.Context, loc metasnap.Locations) (*metasnap.Storage, error) {
	store, err := objstore.Open(ctx, loc.BackupURL)
	if err != nil {
		return nil, fmt.Errorf("open backup storage: %w", err)
	}
	return metasnap.NewStorage(store, loc.BackupDir), nil
}

// mayBeNewFlag is --may-be-new of the commands that read a backup location's
// snapshots: without it a location holding no manifest.json is an error
// (most often a mistyped URL or directory), with it an empty location.
func mayBeNewFlag() cli.Flag {
	return &cli.BoolFlag{Name: "may-be-new", Category: catStorage, Usage: "the backup location may be new: no manifest.json there means no snapshots, not an error", EnvVars: env("may-be-new")}
}
