// Package metastore knows RisingWave v1.x's etcd meta store layout: key
// encoding, column families, system parameters, leader election, and a
// consistent read of everything a meta snapshot holds at one etcd revision.
package metastore

import (
	"encoding/binary"

	"google.golang.org/protobuf/encoding/protowire"
)

// Column families (src/meta/src/model/*.rs, RisingWave v1.7). An etcd key is
// cf + "/" + key (etcd_meta_store.rs encode_etcd_key), with no other prefix.
const (
	CFDefault            = "default"
	CFClusterID          = "cf" // key "cluster_id": etcd key "cf/cluster_id"
	ClusterIDKey         = "cluster_id"
	CFSystemParams       = "cf/system_params"
	CFDatabase           = "cf/catalog_database"
	CFSchema             = "cf/catalog_schema"
	CFTable              = "cf/catalog_table"
	CFIndex              = "cf/catalog_index"
	CFSink               = "cf/catalog_sink"
	CFSource             = "cf/catalog_source"
	CFView               = "cf/catalog_view"
	CFFunction           = "cf/catalog_function"
	CFConnection         = "cf/catalog_connection"
	CFSubscription       = "cf/catalog_subscription" // v1.8+
	CFSecret             = "cf/catalog_secret"       // v1.10+; in V1 snapshots from v2.0
	CFSessionParams      = "cf/session_params"       // v1.10, not in a V1 snapshot
	CFUserInfo           = "cf/user_info"
	CFTableFragments     = "cf/table_fragments"
	CFWorker             = "cf/worker"
	CFHummockDelta       = "cf/hummock_1"
	CFHummockPinVersion  = "cf/hummock_2"
	CFHummockPinSnapshot = "cf/hummock_3"
	CFCompactStatus      = "cf/hummock_4"
	CFCompactTask        = "cf/hummock_5"
	CFCompactionGroup    = "cf/hummock_6"
	CFVersionStats       = "cf/hummock_7"
)

// BackupIDGeneratorKey is the default-cf key of the backup id generator
// (src/meta/src/manager/id.rs: format!("{}_id_next_generator", category)).
const BackupIDGeneratorKey = "backup_id_next_generator"

// EtcdKey encodes a (cf, key) pair as RisingWave does: cf + "/" + key.
func EtcdKey(cf string, key []byte) []byte {
	b := make([]byte, 0, len(cf)+1+len(key))
	b = append(b, cf...)
	b = append(b, '/')
	return append(b, key...)
}

// Prefix is the etcd range prefix of a column family.
func Prefix(cf string) string { return cf + "/" }

// U32Key encodes a u32 model key as prost's UInt32Value (field 1, varint);
// 0 encodes to no bytes, as prost omits default values.
func U32Key(id uint32) []byte { return U64Key(uint64(id)) }

// U64Key encodes a u64 model key as prost's UInt64Value.
func U64Key(id uint64) []byte {
	if id == 0 {
		return []byte{}
	}
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	return protowire.AppendVarint(b, id)
}

// DecodeU64Key decodes a UInt32Value/UInt64Value key, or the varint field 1
// of any message (every model keys on its field 1: id, table_id, group id);
// absent is 0, as prost omits zero.
func DecodeU64Key(b []byte) (uint64, bool) {
	var v uint64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			x, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return 0, false
			}
			v, b = x, b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return 0, false
		}
		b = b[m:]
	}
	return v, true
}

// MemcomparableU64 encodes v as RisingWave's memcomparable u64 (8 bytes,
// big-endian), the value format of default-cf id generators.
func MemcomparableU64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, v)
}
