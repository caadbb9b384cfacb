// Package catalogfix adds to a snapshot's catalog the objects rwsim's v1.7
// cluster cannot have, encoded with RisingWave's field numbers: a
// subscription in v1.8's and in v1.10's layout, a v2.0 secret, a source
// whose password is a secret reference and whose FORMAT ... ENCODE options
// hold a credential, a sink with a credential in its format options, and
// a function whose link holds a password. Tests use it to cover every catalog kind and every place a credential
// can hide.
package catalogfix

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/catalog/catalogpb"
	"github.com/rwsnap/rwsnap/metasnap"
)

// Planted credentials: no rwsnap output may contain them.
const (
	SecretValue        = "rwsim-secret-Valu3-in-the-meta-store"
	RegistryPassword   = "rwsim-Registry-Pa55"
	SinkFormatPassword = "rwsim-SinkFormat-Pa55"
	FunctionLinkSecret = "rwsim-UdfLink-Pa55"
)

// IDs of the planted objects (above rwsim's; secrets have their own ids).
const (
	SecretID           = 1
	SecretSourceID     = 5001
	SubscriptionV18ID  = 5002
	SubscriptionV110ID = 5003
	FormatSinkID       = 5004
	FunctionID         = 77
)

// Plant appends the objects to md (marking the v1.8 and v2.0 lists
// present). upstream is the id of an existing table or MV the
// subscriptions and the sink read from; db and schema are where they live.
func Plant(md *metasnap.ClusterMetadata, upstream, db, schema uint32) {
	sec := &catalogpb.Secret{Id: SecretID, Name: "kafka_password", DatabaseId: db, SchemaId: schema, Owner: 1,
		// RisingWave stores secret.Secret{meta{value}} encrypted; rwsim
		// stores a recognisable plaintext so a leak would be seen.
		Value: []byte(SecretValue)}
	md.Secrets, md.HasSecrets = append(md.Secrets, marshal(sec)), true

	created := uint64(1) << 16
	src := &catalogpb.Source{Id: SecretSourceID, SchemaId: schema, DatabaseId: db, Name: "src_with_secret", Owner: 1,
		WithProperties: map[string]string{"connector": "kafka", "topic": "orders", "properties.bootstrap.server": "kafka:9092",
			"properties.sasl.username": "rw"},
		SecretRefs: map[string]*catalogpb.SecretRef{"properties.sasl.password": {SecretId: SecretID, RefAs: catalogpb.SecretRef_TEXT}},
		Info: &catalogpb.StreamSourceInfo{Format: 1, RowEncode: 3,
			FormatEncodeOptions: map[string]string{"schema.registry": "http://registry:8081", "schema.registry.password": RegistryPassword}},
		Definition: "CREATE SOURCE src_with_secret WITH (connector = 'kafka', topic = 'orders', properties.bootstrap.server = 'kafka:9092', " +
			"properties.sasl.username = 'rw', properties.sasl.password = SECRET kafka_password) FORMAT PLAIN ENCODE AVRO " +
			"(schema.registry = 'http://registry:8081', schema.registry.password = '" + RegistryPassword + "')",
		CreatedAtEpoch: &created}
	md.Sources = append(md.Sources, marshal(src))

	sink := &catalogpb.Sink{Id: FormatSinkID, SchemaId: schema, DatabaseId: db, Name: "sink_with_format_secret", Owner: 1,
		DependentRelations: []uint32{upstream}, Properties: map[string]string{"connector": "kafka", "topic": "out"},
		FormatDesc: &catalogpb.SinkFormatDesc{Format: 1, Encode: 3, Options: map[string]string{"schema.registry.password": SinkFormatPassword}},
		Definition: "CREATE SINK sink_with_format_secret FROM upstream WITH (connector = 'kafka', topic = 'out') FORMAT PLAIN ENCODE AVRO " +
			"(schema.registry.password = '" + SinkFormatPassword + "')",
		CreatedAtEpoch: &created}
	md.Sinks = append(md.Sinks, marshal(sink))

	link := "http://udf:" + FunctionLinkSecret + "@udf-server:8815"
	ident := "score"
	fn := &catalogpb.Function{Id: FunctionID, SchemaId: schema, DatabaseId: db, Name: "fn_remote_score", Owner: 1,
		ArgTypes: []*catalogpb.DataType{{TypeName: catalogpb.DataType_VARCHAR}}, ArgNames: []string{"s"},
		ReturnType: &catalogpb.DataType{TypeName: catalogpb.DataType_DOUBLE}, Language: "python", Link: &link, Identifier: &ident,
		Kind: &catalogpb.Function_Scalar{Scalar: &catalogpb.Function_ScalarFunction{}}}
	md.Functions = append(md.Functions, marshal(fn))

	// v1.8 (proto/catalog.proto@v1.8.0): dependent_relations = 10 repeated
	// (packed), properties = 6 map.
	var v18 []byte
	v18 = protowire.AppendTag(v18, 1, protowire.VarintType)
	v18 = protowire.AppendVarint(v18, SubscriptionV18ID)
	v18 = protowire.AppendTag(v18, 2, protowire.BytesType)
	v18 = protowire.AppendString(v18, "sub_v18")
	v18 = protowire.AppendTag(v18, 3, protowire.BytesType)
	v18 = protowire.AppendString(v18, "CREATE SUBSCRIPTION sub_v18 FROM upstream WITH (retention = '1D')")
	entry := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "retention")
	entry = protowire.AppendString(protowire.AppendTag(entry, 2, protowire.BytesType), "1D")
	v18 = protowire.AppendBytes(protowire.AppendTag(v18, 6, protowire.BytesType), entry)
	v18 = protowire.AppendVarint(protowire.AppendTag(v18, 8, protowire.VarintType), uint64(db))
	v18 = protowire.AppendVarint(protowire.AppendTag(v18, 9, protowire.VarintType), uint64(schema))
	v18 = protowire.AppendBytes(protowire.AppendTag(v18, 10, protowire.BytesType), protowire.AppendVarint(nil, uint64(upstream)))
	v18 = protowire.AppendVarint(protowire.AppendTag(v18, 13, protowire.VarintType), 1)
	// v1.10 (proto/catalog.proto@v1.10.0): dependent_table_id = 10 (a plain
	// varint), retention_seconds = 6.
	var v110 []byte
	v110 = protowire.AppendVarint(protowire.AppendTag(v110, 1, protowire.VarintType), SubscriptionV110ID)
	v110 = protowire.AppendString(protowire.AppendTag(v110, 2, protowire.BytesType), "sub_v110")
	v110 = protowire.AppendString(protowire.AppendTag(v110, 3, protowire.BytesType), "CREATE SUBSCRIPTION sub_v110 FROM upstream WITH (retention = '1D')")
	v110 = protowire.AppendVarint(protowire.AppendTag(v110, 6, protowire.VarintType), 86400)
	v110 = protowire.AppendVarint(protowire.AppendTag(v110, 8, protowire.VarintType), uint64(db))
	v110 = protowire.AppendVarint(protowire.AppendTag(v110, 9, protowire.VarintType), uint64(schema))
	v110 = protowire.AppendVarint(protowire.AppendTag(v110, 10, protowire.VarintType), uint64(upstream))
	v110 = protowire.AppendVarint(protowire.AppendTag(v110, 13, protowire.VarintType), 1)
	md.Subscriptions, md.HasSubscriptions = append(md.Subscriptions, v18, v110), true
}

func marshal(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// Rewrite decodes snapshot b, applies fn to its metadata and encodes it
// again under id.
func Rewrite(b []byte, id uint64, fn func(md *metasnap.ClusterMetadata)) ([]byte, error) {
	s, err := metasnap.Decode(b)
	if err != nil {
		return nil, err
	}
	fn(s.Metadata)
	s.ID = id
	return s.Encode(), nil
}
