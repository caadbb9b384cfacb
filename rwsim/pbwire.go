package rwsim

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// msg hand-encodes a protobuf message with RisingWave's field numbers. rwsnap
// copies catalog, user and fragment values verbatim and never decodes them,
// so rwsim needs the wire format right, not RisingWave's generated types.
// Like prost, scalar proto3 fields equal to their default are omitted;
// `optional` fields use the *Opt variants, which always emit.
type msg []byte

func (m msg) uint(field protowire.Number, v uint64) msg {
	if v == 0 {
		return m
	}
	return m.uintOpt(field, v)
}

func (m msg) uintOpt(field protowire.Number, v uint64) msg {
	b := protowire.AppendTag(m, field, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func (m msg) int(field protowire.Number, v int64) msg { return m.uint(field, uint64(v)) }

func (m msg) boolean(field protowire.Number, v bool) msg {
	if !v {
		return m
	}
	return m.uint(field, 1)
}

func (m msg) str(field protowire.Number, s string) msg {
	if s == "" {
		return m
	}
	return m.strOpt(field, s)
}

func (m msg) strOpt(field protowire.Number, s string) msg {
	b := protowire.AppendTag(m, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func (m msg) bytes(field protowire.Number, v []byte) msg {
	if len(v) == 0 {
		return m
	}
	b := protowire.AppendTag(m, field, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// sub embeds a message; an empty sub-message is still emitted, as prost does
// for a present Option<Message>.
func (m msg) sub(field protowire.Number, s msg) msg {
	b := protowire.AppendTag(m, field, protowire.BytesType)
	return protowire.AppendBytes(b, s)
}

// packed encodes a repeated scalar field the proto3 way (packed).
func (m msg) packed(field protowire.Number, vs ...uint64) msg {
	if len(vs) == 0 {
		return m
	}
	var p []byte
	for _, v := range vs {
		p = protowire.AppendVarint(p, v)
	}
	b := protowire.AppendTag(m, field, protowire.BytesType)
	return protowire.AppendBytes(b, p)
}

// mapEntry encodes one map<K, V> entry with a varint key and message value.
func (m msg) mapEntry(field protowire.Number, key uint64, val msg) msg {
	e := msg(nil).uintOpt(1, key).sub(2, val)
	return m.sub(field, e)
}

// mapStr encodes one map<string, string> entry.
func (m msg) mapStr(field protowire.Number, key, val string) msg {
	e := msg(nil).strOpt(1, key).strOpt(2, val)
	return m.sub(field, e)
}
