// Package output is rwsnap's one printer: every command returns a typed
// result, and Print renders it as a table for people or as JSON for
// scripts, so JSON shapes cannot drift between commands.
//
// Conventions every result follows (docs/json.md, docs/schema/*.json):
//   - snake_case field names, the same name for the same thing: "id" for a
//     snapshot's own id, "snapshot_id" when a result refers to one,
//     "path" (meta or direct) and "via" (the meta node's address or the
//     storage) for how a command reached the backup location;
//   - every epoch field "X_epoch" has a "X_time" beside it, RFC 3339 in UTC
//     (Time, EpochTime); durations are "duration_seconds";
//   - lists are [] when empty, never null (Print makes sure of it).
package output

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rwsnap/rwsnap/hummock"
)

// Format is how a result is printed.
type Format string

const (
	Table Format = "table"
	JSON  Format = "json"
)

// Parse checks an --output value. extra lists further formats a command
// accepts (timetravel query also prints csv).
func Parse(s string, extra ...Format) (Format, error) {
	allowed := append([]Format{Table, JSON}, extra...)
	for _, f := range allowed {
		if Format(s) == f {
			return f, nil
		}
	}
	want := ""
	for i, f := range allowed {
		switch {
		case i == 0:
		case i == len(allowed)-1:
			want += " or "
		default:
			want += ", "
		}
		want += string(f)
	}
	return "", fmt.Errorf("--output %q: want %s", s, want)
}

// Result is a command's typed result.
type Result interface {
	// WriteTable prints the result for people.
	WriteTable(w io.Writer) error
}

// Print renders r in format f.
func Print(w io.Writer, f Format, r Result) error {
	if f == JSON {
		return WriteJSON(w, r)
	}
	return r.WriteTable(w)
}

// WriteJSON writes v as indented JSON, with nil slices as [].
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(nonNil(reflect.ValueOf(v)).Interface())
}

// nonNil returns v with every nil slice reachable through exported struct
// fields, pointers, slices and maps replaced by an empty one. It copies
// what it changes, so the caller's value is left alone.
func nonNil(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		elem := nonNil(v.Elem())
		p := reflect.New(elem.Type())
		p.Elem().Set(elem)
		return p
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		inner := nonNil(v.Elem())
		out := reflect.New(v.Type()).Elem()
		out.Set(inner)
		return out
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			return v
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		for i := 0; i < v.NumField(); i++ {
			if !v.Type().Field(i).IsExported() {
				continue
			}
			out.Field(i).Set(nonNil(v.Field(i)))
		}
		return out
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 { // []byte is base64 text
			return v
		}
		if v.IsNil() {
			return reflect.MakeSlice(v.Type(), 0, 0)
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(nonNil(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() || v.Type().Implements(marshalerType) {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		it := v.MapRange()
		for it.Next() {
			out.SetMapIndex(it.Key(), nonNil(it.Value()))
		}
		return out
	}
	return v
}

var marshalerType = reflect.TypeOf((*json.Marshaler)(nil)).Elem()

// Time formats t as RFC 3339 in UTC, with milliseconds when it has them.
func Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.999Z07:00")
}

// EpochTime is the wall-clock time of a RisingWave epoch, as Time formats
// it; epoch 0 (none) gives "".
func EpochTime(epoch uint64) string {
	if epoch == 0 {
		return ""
	}
	return Time(hummock.EpochTime(epoch))
}

// Seconds is a duration in seconds, rounded to milliseconds.
func Seconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}

// Escape makes a stored string (remarks, parameter values, names read from
// a snapshot) safe to print on a terminal: control characters (C0, DEL,
// C1, which can move the cursor, clear the screen or forge lines) and
// invalid UTF-8 are written as Go escapes (\n, \x1b, \u009b, \xff); every
// other character, backslash included, is kept as is. JSON output needs
// none of this: encoding/json escapes what JSON must.
func Escape(s string) string {
	clean := true
	for i, r := range s {
		if isControl(r) || (r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD")) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && isControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case isControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// EscapeLines is Escape for multi-line text (an error message): newlines
// stay, every other control character is escaped.
func EscapeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Escape(l)
	}
	return strings.Join(lines, "\n")
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }
