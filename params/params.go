// Package params reads and sets RisingWave v1.x system parameters in the
// etcd meta store, with the guards an operator needs: types checked before
// any write, immutable parameters and backup locations protected, and no
// direct write while a meta node (which caches them) is live.
package params

import (
	"context"
	"errors"
	"fmt"
	"github.com/rwsnap/rwsnap/internal/textdist"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rwsnap/rwsnap/internal/timeouts"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
)

// Value is one parameter as stored.
type Value struct {
	metastore.Param
	Value string `json:"value"`
	// Stored is false when etcd has no key for it (RisingWave then uses
	// the default, or derives it).
	Stored bool `json:"stored"`
}

// ErrUnknown is returned for a name RisingWave v1.x does not have.
var ErrUnknown = errors.New("unknown system parameter")

// List returns every known parameter with its stored value, in RisingWave's
// order, plus any unknown keys found in etcd (from newer versions).
func List(ctx context.Context, cli *clientv3.Client) ([]Value, error) {
	kv, err := metastore.ReadSystemParams(ctx, cli)
	if err != nil {
		return nil, err
	}
	if len(kv) == 0 {
		return nil, metastore.ErrNotRisingWave
	}
	out := make([]Value, 0, len(kv))
	for _, p := range metastore.Params {
		v, ok := kv[p.Name]
		if !ok && p.Since != "" {
			continue // a newer line's parameter, absent from this older store
		}
		if !ok {
			v = p.Default
		}
		out = append(out, Value{Param: p, Value: v, Stored: ok})
		delete(kv, p.Name)
	}
	extra := make([]string, 0, len(kv))
	for name := range kv {
		extra = append(extra, name)
	}
	sort.Strings(extra)
	for _, name := range extra {
		out = append(out, Value{Param: metastore.Param{Name: name, Type: "?", Doc: "not a RisingWave v1.0-v2.0.7 parameter"}, Value: kv[name], Stored: true})
	}
	return out, nil
}

// Lookup finds a parameter by name, suggesting the closest on a typo.
func Lookup(name string) (metastore.Param, error) {
	if p, ok := metastore.LookupParam(name); ok {
		return p, nil
	}
	best, bestD := "", 1<<30
	for _, p := range metastore.Params {
		if d := textdist.Distance(name, p.Name); d < bestD {
			best, bestD = p.Name, d
		}
	}
	if bestD <= max(3, len(name)/3) {
		return metastore.Param{}, fmt.Errorf("%w %q; did you mean %q? (rwsnap params list shows all)", ErrUnknown, name, best)
	}
	return metastore.Param{}, fmt.Errorf("%w %q (rwsnap params list shows all)", ErrUnknown, name)
}

// Get returns one parameter.
func Get(ctx context.Context, cli *clientv3.Client, name string) (Value, error) {
	p, err := Lookup(name)
	if err != nil {
		return Value{}, err
	}
	all, err := List(ctx, cli)
	if err != nil {
		return Value{}, err
	}
	for _, v := range all {
		if v.Name == p.Name {
			return v, nil
		}
	}
	return Value{}, fmt.Errorf("%w %q", ErrUnknown, name)
}

// SetOptions are the guards' overrides.
type SetOptions struct {
	// Force allows immutable parameters and moving a backup location that
	// holds snapshots.
	Force bool
}

// Plan is what Set decided, before or instead of writing.
type Plan struct {
	Name, Old, New string
	// Warnings are printed whatever happens.
	Warnings []string
	// LeaderAddr is set when a meta node is live: the change must go
	// through it (ALTER SYSTEM SET), not etcd.
	LeaderAddr string
}

// AlterSQL is the statement a live cluster needs (it may hold a secret:
// run it, never print it; SuggestedSQL is for people).
func (p *Plan) AlterSQL() string {
	return fmt.Sprintf("ALTER SYSTEM SET %s TO '%s';", p.Name, strings.ReplaceAll(p.New, "'", "''"))
}

// SuggestedSQL is AlterSQL to print for a person to run: secrets in the
// value are replaced by obvious placeholders (never by the redaction
// marker, which pasted would become the value), and the text says so.
func (p *Plan) SuggestedSQL() string {
	if mp, ok := metastore.LookupParam(p.Name); ok && mp.Secret && p.New != "" {
		// The whole value is the secret (v2.0's license_key).
		ph := "<" + strings.ToUpper(p.Name) + ">"
		return fmt.Sprintf("ALTER SYSTEM SET %s TO '%s'; (replace %s with the real value: rwsnap never prints secrets)", p.Name, ph, ph)
	}
	sql := p.AlterSQL()
	shown := objstore.WithPlaceholders(sql)
	if shown == sql {
		return sql
	}
	return shown + " (replace " + objstore.SecretKeyPlaceholder + " / " + objstore.PasswordPlaceholder + " with the real secret: rwsnap never prints secrets)"
}

// shownSQL is AlterSQL with every secret replaced by a placeholder, for
// error texts.
func (p *Plan) shownSQL() string {
	if mp, ok := metastore.LookupParam(p.Name); ok && mp.Secret && p.New != "" {
		return fmt.Sprintf("ALTER SYSTEM SET %s TO '<%s>';", p.Name, strings.ToUpper(p.Name))
	}
	return objstore.WithPlaceholders(p.AlterSQL())
}

// Check validates a change and applies the guards; it writes nothing.
func Check(ctx context.Context, cli *clientv3.Client, name, value string, o SetOptions) (*Plan, error) {
	p, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if err := metastore.ValidateParam(p.Name, value); err != nil {
		return nil, err
	}
	kv, err := metastore.ReadSystemParams(ctx, cli)
	if err != nil {
		return nil, err
	}
	if len(kv) == 0 {
		return nil, metastore.ErrNotRisingWave
	}
	if _, stored := kv[p.Name]; !stored && p.Since != "" {
		return nil, fmt.Errorf("%s exists from RisingWave v%s on, and this meta store has no v%s parameters (it is an older release): RisingWave would ignore it", p.Name, p.Since, p.Since)
	}
	plan := &Plan{Name: p.Name, Old: kv[p.Name], New: value}
	if !p.Mutable {
		if !o.Force {
			return nil, fmt.Errorf("%s is immutable in RisingWave (set once at bootstrap; changing it can make the cluster unreadable): pass --force if you really mean it", p.Name)
		}
		plan.Warnings = append(plan.Warnings, fmt.Sprintf("%s is immutable in RisingWave; changing it with --force", p.Name))
	}
	if p.Name == metastore.ParamBackupStorageURL || p.Name == metastore.ParamBackupStorageDirectory {
		if err := guardBackupLocation(ctx, kv, plan, o); err != nil {
			return nil, err
		}
	}
	leader, err := metastore.FindLeader(ctx, cli)
	if err != nil {
		return nil, err
	}
	if leader != nil {
		plan.LeaderAddr = leader.Addr
	}
	return plan, nil
}

// guardBackupLocation refuses to move the backup location away from one
// that holds snapshots: RisingWave would stop listing them and stop pinning
// their SSTs, which GC may then delete.
func guardBackupLocation(ctx context.Context, kv map[string]string, plan *Plan, o SetOptions) error {
	loc, err := metasnap.ResolveLocations(kv, metasnap.Overrides{})
	if err != nil {
		return nil // no usable current location: nothing to orphan
	}
	newKV := map[string]string{}
	for k, v := range kv {
		newKV[k] = v
	}
	newKV[plan.Name] = plan.New
	if next, err := metasnap.ResolveLocations(newKV, metasnap.Overrides{}); err == nil &&
		metasnap.SameLocation(next.BackupURL, next.BackupDir, loc.BackupURL, loc.BackupDir) {
		return nil
	}
	store, err := objstore.Open(ctx, loc.BackupURL)
	if err != nil {
		if o.Force {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("cannot open the current backup location to count its snapshots: %v", err))
			return nil
		}
		return fmt.Errorf("cannot check whether the current backup location holds snapshots (pass --force to change it anyway): %w", err)
	}
	defer store.Close()
	st := metasnap.NewStorage(store, loc.BackupDir)
	m, _, err := st.ReadManifest(ctx)
	if err != nil {
		if o.Force {
			plan.Warnings = append(plan.Warnings, err.Error())
			return nil
		}
		return fmt.Errorf("cannot read the current backup location's manifest (pass --force to change it anyway): %w", err)
	}
	n := len(m.SnapshotMetadata)
	if n == 0 {
		return nil
	}
	msg := fmt.Sprintf("the current backup location %s holds %d snapshots; after this change RisingWave no longer lists them (rw_meta_snapshot, time travel) and no longer pins their SSTs, so GC may delete those and make the snapshots unrestorable. Copy them first: rwsnap meta copy-meta-snapshots --all --to-url URL --to-directory DIR", st, n)
	if !o.Force {
		return errors.New(msg + "; or pass --force")
	}
	plan.Warnings = append(plan.Warnings, msg)
	return nil
}

// Apply writes the change into etcd with compare-and-swap on the value
// Check saw, so a concurrent change is not overwritten. It refuses while a
// meta node is live: the meta node caches parameters and would not see it.
func Apply(ctx context.Context, cli *clientv3.Client, plan *Plan) error {
	if plan.LeaderAddr != "" {
		return fmt.Errorf("a RisingWave meta node (%s) is live and caches system parameters: run in psql %s, or pass --pg-url to have rwsnap run it", plan.LeaderAddr, plan.SuggestedSQL())
	}
	key := string(metastore.EtcdKey(metastore.CFSystemParams, []byte(plan.Name)))
	cmp := clientv3.Compare(clientv3.Value(key), "=", plan.Old)
	if plan.Old == "" {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	resp, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, plan.New)).Commit()
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%s changed while rwsnap was checking it; nothing written, run the command again", plan.Name)
	}
	return nil
}

// ApplySQL runs the ALTER SYSTEM SET statement over pgwire, the way to
// change a parameter of a running cluster.
func ApplySQL(ctx context.Context, pgURL string, plan *Plan) error {
	cfg, err := pgx.ParseConfig(pgURL)
	if err != nil {
		return fmt.Errorf("--pg-url: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = timeouts.Connect
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to the RisingWave frontend %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ectx, cancel := timeouts.WithOperation(ctx)
	defer cancel()
	if _, err := conn.Exec(ectx, plan.AlterSQL(), pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("%s: %w", plan.shownSQL(), err)
	}
	return nil
}
