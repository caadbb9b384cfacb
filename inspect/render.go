package inspect

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rwsnap/rwsnap/internal/progress"
)

func timeText(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000") + " UTC"
}

func opt(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

// oneLine keeps a definition on one table row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// WriteTable prints the document for people.
func WriteTable(w io.Writer, d *Document) error {
	h := d.Snapshot
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Snapshot\t%d (%s)\n", h.ID, h.Object)
	fmt.Fprintf(tw, "Format version\t%d\n", h.FormatVersion)
	fmt.Fprintf(tw, "RisingWave version\t%s\n", opt(h.RWVersion))
	fmt.Fprintf(tw, "Hummock version\t%d\n", h.HummockVersionID)
	fmt.Fprintf(tw, "Max committed epoch\t%d (%s)\n", h.MaxCommittedEpoch, timeText(h.MaxCommittedTime))
	fmt.Fprintf(tw, "Safe epoch\t%d (%s)\n", h.SafeEpoch, timeText(h.SafeTime))
	fmt.Fprintf(tw, "Size\t%s (%d bytes)\n", progress.Bytes(int64(h.Bytes)), h.Bytes)
	fmt.Fprintf(tw, "Checksum\t%s\n", map[bool]string{true: "ok", false: "FAILED"}[h.ChecksumOK])
	fmt.Fprintf(tw, "Remarks\t%s\n", opt(h.Remarks))
	if h.ClusterID != "" {
		fmt.Fprintf(tw, "Cluster id\t%s\n", h.ClusterID)
	}
	fmt.Fprintf(tw, "Decoded\t%s\n", h.Decoded)
	tw.Flush()
	for _, n := range h.NotDecoded {
		fmt.Fprintf(w, "NOT DECODED: %s\n", n)
	}
	for _, p := range h.Problems {
		fmt.Fprintf(w, "PROBLEM: %s\n", p)
	}

	if len(h.Databases) > 0 {
		fmt.Fprintln(w, "\nDatabases")
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tNAME\tOWNER\tSCHEMAS")
		for _, db := range h.Databases {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", db.ID, db.Name, db.Owner, strings.Join(db.Schemas, ", "))
		}
		tw.Flush()
	}
	if len(d.Relations) > 0 {
		fmt.Fprintln(w, "\nRelations")
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  KIND\tID\tNAME\tDB.SCHEMA\tOWNER\tCREATED\tDEPENDS ON")
		for _, r := range d.Relations {
			var deps []string
			for _, dep := range r.DependsOn {
				n := dep.Name
				if n == "" {
					n = fmt.Sprintf("%s %d (not in snapshot)", dep.Kind, dep.ID)
				}
				deps = append(deps, n)
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s.%s\t%s\t%s\t%s\n", r.Kind, r.ID, r.Name, r.Database, r.Schema, r.Owner,
				timeText(r.CreatedAt), strings.Join(deps, ", "))
		}
		tw.Flush()
		fmt.Fprintln(w, "\nDefinitions")
		for _, r := range d.Relations {
			if r.Definition == "" && len(r.Properties) == 0 || r.Kind == "internal" {
				continue
			}
			fmt.Fprintf(w, "  %s %s:\n", r.Kind, r.Name)
			if r.Definition != "" {
				fmt.Fprintf(w, "    %s\n", oneLine(r.Definition))
			}
			if len(r.Properties) > 0 {
				var ps []string
				for _, k := range sortedKeys(r.Properties) {
					ps = append(ps, k+"="+r.Properties[k])
				}
				fmt.Fprintf(w, "    properties: %s\n", strings.Join(ps, ", "))
			}
			for _, k := range sortedKeys(r.SecretRefs) {
				fmt.Fprintf(w, "    %s = SECRET %s\n", k, r.SecretRefs[k])
			}
		}
	}
	if len(d.Users) > 0 {
		fmt.Fprintln(w, "\nUsers (password hashes are never shown)")
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tNAME\tSUPER\tCREATEDB\tCREATEUSER\tLOGIN\tAUTH\tPRIVILEGES")
		for _, u := range d.Users {
			var ps []string
			for _, p := range u.Privileges {
				var acts []string
				for _, a := range p.Actions {
					s := a.Action
					if a.WithGrantOption {
						s += "+grant"
					}
					acts = append(acts, s)
				}
				ps = append(ps, fmt.Sprintf("%s on %s %d", strings.Join(acts, "/"), p.On, p.ObjectID))
			}
			fmt.Fprintf(tw, "  %d\t%s\t%t\t%t\t%t\t%t\t%s\t%s\n", u.ID, u.Name, u.IsSuper, u.CanCreateDB, u.CanCreateUser, u.CanLogin, u.Auth, strings.Join(ps, "; "))
		}
		tw.Flush()
	}
	if len(d.Params) > 0 {
		fmt.Fprintln(w, "\nSystem parameters")
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		for _, k := range sortedKeys(d.Params) {
			fmt.Fprintf(tw, "  %s\t%s\n", k, d.Params[k])
		}
		tw.Flush()
	}
	s := d.Storage
	fmt.Fprintf(w, "\nStorage: hummock version %d, %d SST objects, %s\n", s.HummockVersionID, s.SSTs, progress.Bytes(int64(s.Bytes)))
	if len(s.CompactionGroups) > 0 {
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  GROUP\tPARENT\tSSTS\tBYTES\tLEVELS\tTABLES")
		for _, g := range s.CompactionGroups {
			var ls []string
			for _, l := range g.Levels {
				t := fmt.Sprintf("%s:%d", l.Level, l.SSTs)
				if l.SubLevels > 0 {
					t += fmt.Sprintf("(%d sub)", l.SubLevels)
				}
				ls = append(ls, t)
			}
			var ts []string
			for _, id := range g.Tables {
				ts = append(ts, fmt.Sprint(id))
			}
			fmt.Fprintf(tw, "  %d\t%d\t%d\t%s\t%s\t%s\n", g.ID, g.ParentID, g.SSTs, progress.Bytes(int64(g.Bytes)), strings.Join(ls, " "), strings.Join(ts, ","))
		}
		tw.Flush()
	}
	if len(s.Tables) > 0 {
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TABLE\tNAME\tGROUP\tSSTS\tBYTES\tKEYS\tCOMMITTED")
		for _, t := range s.Tables {
			if t.Name == "" {
				t.Name = "(not in the catalog)"
			}
			fmt.Fprintf(tw, "  %d\t%s\t%d\t%d\t%s\t%d\t%s\n", t.ID, t.Name, t.CompactionGroup, t.SSTs, progress.Bytes(int64(t.Bytes)), t.KeyCount, timeText(t.CommittedTime))
		}
		tw.Flush()
	}
	if len(h.Redacted) > 0 {
		fmt.Fprintf(w, "\nRedacted (credentials replaced by [REDACTED]): %s\n", strings.Join(h.Redacted, "; "))
	}
	return nil
}

// WriteDiffTable prints a diff for people.
func WriteDiffTable(w io.Writer, r *DiffResult) error {
	fmt.Fprintf(w, "Snapshot %d -> %d\n", r.From, r.To)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "NOTE: %s\n", n)
	}
	if len(r.Added)+len(r.Removed)+len(r.Changed)+len(r.Params)+len(r.Users) == 0 {
		fmt.Fprintln(w, "catalog and parameters: no changes")
	}
	for _, a := range r.Added {
		fmt.Fprintf(w, "+ %s %s (id %d)\n", a.Kind, a.Name, a.ID)
	}
	for _, a := range r.Removed {
		fmt.Fprintf(w, "- %s %s (id %d)\n", a.Kind, a.Name, a.ID)
	}
	for _, c := range r.Changed {
		fmt.Fprintf(w, "~ %s %s (id %d): %s\n", c.Kind, c.Name, c.ID, strings.Join(c.Fields, ", "))
		for _, d := range r.Details {
			if d.Ref.Kind == c.Kind && d.Ref.ID == c.ID {
				fmt.Fprintf(w, "    %s: %s\n    %s  -> %s\n", d.Field, oneLine(d.From), strings.Repeat(" ", len(d.Field)), oneLine(d.To))
			}
		}
	}
	for _, u := range r.Users {
		fmt.Fprintf(w, "  user %s: %s\n", u.Name, u.Change)
	}
	for _, p := range r.Params {
		fmt.Fprintf(w, "  param %s: %q -> %q\n", p.Name, p.From, p.To)
	}
	s := r.Storage
	fmt.Fprintf(w, "Storage: hummock version %d -> %d, SST objects %d -> %d, %s -> %s\n", s.HummockVersionFrom, s.HummockVersionTo,
		s.SSTsFrom, s.SSTsTo, progress.Bytes(int64(s.BytesFrom)), progress.Bytes(int64(s.BytesTo)))
	if len(s.Tables) > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TABLE\tNAME\tSSTS\tBYTES")
		for _, t := range s.Tables {
			if t.Name == "" {
				t.Name = "(not in the catalog)"
			}
			fmt.Fprintf(tw, "  %d\t%s\t%d -> %d\t%s -> %s\n", t.ID, t.Name, t.SSTsFrom, t.SSTsTo, progress.Bytes(int64(t.BytesFrom)), progress.Bytes(int64(t.BytesTo)))
		}
		tw.Flush()
	}
	return nil
}
