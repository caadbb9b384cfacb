package hummock

import (
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"strings"
	"time"
)

// numBucketPrefixes is NUM_BUCKET_PREFIXES in RisingWave v1.7's
// src/object_store/src/object/s3.rs.
const numBucketPrefixes = 256

// sstSuffix is OBJECT_SUFFIX (hummock_sdk/src/lib.rs).
const sstSuffix = ".data"

// SSTPath is RisingWave v1.7's SstableStore::get_sst_data_path:
// "{dataDir}/{prefix}{objectID}.data". The native S3/MinIO backend spreads
// objects over 256 prefixes, crc32fast::hash(object_id.to_be_bytes()) % 256
// (crc32fast is the IEEE/zlib CRC-32); memory, fs and OpenDAL backends use
// no prefix.
func SSTPath(dataDir string, objectID uint64, prefixed bool) string {
	var sb strings.Builder
	sb.WriteString(dataDir)
	sb.WriteByte('/')
	if prefixed {
		var be [8]byte
		binary.BigEndian.PutUint64(be[:], objectID)
		sb.WriteString(strconv.FormatUint(uint64(crc32.ChecksumIEEE(be[:])%numBucketPrefixes), 10))
		sb.WriteByte('/')
	}
	sb.WriteString(strconv.FormatUint(objectID, 10))
	sb.WriteString(sstSuffix)
	return sb.String()
}

// ParseSSTObjectID returns the object id of a key SSTPath produces: the last
// path element must be a canonical decimal u64 followed by ".data". Other
// objects under the data directory (checkpoint/0, archive/...) give ok=false.
func ParseSSTObjectID(key string) (uint64, bool) {
	name := key
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		name = key[i+1:]
	}
	digits, found := strings.CutSuffix(name, sstSuffix)
	if !found || digits == "" {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	// SSTPath never writes leading zeros, so such a name is not one of ours.
	if len(digits) > 1 && digits[0] == '0' {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	return id, true
}

// PrefixedScheme says whether RisingWave v1.x's object store for a URL
// scheme spreads SSTs over crc32 prefixes: only its native S3 backend
// (s3://, minio://) does. It is also the fixed layout of rwsnap's own data
// copies, which have no cluster parameters.
func PrefixedScheme(scheme string) bool { return scheme == "s3" || scheme == "minio" }

// ParamNewObjectPrefixStrategy is v2.0's system parameter that decides the
// layout of OpenDAL-backed hummock locations (fs:// among them).
const ParamNewObjectPrefixStrategy = "use_new_object_prefix_strategy"

// Prefixed is the SST layout of a cluster's hummock location. S3 and MinIO
// always use crc32 prefixes (v1.x's native S3 store; v2.0's S3 store and
// OpenDAL's S3/MinIO media); memory never does; fs:// and the other OpenDAL
// stores use them only from v2.0, when use_new_object_prefix_strategy is
// true: set at a v2.0 cluster's first start, false for one upgraded from
// v1.x (src/object_store/src/object/prefix.rs and opendal_object_store.rs
// get_object_prefix, v2.0.1..v2.0.7; v1.x has no such parameter).
func Prefixed(scheme string, newObjectPrefixStrategy bool) bool {
	switch scheme {
	case "s3", "minio":
		return true
	case "memory":
		return false
	}
	return newObjectPrefixStrategy
}

// RisingWave's epoch (src/common/src/util/epoch.rs): milliseconds since
// 2021-04-01T00:00:00Z shifted left by 16 bits.
const (
	epochBaseMillis = 1_617_235_200_000
	epochShift      = 16
)

// EpochTime is the wall-clock time of an epoch, UTC, ms precision.
func EpochTime(epoch uint64) time.Time {
	return time.UnixMilli(int64(epoch>>epochShift) + epochBaseMillis).UTC()
}

// TimeEpoch is the committed epoch of t; times before 2021-04-01 map to 0.
func TimeEpoch(t time.Time) uint64 {
	ms := t.UnixMilli()
	if ms < epochBaseMillis {
		return 0
	}
	return uint64(ms-epochBaseMillis) << epochShift
}
