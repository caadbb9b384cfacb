package frontend

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Type is a column type the simulator can store and send.
type Type int

// Column types, each with PostgreSQL's OID as RisingWave reports it.
const (
	Int8 Type = iota
	Int4
	Varchar
	Bool
	Float8
	Timestamp
	Jsonb
)

func (t Type) oid() uint32 {
	return [...]uint32{Int8: 20, Int4: 23, Varchar: 1043, Bool: 16, Float8: 701, Timestamp: 1114, Jsonb: 3802}[t]
}

func (t Type) size() int16 {
	return [...]int16{Int8: 8, Int4: 4, Varchar: -1, Bool: 1, Float8: 8, Timestamp: 8, Jsonb: -1}[t]
}

func (t Type) String() string {
	return [...]string{Int8: "bigint", Int4: "integer", Varchar: "character varying", Bool: "boolean",
		Float8: "double precision", Timestamp: "timestamp without time zone", Jsonb: "jsonb"}[t]
}

// Column defines a demo table column.
type Column struct {
	Name string
	Type Type
}

// coerce converts a Go value given by a test to the column's stored form:
// int64, string, bool, float64 or time.Time; nil is NULL.
func coerce(t Type, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch t {
	case Int8, Int4:
		switch x := v.(type) {
		case int:
			return int64(x), nil
		case int32:
			return int64(x), nil
		case int64:
			return x, nil
		case uint32:
			return int64(x), nil
		case uint64:
			return int64(x), nil
		}
	case Varchar, Jsonb:
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		}
	case Bool:
		if x, ok := v.(bool); ok {
			return x, nil
		}
	case Float8:
		switch x := v.(type) {
		case float64:
			return x, nil
		case int:
			return float64(x), nil
		}
	case Timestamp:
		if x, ok := v.(time.Time); ok {
			return x.UTC(), nil
		}
	}
	return nil, fmt.Errorf("value %v (%T) does not fit a %s column", v, v, t)
}

// encodeText renders a value as RisingWave's text output does.
func encodeText(t Type, v any) []byte {
	switch x := v.(type) {
	case nil:
		return nil
	case int64:
		return strconv.AppendInt(nil, x, 10)
	case bool:
		if x {
			return []byte("t")
		}
		return []byte("f")
	case float64:
		return strconv.AppendFloat(nil, x, 'g', -1, 64)
	case time.Time:
		return []byte(x.Format("2006-01-02 15:04:05.999999"))
	case string:
		return []byte(x)
	}
	return []byte(fmt.Sprint(v))
}

// pgEpoch is PostgreSQL's timestamp origin for binary encoding.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// encodeBinary renders a value in PostgreSQL's binary format, for clients
// (pgx) that ask for it.
func encodeBinary(t Type, v any) []byte {
	if v == nil {
		return nil
	}
	switch t {
	case Int8:
		return binary.BigEndian.AppendUint64(nil, uint64(v.(int64)))
	case Int4:
		return binary.BigEndian.AppendUint32(nil, uint32(int32(v.(int64))))
	case Bool:
		if v.(bool) {
			return []byte{1}
		}
		return []byte{0}
	case Float8:
		return binary.BigEndian.AppendUint64(nil, math.Float64bits(v.(float64)))
	case Timestamp:
		return binary.BigEndian.AppendUint64(nil, uint64(v.(time.Time).Sub(pgEpoch).Microseconds()))
	case Jsonb:
		return append([]byte{1}, v.(string)...)
	}
	return encodeText(t, v)
}

// compare orders two stored values of one column; NULL sorts last, as in
// PostgreSQL's ascending order.
func compare(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	switch x := a.(type) {
	case int64:
		switch y := b.(type) {
		case int64:
			return cmp3(x < y, x > y)
		case float64:
			return cmp3(float64(x) < y, float64(x) > y)
		}
	case float64:
		switch y := b.(type) {
		case float64:
			return cmp3(x < y, x > y)
		case int64:
			return cmp3(x < float64(y), x > float64(y))
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok {
			return cmp3(!x && y, x && !y)
		}
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y)
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

func cmp3(less, greater bool) int {
	switch {
	case less:
		return -1
	case greater:
		return 1
	}
	return 0
}
