package catalog

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/catalog/catalogpb"
	"github.com/rwsnap/rwsnap/metasnap"
)

func TestIsSecret(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        bool
	}{
		{"properties.sasl.password", "hunter2", true},
		{"properties.sasl.mechanism", "PLAIN", true},
		{"s3.credentials.secret", "x", true},
		{"s3.credentials.access", "x", true},
		{"aws.credentials.access_key_id", "x", true},
		{"password", "x", true},
		{"properties.ssl.key.pem", "x", true},
		{"token", "abc", true},
		{"access_key", "x", true},
		{"primary_key", "id", false},
		{"key.message", "Key", false},
		{"connector", "kafka", false},
		{"topic", "orders_events_2024", false},
		{"properties.bootstrap.server", "kafka:9092", false},
		{"jdbc.url", "jdbc:postgresql://db:5432/x?user=a&password=b", true},
		{"endpoint", "http://admin:s3cr3t@minio:9000", true},
		{"anything", "AKIAIOSFODNN7EXAMPLE", true},
		{"anything", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", true},
		{"anything", "-----BEGIN PRIVATE KEY-----\nMII...", true},
		{"scan.startup.mode", "earliest", false},
		{"privatelink.targets", "[{\"port\": 9094}]", false},
		{"private_key", "x", true},
		{"table.name", "public.orders_with_a_rather_long_name", false},
	} {
		if got := IsSecret(tc.name, tc.value); got != tc.want {
			t.Errorf("IsSecret(%q, %q) = %v, want %v", tc.name, tc.value, got, tc.want)
		}
	}
}

func TestRedactSQL(t *testing.T) {
	rep := func(n string) string { return "<" + n + ">" }
	for _, tc := range []struct{ in, want string }{
		{
			"CREATE SOURCE s (a INT) WITH (connector = 'kafka', properties.sasl.password='hunter2', topic = 't') FORMAT PLAIN ENCODE JSON",
			"CREATE SOURCE s (a INT) WITH (connector = 'kafka', properties.sasl.password=<properties.sasl.password>, topic = 't') FORMAT PLAIN ENCODE JSON",
		},
		{
			`CREATE SINK k FROM mv WITH (connector='jdbc', "jdbc.url" = 'jdbc:mysql://h/db?user=u&password=p', primary_key='id')`,
			`CREATE SINK k FROM mv WITH (connector='jdbc', "jdbc.url" = <jdbc.url>, primary_key='id')`,
		},
		{ // quotes inside the literal, and E'' escapes
			"WITH (s3.credentials.secret = 'it''s', aws.credentials.session_token = E'a\\'b', region = 'us')",
			"WITH (s3.credentials.secret = <s3.credentials.secret>, aws.credentials.session_token = <aws.credentials.session_token>, region = 'us')",
		},
		{ // secret references (v2.0) are names, not values: kept
			"CREATE SOURCE s WITH (connector='kafka', properties.sasl.password = SECRET kafka_pw)",
			"CREATE SOURCE s WITH (connector='kafka', properties.sasl.password = SECRET kafka_pw)",
		},
		{ // a bare literal that is a credential by its value
			"SELECT 'AKIAIOSFODNN7EXAMPLE' AS k, 'plain' AS v",
			"SELECT <> AS k, 'plain' AS v",
		},
		{
			"CREATE MATERIALIZED VIEW mv AS SELECT name AS k FROM t WHERE name = 'password'",
			"CREATE MATERIALIZED VIEW mv AS SELECT name AS k FROM t WHERE name = 'password'",
		},
	} {
		got, _ := RedactSQL(tc.in, rep)
		if got != tc.want {
			t.Errorf("RedactSQL(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	if got, names := RedactSQL("CREATE TABLE t (a INT)", rep); got != "CREATE TABLE t (a INT)" || len(names) != 0 {
		t.Errorf("plain definition changed: %q %v", got, names)
	}
	if got, _ := RedactSQL("x = 'unterminated", rep); !strings.HasPrefix(got, "x = ") {
		t.Errorf("unterminated literal: %q", got)
	}
}

// TestSecretRefField16: StreamSourceInfo field 16 means the WITH
// properties' secret refs in v1.10 (no secret list in the snapshot) and
// the FORMAT ... ENCODE options' in v2.0.
func TestSecretRefField16(t *testing.T) {
	src := &catalogpb.Source{Id: 1001, Name: "s", Info: &catalogpb.StreamSourceInfo{
		FormatEncodeSecretRefs: map[string]*catalogpb.SecretRef{"properties.sasl.password": {SecretId: 3}}}}
	b, _ := proto.Marshal(src)
	for _, tc := range []struct {
		v20  bool
		want string
	}{{false, "properties.sasl.password"}, {true, "format_encode.properties.sasl.password"}} {
		c := Decode(&metasnap.ClusterMetadata{Sources: [][]byte{b}, HasSecrets: tc.v20})
		if _, ok := c.Relations[0].SecretRefs[tc.want]; !ok || len(c.Relations[0].SecretRefs) != 1 {
			t.Errorf("v2.0=%v: secret refs %v, want %s", tc.v20, c.Relations[0].SecretRefs, tc.want)
		}
	}
}
