package timetravel

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// PostgreSQL type OIDs the renderers treat specially.
const (
	oidBool    = 16
	oidInt8    = 20
	oidInt2    = 21
	oidInt4    = 23
	oidOID     = 26
	oidJSON    = 114
	oidFloat4  = 700
	oidFloat8  = 701
	oidNumeric = 1700
	oidJSONB   = 3802
)

func isNumeric(oid uint32) bool {
	switch oid {
	case oidInt2, oidInt4, oidInt8, oidOID, oidFloat4, oidFloat8, oidNumeric:
		return true
	}
	return false
}

// RenderTable prints res as psql's aligned format: numbers right-aligned,
// NULL empty, then "(n rows)".
func RenderTable(w io.Writer, res *Result) error {
	bw := bufio.NewWriter(w)
	if len(res.Columns) == 0 {
		fmt.Fprintln(bw, res.Tag)
		return bw.Flush()
	}
	cell := func(v *string) string {
		if v == nil {
			return ""
		}
		// One row per line: newlines and tabs would break the grid.
		return strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(*v)
	}
	widths := make([]int, len(res.Columns))
	for i, c := range res.Columns {
		widths[i] = utf8.RuneCountInString(c.Name)
	}
	for _, row := range res.Rows {
		for i, v := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell(v)))
		}
	}
	pad := func(s string, n int, right bool) string {
		fill := strings.Repeat(" ", n-utf8.RuneCountInString(s))
		if right {
			return fill + s
		}
		return s + fill
	}
	for i, c := range res.Columns {
		if i > 0 {
			bw.WriteString("|")
		}
		// psql centres headers.
		n := widths[i] - utf8.RuneCountInString(c.Name)
		bw.WriteString(" " + strings.Repeat(" ", n/2) + c.Name + strings.Repeat(" ", n-n/2) + " ")
	}
	bw.WriteString("\n")
	for i := range res.Columns {
		if i > 0 {
			bw.WriteString("+")
		}
		bw.WriteString(strings.Repeat("-", widths[i]+2))
	}
	bw.WriteString("\n")
	for _, row := range res.Rows {
		for i, v := range row {
			if i > 0 {
				bw.WriteString("|")
			}
			right := isNumeric(res.Columns[i].TypeOID)
			if i == len(row)-1 { // psql pads no trailing spaces after the last value
				if right {
					bw.WriteString(" " + pad(cell(v), widths[i], true))
				} else {
					bw.WriteString(" " + cell(v))
				}
				continue
			}
			bw.WriteString(" " + pad(cell(v), widths[i], right) + " ")
		}
		bw.WriteString("\n")
	}
	if len(res.Rows) == 1 {
		bw.WriteString("(1 row)\n")
	} else {
		fmt.Fprintf(bw, "(%d rows)\n", len(res.Rows))
	}
	return bw.Flush()
}

// RenderCSV prints a header line and one record per row; NULL is empty.
func RenderCSV(w io.Writer, res *Result) error {
	cw := csv.NewWriter(w)
	header := make([]string, len(res.Columns))
	for i, c := range res.Columns {
		header[i] = c.Name
	}
	if err := cw.Write(header); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	for _, row := range res.Rows {
		rec := make([]string, len(row))
		for i, v := range row {
			if v != nil {
				rec[i] = *v
			}
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// RenderJSON prints an array of objects, keys in column order; numbers,
// booleans and json columns keep their JSON types, everything else is a
// string, NULL is null.
func RenderJSON(w io.Writer, res *Result) error {
	var b strings.Builder
	b.WriteString("[")
	for r, row := range res.Rows {
		if r > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n  {")
		for i, v := range row {
			if i > 0 {
				b.WriteString(", ")
			}
			k, _ := json.Marshal(res.Columns[i].Name)
			b.Write(k)
			b.WriteString(": ")
			b.WriteString(jsonValue(v, res.Columns[i].TypeOID))
		}
		b.WriteString("}")
	}
	if len(res.Rows) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func jsonValue(v *string, oid uint32) string {
	if v == nil {
		return "null"
	}
	s := *v
	switch {
	case oid == oidBool:
		if s == "t" || s == "true" {
			return "true"
		}
		if s == "f" || s == "false" {
			return "false"
		}
	case isNumeric(oid):
		// NaN and Infinity are not JSON numbers; they stay strings.
		if _, err := strconv.ParseFloat(s, 64); err == nil && json.Valid([]byte(s)) {
			return s
		}
	case oid == oidJSON || oid == oidJSONB:
		if json.Valid([]byte(s)) {
			return s
		}
	}
	q, _ := json.Marshal(s)
	return string(q)
}

// Render picks a renderer by name: table, csv or json.
func Render(w io.Writer, res *Result, format string) error {
	switch format {
	case "table", "":
		return RenderTable(w, res)
	case "csv":
		return RenderCSV(w, res)
	case "json":
		return RenderJSON(w, res)
	}
	return fmt.Errorf("output format %q: want table, csv or json", format)
}
