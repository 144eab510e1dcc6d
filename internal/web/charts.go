package web

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/barstore"
	"github.com/sluice-dev/sluice/internal/chart"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/sampling"
	"github.com/sluice-dev/sluice/internal/store"
)

// chartSpan is how far back the charts reach.
const chartSpan = time.Hour

// The charts of a runtime, one image each: served as SVG documents
// (internal/chart), so the page needs no script to show them and the CSP
// keeps images to this origin; static/live.js reloads them when the status
// stream says a new sample came.
var runtimeCharts = []struct{ File, Title string }{
	{"requests.svg", "Requests"},
	{"errors.svg", "Errors"},
	{"latency.svg", "Latency"},
}

// chartsView is the metrics section of a runtime's page.
type chartsView struct {
	Note  string // why there are no charts, or why the latest sample failed
	Now   string // the latest interval in words
	Seq   uint64
	Flows []flowCharts // "" (every flow) first
}

type flowCharts struct {
	Name   string // "" for the whole runtime
	Images []chartImage
}

type chartImage struct {
	Base string // the image's URL up to the seq parameter (static/live.js appends it)
	Src  string
	Alt  string
}

// samplesNote says why a runtime has no charts on this control plane.
func (d *Dashboard) samplesNote(w sampling.Window, ok bool) string {
	switch {
	case d.Samples == nil:
		return "This control plane runs no runtime backend, so it samples no metrics."
	case !ok:
		return "No samples here yet: metrics are sampled every " + d.sampleInterval().String() +
			" by the control plane that runs the runtimes (the reconciler's leader), and kept for an hour in its memory only."
	case w.Err != "":
		return "The latest sample failed (" + w.Err + "); the charts show a gap."
	}
	return ""
}

func (d *Dashboard) sampleInterval() time.Duration {
	if d.Samples != nil && d.Samples.Interval > 0 {
		return d.Samples.Interval
	}
	return sampling.DefaultInterval
}

// chartsOf is the metrics section of runtime name.
func (d *Dashboard) chartsOf(instance, name string) chartsView {
	w, ok := d.Samples.Window(orchestrator.Key{InstanceID: instance, Name: name})
	v := chartsView{Note: d.samplesNote(w, ok), Seq: w.Seq, Now: latest(w)}
	for _, f := range append([]string{""}, w.Flows...) {
		fc := flowCharts{Name: f}
		for _, c := range runtimeCharts {
			q := url.Values{}
			if f != "" {
				q.Set("flow", f)
			}
			base := "/runtimes/" + url.PathEscape(name) + "/charts/" + c.File + "?" + q.Encode()
			if f != "" {
				base += "&"
			}
			what := "every flow of " + name
			if f != "" {
				what = "flow " + f
			}
			fc.Images = append(fc.Images, chartImage{Base: base, Src: base + "seq=" + strconv.FormatUint(w.Seq, 10),
				Alt: c.Title + " of " + what + " over the last hour"})
		}
		v.Flows = append(v.Flows, fc)
	}
	return v
}

// latest describes the newest interval of w across every flow.
func latest(w sampling.Window) string {
	if len(w.Points) == 0 {
		return "no interval sampled yet"
	}
	p := w.Points[len(w.Points)-1]
	if p.Gap {
		return "no sample in the latest interval"
	}
	dl := p.Of("")
	s := fmt.Sprintf("%s req/s, %s errors/s", chart.Number(dl.Requests/p.Seconds), chart.Number(dl.Errors/p.Seconds))
	if q, ok := dl.Quantile(0.5); ok {
		q99, _ := dl.Quantile(0.99)
		s += fmt.Sprintf(", p50 %s ms, p99 %s ms", chart.Number(q*1000), chart.Number(q99*1000))
	}
	return s + " (last " + chart.Number(p.Seconds) + " s)"
}

// runtimeChart serves one chart of a runtime (or of one of its flows) as SVG.
func (d *Dashboard) runtimeChart(w http.ResponseWriter, r *http.Request) {
	ctx, p, name := r.Context(), principal(r), r.PathValue("name")
	if _, err := d.Runtimes.Get(ctx, p, name); err != nil {
		status, msg := d.message(r, err)
		http.Error(w, msg, status)
		return
	}
	kind := r.PathValue("chart")
	title := ""
	for _, c := range runtimeCharts {
		if c.File == kind {
			title = c.Title
		}
	}
	if title == "" {
		http.Error(w, fmt.Sprintf("no chart %q: charts are requests.svg, errors.svg and latency.svg", kind), http.StatusNotFound)
		return
	}
	flow := r.URL.Query().Get("flow")
	win, _ := d.Samples.Window(orchestrator.Key{InstanceID: p.InstanceID, Name: name})
	if flow != "" && !contains(win.Flows, flow) {
		// A flow that has not run in the window: an empty chart, not an
		// error (it may simply be idle, or the runtime just started).
		win.Points = nil
	}
	now := d.now()
	c := chart.Chart{From: chartFrom(win, now), To: now}
	if flow != "" {
		title += " of " + flow
	}
	c.Title = title
	pick := func(f func(sampling.Point, sampling.Delta) (float64, bool)) []chart.Value {
		var out []chart.Value
		for _, pt := range win.Points {
			v := chart.Value{At: pt.At, Missing: true}
			if !pt.Gap && pt.Seconds > 0 {
				val, ok := f(pt, pt.Of(flow))
				v = chart.Value{At: pt.At, V: val, Missing: !ok}
			}
			out = append(out, v)
		}
		return out
	}
	switch kind {
	case "requests.svg":
		c.Unit = "requests per second"
		c.Series = []chart.Series{{Name: "req/s", Values: pick(func(pt sampling.Point, dl sampling.Delta) (float64, bool) {
			return dl.Requests / pt.Seconds, true
		})}}
	case "errors.svg":
		c.Unit = "errors per second"
		c.Series = []chart.Series{{Name: "errors/s", Values: pick(func(pt sampling.Point, dl sampling.Delta) (float64, bool) {
			return dl.Errors / pt.Seconds, true
		})}}
	case "latency.svg":
		c.Unit = "milliseconds"
		for _, q := range []struct {
			name string
			q    float64
		}{{"p50", 0.5}, {"p99", 0.99}} {
			c.Series = append(c.Series, chart.Series{Name: q.name, Values: pick(func(_ sampling.Point, dl sampling.Delta) (float64, bool) {
				v, ok := dl.Quantile(q.q)
				return v * 1000, ok
			})})
		}
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	_, _ = w.Write(chart.SVG(c))
}

// chartFrom is where a chart's time axis starts: an hour back, or where
// the samples start when they are younger (so a new runtime's line is not
// a sliver at the right edge), but never less than ten intervals.
func chartFrom(win sampling.Window, now time.Time) time.Time {
	from := now.Add(-chartSpan)
	if len(win.Points) == 0 {
		return from
	}
	p := win.Points[0]
	if first := p.At.Add(-time.Duration(p.Seconds * float64(time.Second))); first.After(from) {
		from = first
	}
	if least := 10 * win.Interval; now.Sub(from) < least {
		from = now.Add(-least)
	}
	return from
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// overviewPage is the instance at a glance.
type overviewPage struct {
	Phases       []phaseCount
	Runtimes     int
	TokensIssued int // in the last minute
	TokensDenied int
	TokensNote   string // when the count is a lower bound
	TokenChart   string
	Errors       []recentError
	AuditErrors  []store.AuditEvent // admins only
	BARBytes     int64
	BARFiles     int
	BARQuota     int64
	BARPercent   string
}

type phaseCount struct {
	Phase string
	N     int
}

type recentError struct {
	Runtime, What string
}

// overviewAuditScan bounds the audit events the overview reads for its token
// counts: a busier hour shows "at least".
const overviewAuditScan = 20000

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	ctx, p := r.Context(), principal(r)
	rts, err := iam.All(func(req iam.ListRequest) (iam.ListPage[orchestrator.Runtime], error) {
		return d.Runtimes.List(ctx, p, req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	pg := overviewPage{Runtimes: len(rts), BARQuota: d.BARQuota, TokenChart: "/overview/tokens.svg"}
	phases := map[string]int{}
	for _, rt := range rts {
		ph := rt.Status.Phase
		if ph == "" {
			ph = "Pending"
		}
		phases[ph]++
		if rt.Status.LastError != "" {
			pg.Errors = append(pg.Errors, recentError{rt.Name, rt.Status.LastError})
		}
		win, ok := d.Samples.Window(orchestrator.Key{InstanceID: p.InstanceID, Name: rt.Name})
		if ok && win.Err != "" {
			pg.Errors = append(pg.Errors, recentError{rt.Name, "metrics not sampled: " + win.Err})
		}
		// Flows with errors in the last five minutes.
		since := d.now().Add(-5 * time.Minute)
		errs := map[string]float64{}
		for _, pt := range win.Points {
			if pt.At.After(since) {
				for f, dl := range pt.Flows {
					errs[f] += dl.Errors
				}
			}
		}
		flows := make([]string, 0, len(errs))
		for f, n := range errs {
			if n > 0 {
				flows = append(flows, f)
			}
		}
		sort.Strings(flows)
		for _, f := range flows {
			pg.Errors = append(pg.Errors, recentError{rt.Name, fmt.Sprintf("flow %s: %s errors in the last 5 minutes", f, chart.Number(errs[f]))})
		}
	}
	for ph, n := range phases {
		pg.Phases = append(pg.Phases, phaseCount{ph, n})
	}
	sort.Slice(pg.Phases, func(i, j int) bool { return pg.Phases[i].Phase < pg.Phases[j].Phase })

	evs, full, err := d.recentAudit(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if full {
		pg.TokensNote = fmt.Sprintf("at least: only the newest %d audit events of the hour were read", overviewAuditScan)
	}
	minuteAgo := d.now().Add(-time.Minute)
	for _, ev := range evs {
		if ev.At.After(minuteAgo) {
			switch ev.Action {
			case "token.issue":
				pg.TokensIssued++
			case "token.refuse":
				pg.TokensDenied++
			}
		}
		if p.IsAdmin() && ev.Outcome != iam.OutcomeSuccess && len(pg.AuditErrors) < 10 {
			pg.AuditErrors = append(pg.AuditErrors, ev)
		}
	}

	files, err := iam.All(func(req iam.ListRequest) (iam.ListPage[barstore.File], error) { return d.BARs.List(ctx, p, req) })
	if err != nil {
		d.fail(w, r, err)
		return
	}
	pg.BARFiles = len(files)
	for _, f := range files {
		pg.BARBytes += f.Size
	}
	if d.BARQuota > 0 {
		pg.BARPercent = strconv.FormatFloat(100*float64(pg.BARBytes)/float64(d.BARQuota), 'f', 1, 64) + "%"
	}
	d.render(w, r, http.StatusOK, "overview", view{Title: "Overview", Nav: "overview", Page: pg})
}

// recentAudit is the instance's audit events of the last chart span,
// newest first, and whether overviewAuditScan cut them short.
func (d *Dashboard) recentAudit(r *http.Request) ([]store.AuditEvent, bool, error) {
	evs, err := d.Store.ListAuditEvents(r.Context(), store.AuditFilter{InstanceID: principal(r).InstanceID,
		Since: d.now().Add(-chartSpan), Limit: overviewAuditScan})
	return evs, len(evs) >= overviewAuditScan, err
}

// tokenChart draws the instance's token exchanges per minute over the
// last hour, issued and refused.
func (d *Dashboard) tokenChart(w http.ResponseWriter, r *http.Request) {
	evs, _, err := d.recentAudit(r)
	if err != nil {
		status, msg := d.message(r, err)
		http.Error(w, msg, status)
		return
	}
	now := d.now().Truncate(time.Minute).Add(time.Minute)
	from := now.Add(-chartSpan)
	n := int(chartSpan / time.Minute)
	issued, refused := make([]float64, n), make([]float64, n)
	for _, ev := range evs {
		i := int(ev.At.Sub(from) / time.Minute)
		if i < 0 || i >= n {
			continue
		}
		switch ev.Action {
		case "token.issue":
			issued[i]++
		case "token.refuse":
			refused[i]++
		}
	}
	series := func(name string, counts []float64) chart.Series {
		s := chart.Series{Name: name}
		for i, c := range counts {
			s.Values = append(s.Values, chart.Value{At: from.Add(time.Duration(i+1) * time.Minute), V: c})
		}
		return s
	}
	c := chart.Chart{Title: "Token exchanges", Unit: "per minute", From: from, To: now,
		Series: []chart.Series{series("issued", issued), series("refused", refused)}}
	w.Header().Set("Content-Type", "image/svg+xml")
	_, _ = w.Write(chart.SVG(c))
}

// bytesOf writes a size for people.
func bytesOf(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, i := float64(n), -1
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + " " + []string{"KiB", "MiB", "GiB", "TiB"}[i]
}
