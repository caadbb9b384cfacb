package report

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	"github.com/rwsnap/rwsnap/internal/progress"
)

// CSP forbids every load from anywhere (only the page's own inline
// styles and data: URLs run), so the page renders the same offline.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

// Chart geometry (SVG user units).
const (
	chartW   = 960
	labelW   = 70
	rowH     = 16
	lineH    = 140
	plotPadR = 20
)

type axisTick struct {
	X      float64
	Label  string
	Anchor string // text-anchor
}

type timelineRow struct {
	Y, X1, X2, XSnap float64
	ID               uint64
	OpenStart        bool // the window reaches back to the cluster's start
	Class            string
	Title            string
}

type point struct{ X, Y float64 }

type lineChart struct {
	Title  string
	Points []point
	Path   string
	YTicks []axisTick // X holds the y coordinate
	Unit   string
}

type row struct {
	Snapshot
	Window, Size, TimeText, Protection, Retention, Integrity string
	Healthy                                                  bool
}

type view struct {
	*Report
	CSP           string
	Rows          []row
	Ticks         []axisTick
	Timeline      []timelineRow
	TimelineH     float64
	ChartW        int
	LabelW        int
	PlotRight     float64
	Size, SSTs    lineChart
	TotalBytes    string
	Newest        string
	Kept, Pruned  int
	OrphanRows    []orphanRow
	GeneratedText string
}

type orphanRow struct {
	Orphan
	Size string
}

// WriteHTML renders the page.
func (r *Report) WriteHTML(w io.Writer) error {
	v := r.view()
	var b bytes.Buffer
	if err := page.Execute(&b, v); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// HTML renders the page into memory.
func (r *Report) HTML() ([]byte, error) {
	var b bytes.Buffer
	err := r.WriteHTML(&b)
	return b.Bytes(), err
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

func (r *Report) view() *view {
	v := &view{Report: r, CSP: CSP, ChartW: chartW, LabelW: labelW, PlotRight: chartW - plotPadR,
		GeneratedText: r.GeneratedAt.Format("2006-01-02 15:04:05 UTC")}
	var total int64
	for _, s := range r.Snapshots {
		total += s.Bytes
		rw := row{Snapshot: s, Size: progress.Bytes(s.Bytes), TimeText: ts(s.Time), Protection: s.Protection(r), Healthy: s.Healthy(r)}
		if s.WindowFrom.IsZero() {
			rw.Window = "up to " + ts(s.WindowTo) + " (from the start)"
		} else {
			rw.Window = ts(s.WindowFrom) + " .. " + ts(s.WindowTo)
		}
		switch {
		case !s.RetentionApplies:
			rw.Retention = "-"
		case s.Keep:
			rw.Retention = "keep (" + strings.Join(s.KeepReasons, ", ") + ")"
			v.Kept++
		default:
			rw.Retention = "would be pruned"
			v.Pruned++
		}
		rw.Integrity = "verified"
		if !s.Verified {
			rw.Integrity = "FAILED: " + strings.Join(s.VerifyProblems, "; ")
		}
		v.Rows = append(v.Rows, rw)
	}
	v.TotalBytes = progress.Bytes(total)
	if n := len(r.Snapshots); n > 0 {
		v.Newest = ts(r.Snapshots[n-1].Time) + " UTC (" + ago(r.GeneratedAt.Sub(r.Snapshots[n-1].Time)) + " ago)"
	}
	for _, o := range r.Orphans {
		v.OrphanRows = append(v.OrphanRows, orphanRow{o, progress.Bytes(o.Bytes)})
	}
	v.timeline()
	return v
}

func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	default:
		return fmt.Sprintf("%.1f days", d.Hours()/24)
	}
}

// timeline lays out the time axis: one row per snapshot, a bar over the
// time-travel window it serves, a mark at its time; and the two line
// charts over the same axis.
func (v *view) timeline() {
	ss := v.Snapshots
	if len(ss) == 0 {
		return
	}
	lo, hi := ss[0].Time, ss[0].Time
	for _, s := range ss {
		if !s.WindowFrom.IsZero() && s.WindowFrom.Before(lo) {
			lo = s.WindowFrom
		}
		if s.Time.Before(lo) {
			lo = s.Time
		}
		if s.Time.After(hi) {
			hi = s.Time
		}
	}
	span := hi.Sub(lo)
	if span <= 0 {
		span = time.Minute
	}
	// A margin of 4% on each side.
	lo, hi = lo.Add(-span/25), hi.Add(span/25)
	span = hi.Sub(lo)
	x := func(t time.Time) float64 {
		return labelW + float64(t.Sub(lo))/float64(span)*(chartW-plotPadR-labelW)
	}
	for i := range 6 {
		t := lo.Add(time.Duration(float64(span) * float64(i) / 5))
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 5:
			anchor = "end"
		}
		v.Ticks = append(v.Ticks, axisTick{X: x(t), Label: tickLabel(t, span), Anchor: anchor})
	}
	for i, s := range ss {
		tr := timelineRow{Y: float64(i*rowH + 8), XSnap: x(s.Time), X2: x(s.WindowTo), ID: s.ID, Class: "ok"}
		if s.WindowFrom.IsZero() {
			tr.X1, tr.OpenStart = labelW, true
		} else {
			tr.X1 = x(s.WindowFrom)
		}
		if tr.X2-tr.X1 < 2 {
			tr.X2 = tr.X1 + 2
		}
		if !s.Healthy(v.Report) {
			tr.Class = "bad"
		} else if s.RetentionApplies && !s.Keep {
			tr.Class = "prune"
		}
		tr.Title = fmt.Sprintf("snapshot %d at %s UTC; time travel serves %s", s.ID, ts(s.Time), v.Rows[i].Window)
		v.Timeline = append(v.Timeline, tr)
	}
	v.TimelineH = float64(len(ss)*rowH + 30)
	v.Size = v.line("Snapshot size", func(s Snapshot) float64 { return float64(s.Bytes) }, x, true)
	v.SSTs = v.line("SST objects pinned", func(s Snapshot) float64 { return float64(s.SSTs) }, x, false)
}

func (v *view) line(title string, val func(Snapshot) float64, x func(time.Time) float64, bytes bool) lineChart {
	c := lineChart{Title: title}
	maxV := 0.0
	for _, s := range v.Snapshots {
		maxV = math.Max(maxV, val(s))
	}
	if maxV == 0 {
		maxV = 1
	}
	y := func(f float64) float64 { return 8 + (1-f/maxV)*(lineH-20) }
	var path strings.Builder
	for i, s := range v.Snapshots {
		p := point{X: x(s.Time), Y: y(val(s))}
		c.Points = append(c.Points, p)
		if i == 0 {
			fmt.Fprintf(&path, "M%.1f %.1f", p.X, p.Y)
		} else {
			fmt.Fprintf(&path, " L%.1f %.1f", p.X, p.Y)
		}
	}
	c.Path = path.String()
	for i := range 3 {
		f := maxV * float64(i) / 2
		label := fmt.Sprintf("%.0f", f)
		if bytes {
			label = progress.Bytes(int64(f))
		}
		c.YTicks = append(c.YTicks, axisTick{X: y(f), Label: label})
	}
	return c
}

func tickLabel(t time.Time, span time.Duration) string {
	switch {
	case span < 2*time.Hour:
		return t.UTC().Format("15:04:05")
	case span < 72*time.Hour:
		return t.UTC().Format("Jan 2 15:04")
	default:
		return t.UTC().Format("2006-01-02")
	}
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"f":   func(x float64) string { return fmt.Sprintf("%.1f", x) },
	"add": func(a, b float64) float64 { return a + b },
	"sub": func(a, b float64) float64 { return a - b },
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{.CSP}}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>rwsnap backups: {{.Location}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:20px;font-weight:600}
header p{margin:4px 0 0;color:#b8c0cc;font-size:13px}
main{padding:20px 28px;max-width:1400px}
section{background:#fff;border:1px solid #dfe3e8;border-radius:6px;padding:14px 18px;margin:0 0 18px}
h2{font-size:15px;margin:0 0 10px}
h3{font-size:13px;font-weight:600;margin:8px 0 2px;color:#3a4352}
.cards{display:flex;gap:14px;flex-wrap:wrap;margin-bottom:18px}
.card{background:#fff;border:1px solid #dfe3e8;border-radius:6px;padding:10px 16px;min-width:150px}
.card b{display:block;font-size:20px}
.card span{color:#5b6575;font-size:12px}
.problems li{color:#a11d1d;margin:3px 0}
.none{color:#2b7a3d}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #edf0f3;vertical-align:top}
th{background:#f0f2f5;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fdecec}
.keep{color:#2b7a3d}.prune{color:#9a6700}.fail{color:#a11d1d;font-weight:600}
svg{display:block;width:100%;height:auto}
svg text{font-size:11px;fill:#5b6575}
svg .grid{stroke:#e3e7ec}
svg rect.ok{fill:#5b8def}svg rect.prune{fill:#e0b341}svg rect.bad{fill:#d64545}
svg line.snap{stroke:#1d2330;stroke-width:2}
svg path.series{fill:none;stroke:#5b8def;stroke-width:2}
svg circle{fill:#1d2330}
.legend span{display:inline-block;margin-right:16px;font-size:12px;color:#5b6575}
.legend i{display:inline-block;width:12px;height:10px;margin-right:5px;vertical-align:middle}
code{font-size:12px}
</style>
</head>
<body>
<header>
<h1>rwsnap backup report</h1>
<p>{{.Location}} &middot; manifest_id {{.ManifestID}} &middot; generated {{.GeneratedText}}</p>
</header>
<main>
<div class="cards">
<div class="card"><b id="snapshot-count">{{len .Snapshots}}</b><span>snapshots (RisingWave refuses new backups past {{.Cap}})</span></div>
<div class="card"><b>{{.TotalBytes}}</b><span>total snapshot size</span></div>
<div class="card"><b>{{if .Newest}}{{.Newest}}{{else}}none{{end}}</b><span>newest snapshot</span></div>
<div class="card"><b id="problem-count">{{len .Problems}}</b><span>problems</span></div>
{{if .Policy}}<div class="card"><b>{{.Kept}} kept / {{.Pruned}} pruned</b><span>by {{.Policy}}</span></div>{{end}}
</div>

<section id="problems">
<h2>Problems</h2>
{{if .Problems}}<ul class="problems">{{range .Problems}}<li>{{.}}</li>{{end}}</ul>
{{else}}<p class="none">No problems found: every snapshot verifies, no orphan objects, well below the cap.</p>{{end}}
</section>

{{if .Timeline}}
<section id="timeline">
<h2>Snapshots on a time axis, with the time-travel window each serves</h2>
<p class="legend"><span><i style="background:#5b8def"></i>window (SET QUERY_EPOCH can read any epoch in it; faded: from the cluster's start)</span><span><i style="background:#1d2330;width:3px"></i>snapshot time (max committed epoch)</span><span><i style="background:#e0b341"></i>the retention rules would prune it</span><span><i style="background:#d64545"></i>does not verify, or SSTs missing</span></p>
<svg viewBox="0 0 {{.ChartW}} {{f .TimelineH}}" role="img" aria-label="snapshot timeline">
{{range .Ticks}}<line class="grid" x1="{{f .X}}" x2="{{f .X}}" y1="0" y2="{{f (add $.TimelineH -22)}}"></line><text x="{{f .X}}" y="{{f (add $.TimelineH -6)}}" text-anchor="{{.Anchor}}">{{.Label}}</text>{{end}}
{{range .Timeline}}<g class="snapshot" data-id="{{.ID}}"><title>{{.Title}}</title><text x="4" y="{{f (add .Y 10)}}">{{.ID}}</text><rect class="{{.Class}}" x="{{f .X1}}" y="{{f (add .Y 2)}}" width="{{f (sub .X2 .X1)}}" height="10" rx="2"{{if .OpenStart}} opacity="0.45"{{end}}></rect><line class="snap" x1="{{f .XSnap}}" x2="{{f .XSnap}}" y1="{{f .Y}}" y2="{{f (add .Y 14)}}"></line></g>{{end}}
</svg>
</section>

<section id="charts">
<h2>Size and SST count over time</h2>
{{template "line" .Size}}
{{template "line" .SSTs}}
</section>
{{end}}

<section id="snapshots">
<h2>Snapshots</h2>
<table>
<thead><tr><th>ID</th><th>Time (UTC)</th><th>Time-travel window (UTC)</th><th>Size</th><th>SSTs</th><th>Format</th><th>RisingWave</th><th>Integrity</th><th>Data protection</th><th>Retention</th><th>Remarks</th></tr></thead>
<tbody>
{{range .Rows}}<tr class="{{if not .Healthy}}bad{{end}}" data-snapshot="{{.ID}}"><td class="num">{{.ID}}</td><td>{{.TimeText}}</td><td>{{.Window}}</td><td class="num">{{.Size}}</td><td class="num">{{.SSTs}}</td><td class="num">{{.FormatVersion}}</td><td>{{.RWVersion}}</td><td{{if not .Verified}} class="fail"{{end}}>{{.Integrity}}</td><td>{{.Protection}}</td><td class="{{if .RetentionApplies}}{{if .Keep}}keep{{else}}prune{{end}}{{end}}">{{.Retention}}</td><td>{{.Remarks}}</td></tr>
{{else}}<tr><td colspan="11">No snapshots in the manifest.</td></tr>{{end}}
</tbody>
</table>
{{if not .Policy}}<p>No retention rules given (<code>--keep-last</code>, <code>--keep-daily</code>, ...): nothing would be pruned.</p>{{end}}
</section>

{{if .OrphanRows}}
<section id="orphans">
<h2>Orphan snapshot objects</h2>
<table><thead><tr><th>ID</th><th>Object</th><th>Size</th></tr></thead><tbody>
{{range .OrphanRows}}<tr><td class="num">{{.ID}}</td><td><code>{{.Key}}</code></td><td class="num">{{.Size}}</td></tr>{{end}}
</tbody></table>
</section>
{{end}}
</main>
</body>
</html>
{{define "line"}}<h3>{{.Title}}</h3><svg viewBox="0 0 960 140" role="img" aria-label="{{.Title}}">
{{range .YTicks}}<line class="grid" x1="70" x2="940" y1="{{f .X}}" y2="{{f .X}}"></line><text x="66" y="{{f (add .X 4)}}" text-anchor="end">{{.Label}}</text>{{end}}
<path class="series" d="{{.Path}}"></path>
{{range .Points}}<circle cx="{{f .X}}" cy="{{f .Y}}" r="3"></circle>{{end}}
</svg>{{end}}
`
