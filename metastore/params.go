package metastore

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

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
}

// Params is the v1.7–v1.10 table, in RisingWave's declaration order.
var Params = []Param{
	{"barrier_interval_ms", ParamU32, "1000", true, true, "The interval of periodic barrier."},
	{"checkpoint_frequency", ParamU64, "1", true, true, "There will be a checkpoint for every n barriers."},
	{"sstable_size_mb", ParamU32, "256", true, false, "Target size of the Sstable."},
	{"parallel_compact_size_mb", ParamU32, "512", true, false, "The size of parallel task for one compact/flush job."},
	{"block_size_kb", ParamU32, "64", true, false, "Size of each block in bytes in SST."},
	{"bloom_false_positive", ParamF64, "0.001", true, false, "False positive probability of bloom filter."},
	{"state_store", ParamString, "", false, false, "URL for the state store."},
	{"data_directory", ParamString, "", false, false, "Remote directory for storing data and metadata objects."},
	{"backup_storage_url", ParamString, "", false, true, "Remote storage url for storing snapshots."},
	{"backup_storage_directory", ParamString, "", false, true, "Remote directory for storing snapshots."},
	{"max_concurrent_creating_streaming_jobs", ParamU32, "1", true, true, "Max number of concurrent creating streaming jobs."},
	{"pause_on_next_bootstrap", ParamBool, "false", true, true, "Whether to pause all data sources on next bootstrap."},
	{"enable_tracing", ParamBool, "false", true, true, "Whether to enable distributed tracing."},
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

// ValidateParam checks that value parses as the parameter's type, the way
// RisingWave's str::parse would.
func ValidateParam(name, value string) error {
	p, ok := LookupParam(name)
	if !ok {
		return fmt.Errorf("unknown system parameter %q", name)
	}
	var err error
	switch p.Type {
	case ParamU32:
		_, err = strconv.ParseUint(value, 10, 32)
	case ParamU64:
		_, err = strconv.ParseUint(value, 10, 64)
	case ParamF64:
		_, err = strconv.ParseFloat(value, 64)
	case ParamBool:
		if value != "true" && value != "false" { // Rust's bool::from_str accepts exactly these
			err = fmt.Errorf("want true or false")
		}
	case ParamString:
		if strings.TrimSpace(value) == "" && (name == ParamBackupStorageURL || name == ParamBackupStorageDirectory) {
			err = fmt.Errorf("%s cannot be empty", name)
		}
	}
	if err != nil {
		return fmt.Errorf("system parameter %s wants a %s, got %q: %w", name, p.Type, value, err)
	}
	return nil
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
