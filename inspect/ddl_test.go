package inspect

import (
	"slices"
	"testing"

	"github.com/rwsnap/rwsnap/catalog"
)

func TestDependencyOrder(t *testing.T) {
	rel := func(k catalog.Kind, id uint32, deps ...catalog.Ref) catalog.Relation {
		return catalog.Relation{Kind: k, ID: id, DependsOn: deps}
	}
	ref := func(k catalog.Kind, id uint32) catalog.Ref { return catalog.Ref{Kind: k, ID: id} }
	for _, tc := range []struct {
		name string
		in   []catalog.Relation
		want []uint32
	}{
		{"chain given backwards", []catalog.Relation{
			rel(catalog.KindView, 5, ref(catalog.KindView, 4)),
			rel(catalog.KindView, 4, ref(catalog.KindMaterializedView, 3)),
			rel(catalog.KindMaterializedView, 3, ref(catalog.KindMaterializedView, 2)),
			rel(catalog.KindMaterializedView, 2, ref(catalog.KindSource, 1)),
			rel(catalog.KindSource, 1, ref(catalog.KindSecret, 9)),
			rel(catalog.KindSecret, 9),
		}, []uint32{9, 1, 2, 3, 4, 5}},
		// A later id may be created before an earlier one it feeds (a sink
		// into a table, ALTER); dependencies win over ids.
		{"dependency over id", []catalog.Relation{
			rel(catalog.KindMaterializedView, 10, ref(catalog.KindTable, 20)),
			rel(catalog.KindTable, 20),
		}, []uint32{20, 10}},
		{"a dependency by id whose kind was not known", []catalog.Relation{
			rel(catalog.KindMaterializedView, 11, ref(catalog.KindTable, 12)),
			rel(catalog.KindMaterializedView, 12),
		}, []uint32{12, 11}},
		{"dropped dependency ignored", []catalog.Relation{
			rel(catalog.KindView, 7, ref(catalog.KindTable, 99)),
			rel(catalog.KindTable, 6),
		}, []uint32{6, 7}},
		{"cycle broken, nothing lost", []catalog.Relation{
			rel(catalog.KindMaterializedView, 1, ref(catalog.KindMaterializedView, 2)),
			rel(catalog.KindMaterializedView, 2, ref(catalog.KindMaterializedView, 1)),
		}, []uint32{1, 2}},
	} {
		var got []uint32
		for _, r := range DependencyOrder(tc.in) {
			got = append(got, r.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: order %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestIdentAndVars(t *testing.T) {
	for in, want := range map[string]string{"orders": "orders", "Orders": `"Orders"`, "a b": `"a b"`, `x"y`: `"x""y"`, "t1": "t1", "1t": `"1t"`} {
		if got := ident(in); got != want {
			t.Errorf("ident(%q) = %s, want %s", in, got, want)
		}
	}
	if got := psqlVar("source", "Src-1", "properties.sasl.password"); got != "source_src_1_properties_sasl_password" {
		t.Errorf("psqlVar = %s", got)
	}
}
