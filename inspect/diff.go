package inspect

import (
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/rwsnap/rwsnap/catalog"
)

// DiffResult is what `rwsnap meta diff A B -o json` prints.
// Its top level is exactly added, removed, changed, params and storage;
// the rest is for the table view.
type DiffResult struct {
	Added   []RelationRef `json:"added"`
	Removed []RelationRef `json:"removed"`
	Changed []ChangedRef  `json:"changed"`
	Params  []ParamChange `json:"params"`
	Storage StorageDiff   `json:"storage"`

	From, To uint64         `json:"-"`
	Details  []ChangeDetail `json:"-"` // from/to of each changed field
	Users    []UserChange   `json:"-"`
	Notes    []string       `json:"-"` // what the diff could not cover
}

// RelationRef names a relation.
type RelationRef struct {
	Kind catalog.Kind `json:"kind"`
	ID   uint32       `json:"id"`
	Name string       `json:"name"`
}

// ChangedRef is a relation in both snapshots that differs; Fields names
// what: name, definition, owner, columns, properties, depends_on.
type ChangedRef struct {
	Kind   catalog.Kind `json:"kind"`
	ID     uint32       `json:"id"`
	Name   string       `json:"name"`
	Fields []string     `json:"fields"`
}

// ChangeDetail is one changed field with its values (credentials redacted).
type ChangeDetail struct {
	Ref      RelationRef
	Field    string
	From, To string
}

// ParamChange is a system parameter that differs.
type ParamChange struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// UserChange is a user added, removed or changed (privileges, attributes).
type UserChange struct {
	Name   string `json:"name"`
	Change string `json:"change"` // added, removed, changed
}

// StorageDiff compares the hummock versions.
type StorageDiff struct {
	HummockVersionFrom uint64        `json:"hummock_version_from"`
	HummockVersionTo   uint64        `json:"hummock_version_to"`
	SSTsFrom           int           `json:"ssts_from"`
	SSTsTo             int           `json:"ssts_to"`
	BytesFrom          uint64        `json:"bytes_from"`
	BytesTo            uint64        `json:"bytes_to"`
	Tables             []TableChange `json:"tables"`
}

// TableChange is one state table whose SST count or bytes changed.
type TableChange struct {
	ID        uint32 `json:"id"`
	Name      string `json:"name"`
	SSTsFrom  int    `json:"ssts_from"`
	SSTsTo    int    `json:"ssts_to"`
	BytesFrom uint64 `json:"bytes_from"`
	BytesTo   uint64 `json:"bytes_to"`
}

// Diff compares two inspected snapshots.
func Diff(a, b *Document) *DiffResult {
	r := &DiffResult{From: a.Snapshot.ID, To: b.Snapshot.ID, Added: []RelationRef{}, Removed: []RelationRef{},
		Changed: []ChangedRef{}, Params: []ParamChange{}, Users: []UserChange{}, Notes: []string{},
		Storage: StorageDiff{Tables: []TableChange{}}}
	for _, d := range []*Document{a, b} {
		if d.Snapshot.Decoded != "full" {
			r.Notes = append(r.Notes, fmt.Sprintf("snapshot %d is only decoded in part (%s): the diff covers what was decoded", d.Snapshot.ID, d.Snapshot.Decoded))
		}
	}
	type key struct {
		k  catalog.Kind
		id uint32
	}
	old := map[key]Relation{}
	for _, x := range a.Relations {
		old[key{x.Kind, x.ID}] = x
	}
	seen := map[key]bool{}
	for _, y := range b.Relations {
		k := key{y.Kind, y.ID}
		seen[k] = true
		x, ok := old[k]
		if !ok {
			r.Added = append(r.Added, RelationRef{y.Kind, y.ID, y.Name})
			continue
		}
		var fields []string
		add := func(field, from, to string) {
			fields = append(fields, field)
			r.Details = append(r.Details, ChangeDetail{Ref: RelationRef{y.Kind, y.ID, y.Name}, Field: field, From: from, To: to})
		}
		if x.Name != y.Name {
			add("name", x.Name, y.Name)
		}
		if x.Definition != y.Definition {
			add("definition", x.Definition, y.Definition)
		}
		if x.Owner != y.Owner {
			add("owner", x.Owner, y.Owner)
		}
		if cx, cy := columnsText(x.Columns), columnsText(y.Columns); cx != cy {
			add("columns", cx, cy)
		}
		if px, py := propsText(x.Properties), propsText(y.Properties); px != py {
			add("properties", px, py)
		} else if propsText(x.rawProps) != propsText(y.rawProps) {
			// Only a redacted value changed (a rotated password): say so
			// without showing either.
			add("properties", px, py+" (a redacted credential changed)")
		}
		if dx, dy := depsText(x.DependsOn), depsText(y.DependsOn); dx != dy {
			add("depends_on", dx, dy)
		}
		if x.Schema != y.Schema {
			add("schema", x.Schema, y.Schema)
		}
		if len(fields) > 0 {
			r.Changed = append(r.Changed, ChangedRef{y.Kind, y.ID, y.Name, fields})
		}
	}
	for _, x := range a.Relations {
		if !seen[key{x.Kind, x.ID}] {
			r.Removed = append(r.Removed, RelationRef{x.Kind, x.ID, x.Name})
		}
	}
	// Params.
	names := map[string]bool{}
	for n := range a.Params {
		names[n] = true
	}
	for n := range b.Params {
		names[n] = true
	}
	for _, n := range sortedSet(names) {
		if a.Params[n] != b.Params[n] {
			r.Params = append(r.Params, ParamChange{n, a.Params[n], b.Params[n]})
		}
	}
	// Users.
	ua := map[string]string{}
	for _, u := range a.Users {
		ua[u.Name] = fmt.Sprintf("%+v", u)
	}
	ub := map[string]bool{}
	for _, u := range b.Users {
		ub[u.Name] = true
		if s, ok := ua[u.Name]; !ok {
			r.Users = append(r.Users, UserChange{u.Name, "added"})
		} else if s != fmt.Sprintf("%+v", u) {
			r.Users = append(r.Users, UserChange{u.Name, "changed"})
		}
	}
	for _, u := range a.Users {
		if !ub[u.Name] {
			r.Users = append(r.Users, UserChange{u.Name, "removed"})
		}
	}
	// Storage.
	r.Storage.HummockVersionFrom, r.Storage.HummockVersionTo = a.Storage.HummockVersionID, b.Storage.HummockVersionID
	r.Storage.SSTsFrom, r.Storage.SSTsTo = a.Storage.SSTs, b.Storage.SSTs
	r.Storage.BytesFrom, r.Storage.BytesTo = a.Storage.Bytes, b.Storage.Bytes
	ta := map[uint32]TableStorage{}
	for _, t := range a.Storage.Tables {
		ta[t.ID] = t
	}
	tb := map[uint32]TableStorage{}
	for _, t := range b.Storage.Tables {
		tb[t.ID] = t
	}
	ids := map[uint32]bool{}
	for id := range ta {
		ids[id] = true
	}
	for id := range tb {
		ids[id] = true
	}
	sorted := make([]uint32, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	slices.Sort(sorted)
	for _, id := range sorted {
		x, y := ta[id], tb[id]
		if x.SSTs != y.SSTs || x.Bytes != y.Bytes {
			name := y.Name
			if name == "" {
				name = x.Name
			}
			r.Storage.Tables = append(r.Storage.Tables, TableChange{id, name, x.SSTs, y.SSTs, x.Bytes, y.Bytes})
		}
	}
	return r
}

// WriteTable prints the diff for people (output.Result).
func (r *DiffResult) WriteTable(w io.Writer) error { return WriteDiffTable(w, r) }

func columnsText(cs []catalog.Column) string {
	s := ""
	for i, c := range cs {
		if i > 0 {
			s += ", "
		}
		s += c.Name + " " + c.Type
		if c.Hidden {
			s += " (hidden)"
		}
	}
	return s
}

func propsText(m map[string]string) string {
	s := ""
	for i, k := range sortedKeys(m) {
		if i > 0 {
			s += ", "
		}
		s += k + "=" + m[k]
	}
	return s
}

func depsText(ds []Dependency) string {
	s := ""
	for i, d := range ds {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", d.Kind, d.ID)
	}
	return s
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
