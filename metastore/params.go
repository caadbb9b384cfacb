package metastore

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rwsnap/rwsnap/metastore/metapb"
)

// ParamType is the Rust type of a system parameter.
type ParamType string

const (
	ParamU32    ParamType = "u32"
	ParamU64    ParamType = "u64"
	ParamF64    ParamType = "f64"
	ParamBool   ParamType = "bool"
	ParamString ParamType = "string"
)

// Param describes one RisingWave v1.x system parameter
// (src/common/src/system_param/mod.rs for_all_params!, v1.7.0 = v1.10.0).
type Param struct {
	Name    string    `json:"name"`
	Type    ParamType `json:"type"`
	Default string    `json:"default"` // "" with HasDefault false: must be initialised
	// HasDefault is false for params RisingWave derives or requires at bootstrap.
	HasDefault bool   `json:"has_default"`
	Mutable    bool   `json:"mutable"`
	Doc        string `json:"doc"`
	// Since is the release line that added the parameter ("" for v1.x's
	// own); a meta store of an older line has no key for it.
	Since string `json:"since,omitempty"`
	// Secret marks a value printed only redacted (license_key).
	Secret bool `json:"-"`
}

// Params is the v1.7–v2.0.7 table, in RisingWave's declaration order; the
// last three are v2.0's (src/common/src/system_param/mod.rs v2.0.7).
var Params = []Param{
	{"barrier_interval_ms", ParamU32, "1000", true, true, "The interval of periodic barrier.", "", false},
	{"checkpoint_frequency", ParamU64, "1", true, true, "There will be a checkpoint for every n barriers.", "", false},
	{"sstable_size_mb", ParamU32, "256", true, false, "Target size of the Sstable.", "", false},
	{"parallel_compact_size_mb", ParamU32, "512", true, false, "The size of parallel task for one compact/flush job.", "", false},
	{"block_size_kb", ParamU32, "64", true, false, "Size of each block in bytes in SST.", "", false},
	{"bloom_false_positive", ParamF64, "0.001", true, false, "False positive probability of bloom filter.", "", false},
	{"state_store", ParamString, "", false, false, "URL for the state store.", "", false},
	{"data_directory", ParamString, "", false, false, "Remote directory for storing data and metadata objects.", "", false},
	{"backup_storage_url", ParamString, "", false, true, "Remote storage url for storing snapshots.", "", false},
	{"backup_storage_directory", ParamString, "", false, true, "Remote directory for storing snapshots.", "", false},
	{"max_concurrent_creating_streaming_jobs", ParamU32, "1", true, true, "Max number of concurrent creating streaming jobs.", "", false},
	{"pause_on_next_bootstrap", ParamBool, "false", true, true, "Whether to pause all data sources on next bootstrap.", "", false},
	{"enable_tracing", ParamBool, "false", true, true, "Whether to enable distributed tracing.", "", false},
	{"use_new_object_prefix_strategy", ParamBool, "", false, false, "Whether to split object prefix (set once when the cluster first starts: true for a new v2.0 cluster, false for one upgraded from v1.x).", "2.0", false},
	{"license_key", ParamString, "", true, true, "The license key to activate enterprise features.", "2.0", true},
	{"time_travel_retention_ms", ParamU64, "0", true, true, "The data retention period for time travel, where 0 indicates that it's disabled.", "2.0", false},
}

// Well-known parameter names.
const (
	ParamStateStore             = "state_store"
	ParamDataDirectory          = "data_directory"
	ParamBackupStorageURL       = "backup_storage_url"
	ParamBackupStorageDirectory = "backup_storage_directory"
)

// LookupParam finds a parameter by name.
func LookupParam(name string) (Param, bool) {
	for _, p := range Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// ValidateParam refuses what RisingWave itself refuses on
// set_system_param (src/common/src/system_param/mod.rs, the same rules in
// v1.7.0 .. v2.0.7): the value must parse as the parameter's Rust type
// (str::parse), then pass OverrideValidateOnSet (barrier_interval_ms >= 100,
// checkpoint_frequency >= 1, backup_storage_url and _directory not blank).
// URL-valued parameters must also be URLs RisingWave's object store
// builder (build_remote_object_store) accepts: the meta node panics on
// anything else when it next opens the store.
func ValidateParam(name, value string) error {
	p, ok := LookupParam(name)
	if !ok {
		return fmt.Errorf("unknown system parameter %q", name)
	}
	var err error
	switch p.Type {
	case ParamU32:
		var v uint64
		if v, err = parseRustUint(value, 32); err == nil {
			err = checkMin(name, v)
		}
	case ParamU64:
		var v uint64
		if v, err = parseRustUint(value, 64); err == nil {
			err = checkMin(name, v)
		}
	case ParamF64:
		err = parseRustFloat(value)
	case ParamBool:
		if value != "true" && value != "false" { // Rust's bool::from_str accepts exactly these
			err = fmt.Errorf("want true or false")
		}
	case ParamString:
		err = checkStringParam(value)
		if err != nil {
			break
		}
		switch name {
		case ParamBackupStorageURL:
			err = ValidateObjectStoreURL(name, value, false)
		case ParamStateStore:
			err = ValidateObjectStoreURL(name, value, true)
		case ParamBackupStorageDirectory, ParamDataDirectory:
			if strings.TrimSpace(value) == "" {
				err = fmt.Errorf("%s cannot be empty", name)
			}
		}
	}
	if err != nil && p.Secret {
		return fmt.Errorf("system parameter %s wants a %s: %w", name, p.Type, err)
	}
	if err != nil {
		return fmt.Errorf("system parameter %s wants a %s, got %q: %w", name, p.Type, value, err)
	}
	return nil
}

// checkStringParam refuses what no string parameter can be: bytes that are
// not UTF-8 (the params are protobuf strings; RisingWave's meta node would
// fail to decode them and not start), and control characters (a pasted
// escape sequence or line break is never part of a URL, a directory or a
// key).
func checkStringParam(v string) error {
	if !utf8.ValidString(v) {
		return errors.New("not valid UTF-8 (RisingWave stores parameters as protobuf strings and could not read it back)")
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("holds a control character (%U)", r)
		}
	}
	return nil
}

// minimums are OverrideValidateOnSet's expect_range lower bounds.
var minimums = map[string]uint64{
	"barrier_interval_ms":  100,
	"checkpoint_frequency": 1,
}

func checkMin(name string, v uint64) error {
	if lo, ok := minimums[name]; ok && v < lo {
		return fmt.Errorf("RisingWave refuses it: value %d out of range, expect %d.. (at least %d)", v, lo, lo)
	}
	return nil
}

// parseRustUint is u32/u64::from_str: ASCII digits with an optional
// leading '+', nothing else (no spaces, no '-', no '_').
func parseRustUint(s string, bits int) (uint64, error) {
	digits := strings.TrimPrefix(s, "+")
	if digits == "" || strings.ContainsFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, fmt.Errorf("not an unsigned integer (digits only)")
	}
	v, err := strconv.ParseUint(digits, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("out of range for u%d", bits)
	}
	return v, nil
}

// parseRustFloat is f64::from_str: decimal with optional sign, exponent,
// inf/infinity/nan; not Go's hex floats or underscores.
func parseRustFloat(s string) error {
	t := strings.TrimLeft(s, "+-")
	if strings.ContainsAny(t, "_xXpP") && !strings.EqualFold(t, "infinity") {
		return fmt.Errorf("not a decimal number")
	}
	if _, err := strconv.ParseFloat(s, 64); err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return nil // Rust gives inf or 0 there, no error
		}
		return fmt.Errorf("not a number")
	}
	return nil
}

// objectStoreSchemes are the URL forms build_remote_object_store accepts
// (src/object_store/src/object/mod.rs, v1.7.0 .. v2.0.7); "s3-compatible://"
// panics there and anything else is unimplemented!.
var objectStoreSchemes = []string{"s3://", "minio://", "fs://", "gcs://", "obs://", "oss://", "webhdfs://", "azblob://", "hdfs://"}

// ValidateObjectStoreURL checks a backup_storage_url (hummock false) or a
// state_store (hummock true: "hummock+" then an object store URL) the way
// RisingWave builds the store from it.
func ValidateObjectStoreURL(name, value string, hummock bool) error {
	if strings.TrimSpace(value) == "" {
		return fmt.Errorf("%s cannot be empty", name)
	}
	u := value
	if hummock {
		var ok bool
		if u, ok = strings.CutPrefix(value, "hummock+"); !ok {
			return fmt.Errorf("a state_store is hummock+ and an object store URL, e.g. hummock+minio://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET")
		}
	} else if rest, ok := strings.CutPrefix(value, "hummock+"); ok {
		return fmt.Errorf("hummock+ belongs to state_store only; backup_storage_url is the object store URL itself (%s)", redactMinio(rest))
	}
	if u == "memory" || u == "memory-shared" {
		return nil
	}
	if strings.HasPrefix(u, "s3-compatible://") {
		return fmt.Errorf("RisingWave does not support s3-compatible:// (it panics on it); use s3:// or minio://")
	}
	for _, sch := range objectStoreSchemes {
		rest, ok := strings.CutPrefix(u, sch)
		if !ok {
			continue
		}
		if sch == "minio://" {
			// S3ObjectStore::with_minio: split_once('@'), then ':' and '/',
			// unwrapped: a malformed one panics the meta node.
			cred, hostBucket, ok := strings.Cut(rest, "@")
			if _, _, okc := strings.Cut(cred, ":"); !ok || !okc {
				return fmt.Errorf("minio URLs are minio://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET")
			}
			hostBucket = strings.TrimPrefix(strings.TrimPrefix(hostBucket, "https://"), "http://")
			if host, bucket, ok := strings.Cut(hostBucket, "/"); !ok || host == "" || bucket == "" {
				return fmt.Errorf("minio URLs are minio://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET")
			}
		}
		if rest == "" {
			return fmt.Errorf("%s needs a bucket or path after it", sch)
		}
		return nil
	}
	return fmt.Errorf("not an object store URL RisingWave accepts: want one of %s, memory (e.g. minio://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET)", strings.Join(objectStoreSchemes, ", "))
}

// redactMinio hides a secret for the message above (metastore cannot
// import objstore).
func redactMinio(u string) string {
	if rest, ok := strings.CutPrefix(u, "minio://"); ok {
		if cred, after, ok := strings.Cut(rest, "@"); ok {
			ak, _, _ := strings.Cut(cred, ":")
			return "minio://" + ak + ":<SECRET_KEY>@" + after
		}
	}
	return u
}

// SystemParamsFromKV builds meta.SystemParams (what a snapshot stores) from
// the string map of cf/system_params. Unknown names are returned so callers
// can warn (RisingWave ignores them with a warning too).
func SystemParamsFromKV(kv map[string]string) (*metapb.SystemParams, []string, error) {
	sp := &metapb.SystemParams{}
	m := sp.ProtoReflect()
	fields := m.Descriptor().Fields()
	var unknown []string
	for name, value := range kv {
		fd := fields.ByName(protoreflect.Name(name))
		if fd == nil {
			unknown = append(unknown, name)
			continue
		}
		var v protoreflect.Value
		switch fd.Kind() {
		case protoreflect.Uint32Kind:
			x, err := strconv.ParseUint(value, 10, 32)
			if err != nil {
				return nil, nil, fmt.Errorf("system param %s=%q: %w", name, value, err)
			}
			v = protoreflect.ValueOfUint32(uint32(x))
		case protoreflect.Uint64Kind:
			x, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("system param %s=%q: %w", name, value, err)
			}
			v = protoreflect.ValueOfUint64(x)
		case protoreflect.DoubleKind:
			x, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("system param %s=%q: %w", name, value, err)
			}
			v = protoreflect.ValueOfFloat64(x)
		case protoreflect.BoolKind:
			x, err := strconv.ParseBool(value)
			if err != nil {
				return nil, nil, fmt.Errorf("system param %s=%q: %w", name, value, err)
			}
			v = protoreflect.ValueOfBool(x)
		case protoreflect.StringKind:
			v = protoreflect.ValueOfString(value)
		default:
			return nil, nil, fmt.Errorf("system param %s has unsupported kind %s", name, fd.Kind())
		}
		m.Set(fd, v)
	}
	sort.Strings(unknown)
	return sp, unknown, nil
}

// SystemParamsToKV renders meta.SystemParams as the strings RisingWave stores
// in etcd (Rust to_string(): shortest float form without exponent).
func SystemParamsToKV(sp *metapb.SystemParams) map[string]string {
	out := map[string]string{}
	sp.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		var s string
		switch fd.Kind() {
		case protoreflect.Uint32Kind, protoreflect.Uint64Kind:
			s = strconv.FormatUint(v.Uint(), 10)
		case protoreflect.DoubleKind:
			s = strconv.FormatFloat(v.Float(), 'f', -1, 64)
		case protoreflect.BoolKind:
			s = strconv.FormatBool(v.Bool())
		default:
			s = v.String()
		}
		out[string(fd.Name())] = s
		return true
	})
	return out
}

// DecodeSystemParams decodes a snapshot's meta.SystemParams bytes.
func DecodeSystemParams(b []byte) (*metapb.SystemParams, error) {
	sp := &metapb.SystemParams{}
	if err := proto.Unmarshal(b, sp); err != nil {
		return nil, fmt.Errorf("decode meta.SystemParams: %w", err)
	}
	return sp, nil
}
