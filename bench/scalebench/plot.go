package main

import (
	"fmt"
	"math"
	"strings"
)

// plot draws p50 against N, both on log scales, one line per store and
// measure (a whole list, a page of 100, a single get, the audit by
// actor): what grows with N rises, what stays flat does not.
func plot(rows []row, o options) string {
	measures := []string{"audit actor"}
	if o.objects {
		measures = []string{"list all", "list 100", "get", "audit actor"}
	}
	const w, h, left, bottom, top, right = 720, 420, 70, 50, 20, 200
	minN, maxN, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, r := range rows {
		minN, maxN = math.Min(minN, float64(r.n)), math.Max(maxN, float64(r.n))
		for _, m := range measures {
			if p, ok := r.p50[m]; ok {
				v := math.Max(msOf(p), 0.01)
				minY, maxY = math.Min(minY, v), math.Max(maxY, v)
			}
		}
	}
	if minN == maxN {
		maxN = minN * 10
	}
	minY, maxY = math.Pow(10, math.Floor(math.Log10(minY))), math.Pow(10, math.Ceil(math.Log10(maxY)))
	if minY == maxY {
		maxY = minY * 10
	}
	x := func(n float64) float64 {
		return left + (math.Log10(n)-math.Log10(minN))/(math.Log10(maxN)-math.Log10(minN))*(w-left-right)
	}
	y := func(v float64) float64 {
		return h - bottom - (math.Log10(v)-math.Log10(minY))/(math.Log10(maxY)-math.Log10(minY))*(h-top-bottom)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	for v := minY; v <= maxY*1.001; v *= 10 {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%g ms</text>`+"\n",
			left, w-right, y(v), y(v), left-6, y(v)+4, v)
	}
	for _, r := range rows {
		if r.store == rows[0].store {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x(float64(r.n)), h-bottom+18, r.n)
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">N (objects and audit events)</text>`+"\n", left+(w-left-right)/2, h-12)
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}
	line := 0
	for _, st := range []string{"SQLite", "PostgreSQL"} {
		for _, m := range measures {
			var pts []string
			for _, r := range rows {
				if p, ok := r.p50[m]; ok && r.store == st {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(r.n)), y(math.Max(msOf(p), 0.01))))
				}
			}
			if len(pts) == 0 {
				continue
			}
			c := colors[line%len(colors)]
			dash := ""
			if st == "PostgreSQL" {
				dash = ` stroke-dasharray="6 4"`
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", c, dash, strings.Join(pts, " "))
			ly := top + 10 + line*18
			fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d">%s, %s p50</text>`+"\n",
				w-right+10, w-right+34, ly, ly, c, dash, w-right+40, ly+4, st, m)
			line++
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}
