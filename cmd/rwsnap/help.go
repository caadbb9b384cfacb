package main

import (
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
)

// Help that reads well: flags in the order they are declared (a usage such
// as "... of the last N days" continues the line above it, which
// alphabetical order breaks), grouped by category in order of first use,
// and no "(default: 0)" or "(default: false)" for flags whose zero means
// "not given".

var zeroDefault = regexp.MustCompile(` \(default: (0|0s|false)\)`)

func init() {
	stringer := cli.FlagStringer
	cli.FlagStringer = func(f cli.Flag) string { return zeroDefault.ReplaceAllString(stringer(f), "") }
	old := `{{if .VisibleFlagCategories}}

OPTIONS:{{template "visibleFlagCategoryTemplate" .}}{{else if .VisibleFlags}}

OPTIONS:{{template "visibleFlagTemplate" .}}{{end}}`
	for _, t := range []*string{&cli.CommandHelpTemplate, &cli.SubcommandHelpTemplate} {
		if !strings.Contains(*t, old) {
			panic("urfave/cli's help template changed: update help.go")
		}
		*t = strings.Replace(*t, old, `{{with readingOrder .}}

OPTIONS:{{.}}{{end}}`, 1)
	}
	printer := cli.HelpPrinterCustom
	cli.HelpPrinter = func(w io.Writer, templ string, data any) {
		printer(w, templ, data, map[string]any{"readingOrder": readingOrder})
	}
}

// readingOrder renders a command's flags by category (in order of first
// appearance, uncategorised first) in declaration order.
func readingOrder(data any) string {
	cmd, ok := data.(*cli.Command)
	if !ok {
		return ""
	}
	var order []string
	byCat := map[string][]cli.Flag{}
	for _, f := range cmd.VisibleFlags() {
		cat := ""
		if cf, ok := f.(interface{ GetCategory() string }); ok {
			cat = cf.GetCategory()
		}
		if _, seen := byCat[cat]; !seen {
			order = append(order, cat)
		}
		byCat[cat] = append(byCat[cat], f)
	}
	// Uncategorised flags (the command's own) first.
	for i, c := range order {
		if c == "" && i > 0 {
			copy(order[1:i+1], order[:i])
			order[0] = ""
		}
	}
	var b strings.Builder
	for _, cat := range order {
		b.WriteString("\n")
		if cat != "" {
			fmt.Fprintf(&b, "   %s\n\n", cat)
		}
		for _, f := range byCat[cat] {
			fmt.Fprintf(&b, "   %s\n", cli.FlagStringer(f))
		}
	}
	return strings.TrimRight(b.String(), "\n")
}
