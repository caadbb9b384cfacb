package metaclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
)

// Mode is how a command reaches the backup location.
type Mode string

const (
	// ModeAuto goes through the meta node when a leader is live and the
	// location is the cluster's own, directly otherwise.
	ModeAuto Mode = "auto"
	// ModeDirect reads etcd and writes storage itself.
	ModeDirect Mode = "direct"
	// ModeMeta goes through the meta node.
	ModeMeta Mode = "meta"
)

// ErrUsage marks a bad combination of options (the CLI exits 2 on it).
var ErrUsage = errors.New("usage")

// ParseMode parses --mode.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "", ModeAuto:
		return ModeAuto, nil
	case ModeDirect, ModeMeta:
		return m, nil
	}
	return "", fmt.Errorf("%w: --mode %q: want auto, direct or meta", ErrUsage, s)
}

// Use says what the command will do with the operator: reads may fall back
// to storage when the meta node does not answer, writes may not.
type Use int

const (
	// UseRead only reads the manifest.
	UseRead Use = iota
	// UseWrite deletes snapshots (delete, prune).
	UseWrite
	// UseBackup takes snapshots (backup-meta, schedule).
	UseBackup
	// UseCopy adds copied entries (copy-meta-snapshots): only direct, so
	// the cluster's own location is refused while its meta node is live.
	UseCopy
)

// ChooseOptions are the inputs of Choose.
type ChooseOptions struct {
	Mode Mode
	// Etcd is the cluster's meta store; nil when only a backup location
	// was given (no leader can be looked up, so auto means direct).
	Etcd *clientv3.Client
	// Locations are the resolved locations (OwnLocation matters).
	Locations metasnap.Locations
	// Direct is the direct operator on the target location.
	Direct *metasnap.Direct
	// MetaAddr is --meta-addr / RW_META_ADDR; "" when not given: the
	// leader's address recorded in etcd is used, else DefaultAddr.
	MetaAddr string
	Force    bool
	Use      Use
	Poll     time.Duration
	Logger   *slog.Logger
	// DialTimeout bounds reaching the meta node (default 5s).
	DialTimeout time.Duration
}

// Choice is the chosen operator and why.
type Choice struct {
	metasnap.Operator
	// Path is "meta" or "direct", for scripts (JSON output).
	Path string
	// Reason says why, for people.
	Reason string
	// Leader is the live meta leader found in etcd, if any.
	Leader *metastore.Leader
	// Identity says whether the target is the cluster's own location, and
	// why (metasnap.Identify).
	Identity metasnap.Identity
	client   *Client
	closers  []func() error
}

// OnClose registers fn to run on Close (e.g. closing a store the
// direct operator uses).
func (c *Choice) OnClose(fn func() error) { c.closers = append(c.closers, fn) }

// Close releases the meta connection and whatever OnClose registered.
func (c *Choice) Close() error {
	var errs []error
	if c.client != nil {
		errs = append(errs, c.client.Close())
	}
	for _, fn := range c.closers {
		errs = append(errs, fn())
	}
	return errors.Join(errs...)
}

// Choose picks the path for one command (DESIGN.md §4, live cluster
// rules):
//   - auto: with a live meta leader in etcd and the target being the
//     cluster's own backup location, go through the meta node (it caches
//     that manifest and pins only the SSTs of snapshots it knows); else
//     directly. --force with a live leader means "write directly anyway"
//     (the operator knows the meta node is stopped although its lease
//     still runs). Reads fall back to storage if the meta node is
//     unreachable.
//   - direct: directly; writes to a live leader's own location are
//     refused unless forced.
//   - meta: through the meta node; only for the cluster's own location.
func Choose(ctx context.Context, o ChooseOptions) (*Choice, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Direct == nil || o.Direct.Opts.Target == nil {
		return nil, errors.New("metaclient.Choose: no direct operator / target location")
	}
	target := o.Direct.Opts.Target
	var leader *metastore.Leader
	if o.Etcd != nil {
		var err error
		if leader, err = metastore.FindLeader(ctx, o.Etcd); err != nil {
			return nil, err
		}
	}
	write := o.Use != UseRead
	// Is the target the cluster's own location? By what it is, not how it
	// is spelled (metasnap.Identify); settled with the live meta node's
	// manifest and, for writes, a probe object. In doubt: its own.
	var metaChoice *Choice
	var metaErr error
	dial := func(ctx context.Context) (*Choice, error) {
		if metaChoice == nil && metaErr == nil {
			metaChoice, metaErr = o.dialMeta(ctx, leader, log)
		}
		return metaChoice, metaErr
	}
	ident := metasnap.Identity{Verdict: metasnap.Different, Reason: "not compared"}
	if o.Locations.OwnLocation {
		ident = metasnap.Identity{Verdict: metasnap.Unsure, Reason: "no live meta leader to compare with"}
	}
	if leader != nil || (o.Mode == ModeMeta && o.Etcd != nil) {
		ident = metasnap.Identify(ctx, metasnap.IdentifyInput{
			Target: target, TargetURL: o.Locations.BackupURL, TargetDir: o.Locations.BackupDir,
			ClusterURL: o.Locations.ClusterBackupURL, ClusterDir: o.Locations.ClusterBackupDir,
			MetaManifest: func(ctx context.Context) (*metasnap.Manifest, error) {
				c, err := dial(ctx)
				if err != nil {
					return nil, err
				}
				return (&Operator{Client: c.client}).Manifest(ctx)
			},
			Probe: write,
		})
		log.Debug("backup location identity", "verdict", ident.Verdict.String(), "reason", ident.Reason)
	}
	own := ident.Verdict.Own()
	if !write && ident.Verdict != metasnap.Same {
		// A read of another spelling is harmless: read what was named.
		own = false
	}
	o.Direct.Opts.OwnLocation = own
	closeMeta := func() {
		if metaChoice != nil {
			metaChoice.Close()
		}
	}
	useMeta := func(reason string) (*Choice, error) {
		c, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		c.Reason, c.Identity = reason, ident
		return c, nil
	}
	direct := func(reason string) (*Choice, error) {
		closeMeta()
		c := &Choice{Operator: o.Direct, Path: string(ModeDirect), Reason: reason, Leader: leader, Identity: ident}
		log.Info("working on the backup location directly", "reason", reason, "location", target.String())
		return c, nil
	}
	cluster := "the cluster's backup location"
	if o.Locations.ClusterBackupURL != "" {
		cluster = fmt.Sprintf("the cluster's backup location %s directory %q", objstore.Redact(o.Locations.ClusterBackupURL), o.Locations.ClusterBackupDir)
	}
	switch o.Mode {
	case ModeDirect:
		if leader != nil && own && write {
			if !o.Force {
				closeMeta()
				what, hint := "--mode direct", "use --mode auto (or meta) to go through the meta node"
				if o.Use == UseCopy {
					what, hint = "copy-meta-snapshots", "the meta node cannot take copied entries: copy into another location, or stop the meta node first"
				}
				return nil, fmt.Errorf("%s: %w (%s, lease ttl %ds) and caches the manifest of %s; %s is %s (%s): a direct write there would be overwritten by its next backup or delete, and its SSTs left unpinned; %s, or pass --force if the meta node is certainly stopped or the location certainly another",
					what, metasnap.ErrLiveLeader, leader.Addr, leader.TTL, cluster, target, sameText(ident), ident.Reason, hint)
			}
			if o.Use != UseBackup { // metasnap.Backup warns itself
				log.Warn("writing the live cluster's own backup location directly (--force)", "leader", leader.Addr)
			}
		}
		return direct("--mode direct")
	case ModeMeta:
		if o.Etcd != nil && !ident.Verdict.Own() {
			closeMeta()
			return nil, fmt.Errorf("%w: --mode meta works on the cluster's own backup location only (the meta node knows no other), but the target %s is another location than %s (%s); use --mode direct or auto for another location", ErrUsage, target, cluster, ident.Reason)
		}
		if o.Etcd != nil && leader == nil {
			log.Warn("no live meta leader in etcd; trying the meta node anyway (--mode meta)")
		}
		return useMeta("--mode meta")
	case ModeAuto, "":
	default:
		closeMeta()
		return nil, fmt.Errorf("%w: unknown mode %q", ErrUsage, o.Mode)
	}
	switch {
	case o.Etcd == nil:
		return direct("no etcd endpoints given, so no live meta leader can be looked up")
	case leader == nil:
		return direct("no live meta leader in etcd")
	case !own:
		return direct(fmt.Sprintf("the target is not the cluster's own backup location: %s (meta leader %s is live)", ident.Reason, leader.Addr))
	case o.Force && write:
		return direct(fmt.Sprintf("--force: writing directly although meta leader %s is live", leader.Addr))
	case ident.Verdict == metasnap.Unsure && write:
		closeMeta()
		return nil, fmt.Errorf("%w (%s) and caches the manifest of %s; rwsnap cannot tell whether the target %s is that location (%s), so it must treat it as the cluster's own: a direct write there could be undone by the meta node's next backup or delete. If it is the cluster's location, pass --mode meta to go through the meta node; if it is certainly another location, pass --force to write directly",
			metasnap.ErrLiveLeader, leader.Addr, cluster, target, ident.Reason)
	}
	c, err := useMeta(fmt.Sprintf("meta leader %s is live and owns the target location (%s)", leader.Addr, ident.Reason))
	if err == nil {
		return c, nil
	}
	if !write {
		// Reading manifest.json is harmless; only the meta node's cached
		// view may be newer.
		log.Warn("the live meta node does not answer; reading the stored manifest directly (the meta node's cached view may differ)", "err", err)
		return direct("meta node unreachable; a read needs no meta node")
	}
	return nil, fmt.Errorf("%w (%s, lease ttl %ds) and caches the manifest of %s, so rwsnap must go through it, but: %w. Otherwise work on another --backup-storage-url/--backup-storage-directory, or pass --force to write directly if the meta node is certainly stopped",
		metasnap.ErrLiveLeader, leader.Addr, leader.TTL, target, err)
}

// sameText says how sure the identity is, for messages.
func sameText(id metasnap.Identity) string {
	if id.Verdict == metasnap.Same {
		return "that location"
	}
	return "possibly that location"
}

// dialMeta connects to the meta node: --meta-addr / RW_META_ADDR if
// given, else the leader's address from its election key, else the
// default.
func (o ChooseOptions) dialMeta(ctx context.Context, leader *metastore.Leader, log *slog.Logger) (*Choice, error) {
	addr, src := o.MetaAddr, "--meta-addr / "+EnvAddr
	switch {
	case addr != "":
	case leader != nil:
		addr, src = leader.Addr, fmt.Sprintf("the meta leader's address in etcd key %s; --meta-addr or %s overrides it", leader.Key, EnvAddr)
	default:
		addr, src = DefaultAddr, fmt.Sprintf("the default; --meta-addr or %s sets it", EnvAddr)
	}
	cl, err := Dial(ctx, DialOptions{Addr: addr, Source: src, Timeout: o.DialTimeout, Logger: log})
	if err != nil {
		return nil, err
	}
	op := &Operator{Client: cl, Storage: o.Direct.Opts.Target, Poll: o.Poll, Logger: log}
	log.Info("working through the meta node", "meta", cl.Addr(), "location", o.Direct.Opts.Target.String())
	return &Choice{Operator: op, Path: string(ModeMeta), Leader: leader, client: cl}, nil
}
