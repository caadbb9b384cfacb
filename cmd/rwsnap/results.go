package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rwsnap/rwsnap/datacopy"
	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/output"
	"github.com/rwsnap/rwsnap/params"
	"github.com/rwsnap/rwsnap/schedule"
	"github.com/rwsnap/rwsnap/timetravel"
)

// The typed results of the commands, rendered by output.Print. Their JSON
// shapes are documented in docs/json.md and checked against the schemas
// in docs/schema/ by TestJSONSchemas.

// outputFlag is -o of a command; extra adds formats beyond table and json.
// A bad value is a usage error before the command does anything.
func outputFlag(extra ...output.Format) cli.Flag {
	usage := "table for people, json for scripts"
	for _, f := range extra {
		usage += ", or " + string(f)
	}
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Category: catOutput, Value: "table", Usage: usage, EnvVars: env("output"),
		Action: func(_ *cli.Context, v string) error {
			if _, err := output.Parse(v, extra...); err != nil {
				return usageError{err}
			}
			return nil
		}}
}

// format is the command's --output (validated by outputFlag).
func format(c *cli.Context) output.Format { return output.Format(c.String("output")) }

// print renders a command's result in its --output format.
func print(c *cli.Context, r output.Result) error { return output.Print(c.App.Writer, format(c), r) }

// snapshotInfo is one snapshot, as every command shows it.
type snapshotInfo struct {
	ID                uint64      `json:"id"`
	HummockVersionID  uint64      `json:"hummock_version_id"`
	SafeEpoch         uint64      `json:"safe_epoch"`
	SafeTime          string      `json:"safe_time"`
	MaxCommittedEpoch uint64      `json:"max_committed_epoch"`
	MaxCommittedTime  string      `json:"max_committed_time"`
	FormatVersion     uint32      `json:"format_version"`
	Remarks           string      `json:"remarks"`
	RWVersion         string      `json:"rw_version"`
	SSTs              []uint64    `json:"ssts"`
	Tables            []tableInfo `json:"tables"` // RisingWave v1.10's per-table epochs
	// Error says why the entry is malformed (kept as is; only it fails).
	Error string `json:"error,omitempty"`
	// Data is the snapshot's data copy: complete, partial or none (list).
	Data string `json:"data,omitempty"`
}

type tableInfo struct {
	TableID           uint32 `json:"table_id"`
	CommittedEpoch    uint64 `json:"committed_epoch"`
	CommittedTime     string `json:"committed_time"`
	SafeEpoch         uint64 `json:"safe_epoch"`
	SafeTime          string `json:"safe_time"`
	CompactionGroupID uint64 `json:"compaction_group_id"`
}

func newSnapshotInfo(e metasnap.SnapshotMetadata) snapshotInfo {
	s := snapshotInfo{ID: e.ID, HummockVersionID: e.HummockVersionID,
		SafeEpoch: e.SafeEpoch, SafeTime: output.EpochTime(e.SafeEpoch),
		MaxCommittedEpoch: e.MaxCommittedEpoch, MaxCommittedTime: output.EpochTime(e.MaxCommittedEpoch),
		FormatVersion: e.FormatVersion, SSTs: e.SSTs, Tables: []tableInfo{}}
	if e.Remarks != nil {
		s.Remarks = *e.Remarks
	}
	if e.RWVersion != nil {
		s.RWVersion = *e.RWVersion
	}
	if e.Err != nil {
		s.Error = e.Err.Error()
	}
	for id, t := range e.StateTableInfo {
		s.Tables = append(s.Tables, tableInfo{TableID: id, CommittedEpoch: t.CommittedEpoch, CommittedTime: output.EpochTime(t.CommittedEpoch),
			SafeEpoch: t.SafeEpoch, SafeTime: output.EpochTime(t.SafeEpoch), CompactionGroupID: t.CompactionGroupID})
	}
	sortTables(s.Tables)
	return s
}

func sortTables(ts []tableInfo) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].TableID < ts[j-1].TableID; j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// backupResult is backup-meta's.
type backupResult struct {
	DryRun          bool    `json:"dry_run"` // false; backup-meta --dry-run prints a backupDryRunResult
	ID              uint64  `json:"id"`
	ManifestID      uint64  `json:"manifest_id"`
	Path            string  `json:"path"`
	Via             string  `json:"via"`
	Revision        *int64  `json:"revision,omitempty"` // direct path only: the meta node does not report its read
	Keys            *int    `json:"keys,omitempty"`
	Bytes           int     `json:"bytes"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Pinned says whether the cluster pins the snapshot's SSTs (only
	// snapshots in its own backup location are pinned).
	Pinned   bool         `json:"pinned"`
	Snapshot snapshotInfo `json:"snapshot"`
	// Data is what --with-data copied.
	Data *dataResult `json:"data,omitempty"`
	// Warnings are what the user must know although the snapshot was
	// stored (a meta node before v1.6 dropped the remarks).
	Warnings []string `json:"warnings,omitempty"`
	duration time.Duration
}

func (r *backupResult) WriteTable(w io.Writer) error {
	// risectl's success line, first on stdout; upstream scripts parse the
	// id from it.
	pinned := fmt.Sprintf("%d SSTs pinned", len(r.Snapshot.SSTs))
	if !r.Pinned {
		pinned = fmt.Sprintf("%d SSTs (not pinned by the cluster: another location)", len(r.Snapshot.SSTs))
	}
	var err error
	if r.Revision == nil {
		_, err = fmt.Fprintf(w, "backup job succeeded: job %d, through the %s, %s, %s, %s\n",
			r.ID, r.Via, humanBytes(r.Bytes), pinned, r.duration.Round(time.Millisecond))
	} else {
		_, err = fmt.Fprintf(w, "backup job succeeded: job %d, revision %d, %d keys, %s, %s, %s\n",
			r.ID, *r.Revision, *r.Keys, humanBytes(r.Bytes), pinned, r.duration.Round(time.Millisecond))
	}
	for _, warn := range r.Warnings {
		if err == nil {
			_, err = fmt.Fprintf(w, "warning: %s\n", warn)
		}
	}
	if err == nil && r.Data != nil {
		err = r.Data.WriteTable(w)
	}
	return err
}

// listResult is list-meta-snapshots'.
type listResult struct {
	ManifestID uint64         `json:"manifest_id"`
	Path       string         `json:"path"`
	Via        string         `json:"via"`
	Snapshots  []snapshotInfo `json:"snapshots"`
}

func newListResult(m *metasnap.Manifest, path, via string) *listResult {
	r := &listResult{ManifestID: m.ManifestID, Path: path, Via: via, Snapshots: []snapshotInfo{}}
	for _, e := range m.SnapshotMetadata {
		r.Snapshots = append(r.Snapshots, newSnapshotInfo(e))
	}
	return r
}

func (r *listResult) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHUMMOCK VERSION\tSAFE EPOCH (UTC)\tMAX COMMITTED EPOCH (UTC)\tSSTS\tFORMAT\tRW VERSION\tDATA\tREMARKS")
	for _, e := range r.Snapshots {
		if e.Error != "" {
			fmt.Fprintf(tw, "%d\t-\t-\t-\t-\t-\t-\t-\tMALFORMED: %s\n", e.ID, output.Escape(e.Error))
			continue
		}
		rwv := e.RWVersion
		if rwv == "" {
			rwv = "-"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", e.ID, e.HummockVersionID, epochText(e.SafeEpoch), epochText(e.MaxCommittedEpoch), len(e.SSTs), e.FormatVersion, output.Escape(rwv), e.Data, output.Escape(e.Remarks))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d snapshots, manifest_id %d\n", len(r.Snapshots), r.ManifestID)
	return err
}

func epochText(e uint64) string {
	if e == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", e, timetravel.ToTime(e).Format("2006-01-02 15:04:05.000"))
}

// verifyResult is verify-meta-snapshot's.
type verifyResult struct {
	OK         bool          `json:"ok"`
	ManifestID uint64        `json:"manifest_id"`
	Snapshots  []verifyCheck `json:"snapshots"`
	Orphans    []uint64      `json:"orphans"`
	// SSTLocation is where --check-ssts looked, and why there; null
	// without --check-ssts.
	SSTLocation *sstLocation `json:"sst_location"`
	// Data is --check-data's verdict on the data copy.
	Data *dataCheckResult `json:"data,omitempty"`
}

// failure names what failed, for the error line after the table (a
// script reading stderr alone learns which snapshots to look at).
func (r *verifyResult) failure() string {
	var snaps, data []uint64
	for _, s := range r.Snapshots {
		if !s.OK {
			snaps = append(snaps, s.ID)
		}
	}
	if r.Data != nil {
		for _, s := range r.Data.Snapshots {
			if !s.OK {
				data = append(data, s.ID)
			}
		}
	}
	var parts []string
	if len(snaps) > 0 {
		parts = append(parts, "snapshot "+metasnap.FormatIDs(snaps))
	}
	if len(data) > 0 {
		parts = append(parts, "the data copy of snapshot "+metasnap.FormatIDs(data)+" (rwsnap meta backup-data IDS continues a partial copy)")
	}
	if len(parts) == 0 {
		return "verification failed"
	}
	return "verification failed: " + strings.Join(parts, "; ") + " (problems listed above)"
}

type verifyCheck struct {
	ID       uint64   `json:"id"`
	OK       bool     `json:"ok"`
	Bytes    int      `json:"bytes"`
	SSTs     int      `json:"ssts"`
	Problems []string `json:"problems"`
}

// sstLocation is the hummock location SSTs were checked in.
type sstLocation struct {
	URL       string `json:"url"`       // redacted
	Directory string `json:"directory"` // data_directory
	// Source: "flags", "cluster" (its current state_store param) or
	// "snapshot" (each snapshot's recorded state_store).
	Source string `json:"source"`
}

func newVerifyResult(rep *metasnap.VerifyReport, loc *sstLocation) *verifyResult {
	r := &verifyResult{OK: rep.OK(), ManifestID: rep.ManifestID, Orphans: rep.Orphans, SSTLocation: loc}
	for _, s := range rep.Snapshots {
		r.Snapshots = append(r.Snapshots, verifyCheck{ID: s.ID, OK: s.OK, Bytes: s.Bytes, SSTs: s.SSTs, Problems: s.Problems})
	}
	return r
}

func (r *verifyResult) WriteTable(w io.Writer) error {
	if r.SSTLocation != nil {
		fmt.Fprintf(w, "checking SSTs in %s, data directory %q (%s)\n", r.SSTLocation.URL, r.SSTLocation.Directory, sourceText(r.SSTLocation.Source))
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRESULT\tSIZE\tSSTS\tPROBLEMS")
	for _, s := range r.Snapshots {
		res := "ok"
		if !s.OK {
			res = "FAILED"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\n", s.ID, res, humanBytes(s.Bytes), s.SSTs, output.Escape(strings.Join(s.Problems, "; ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Orphans) > 0 {
		fmt.Fprintf(w, "orphan snapshot objects (not in the manifest, invisible to RisingWave): %s\n", metasnap.FormatIDs(r.Orphans))
	}
	if r.Data != nil {
		return r.Data.WriteTable(w)
	}
	return nil
}

func sourceText(s string) string {
	switch s {
	case "flags":
		return "from --hummock-storage-url/--hummock-storage-directory"
	case "cluster":
		return "the cluster's current state_store and data_directory"
	case "snapshot":
		return "the state_store and data_directory each snapshot recorded"
	}
	return s
}

// deleteResult is delete-meta-snapshots'.
type deleteResult struct {
	DryRun  bool     `json:"dry_run"`
	Deleted []uint64 `json:"deleted"`
	// WouldDelete is what a real run deletes (the same as deleted then).
	WouldDelete []uint64 `json:"would_delete"`
	Remaining   []uint64 `json:"remaining"`
	ManifestID  uint64   `json:"manifest_id"`
	Path        string   `json:"path"`
	Via         string   `json:"via"`
	// DataGC is the data copy's garbage collection (absent without one).
	DataGC *datacopy.GCResult `json:"data_gc,omitempty"`
}

func (r *deleteResult) WriteTable(w io.Writer) error {
	defer writeGC(w, r.DataGC)
	if r.DryRun {
		_, err := fmt.Fprintf(w, "dry run: would delete %s through %s (%d would remain); nothing was deleted\n", metasnap.FormatIDs(r.WouldDelete), r.Via, len(r.Remaining))
		return err
	}
	_, err := fmt.Fprintf(w, "delete meta snapshots succeeded: %v (%d remain)\n", r.Deleted, len(r.Remaining))
	return err
}

// backupDryRunResult is backup-meta --dry-run's.
type backupDryRunResult struct {
	DryRun     bool   `json:"dry_run"`
	Path       string `json:"path"`
	Via        string `json:"via"`
	Reason     string `json:"reason"`    // why that path
	Snapshots  int    `json:"snapshots"` // in the manifest now
	ManifestID uint64 `json:"manifest_id"`
	Refused    string `json:"refused"` // why a real run would be refused; "" when it would go ahead
}

func (r *backupDryRunResult) WriteTable(w io.Writer) error {
	_, err := fmt.Fprintf(w, "dry run: would take a snapshot through %s (%s); the location holds %d snapshots, manifest_id %d; nothing was written\n",
		r.Via, r.Reason, r.Snapshots, r.ManifestID)
	return err
}

// copyResult is copy-meta-snapshots'.
type copyResult struct {
	DryRun           bool     `json:"dry_run"`
	Copied           []uint64 `json:"copied"`
	WouldCopy        []uint64 `json:"would_copy"` // what a real run copies (the same as copied then)
	AlreadyPresent   []uint64 `json:"already_present"`
	Bytes            int64    `json:"bytes"`
	TargetManifestID uint64   `json:"target_manifest_id"`
	To               string   `json:"to"` // the target location, redacted
}

func (r *copyResult) WriteTable(w io.Writer) error {
	if r.DryRun {
		_, err := fmt.Fprintf(w, "dry run: would copy %d snapshots (%s) to %s, %d already there; nothing was written\n",
			len(r.WouldCopy), humanBytes(int(r.Bytes)), r.To, len(r.AlreadyPresent))
		return err
	}
	_, err := fmt.Fprintf(w, "copied %d snapshots (%s) to %s, %d already there; target manifest_id %d\n",
		len(r.Copied), humanBytes(int(r.Bytes)), r.To, len(r.AlreadyPresent), r.TargetManifestID)
	return err
}

// pruneResult is what prune decided and did.
type pruneResult struct {
	Path      string          `json:"path"`
	Via       string          `json:"via"`
	DryRun    bool            `json:"dry_run"`
	Snapshots []pruneDecision `json:"snapshots"`
	Deleted   []uint64        `json:"deleted"`
	// WouldDelete is what a real run deletes (the same as deleted then).
	WouldDelete    []uint64 `json:"would_delete"`
	OrphansDeleted []uint64 `json:"orphans_deleted"`
	// DataGC is the data copy's garbage collection (absent without one).
	DataGC *datacopy.GCResult `json:"data_gc,omitempty"`
}

type pruneDecision struct {
	ID      uint64   `json:"id"`
	Epoch   uint64   `json:"epoch"`
	Time    string   `json:"time"`
	Keep    bool     `json:"keep"`
	Reasons []string `json:"reasons"`
}

func newPruneDecisions(ds []metasnap.PruneDecision) []pruneDecision {
	out := []pruneDecision{}
	for _, d := range ds {
		out = append(out, pruneDecision{ID: d.ID, Epoch: hummock.TimeEpoch(d.Time), Time: output.Time(d.Time), Keep: d.Keep, Reasons: d.Reasons})
	}
	return out
}

func (r *pruneResult) WriteTable(w io.Writer) error {
	defer writeGC(w, r.DataGC)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME (UTC)\tVERDICT\tKEPT BY")
	for _, d := range r.Snapshots {
		verdict := "delete"
		if d.Keep {
			verdict = "keep"
		} else if r.DryRun {
			verdict = "would delete"
		}
		t, _ := time.Parse(time.RFC3339Nano, d.Time)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", d.ID, t.Format(time.DateTime), verdict, strings.Join(d.Reasons, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.DryRun {
		fmt.Fprintf(w, "dry run: %d of %d snapshots would be deleted", len(r.WouldDelete), len(r.Snapshots))
	} else {
		fmt.Fprintf(w, "%d of %d snapshots deleted", len(r.Deleted), len(r.Snapshots))
	}
	if len(r.OrphansDeleted) > 0 {
		what := "orphan objects deleted"
		if r.DryRun {
			what = "orphan objects that would be deleted"
		}
		fmt.Fprintf(w, "; %s: %s", what, metasnap.FormatIDs(r.OrphansDeleted))
	}
	_, err := fmt.Fprintf(w, " (%s)\n", r.Via)
	return err
}

// restoreResult is restore-meta's.
type restoreResult struct {
	SnapshotID       uint64        `json:"snapshot_id"`
	DefaultCFFrom    uint64        `json:"default_cf_from"`
	HummockVersionID uint64        `json:"hummock_version_id"`
	Keys             int           `json:"keys"`
	Bytes            int           `json:"bytes"`
	DryRun           bool          `json:"dry_run"`
	Resumed          bool          `json:"resumed"`
	Written          int           `json:"written"`
	ParamChanges     []paramChange `json:"param_changes"`
	SSTsCopied       int           `json:"ssts_copied"`
	// With --from-backup-data: objects referenced and copied from the data copy.
	DataObjects        *int   `json:"data_objects,omitempty"`
	DataCopied         *int   `json:"data_objects_copied,omitempty"`
	Warning            string `json:"warning"` // set when the id generators do not come from the newest snapshot
	ReplacedCheckpoint string `json:"replaced_checkpoint"`
	// ExistingCheckpoint is the checkpoint found at the target location
	// ("" when none), which a run replaces after saving it in
	// CheckpointSavedIn (a dry run: would).
	ExistingCheckpoint string  `json:"existing_checkpoint"`
	CheckpointSavedIn  string  `json:"checkpoint_saved_in"`
	DurationSeconds    float64 `json:"duration_seconds"`
	table              func(io.Writer) error
}

type paramChange struct {
	Name   string `json:"name"`
	Before string `json:"before"`
	After  string `json:"after"`
}

func (r *restoreResult) WriteTable(w io.Writer) error { return r.table(w) }

// paramInfo is one system parameter (URL values redacted).
type paramInfo struct {
	Name       string `json:"name"`
	Value      string `json:"value"`
	Stored     bool   `json:"stored"` // false: etcd has no key; RisingWave uses the default
	Type       string `json:"type"`
	Default    string `json:"default"`
	HasDefault bool   `json:"has_default"`
	Mutable    bool   `json:"mutable"`
	Doc        string `json:"doc"`
}

func newParamInfo(v params.Value) paramInfo {
	return paramInfo{Name: v.Name, Value: redactParam(v.Name, v.Value), Stored: v.Stored, Type: string(v.Type),
		Default: v.Default, HasDefault: v.HasDefault, Mutable: v.Mutable, Doc: v.Doc}
}

// paramsListResult is params list's.
type paramsListResult struct {
	Params []paramInfo `json:"params"`
}

func (r *paramsListResult) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVALUE\tTYPE\tDEFAULT\tMUTABLE\tDESCRIPTION")
	for _, v := range r.Params {
		val := v.Value
		if !v.Stored {
			val += " (default)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", output.Escape(v.Name), output.Escape(val), v.Type, output.Escape(v.Default), v.Mutable, v.Doc)
	}
	return tw.Flush()
}

// paramGetResult is params get's: the value alone for people.
type paramGetResult paramInfo

func (r paramGetResult) WriteTable(w io.Writer) error {
	_, err := fmt.Fprintln(w, output.Escape(r.Value))
	return err
}

// paramSetResult is params set's.
type paramSetResult struct {
	Name     string   `json:"name"`
	Old      string   `json:"old"`
	New      string   `json:"new"`
	DryRun   bool     `json:"dry_run"`
	Via      string   `json:"via"` // "etcd", "sql" (ALTER SYSTEM SET through --pg-url), "" on a dry run
	Warnings []string `json:"warnings"`
}

func (r *paramSetResult) WriteTable(w io.Writer) error {
	change := fmt.Sprintf("%s: %s -> %s", r.Name, output.Escape(r.Old), output.Escape(r.New))
	var err error
	switch r.Via {
	case "":
		_, err = fmt.Fprintf(w, "dry run: would set %s\n", change)
	case "sql":
		_, err = fmt.Fprintf(w, "set %s through the meta node (ALTER SYSTEM SET)\n", change)
	default:
		_, err = fmt.Fprintf(w, "set %s\n", change)
	}
	return err
}

// scheduleRunResult is the line schedule prints after each run (a JSON
// object per line with -o json).
type scheduleRunResult struct {
	Cluster         string  `json:"cluster"` // the config file's cluster name; "" without one
	Run             int     `json:"run"`
	OK              bool    `json:"ok"`
	SnapshotID      uint64  `json:"snapshot_id"` // 0 when no snapshot was taken
	Bytes           int     `json:"bytes"`
	Snapshots       int     `json:"snapshots"` // in the manifest afterwards
	Pruned          int     `json:"pruned"`
	Attempts        int     `json:"attempts"`
	DurationSeconds float64 `json:"duration_seconds"`
	FinishedTime    string  `json:"finished_time"`
	Error           string  `json:"error"`
	duration        time.Duration
}

func newScheduleRun(r schedule.Report, cluster string) *scheduleRunResult {
	out := &scheduleRunResult{Cluster: cluster, Run: r.Run, OK: r.Err == nil, SnapshotID: r.Result.SnapshotID, Bytes: r.Result.Bytes,
		Snapshots: r.Result.Snapshots, Pruned: r.Result.Pruned, Attempts: r.Attempts, DurationSeconds: output.Seconds(r.Duration),
		FinishedTime: output.Time(time.Now()), duration: r.Duration}
	if r.Err != nil {
		out.Error = objstore.RedactText(r.Err.Error())
	}
	return out
}

func (r *scheduleRunResult) WriteTable(w io.Writer) error {
	prefix := ""
	if r.Cluster != "" {
		prefix = "cluster " + r.Cluster + ": "
	}
	if !r.OK {
		taken := ""
		if r.SnapshotID != 0 {
			taken = fmt.Sprintf(" (snapshot %d was taken)", r.SnapshotID)
		}
		_, err := fmt.Fprintf(w, "%srun %d failed after %d attempt(s)%s: %s\n", prefix, r.Run, r.Attempts, taken, r.Error)
		return err
	}
	_, err := fmt.Fprintf(w, "%srun %d: backup job succeeded: snapshot %d, %s, %d snapshots kept, %d pruned, %s\n",
		prefix, r.Run, r.SnapshotID, humanBytes(r.Bytes), r.Snapshots, r.Pruned, r.duration.Round(time.Millisecond))
	return err
}
