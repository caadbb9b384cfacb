package catalog

import (
	"math"
	"regexp"
	"sort"
	"strings"

	"github.com/rwsnap/rwsnap/objstore"
)

// Redacted replaces a credential wherever rwsnap shows one.
const Redacted = "[REDACTED]"

// secretWords are name fragments of connector properties that hold
// credentials (kafka properties.sasl.*, s3.credentials.*, aws.credentials.*,
// *.password, jdbc passwords, tokens, private keys, ...).
var secretWords = []string{"password", "passwd", "pwd", "secret", "token", "credential", "sasl", "apikey",
	"api_key", "passphrase", "jaas", "access_key", "accesskey", "signature", "auth"}

// notSecret are property names that contain a secret word but name a
// layout, not a credential; redacting them would break the DDL.
var notSecret = map[string]bool{
	"primary_key": true, "key.message": true, "key.encode": true, "key_message_name": true,
	"message": true, "schema.registry.name.strategy": true,
}

// IsSecretName says whether a property of this name holds a credential:
// its name contains a secret word, or one of its dot/underscore-separated
// parts is or ends with "key".
func IsSecretName(name string) bool {
	n := strings.ToLower(strings.Trim(name, `"' `))
	if notSecret[n] {
		return false
	}
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	for _, part := range strings.FieldsFunc(n, func(r rune) bool { return r == '.' || r == '_' || r == '-' }) {
		if strings.HasSuffix(part, "key") {
			return true
		}
	}
	return false
}

var (
	awsKeyID   = regexp.MustCompile(`^(AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}$`)
	resourceID = regexp.MustCompile(`^[a-z]{2,}-[0-9a-f]{8,}$`) // vpce-0fedcba9876543210, sg-..., subnet-...
	jwt        = regexp.MustCompile(`^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$`)
	urlUser    = regexp.MustCompile(`://[^/@\s:]+:[^/@\s]+@`)
	kvPassword = regexp.MustCompile(`(?i)(password|passwd|pwd|secret|token)=`)
)

// LooksLikeCredential says whether a value is a credential whatever its
// property is called: a PEM block, an AWS key id, a JWT, a URL or
// connection string with a password, or a long random token.
func LooksLikeCredential(v string) bool {
	s := strings.TrimSpace(v)
	switch {
	case s == "":
		return false
	case strings.Contains(s, "-----BEGIN"), awsKeyID.MatchString(s), jwt.MatchString(s),
		urlUser.MatchString(s), kvPassword.MatchString(s):
		return true
	}
	return randomToken(s)
}

// randomToken: 24+ characters without spaces or dots, of three character
// classes or long hex, with the entropy of random bytes rather than words.
func randomToken(s string) bool {
	if len(s) < 24 || strings.ContainsAny(s, " \t\n.:,") || resourceID.MatchString(s) {
		return false
	}
	var upper, lower, digit, sym, hex bool
	hexOnly := true
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= '0' && r <= '9':
			digit = true
		case strings.ContainsRune("+/=_-", r):
			sym = true
		default:
			return false
		}
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			hexOnly = false
		}
	}
	hex = hexOnly && len(s) >= 32
	classes := 0
	for _, b := range []bool{upper, lower, digit, sym} {
		if b {
			classes++
		}
	}
	return (classes >= 3 || hex) && entropy(s) >= 3.5
}

func entropy(s string) float64 {
	counts := map[rune]int{}
	for _, r := range s {
		counts[r]++
	}
	var h float64
	n := float64(len(s))
	for _, c := range counts {
		p := float64(c) / n
		h -= p * math.Log2(p)
	}
	return h
}

// IsSecret says whether a property must be redacted.
func IsSecret(name, value string) bool { return IsSecretName(name) || LooksLikeCredential(value) }

// RedactProperties returns the properties with every credential replaced
// by Redacted, and the names it replaced, sorted. Other values still go
// through objstore.RedactText (credentials inside URLs).
func RedactProperties(props map[string]string) (map[string]string, []string) {
	if len(props) == 0 {
		return map[string]string{}, nil
	}
	out := make(map[string]string, len(props))
	var names []string
	for k, v := range props {
		if IsSecret(k, v) {
			out[k] = Redacted
			names = append(names, k)
			continue
		}
		out[k] = objstore.RedactText(v)
	}
	sort.Strings(names)
	return out, names
}

// RedactSQL replaces, in a stored SQL definition, the string literal of
// every `name = 'value'` option whose name or value is a credential (WITH
// (...), FORMAT ... ENCODE ... (...)) by replace(name), and returns the
// names it replaced. Everything else is kept byte for byte.
func RedactSQL(def string, replace func(name string) string) (string, []string) {
	var b strings.Builder
	var names []string
	i := 0
	for i < len(def) {
		c := def[i]
		switch {
		case c == '\'' || (c == 'E' || c == 'e') && i+1 < len(def) && def[i+1] == '\'' && !identChar(prevByte(def, i)):
			// A literal not after `name =`: copied as is, unless it is a
			// credential by its value alone.
			start := i
			esc := c != '\''
			if esc {
				i++
			}
			end, val := scanLiteral(def, i, esc)
			if LooksLikeCredential(val) {
				b.WriteString(replace(""))
				names = append(names, "")
			} else {
				b.WriteString(def[start:end])
			}
			i = end
		case c == '"' || identStart(c):
			start := i
			end := scanName(def, i)
			name := def[start:end]
			// name [ws] = [ws] [E]'literal'
			j := skipSpace(def, end)
			if j < len(def) && def[j] == '=' {
				k := skipSpace(def, j+1)
				lit := k
				esc := false
				if k+1 < len(def) && (def[k] == 'E' || def[k] == 'e') && def[k+1] == '\'' {
					k, esc = k+1, true
				}
				if k < len(def) && def[k] == '\'' {
					lend, val := scanLiteral(def, k, esc)
					bare := strings.Trim(name, `"`)
					if IsSecret(bare, val) {
						b.WriteString(def[start:lit])
						b.WriteString(replace(bare))
						names = append(names, bare)
					} else {
						b.WriteString(def[start:lend])
					}
					i = lend
					continue
				}
			}
			b.WriteString(name)
			i = end
		case c == '-' && i+1 < len(def) && def[i+1] == '-':
			// A comment runs to the end of the line.
			end := strings.IndexByte(def[i:], '\n')
			if end < 0 {
				end = len(def) - i
			}
			b.WriteString(def[i : i+end])
			i += end
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), names
}

func prevByte(s string, i int) byte {
	if i == 0 {
		return ' '
	}
	return s[i-1]
}

func identStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func identChar(c byte) bool { return identStart(c) || c >= '0' && c <= '9' || c == '$' }

// scanName reads a possibly dotted, possibly double-quoted option name
// (properties.sasl.password, "s3.credentials.secret").
func scanName(s string, i int) int {
	for i < len(s) {
		if s[i] == '"' {
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				return len(s)
			}
			i += end + 2
		} else if identChar(s[i]) {
			for i < len(s) && identChar(s[i]) {
				i++
			}
		} else {
			return i
		}
		if i < len(s) && s[i] == '.' && i+1 < len(s) && (identStart(s[i+1]) || s[i+1] == '"') {
			i++
			continue
		}
		return i
	}
	return i
}

// scanLiteral reads a quoted literal at s[i] (a doubled quote is a quote; with esc, an
// E'...' literal, \ escapes the next byte); it returns the end offset and
// the value.
func scanLiteral(s string, i int, esc bool) (int, string) {
	var v strings.Builder
	j := i + 1
	for j < len(s) {
		if s[j] == '\'' {
			if j+1 < len(s) && s[j+1] == '\'' {
				v.WriteByte('\'')
				j += 2
				continue
			}
			return j + 1, v.String()
		}
		if esc && s[j] == '\\' && j+1 < len(s) {
			// E'' escapes: keep both bytes in the value, and never end on \'.
			v.WriteByte(s[j])
			v.WriteByte(s[j+1])
			j += 2
			continue
		}
		v.WriteByte(s[j])
		j++
	}
	return len(s), v.String()
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}
