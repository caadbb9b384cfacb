package inspect

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/rwsnap/rwsnap/catalog"
	"github.com/rwsnap/rwsnap/internal/testinfra/catalogfix"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/rwsim"
	"github.com/rwsnap/rwsnap/rwsim/metanode"
)

func render(t *testing.T, d *Document) (table, js, ddl string) {
	t.Helper()
	var a, b, c bytes.Buffer
	if err := WriteTable(&a, d); err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		t.Fatal(err)
	}
	if err := DDL(&c, d); err != nil {
		t.Fatal(err)
	}
	return a.String(), b.String(), c.String()
}

func find(d *Document, kind catalog.Kind, name string) *Relation {
	for i := range d.Relations {
		if d.Relations[i].Kind == kind && d.Relations[i].Name == name {
			return &d.Relations[i]
		}
	}
	return nil
}

// TestInspectGolden inspects an rwsim snapshot (every v1.7 relation kind,
// dependencies five levels deep, credentials in a source and a sink, a
// user with privileges) in every output format against golden files, and
// checks what the files must say.
func TestInspectGolden(t *testing.T) {
	e := newEnv(t)
	d := e.inspect(t, e.backup(t))
	table, js, ddl := render(t, d)
	golden(t, "inspect.txt", []byte(table))
	golden(t, "inspect.json", []byte(js))
	golden(t, "rebuild.sql", []byte(ddl))

	// The stable top level of -o json.
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(js), &top); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"params", "relations", "snapshot", "storage", "users"}; !slices.Equal(keys, want) {
		t.Errorf("top-level keys %v, want %v", keys, want)
	}
	var rel []map[string]json.RawMessage
	json.Unmarshal(top["relations"], &rel)
	for _, k := range []string{"kind", "id", "name", "database", "schema", "owner", "definition", "depends_on"} {
		if _, ok := rel[0][k]; !ok {
			t.Errorf("relation has no %q: %v", k, rel[0])
		}
	}

	kinds := map[catalog.Kind]bool{}
	for _, r := range d.Relations {
		kinds[r.Kind] = true
	}
	for _, k := range []catalog.Kind{catalog.KindTable, catalog.KindMaterializedView, catalog.KindIndex, catalog.KindInternal,
		catalog.KindSource, catalog.KindSink, catalog.KindView, catalog.KindFunction, catalog.KindConnection} {
		if !kinds[k] {
			t.Errorf("no %s in the inspected catalog", k)
		}
	}
	// The chain v_top_customers_paid_names -> v_top_customers_paid ->
	// mv_top_customers_paid -> mv_paid_by_customer -> mv_paid_orders ->
	// src_payments, orders.
	chain := []struct {
		kind catalog.Kind
		name string
	}{{catalog.KindView, "v_top_customers_paid_names"}, {catalog.KindView, "v_top_customers_paid"},
		{catalog.KindMaterializedView, "mv_top_customers_paid"}, {catalog.KindMaterializedView, "mv_paid_by_customer"},
		{catalog.KindMaterializedView, "mv_paid_orders"}}
	for i, c := range chain {
		r := find(d, c.kind, c.name)
		if r == nil {
			t.Fatalf("%s %s missing", c.kind, c.name)
		}
		want := "src_payments"
		if i+1 < len(chain) {
			want = chain[i+1].name
		}
		if !slices.ContainsFunc(r.DependsOn, func(dep Dependency) bool { return dep.Name == want }) {
			t.Errorf("%s depends on %+v, want %s among them", r.Name, r.DependsOn, want)
		}
	}
	// Users: privileges, never the hash.
	var analyst *catalog.User
	for i := range d.Users {
		if d.Users[i].Name == "analyst" {
			analyst = &d.Users[i]
		}
	}
	if analyst == nil || len(analyst.Privileges) != 6 || !strings.Contains(analyst.Auth, "hash not shown") {
		t.Fatalf("analyst = %+v", analyst)
	}
	for _, out := range []string{table, js, ddl} {
		for _, secret := range []string{rwsim.KafkaPassword, rwsim.JDBCPassword, e.sim.UserPasswordHash(), ":hummockadmin@"} {
			if strings.Contains(out, secret) {
				t.Errorf("output contains the credential %q", secret)
			}
		}
	}
	if !strings.Contains(table, "Redacted (credentials replaced by [REDACTED])") || len(d.Snapshot.Redacted) == 0 {
		t.Error("inspect does not say what it redacted")
	}
	if d.Params["sstable_size_mb"] != "256" || !strings.HasPrefix(d.Params["state_store"], "hummock+minio://hummockadmin:***@") {
		t.Errorf("params %v", d.Params)
	}
	if d.Storage.SSTs == 0 || len(d.Storage.CompactionGroups) < 3 || len(d.Storage.Tables) == 0 {
		t.Errorf("storage %+v", d.Storage)
	}
}

// ddlStatements maps "kind name" to the statement's offset in the script.
func ddlOffsets(t *testing.T, ddl string, d *Document) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range d.Relations {
		i := strings.Index(ddl, "\n-- "+string(r.Kind)+" "+r.Name+" (id ")
		if i >= 0 {
			out[string(r.Kind)+" "+r.Name] = i
		}
	}
	return out
}

// TestDDLOrderAndDefinitions: every relation after everything it depends
// on, every stored definition byte for byte (credentials aside).
func TestDDLOrderAndDefinitions(t *testing.T) {
	e := newEnv(t)
	id := e.backup(t)
	// Plant the objects of later versions too: secrets first, then what
	// references them.
	b, _, err := e.st.Store.Get(e.ctx, e.st.SnapshotKey(id))
	if err != nil {
		t.Fatal(err)
	}
	mv := findByName(t, e, id, "mv_top_customers_paid")
	nb, err := catalogfix.Rewrite(b, 2000, func(md *metasnap.ClusterMetadata) { catalogfix.Plant(md, mv, 0, 0) })
	if err != nil {
		t.Fatal(err)
	}
	entry := *mustEntry(t, e, id)
	entry.ID = 2000
	d, err := FromBytes(&entry, "backup/2000.snapshot", nb)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := DDL(&buf, d); err != nil {
		t.Fatal(err)
	}
	ddl := buf.String()
	offs := ddlOffsets(t, ddl, d)
	names := map[Dependency]string{}
	for _, r := range d.Relations {
		names[Dependency{Kind: r.Kind, ID: r.ID, Name: r.Name}] = r.Name
	}
	for _, r := range d.Relations {
		pos, ok := offs[string(r.Kind)+" "+r.Name]
		if r.Kind == catalog.KindInternal {
			if ok {
				t.Errorf("internal table %s in the DDL", r.Name)
			}
			continue
		}
		if !ok {
			t.Errorf("%s %s missing from the DDL", r.Kind, r.Name)
			continue
		}
		for _, dep := range r.DependsOn {
			dpos, ok := offs[string(dep.Kind)+" "+dep.Name]
			if ok && dpos > pos {
				t.Errorf("%s %s comes before its dependency %s %s", r.Kind, r.Name, dep.Kind, dep.Name)
			}
		}
	}
	// Definitions exactly as stored, except credentials.
	cat := d.Catalog()
	for _, r := range cat.Relations {
		if r.RawDefinition == "" {
			continue
		}
		want := r.RawDefinition
		if r.Kind == catalog.KindView {
			want = "CREATE VIEW " + r.Name + " AS " + r.RawDefinition
		}
		has := strings.Contains(ddl, "\n"+want+";\n")
		secret := strings.Contains(want, rwsim.KafkaPassword) || strings.Contains(want, rwsim.JDBCPassword) ||
			strings.Contains(want, catalogfix.RegistryPassword) || strings.Contains(want, catalogfix.SinkFormatPassword)
		if has == secret {
			t.Errorf("%s %s: stored definition in the DDL verbatim = %v, holds a credential = %v", r.Kind, r.Name, has, secret)
		}
	}
	for _, want := range []string{
		"properties.sasl.password = :'source_src_payments_properties_sasl_password'",
		"CREATE SECRET kafka_password WITH (backend = 'meta') AS :'secret_kafka_password'",
		"properties.sasl.password = SECRET kafka_password",
		"CREATE SUBSCRIPTION sub_v110 FROM upstream WITH (retention = '1D');",
		"GRANT SELECT ON MATERIALIZED VIEW mv_top_customers_paid TO analyst;",
		"PASSWORD :'password_analyst'",
		"\\connect dev\n",
	} {
		if !strings.Contains(ddl, want) {
			t.Errorf("DDL lacks %q", want)
		}
	}
	if i, j := strings.Index(ddl, "CREATE SECRET kafka_password"), strings.Index(ddl, "CREATE SOURCE src_with_secret"); i < 0 || j < i {
		t.Error("the secret is not created before the source that references it")
	}
	for _, s := range []string{rwsim.KafkaPassword, rwsim.JDBCPassword, catalogfix.RegistryPassword, catalogfix.SinkFormatPassword, catalogfix.SecretValue} {
		if strings.Contains(ddl, s) {
			t.Errorf("DDL contains the credential %q", s)
		}
	}
}

func mustEntry(t *testing.T, e *env, id uint64) *metasnap.SnapshotMetadata {
	t.Helper()
	m, _, err := e.st.ReadManifest(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m.Find(id)
}

func findByName(t *testing.T, e *env, id uint64, name string) uint32 {
	t.Helper()
	for _, r := range e.inspect(t, id).Relations {
		if r.Name == name {
			return r.ID
		}
	}
	t.Fatalf("no relation %s", name)
	return 0
}

// TestPlantedKinds decodes the kinds rwsim's v1.7 cluster cannot have:
// subscriptions in the v1.8 and v1.10 layouts, a v2.0 secret (name only),
// secret references.
func TestPlantedKinds(t *testing.T) {
	e := newEnv(t)
	id := e.backup(t)
	b, _, _ := e.st.Store.Get(e.ctx, e.st.SnapshotKey(id))
	mv := findByName(t, e, id, "mv_top_customers_paid")
	nb, err := catalogfix.Rewrite(b, id, func(md *metasnap.ClusterMetadata) { catalogfix.Plant(md, mv, 0, 0) })
	if err != nil {
		t.Fatal(err)
	}
	d, err := FromBytes(mustEntry(t, e, id), "x", nb)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sub_v18", "sub_v110"} {
		r := find(d, catalog.KindSubscription, name)
		if r == nil || len(r.DependsOn) != 1 || r.DependsOn[0].Name != "mv_top_customers_paid" {
			t.Errorf("subscription %s = %+v", name, r)
		}
	}
	sec := find(d, catalog.KindSecret, "kafka_password")
	if sec == nil || !slices.Contains(sec.Redacted, "value") {
		t.Errorf("secret = %+v", sec)
	}
	src := find(d, catalog.KindSource, "src_with_secret")
	if src == nil || src.SecretRefs["properties.sasl.password"] != "kafka_password" ||
		!slices.ContainsFunc(src.DependsOn, func(x Dependency) bool { return x.Kind == catalog.KindSecret && x.Name == "kafka_password" }) ||
		src.Properties["format_encode.schema.registry.password"] != catalog.Redacted {
		t.Errorf("source with secret = %+v", src)
	}
	table, js, ddl := render(t, d)
	for _, out := range []string{table, js, ddl} {
		for _, s := range []string{catalogfix.SecretValue, catalogfix.RegistryPassword, catalogfix.SinkFormatPassword} {
			if strings.Contains(out, s) {
				t.Errorf("output contains %q", s)
			}
		}
	}
}

// TestWrittenByRisingWave inspects snapshots the simulated meta node wrote
// (RisingWave's own job), one of them in v1.7's layout without the v1.8
// subscription list.
func TestWrittenByRisingWave(t *testing.T) {
	e := newEnv(t)
	n, err := metanode.Start(e.ctx, metanode.Config{Etcd: e.cli, Hummock: e.hummock, DataDir: e.sim.Options().DataDir, Backup: e.st})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.WaitLeader(e.ctx); err != nil {
		t.Fatal(err)
	}
	id, err := n.Backup(e.ctx, "taken by the meta node")
	if err != nil {
		t.Fatal(err)
	}
	d := e.inspect(t, id)
	if d.Snapshot.Decoded != "full" || find(d, catalog.KindMaterializedView, "mv_paid_orders") == nil || *d.Snapshot.Remarks != "taken by the meta node" {
		t.Fatalf("meta node snapshot: %+v", d.Snapshot)
	}
	// v1.7 wrote no subscription list: drop its 4-byte count.
	b, _, _ := e.st.Store.Get(e.ctx, e.st.SnapshotKey(id))
	body := b[:len(b)-8]
	if !bytes.HasSuffix(body, []byte{0, 0, 0, 0}) {
		t.Fatal("expected an empty subscription list at the end")
	}
	v17 := binary.LittleEndian.AppendUint64(slices.Clone(body[:len(body)-4]), xxhash.Sum64(body[:len(body)-4]))
	d17, err := FromBytes(mustEntry(t, e, id), "v17", v17)
	if err != nil {
		t.Fatal(err)
	}
	if d17.Snapshot.Decoded != "full" || len(d17.Relations) != len(d.Relations) {
		t.Errorf("v1.7 layout: decoded %s, %d relations (want %d)", d17.Snapshot.Decoded, len(d17.Relations), len(d.Relations))
	}
}

// TestBadInput: unknown id, corrupt object, a format rwsnap does not
// decode, a catalog message that does not parse, a section layout it does
// not know.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	id := e.backup(t)
	e.backup(t)

	_, err := Inspect(e.ctx, e.st, 42)
	if !errors.Is(err, ErrUnknownSnapshot) || !strings.Contains(err.Error(), "1001, 1002") {
		t.Errorf("unknown id: %v", err)
	}

	b, _, _ := e.st.Store.Get(e.ctx, e.st.SnapshotKey(id))
	bad := slices.Clone(b)
	bad[len(bad)/2] ^= 0xff
	e.st.Store.Put(e.ctx, e.st.SnapshotKey(id), bad)
	_, err = Inspect(e.ctx, e.st, id)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "backup/1001.snapshot") || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("corrupt: %v", err)
	}
	e.st.Store.Put(e.ctx, e.st.SnapshotKey(id), b)

	// format_version 2: header and manifest entry only.
	v2 := binary.LittleEndian.AppendUint32(nil, 2)
	v2 = binary.LittleEndian.AppendUint64(v2, id)
	v2 = append(v2, []byte("\x01\x00\x00\x00\x02\x00\x00\x00{}")...)
	v2 = binary.LittleEndian.AppendUint64(v2, xxhash.Sum64(v2))
	rw := "2.0.7"
	entry := *mustEntry(t, e, id)
	entry.FormatVersion, entry.RWVersion = 2, &rw
	d, err := FromBytes(&entry, "v2", v2)
	if err != nil {
		t.Fatal(err)
	}
	if d.Snapshot.Decoded != "header" || d.Snapshot.FormatVersion != 2 || len(d.Snapshot.NotDecoded) != 1 ||
		!strings.Contains(d.Snapshot.NotDecoded[0], "format_version 2") || !strings.Contains(d.Snapshot.NotDecoded[0], "2.0.7") ||
		d.Storage.SSTs != len(entry.SSTs) {
		t.Errorf("format 2: %+v", d.Snapshot)
	}
	var out bytes.Buffer
	WriteTable(&out, d)
	if !strings.Contains(out.String(), "NOT DECODED: catalog") {
		t.Errorf("table view does not say what was not decoded:\n%s", out.String())
	}
	if err := DDL(&out, d); err == nil || !strings.Contains(err.Error(), "not decoded") {
		t.Errorf("DDL of an undecoded catalog: %v", err)
	}

	// A table message that does not parse: named by its key, the rest shown.
	var brokenID uint32
	nb, err := catalogfix.Rewrite(b, id, func(md *metasnap.ClusterMetadata) {
		// field 1 (id 1002) then a length that runs past the end.
		md.Tables[0] = append([]byte{0x08, 0xea, 0x07}, 0x22, 0x7f, 'x')
		brokenID = 1002
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err = FromBytes(mustEntry(t, e, id), "broken", nb)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Snapshot.Problems) != 1 || d.Snapshot.Problems[0].Key != "cf/catalog_table/1002" || brokenID != 1002 ||
		find(d, catalog.KindMaterializedView, "mv_paid_orders") == nil || len(d.Users) == 0 {
		t.Errorf("broken message: problems %+v, %d relations", d.Snapshot.Problems, len(d.Relations))
	}
	out.Reset()
	WriteTable(&out, d)
	if !strings.Contains(out.String(), "PROBLEM: table item 0 (cf/catalog_table/1002) could not be decoded") {
		t.Errorf("table view:\n%s", out.String()[:400])
	}

	// An unknown section after the v2.0 secret list (a newer layout):
	// everything known decodes, the rest is named.
	body := slices.Clone(b[:len(b)-8])
	body = append(body, 0, 0, 0, 0)       // secret list, empty
	body = append(body, 1, 0, 0, 0, 0xaa) // something newer
	ext := binary.LittleEndian.AppendUint64(body, xxhash.Sum64(body))
	d, err = FromBytes(mustEntry(t, e, id), "newer", ext)
	if err != nil {
		t.Fatal(err)
	}
	if d.Snapshot.Decoded != "partial" || len(d.Relations) == 0 || len(d.Snapshot.NotDecoded) != 1 ||
		!strings.Contains(d.Snapshot.NotDecoded[0], "after the last known section") {
		t.Errorf("newer layout: %s %v, %d relations", d.Snapshot.Decoded, d.Snapshot.NotDecoded, len(d.Relations))
	}
	// Truncated inside the catalog lists: the sections before are kept.
	short := slices.Clone(b[:len(b)/2])
	short = binary.LittleEndian.AppendUint64(short, xxhash.Sum64(short))
	d, err = FromBytes(mustEntry(t, e, id), "short", short)
	if err != nil {
		t.Fatal(err)
	}
	if d.Snapshot.Decoded != "partial" || len(d.Snapshot.NotDecoded) == 0 || !strings.Contains(d.Snapshot.NotDecoded[0], "sections ") {
		t.Errorf("truncated: %s %v", d.Snapshot.Decoded, d.Snapshot.NotDecoded)
	}
}

// TestDiffCreateDropAlter diffs two snapshots around a CREATE
// MATERIALIZED VIEW, a DROP MATERIALIZED VIEW and an ALTER TABLE ADD
// COLUMN.
func TestDiffCreateDropAlter(t *testing.T) {
	e := newEnv(t)
	a := e.backup(t)
	e.now = e.now.Add(time.Minute)
	if err := e.sim.CreateMaterializedView(e.ctx, "mv_new_orders",
		"CREATE MATERIALIZED VIEW mv_new_orders AS SELECT id, amount FROM orders WHERE amount > 10", "orders"); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.DropMaterializedView(e.ctx, "mv_top_customers"); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.AddColumn(e.ctx, "customers", rwsim.Column{Name: "email", Type: "varchar"}); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(time.Minute)
	if err := e.sim.Advance(e.ctx); err != nil {
		t.Fatal(err)
	}
	b := e.backup(t)
	r := Diff(e.inspect(t, a), e.inspect(t, b))

	has := func(refs []RelationRef, kind catalog.Kind, name string) bool {
		return slices.ContainsFunc(refs, func(x RelationRef) bool { return x.Kind == kind && x.Name == name })
	}
	if !has(r.Added, catalog.KindMaterializedView, "mv_new_orders") || !has(r.Added, catalog.KindInternal, "__internal_mv_new_orders_"+itoa(int(findByName(t, e, b, "mv_new_orders")))+"_hashaggstate_0") {
		t.Errorf("added %+v", r.Added)
	}
	if !has(r.Removed, catalog.KindMaterializedView, "mv_top_customers") || len(r.Removed) != 2 {
		t.Errorf("removed %+v (want the MV and its internal table)", r.Removed)
	}
	if len(r.Changed) != 1 || r.Changed[0].Name != "customers" || !slices.Equal(r.Changed[0].Fields, []string{"definition", "columns"}) {
		t.Errorf("changed %+v", r.Changed)
	}
	if len(r.Params) != 0 {
		t.Errorf("params changed: %+v", r.Params)
	}
	if r.Storage.SSTsFrom == r.Storage.SSTsTo && r.Storage.BytesFrom == r.Storage.BytesTo || len(r.Storage.Tables) == 0 {
		t.Errorf("storage diff %+v", r.Storage)
	}
	var js bytes.Buffer
	json.NewEncoder(&js).Encode(r)
	var top map[string]json.RawMessage
	json.Unmarshal(js.Bytes(), &top)
	var keys []string
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"added", "changed", "params", "removed", "storage"}; !slices.Equal(keys, want) {
		t.Errorf("diff -o json keys %v, want %v", keys, want)
	}
	var tbl bytes.Buffer
	WriteDiffTable(&tbl, r)
	for _, want := range []string{"+ materialized_view mv_new_orders", "- materialized_view mv_top_customers",
		"~ table customers (id 1010): definition, columns", "email VARCHAR"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("diff table lacks %q:\n%s", want, tbl.String())
		}
	}
	// Parameters: a changed param shows, redacted.
	x, y := e.inspect(t, a), e.inspect(t, b)
	y.Params["barrier_interval_ms"] = "500"
	if p := Diff(x, y).Params; len(p) != 1 || p[0] != (ParamChange{"barrier_interval_ms", "1000", "500"}) {
		t.Errorf("params diff %+v", p)
	}
}
