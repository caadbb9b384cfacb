package inspect

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/rwsnap/rwsnap/catalog"
)

// Built-in objects every RisingWave cluster creates at first launch
// (src/common/src/catalog/mod.rs): --ddl does not recreate them.
var (
	builtinUsers   = map[uint32]bool{1: true, 2: true} // root, postgres
	builtinSchemas = map[string]bool{"public": true, "pg_catalog": true, "information_schema": true, "rw_catalog": true}
)

// ddlPlaceholder names a psql variable that stands for a credential.
type ddlPlaceholder struct{ Var, What string }

// DDL writes a psql script that recreates the snapshot's catalog: users,
// databases and schemas, then every relation after everything it depends
// on, from the stored definitions, then the grants. Credentials are psql
// variables (:'name') the script's header lists; psql leaves an unset
// variable as is, so the statement fails instead of running without it.
// It is the way back when the SSTs are lost and the data must be rebuilt
// from upstream.
func DDL(w io.Writer, d *Document) error {
	c := d.Catalog()
	if c == nil {
		return errors.New("snapshot catalog not decoded (" + strings.Join(d.Snapshot.NotDecoded, "; ") + "): no DDL can be written")
	}
	var body strings.Builder
	var vars []ddlPlaceholder
	used := map[string]int{}
	placeholder := func(what string, parts ...string) string {
		v := psqlVar(parts...)
		used[v]++
		if n := used[v]; n > 1 {
			v = fmt.Sprintf("%s_%d", v, n)
		}
		vars = append(vars, ddlPlaceholder{v, what})
		return ":'" + v + "'"
	}
	users := map[uint32]string{}
	for _, u := range c.Users {
		users[u.ID] = u.Name
	}
	dbNames := map[uint32]string{}
	for _, db := range c.Databases {
		dbNames[db.ID] = db.Name
	}
	schemaNames := map[uint32]string{}
	for _, s := range c.Schemas {
		schemaNames[s.ID] = s.Name
	}

	body.WriteString("\n-- Users (built-in root and postgres exist already).\n")
	for _, u := range c.Users {
		if builtinUsers[u.ID] {
			continue
		}
		opts := []string{sqlFlag(u.IsSuper, "SUPERUSER", "NOSUPERUSER"), sqlFlag(u.CanCreateDB, "CREATEDB", "NOCREATEDB"),
			sqlFlag(u.CanCreateUser, "CREATEUSER", "NOCREATEUSER"), sqlFlag(u.CanLogin, "LOGIN", "NOLOGIN")}
		if u.Auth != "none" && u.Auth != "oauth" {
			opts = append(opts, "PASSWORD "+placeholder("password of user "+u.Name, "password", u.Name))
		}
		fmt.Fprintf(&body, "CREATE USER %s WITH %s;\n", ident(u.Name), strings.Join(opts, " "))
	}

	// Relations by database, each in dependency order.
	byDB := map[uint32][]catalog.Relation{}
	for _, r := range c.Relations {
		byDB[r.DatabaseID] = append(byDB[r.DatabaseID], r)
	}
	for _, db := range c.Databases {
		fmt.Fprintf(&body, "\n-- Database %s.\nCREATE DATABASE IF NOT EXISTS %s;\n\\connect %s\n", db.Name, ident(db.Name), ident(db.Name))
		for _, s := range c.Schemas {
			if s.DatabaseID == db.ID && !builtinSchemas[s.Name] {
				fmt.Fprintf(&body, "CREATE SCHEMA IF NOT EXISTS %s;\n", ident(s.Name))
			}
		}
		path := "public"
		for _, r := range DependencyOrder(byDB[db.ID]) {
			stmt, ok := relationDDL(r, placeholder)
			if !ok {
				continue
			}
			if s := schemaNames[r.SchemaID]; s != "" && s != path {
				path = s
				fmt.Fprintf(&body, "SET search_path TO %s, public;\n", ident(s))
			}
			fmt.Fprintf(&body, "\n-- %s %s (id %d)\n%s;\n", r.Kind, r.Name, r.ID, stmt)
			if alter := ownerDDL(r, users); alter != "" {
				fmt.Fprintln(&body, alter)
			}
		}
		if path != "public" {
			body.WriteString("SET search_path TO public;\n")
		}
		grants := grantsDDL(c, db.ID, users, dbNames, schemaNames)
		if len(grants) > 0 {
			body.WriteString("\n-- Privileges.\n")
			for _, g := range grants {
				body.WriteString(g + "\n")
			}
		}
	}

	h := d.Snapshot
	fmt.Fprintf(w, "-- Recreates the catalog of RisingWave meta snapshot %d", h.ID)
	if h.MaxCommittedTime != nil {
		fmt.Fprintf(w, " (data as of %s UTC", h.MaxCommittedTime.Format("2006-01-02 15:04:05"))
		if h.RWVersion != nil {
			fmt.Fprintf(w, ", RisingWave %s", *h.RWVersion)
		}
		fmt.Fprint(w, ")")
	}
	fmt.Fprint(w, ".\n-- Written by `rwsnap meta inspect --ddl` from the stored definitions, each relation\n"+
		"-- after everything it depends on. It recreates the catalog, not the data: sources\n"+
		"-- and tables with connectors read from upstream again.\n")
	if len(vars) > 0 {
		fmt.Fprint(w, "--\n-- Credentials are redacted and replaced by psql variables; set each one:\n--   psql")
		for _, v := range vars {
			fmt.Fprintf(w, " -v %s=...", v.Var)
		}
		fmt.Fprint(w, " -f THIS_FILE\n")
		for _, v := range vars {
			fmt.Fprintf(w, "--   %-40s %s\n", v.Var, v.What)
		}
	}
	if len(c.Problems) > 0 {
		fmt.Fprint(w, "--\n-- NOT included, their catalog messages could not be decoded:\n")
		for _, p := range c.Problems {
			fmt.Fprintf(w, "--   %s\n", p)
		}
	}
	fmt.Fprint(w, "\\set ON_ERROR_STOP on\n")
	_, err := io.WriteString(w, body.String())
	return err
}

func sqlFlag(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// relationDDL is the statement that creates r (false: nothing to write).
func relationDDL(r catalog.Relation, placeholder func(what string, parts ...string) string) (string, bool) {
	redact := func(def string) string {
		out, _ := catalog.RedactSQL(def, func(prop string) string {
			if prop == "" {
				return placeholder(fmt.Sprintf("a credential in the definition of %s %s", r.Kind, r.Name), string(r.Kind), r.Name, "secret")
			}
			return placeholder(fmt.Sprintf("%s of %s %s", prop, r.Kind, r.Name), string(r.Kind), r.Name, prop)
		})
		return strings.TrimRight(strings.TrimSpace(out), ";")
	}
	switch r.Kind {
	case catalog.KindInternal:
		return "", false // created by its streaming job
	case catalog.KindSource:
		if r.AssociatedTable != 0 {
			return "", false // created by CREATE TABLE ... WITH (connector = ...)
		}
	case catalog.KindView:
		return "CREATE VIEW " + ident(r.Name) + " AS " + redact(r.RawDefinition), true
	case catalog.KindSecret:
		return "CREATE SECRET " + ident(r.Name) + " WITH (backend = 'meta') AS " +
			placeholder("value of secret "+r.Name, "secret", r.Name), true
	case catalog.KindConnection:
		var opts []string
		for _, k := range sortedKeys(r.Properties) {
			if k == "endpoint_id" || k == "endpoint_dns_name" {
				continue // what RisingWave created for it, not an option
			}
			v := r.Properties[k]
			if v == catalog.Redacted {
				v = placeholder(k+" of connection "+r.Name, "connection", r.Name, k)
			} else {
				v = quote(v)
			}
			opts = append(opts, k+" = "+v)
		}
		return "CREATE CONNECTION " + ident(r.Name) + " WITH (" + strings.Join(opts, ", ") + ")", true
	case catalog.KindFunction:
		return functionDDL(r, placeholder), true
	}
	if strings.TrimSpace(r.RawDefinition) == "" {
		return fmt.Sprintf("-- %s %s has no stored definition", r.Kind, r.Name), true
	}
	return redact(r.RawDefinition), true
}

// functionDDL rebuilds CREATE FUNCTION: v1.x stores a function's parts,
// not its statement.
func functionDDL(r catalog.Relation, placeholder func(what string, parts ...string) string) string {
	f := r.Function
	var args []string
	for _, a := range f.Args {
		args = append(args, strings.TrimSpace(a.Name+" "+a.Type))
	}
	kw := "FUNCTION"
	if f.Kind == "aggregate" {
		kw = "AGGREGATE"
	}
	ret := "RETURNS " + f.Returns
	if f.Kind == "table" {
		ret = "RETURNS TABLE (" + f.Returns + ")"
	}
	s := fmt.Sprintf("CREATE %s %s(%s) %s LANGUAGE %s", kw, ident(r.Name), strings.Join(args, ", "), ret, f.Language)
	switch {
	case f.Body != "":
		s += " AS $$" + f.Body + "$$"
	case f.Identifier != "":
		s += " AS " + quote(f.Identifier)
	}
	if f.Link != "" {
		link := quote(f.Link)
		if r.Properties["link"] == catalog.Redacted {
			link = placeholder("link of function "+r.Name, "function", r.Name, "link")
		}
		s += " USING LINK " + link
	}
	return s
}

// ownerDDL hands a relation to its owner when that is not root (the
// script's runner owns what it creates).
func ownerDDL(r catalog.Relation, users map[uint32]string) string {
	if r.Owner == 1 || users[r.Owner] == "" {
		return ""
	}
	kw := map[catalog.Kind]string{catalog.KindTable: "TABLE", catalog.KindMaterializedView: "MATERIALIZED VIEW",
		catalog.KindView: "VIEW", catalog.KindSource: "SOURCE", catalog.KindSink: "SINK"}[r.Kind]
	if kw == "" {
		return fmt.Sprintf("-- owner: %s", users[r.Owner])
	}
	return fmt.Sprintf("ALTER %s %s OWNER TO %s;", kw, ident(r.Name), ident(users[r.Owner]))
}

func grantsDDL(c *catalog.Catalog, dbID uint32, users, dbNames, schemaNames map[uint32]string) []string {
	rel := map[uint32]catalog.Relation{}
	fn := map[uint32]catalog.Relation{}
	for _, r := range c.Relations {
		switch r.Kind {
		case catalog.KindFunction:
			fn[r.ID] = r
		case catalog.KindConnection, catalog.KindSecret:
		default:
			rel[r.ID] = r
		}
	}
	schemaDB := map[uint32]uint32{}
	for _, s := range c.Schemas {
		schemaDB[s.ID] = s.DatabaseID
	}
	var out []string
	for _, u := range c.Users {
		if builtinUsers[u.ID] {
			continue
		}
		for _, p := range u.Privileges {
			var on string
			var db uint32
			switch p.On {
			case "database":
				on, db = "DATABASE "+ident(dbNames[p.ObjectID]), p.ObjectID
			case "schema":
				on, db = "SCHEMA "+ident(schemaNames[p.ObjectID]), schemaDB[p.ObjectID]
			case "all_tables_in_schema":
				on, db = "ALL TABLES IN SCHEMA "+ident(schemaNames[p.ObjectID]), schemaDB[p.ObjectID]
			case "all_sources_in_schema":
				on, db = "ALL SOURCES IN SCHEMA "+ident(schemaNames[p.ObjectID]), schemaDB[p.ObjectID]
			case "all_dml_relations_in_schema":
				on, db = "ALL TABLES IN SCHEMA "+ident(schemaNames[p.ObjectID]), schemaDB[p.ObjectID]
			case "function":
				r, ok := fn[p.ObjectID]
				if !ok {
					continue
				}
				var types []string
				for _, a := range r.Function.Args {
					types = append(types, a.Type)
				}
				on, db = "FUNCTION "+qualified(schemaNames[r.SchemaID], r.Name)+"("+strings.Join(types, ", ")+")", r.DatabaseID
			default:
				r, ok := rel[p.ObjectID]
				if !ok {
					continue // granted on an object not in this snapshot
				}
				kw := map[catalog.Kind]string{catalog.KindTable: "TABLE", catalog.KindMaterializedView: "MATERIALIZED VIEW",
					catalog.KindView: "VIEW", catalog.KindSource: "SOURCE", catalog.KindSink: "SINK", catalog.KindIndex: "TABLE",
					catalog.KindSubscription: "SUBSCRIPTION"}[r.Kind]
				on, db = kw+" "+qualified(schemaNames[r.SchemaID], r.Name), r.DatabaseID
			}
			if db != dbID {
				continue
			}
			var plain, withOpt []string
			for _, a := range p.Actions {
				if a.WithGrantOption {
					withOpt = append(withOpt, a.Action)
				} else {
					plain = append(plain, a.Action)
				}
			}
			if len(plain) > 0 {
				out = append(out, fmt.Sprintf("GRANT %s ON %s TO %s;", strings.Join(plain, ", "), on, ident(u.Name)))
			}
			if len(withOpt) > 0 {
				out = append(out, fmt.Sprintf("GRANT %s ON %s TO %s WITH GRANT OPTION;", strings.Join(withOpt, ", "), on, ident(u.Name)))
			}
		}
	}
	return out
}

// DependencyOrder sorts relations so that each comes after every relation
// it depends on (Kahn's algorithm); among relations ready at the same time
// the lower kind rank and then the lower id (creation order) come first.
// Dependencies on objects outside the list are ignored; a cycle (which a
// consistent catalog cannot have) is broken in the same order.
func DependencyOrder(rs []catalog.Relation) []catalog.Relation {
	key := func(r catalog.Relation) catalog.Ref { return catalog.Ref{Kind: r.Kind, ID: r.ID} }
	present := map[catalog.Ref]bool{}
	byTableID := map[uint32]catalog.Ref{} // dependencies by id resolve to the relation of that id
	for _, r := range rs {
		present[key(r)] = true
		switch r.Kind {
		case catalog.KindFunction, catalog.KindConnection, catalog.KindSecret:
		default:
			byTableID[r.ID] = key(r)
		}
	}
	indeg := map[catalog.Ref]int{}
	users := map[catalog.Ref][]catalog.Ref{}
	for _, r := range rs {
		seen := map[catalog.Ref]bool{}
		for _, d := range r.DependsOn {
			dep := d
			if !present[dep] {
				if alt, ok := byTableID[d.ID]; ok && d.Kind != catalog.KindFunction && d.Kind != catalog.KindConnection && d.Kind != catalog.KindSecret {
					dep = alt
				} else {
					continue
				}
			}
			if dep == key(r) || seen[dep] {
				continue
			}
			seen[dep] = true
			indeg[key(r)]++
			users[dep] = append(users[dep], key(r))
		}
	}
	byRef := map[catalog.Ref]catalog.Relation{}
	for _, r := range rs {
		byRef[key(r)] = r
	}
	less := func(a, b catalog.Relation) bool {
		if catalog.KindRank(a.Kind) != catalog.KindRank(b.Kind) {
			return catalog.KindRank(a.Kind) < catalog.KindRank(b.Kind)
		}
		return a.ID < b.ID
	}
	remaining := append([]catalog.Relation(nil), rs...)
	sort.Slice(remaining, func(i, j int) bool { return less(remaining[i], remaining[j]) })
	var out []catalog.Relation
	done := map[catalog.Ref]bool{}
	for len(out) < len(rs) {
		pick := -1
		for i, r := range remaining {
			if !done[key(r)] && indeg[key(r)] == 0 {
				pick = i
				break
			}
		}
		if pick < 0 { // a cycle: take the first remaining
			for i, r := range remaining {
				if !done[key(r)] {
					pick = i
					break
				}
			}
		}
		r := remaining[pick]
		done[key(r)] = true
		out = append(out, r)
		for _, u := range users[key(r)] {
			indeg[u]--
		}
	}
	return out
}

// psqlVar builds a psql variable name from parts: lower case letters,
// digits and underscores.
func psqlVar(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('_')
		}
		for _, r := range strings.ToLower(p) {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
	}
	return b.String()
}

// ident quotes an identifier when it is not a plain lower-case name.
func ident(s string) string {
	plain := s != ""
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || i > 0 && (r >= '0' && r <= '9' || r == '$')) {
			plain = false
		}
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func qualified(schema, name string) string {
	if schema == "" || schema == "public" {
		return ident(name)
	}
	return ident(schema) + "." + ident(name)
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
