package frontend

import (
	"fmt"
	"strconv"
	"strings"
)

// The simulator understands the few statements rwsnap, psql scripts and the
// tests send: SET, SHOW, and single-table SELECT with WHERE col op literal,
// ORDER BY and LIMIT. Anything else is a syntax error, as a real frontend
// would answer to a statement it cannot parse.

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tNumber
	tString
	tSym
)

type token struct {
	kind tokKind
	text string // identifiers lowercased unless quoted
	pos  int
}

func tokenize(sql string) ([]token, error) {
	var out []token
	i := 0
	for i < len(sql) {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case strings.HasPrefix(sql[i:], "--"):
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("unterminated comment")
			}
			i += end + 4
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(sql) {
					return nil, fmt.Errorf("unterminated quoted string")
				}
				if sql[j] == '\'' {
					if j+1 < len(sql) && sql[j+1] == '\'' {
						b.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(sql[j])
				j++
			}
			out = append(out, token{tString, b.String(), i})
			i = j + 1
		case c == '"':
			end := strings.IndexByte(sql[i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quoted identifier")
			}
			out = append(out, token{tIdent, sql[i+1 : i+1+end], i})
			i += end + 2
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9':
			j := i
			for j < len(sql) && (sql[j] >= '0' && sql[j] <= '9' || sql[j] == '.') {
				j++
			}
			out = append(out, token{tNumber, sql[i:j], i})
			i = j
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(sql) && (sql[j] == '_' || sql[j] == '$' || sql[j] >= 'a' && sql[j] <= 'z' ||
				sql[j] >= 'A' && sql[j] <= 'Z' || sql[j] >= '0' && sql[j] <= '9') {
				j++
			}
			out = append(out, token{tIdent, strings.ToLower(sql[i:j]), i})
			i = j
		default:
			for _, op := range []string{"<=", ">=", "<>", "!=", "::"} {
				if strings.HasPrefix(sql[i:], op) {
					out = append(out, token{tSym, op, i})
					i += 2
					goto next
				}
			}
			if strings.IndexByte("*,().=;<>-+", c) < 0 {
				return nil, fmt.Errorf("unexpected character %q at position %d", c, i+1)
			}
			out = append(out, token{tSym, string(c), i})
			i++
		next:
		}
	}
	return out, nil
}

// splitStatements cuts a simple-protocol query string at top-level
// semicolons, returning each statement's text and tokens.
func splitStatements(sql string) ([]string, [][]token, error) {
	toks, err := tokenize(sql)
	if err != nil {
		return nil, nil, err
	}
	var texts []string
	var groups [][]token
	start, from := 0, 0
	for i, t := range toks {
		if t.kind == tSym && t.text == ";" {
			if i > start {
				texts = append(texts, strings.TrimSpace(sql[from:t.pos]))
				groups = append(groups, toks[start:i])
			}
			start, from = i+1, t.pos+1
		}
	}
	if start < len(toks) {
		texts = append(texts, strings.TrimSpace(sql[from:]))
		groups = append(groups, toks[start:])
	}
	return texts, groups, nil
}

type statement interface{}

type setStmt struct {
	name  string
	value string // "" with isDefault
	isDef bool
}

type showStmt struct{ name string }

type itemKind int

const (
	itemStar itemKind = iota
	itemColumn
	itemCountStar
	itemCount
	itemLiteral
	itemFunc // version(), pg_sleep(n), current_setting('x')
)

type selectItem struct {
	kind  itemKind
	col   string // column, or function name
	lit   any    // literal value, or function argument
	alias string
}

type cond struct {
	col string
	op  string
	lit any
}

type orderKey struct {
	col  string // or "" with pos
	pos  int    // 1-based output position
	desc bool
}

type selectStmt struct {
	items  []selectItem
	schema string // "" when unqualified
	table  string // "" without FROM
	where  []cond
	order  []orderKey
	limit  int64 // -1: none
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return token{kind: tEOF}
}

func (p *parser) next() token {
	t := p.peek()
	if p.i < len(p.toks) {
		p.i++
	}
	return t
}

func (p *parser) isWord(w string) bool {
	t := p.peek()
	return t.kind == tIdent && t.text == w
}

func (p *parser) isSym(s string) bool {
	t := p.peek()
	return t.kind == tSym && t.text == s
}

func (p *parser) acceptWord(w string) bool {
	if p.isWord(w) {
		p.i++
		return true
	}
	return false
}

func (p *parser) acceptSym(s string) bool {
	if p.isSym(s) {
		p.i++
		return true
	}
	return false
}

func describe(t token) string {
	if t.kind == tEOF {
		return "end of input"
	}
	return strconv.Quote(t.text)
}

func (p *parser) expectSym(s string) error {
	if !p.acceptSym(s) {
		return fmt.Errorf("expected %s, found: %s", s, describe(p.peek()))
	}
	return nil
}

func (p *parser) ident() (string, error) {
	t := p.next()
	if t.kind != tIdent {
		return "", fmt.Errorf("expected an identifier, found: %s", describe(t))
	}
	return t.text, nil
}

func parseStatement(toks []token) (statement, error) {
	p := &parser{toks: toks}
	var st statement
	var err error
	switch {
	case len(toks) == 0:
		return nil, nil
	case p.acceptWord("set"):
		st, err = p.parseSet()
	case p.acceptWord("show"):
		st, err = p.parseShow()
	case p.acceptWord("select"):
		st, err = p.parseSelect()
	default:
		return nil, fmt.Errorf("statement %s is not supported by rwsim's frontend", describe(toks[0]))
	}
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tEOF {
		return nil, fmt.Errorf("unexpected %s", describe(p.peek()))
	}
	return st, nil
}

func (p *parser) parseSet() (statement, error) {
	p.acceptWord("session")
	name, err := p.ident()
	if err != nil {
		return nil, err
	}
	if !p.acceptSym("=") && !p.acceptWord("to") {
		return nil, fmt.Errorf("expected = or TO, found: %s", describe(p.peek()))
	}
	st := &setStmt{name: name}
	if p.acceptWord("default") {
		st.isDef = true
		return st, nil
	}
	// Values are kept as written (minus quotes) and parsed by the variable,
	// as RisingWave does: "SET query_epoch = abc" fails in the parser of
	// the variable, not in SQL.
	var b strings.Builder
	for p.peek().kind != tEOF {
		b.WriteString(p.next().text)
	}
	if b.Len() == 0 {
		return nil, fmt.Errorf("expected a value, found: end of input")
	}
	st.value = b.String()
	return st, nil
}

func (p *parser) parseShow() (statement, error) {
	var words []string
	for p.peek().kind == tIdent {
		words = append(words, p.next().text)
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("expected a variable name, found: %s", describe(p.peek()))
	}
	return &showStmt{name: strings.Join(words, " ")}, nil
}

func (p *parser) literal() (any, bool, error) {
	neg := false
	if p.isSym("-") {
		p.i++
		neg = true
	}
	t := p.peek()
	switch {
	case t.kind == tNumber:
		p.i++
		s := t.text
		if neg {
			s = "-" + s
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, true, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, true, fmt.Errorf("invalid number %q", s)
		}
		return f, true, nil
	case neg:
		return nil, true, fmt.Errorf("expected a number after -, found: %s", describe(t))
	case t.kind == tString:
		p.i++
		return t.text, true, nil
	case t.kind == tIdent && (t.text == "true" || t.text == "false"):
		p.i++
		return t.text == "true", true, nil
	case t.kind == tIdent && t.text == "null":
		p.i++
		return nil, true, nil
	}
	return nil, false, nil
}

func (p *parser) parseItem() (selectItem, error) {
	if p.acceptSym("*") {
		return selectItem{kind: itemStar}, nil
	}
	if lit, ok, err := p.literal(); err != nil {
		return selectItem{}, err
	} else if ok {
		return selectItem{kind: itemLiteral, lit: lit}, nil
	}
	name, err := p.ident()
	if err != nil {
		return selectItem{}, err
	}
	if p.acceptSym("(") {
		switch name {
		case "count":
			if p.acceptSym("*") {
				return selectItem{kind: itemCountStar, col: "count"}, p.expectSym(")")
			}
			col, err := p.ident()
			if err != nil {
				return selectItem{}, err
			}
			return selectItem{kind: itemCount, col: col}, p.expectSym(")")
		case "version", "pg_sleep", "current_setting":
			it := selectItem{kind: itemFunc, col: name}
			if !p.isSym(")") {
				lit, ok, err := p.literal()
				if err != nil {
					return it, err
				}
				if !ok {
					return it, fmt.Errorf("function %s takes a literal argument", name)
				}
				it.lit = lit
			}
			return it, p.expectSym(")")
		}
		return selectItem{}, fmt.Errorf("function %s does not exist in rwsim", name)
	}
	if p.acceptSym(".") { // table-qualified column
		if name, err = p.ident(); err != nil {
			return selectItem{}, err
		}
	}
	return selectItem{kind: itemColumn, col: name}, nil
}

var reserved = map[string]bool{"from": true, "where": true, "order": true, "limit": true, "as": true}

func (p *parser) parseSelect() (statement, error) {
	st := &selectStmt{limit: -1}
	for {
		it, err := p.parseItem()
		if err != nil {
			return nil, err
		}
		if p.acceptWord("as") {
			if it.alias, err = p.ident(); err != nil {
				return nil, err
			}
		} else if t := p.peek(); t.kind == tIdent && !reserved[t.text] {
			it.alias = p.next().text
		}
		st.items = append(st.items, it)
		if !p.acceptSym(",") {
			break
		}
	}
	if p.acceptWord("from") {
		name, err := p.ident()
		if err != nil {
			return nil, err
		}
		if p.acceptSym(".") {
			st.schema = name
			if name, err = p.ident(); err != nil {
				return nil, err
			}
		}
		st.table = name
		if t := p.peek(); t.kind == tIdent && !reserved[t.text] { // table alias
			p.i++
		} else if p.acceptWord("as") {
			if _, err := p.ident(); err != nil {
				return nil, err
			}
		}
	}
	if p.acceptWord("where") {
		for {
			col, err := p.ident()
			if err != nil {
				return nil, err
			}
			if p.acceptSym(".") {
				if col, err = p.ident(); err != nil {
					return nil, err
				}
			}
			op := p.next()
			if op.kind != tSym || !strings.Contains(" = <> != < > <= >= ", " "+op.text+" ") {
				return nil, fmt.Errorf("expected a comparison operator, found: %s", describe(op))
			}
			lit, ok, err := p.literal()
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, fmt.Errorf("expected a literal, found: %s", describe(p.peek()))
			}
			st.where = append(st.where, cond{col: col, op: op.text, lit: lit})
			if !p.acceptWord("and") {
				break
			}
		}
	}
	if p.acceptWord("order") {
		if !p.acceptWord("by") {
			return nil, fmt.Errorf("expected BY, found: %s", describe(p.peek()))
		}
		for {
			var k orderKey
			if t := p.peek(); t.kind == tNumber {
				p.i++
				n, err := strconv.Atoi(t.text)
				if err != nil || n < 1 {
					return nil, fmt.Errorf("invalid ORDER BY position %s", t.text)
				}
				k.pos = n
			} else {
				col, err := p.ident()
				if err != nil {
					return nil, err
				}
				k.col = col
			}
			if p.acceptWord("desc") {
				k.desc = true
			} else {
				p.acceptWord("asc")
			}
			st.order = append(st.order, k)
			if !p.acceptSym(",") {
				break
			}
		}
	}
	if p.acceptWord("limit") {
		t := p.next()
		n, err := strconv.ParseInt(t.text, 10, 64)
		if t.kind != tNumber || err != nil || n < 0 {
			return nil, fmt.Errorf("expected a row count after LIMIT, found: %s", describe(t))
		}
		st.limit = n
	}
	return st, nil
}
