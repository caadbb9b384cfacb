package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/config"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
)

const catConfig = "configuration file"

// configFlags name a config file and the cluster and repository in it;
// accepted before and after the command, like the logging flags.
func configFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Category: catConfig, Usage: "configuration file (default: $RWSNAP_CONFIG, else ~/.config/rwsnap/config.yaml)", EnvVars: []string{config.EnvPath}},
		&cli.StringFlag{Name: "cluster", Category: catConfig, Usage: "a cluster named in the configuration file: its etcd, meta node and default repository", EnvVars: env("cluster")},
		&cli.StringFlag{Name: "repo", Category: catConfig, Usage: "a repository (backup location) named in the configuration file", EnvVars: env("repo")},
	}
}

// provenance is where each flag's value came from, for config show.
func provenance(c *cli.Context) map[string]string {
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	p, ok := c.App.Metadata["provenance"].(map[string]string)
	if !ok {
		p = map[string]string{}
		c.App.Metadata["provenance"] = p
	}
	return p
}

func str(c *cli.Context, n string) string { return c.String(n) }

// configPath is --config, $RWSNAP_CONFIG or the default path; explicit
// says the user named it (so a missing file is an error).
func configPath(c *cli.Context) (path string, explicit bool) {
	if p := lookup(c, "config", str); p != "" {
		return p, true
	}
	return config.DefaultPath(), false
}

// loadConfig reads the config file; nil without error when none was named
// and the default one does not exist.
func loadConfig(c *cli.Context) (*config.File, error) {
	path, explicit := configPath(c)
	if !explicit {
		if _, err := os.Stat(path); err != nil {
			return nil, nil
		}
	}
	f, err := config.Load(path)
	if err != nil {
		return nil, usageError{err}
	}
	return f, nil
}

// applyConfig fills the flags a --cluster and --repo give, where neither
// a flag nor an environment variable set them (those override the file).
func applyConfig(c *cli.Context) error {
	clusterName, repoName := lookup(c, "cluster", str), lookup(c, "repo", str)
	if clusterName == "" && repoName == "" {
		return nil
	}
	f, err := loadConfig(c)
	if err != nil {
		return err
	}
	if f == nil {
		path, _ := configPath(c)
		return usagef("--cluster/--repo need a configuration file: %s does not exist (pass --config FILE or set %s)", path, config.EnvPath)
	}
	prov := provenance(c)
	has := func(name string) bool {
		return slices.ContainsFunc(c.Command.Flags, func(fl cli.Flag) bool { return slices.Contains(fl.Names(), name) })
	}
	set := func(flag, value, key string) error {
		if value == "" || !has(flag) || c.IsSet(flag) {
			return nil
		}
		v, err := config.Resolve(value)
		if err != nil {
			return usagef("config file %s, %s: %v", f.Path, key, err)
		}
		if err := c.Set(flag, v); err != nil {
			return err
		}
		prov[flag] = fmt.Sprintf("file %s (%s)", f.Path, key)
		return nil
	}
	if clusterName != "" {
		cl, err := f.Cluster(clusterName)
		if err != nil {
			return usageError{err}
		}
		at := "clusters." + clusterName
		for _, s := range []struct{ flag, value, key string }{
			{"etcd-endpoints", strings.Join(cl.Etcd.Endpoints, ","), at + ".etcd.endpoints"},
			{"etcd-username", cl.Etcd.Username, at + ".etcd.username"},
			{"etcd-password", cl.Etcd.Password, at + ".etcd.password"},
			{"etcd-cacert", cl.Etcd.CACert, at + ".etcd.cacert"},
			{"etcd-cert", cl.Etcd.Cert, at + ".etcd.cert"},
			{"etcd-key", cl.Etcd.Key, at + ".etcd.key"},
			{"meta-addr", cl.MetaAddr, at + ".meta_addr"},
			{"pg-url", cl.PgURL, at + ".pg_url"},
			{"rw-version", cl.RisingWaveVersion, at + ".risingwave_version"},
		} {
			if err := set(s.flag, s.value, s.key); err != nil {
				return err
			}
		}
		if repoName == "" {
			repoName = cl.Repository
		}
		// schedule --cluster NAME runs that cluster's job as the file
		// describes it.
		if sc := cl.Schedule; sc != nil && c.Command.Name == "schedule" {
			if repoName == cl.Repository && sc.Repository != "" {
				repoName = sc.Repository
			}
			sched := []struct{ flag, value, key string }{
				{"every", durationText(sc.Every), at + ".schedule.every"},
				{"jitter", durationText(sc.Jitter), at + ".schedule.jitter"},
				{"remarks", sc.Remarks, at + ".schedule.remarks"},
				{"keep-within", durationText(sc.Keep.Within), at + ".schedule.keep.within"},
				{"job-timeout", durationText(sc.Timeout), at + ".schedule.timeout"},
			}
			if sc.WithData {
				sched = append(sched, struct{ flag, value, key string }{"with-data", "true", at + ".schedule.with_data"})
			}
			if sc.Retries != nil {
				sched = append(sched, struct{ flag, value, key string }{"retries", strconv.Itoa(*sc.Retries), at + ".schedule.retries"})
			}
			for flag, n := range map[string]int{"keep-last": sc.Keep.Last, "keep-hourly": sc.Keep.Hourly, "keep-daily": sc.Keep.Daily, "keep-weekly": sc.Keep.Weekly, "keep-monthly": sc.Keep.Monthly} {
				if n != 0 {
					sched = append(sched, struct{ flag, value, key string }{flag, strconv.Itoa(n), at + ".schedule.keep." + strings.TrimPrefix(flag, "keep-")})
				}
			}
			for _, s := range sched {
				if err := set(s.flag, s.value, s.key); err != nil {
					return err
				}
			}
		}
	}
	if repoName != "" {
		r, err := f.Repository(repoName)
		if err != nil {
			return usageError{err}
		}
		at := "repositories." + repoName
		if err := set("backup-storage-url", r.URL, at+".url"); err != nil {
			return err
		}
		if err := set("backup-storage-directory", r.Directory, at+".directory"); err != nil {
			return err
		}
		if err := set("data-storage-url", r.DataURL, at+".data_url"); err != nil {
			return err
		}
		if err := set("data-storage-directory", r.DataDirectory, at+".data_directory"); err != nil {
			return err
		}
	}
	return nil
}

func durationText(d config.Duration) string {
	if d == 0 {
		return ""
	}
	return time.Duration(d).String()
}

// sourceOf says where a flag's value came from: the config file (recorded
// by applyConfig), the command line, an environment variable, or the
// default.
func sourceOf(c *cli.Context, name string) string {
	if p := provenance(c)[name]; p != "" {
		return p
	}
	for _, fl := range c.Command.Flags {
		if !slices.Contains(fl.Names(), name) {
			continue
		}
		// urfave/cli counts a value from the environment as set on the
		// command line (LocalFlagNames): look at the arguments themselves.
		if args, ok := c.App.Metadata[metaArgs].([]string); ok && onCommandLine(args, fl.Names()) {
			return "flag --" + name
		} else if !ok && slices.Contains(c.LocalFlagNames(), name) {
			return "flag --" + name
		}
		if ev, ok := fl.(interface{ GetEnvVars() []string }); ok {
			for _, e := range ev.GetEnvVars() {
				if _, set := os.LookupEnv(e); set {
					return "env " + e
				}
			}
		}
	}
	if c.String(name) != "" {
		return "default"
	}
	return ""
}

// metaArgs is where run keeps the command line, for sourceOf.
const metaArgs = "args"

// onCommandLine says whether one of a flag's names is given in args
// (--name, -name, --name=V), before any "--".
func onCommandLine(args, names []string) bool {
	for _, a := range args[min(1, len(args)):] {
		if a == "--" {
			return false
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if slices.Contains(names, n) {
			return true
		}
	}
	return false
}

// configShowResult is config show's.
type configShowResult struct {
	ConfigFile string          `json:"config_file"` // "" when none
	Cluster    string          `json:"cluster"`
	Repository string          `json:"repository"`
	Settings   []configSetting `json:"settings"`
}

type configSetting struct {
	Name   string `json:"name"`   // the flag it sets
	Value  string `json:"value"`  // redacted
	Source string `json:"source"` // flag --X, env X, file F (key), cluster params (etcd E), default, "" (unset)
}

func (r *configShowResult) WriteTable(w io.Writer) error {
	file := r.ConfigFile
	if file == "" {
		file = "(none)"
	}
	fmt.Fprintf(w, "config file: %s\ncluster: %s\nrepository: %s\n", file, orDash(r.Cluster), orDash(r.Repository))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tFROM")
	for _, s := range r.Settings {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, orDash(s.Value), orDash(s.Source))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shownSettings are the flags config show resolves, in reading order.
var shownSettings = []string{"etcd-endpoints", "etcd-username", "etcd-password", "etcd-cacert", "etcd-cert", "etcd-key",
	"meta-addr", "pg-url", "rw-version", "backup-storage-url", "backup-storage-directory", "hummock-storage-url", "hummock-storage-directory"}

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "the configuration file: named clusters and repositories",
		Description: `A YAML file (--config, $RWSNAP_CONFIG, else ~/.config/rwsnap/config.yaml) that
names clusters and repositories, so that --cluster NAME and --repo NAME stand
for their flags on every command; flags and environment variables still win.
Secrets are references, env:NAME or file:/path; written inline they are refused
unless the file is private (chmod 600). See docs/config.md.

Example:
  clusters:
    prod:
      etcd: {endpoints: [etcd-0:2379, etcd-1:2379], username: root, password: env:PROD_ETCD_PASSWORD}
      meta_addr: http://meta:5690
      repository: prod-backups
  repositories:
    prod-backups: {url: s3://company-rw-backups, directory: prod/backup}`,
		Subcommands: []*cli.Command{{
			Name:  "show",
			Usage: "print the resolved configuration, redacted, with where each value came from",
			Description: `Resolves --cluster and --repo, flags and environment variables as any command
would, then, unless --offline, reads the cluster's system params from etcd for
what is still unset (the backup and hummock locations). Secrets are redacted.

Examples:
  rwsnap config show --cluster prod
  rwsnap config show --config fleet.yaml --cluster staging --repo offsite -o json`,
			Flags: withFlags(etcdFlags(), locationFlags(), metaNodeFlags(), pgFlags(), []cli.Flag{
				&cli.BoolFlag{Name: "offline", Usage: "do not connect to etcd for the cluster's params"},
				outputFlag(),
			}),
			Action: runConfigShow,
		}},
	}
}

func runConfigShow(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("config show takes no arguments, got %q", c.Args().Slice())
	}
	out := &configShowResult{Cluster: lookup(c, "cluster", str), Repository: lookup(c, "repo", str), Settings: []configSetting{}}
	f, err := loadConfig(c)
	if err != nil {
		return err
	}
	// A risingwave_version every other command would refuse is refused
	// here, naming where it came from.
	if _, err := rwPinFrom(c); err != nil {
		return err
	}
	if f != nil {
		out.ConfigFile = f.Path
		if out.Repository == "" && out.Cluster != "" {
			if cl, err := f.Cluster(out.Cluster); err == nil {
				out.Repository = cl.Repository
			}
		}
	}
	values := map[string]string{}
	sources := map[string]string{}
	for _, n := range shownSettings {
		values[n], sources[n] = c.String(n), sourceOf(c, n)
	}
	if !c.Bool("offline") && values["etcd-endpoints"] != "" {
		fillFromCluster(c.Context, c, values, sources)
	}
	for _, n := range shownSettings {
		out.Settings = append(out.Settings, configSetting{Name: n, Value: redactSetting(n, values[n]), Source: sources[n]})
	}
	return print(c, out)
}

// fillFromCluster reads the cluster's params for the locations still
// unset, as the meta commands would.
func fillFromCluster(ctx context.Context, c *cli.Context, values, sources map[string]string) {
	ec, err := etcdConfig(c)
	if err == nil {
		var cli interface{ Close() error }
		var params map[string]string
		cl, cerr := metastore.Connect(ctx, ec)
		if err = cerr; err == nil {
			cli = cl
			params, err = metastore.ReadSystemParams(ctx, cl)
			cli.Close()
		}
		if err == nil {
			loc, _ := metasnap.ResolveLocations(params, metasnap.Overrides{})
			from := "cluster params (etcd " + values["etcd-endpoints"] + ")"
			for n, v := range map[string]string{"backup-storage-url": loc.BackupURL, "backup-storage-directory": loc.BackupDir,
				"hummock-storage-url": loc.HummockURL, "hummock-storage-directory": loc.DataDir} {
				if values[n] == "" && v != "" {
					values[n], sources[n] = v, from
				}
			}
			return
		}
	}
	slog.Warn("cannot read the cluster's params; locations they would give are shown unset", "err", err)
}

func redactSetting(name, v string) string {
	switch {
	case v == "":
		return ""
	case name == "etcd-password":
		return "***"
	case name == "pg-url":
		return redactConn(v)
	case strings.HasSuffix(name, "-url"):
		return objstore.Redact(v)
	}
	return v
}
