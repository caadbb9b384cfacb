package catalog

import (
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/metasnap"
)

// FuzzRedactSQL: any definition is handled without a panic, text outside
// replaced literals is kept, and a planted password never survives.
func FuzzRedactSQL(f *testing.F) {
	for _, s := range []string{
		"CREATE SOURCE s WITH (connector='kafka', properties.sasl.password='x') FORMAT PLAIN ENCODE JSON",
		"x = E'a\\'b'", "'unterminated", `"q"."r" = 'v'`, "-- c\n a = 'b'", "",
	} {
		f.Add(s, "hunter2-Secret")
	}
	f.Fuzz(func(t *testing.T, def, secret string) {
		out, _ := RedactSQL(def, func(string) string { return "<R>" })
		if !strings.Contains(def, "'") && out != def {
			t.Fatalf("a definition without literals changed: %q -> %q", def, out)
		}
		if strings.ContainsAny(secret, "'\"\\\n") || secret == "" {
			return
		}
		planted := def + " WITH (password = '" + secret + "')"
		if strings.Count(planted, "'")%2 != 0 || strings.Count(def, `"`)%2 != 0 || strings.Contains(def, "--") || strings.Contains(def, "E'") || strings.Contains(def, "e'") {
			return // the prefix left a literal or comment open: the rest is inside it
		}
		red, _ := RedactSQL(planted, func(string) string { return "<R>" })
		if strings.HasSuffix(red, "'"+secret+"')") {
			t.Fatalf("password kept: %q", red)
		}
	})
}

// FuzzDecode: arbitrary catalog messages never panic, and each is decoded
// or reported.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x08, 0xe9, 0x07, 0x22, 0x01, 'x'})
	f.Add([]byte{0x22, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		md := &metasnap.ClusterMetadata{Tables: [][]byte{b}, Sources: [][]byte{b}, Sinks: [][]byte{b}, Views: [][]byte{b},
			Indexes: [][]byte{b}, Functions: [][]byte{b}, Connections: [][]byte{b}, Subscriptions: [][]byte{b}, Secrets: [][]byte{b},
			UserInfo: [][]byte{b}, Databases: [][]byte{b}, Schemas: [][]byte{b}}
		c := Decode(md)
		// Every list got the same bytes: each message type either decodes
		// them or reports a problem naming the key, never neither.
		if got := len(c.Problems) + len(c.Databases) + len(c.Schemas) + len(c.Relations) + len(c.Users); got < 12 {
			t.Fatalf("%d of 12 messages neither decoded nor reported", 12-got)
		}
		for _, p := range c.Problems {
			if !strings.HasPrefix(p.Key, "cf/") {
				t.Fatalf("problem without a key: %+v", p)
			}
		}
	})
}
