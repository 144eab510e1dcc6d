// Package chart draws time series as small SVG documents for the
// dashboard. A chart is self-contained — presentation attributes, no style
// sheet, no script, no external reference — so the dashboard serves it as
// an image under its strict Content-Security-Policy. Missing values break
// the line (a gap), and a chart without values says so. It knows nothing
// of where the numbers come from.
package chart

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
	"time"
)

// Value is one point of a series; Missing ones are gaps.
type Value struct {
	At      time.Time
	V       float64
	Missing bool
}

// Series is one line.
type Series struct {
	Name   string
	Values []Value
}

// Chart is what to draw: a title, the unit of the values, the time span of
// the x axis, and the lines.
type Chart struct {
	Title    string
	Unit     string // "req/s", "ms"
	From, To time.Time
	Series   []Series
}

// Size of every chart, in SVG units (it scales with its box).
const (
	Width  = 480
	Height = 150
)

const (
	left, right, top, bottom = 44, 10, 24, 20
)

// colours of the lines, in order; readable on white, apart for the
// common colour blindnesses (blue, vermilion, bluish green).
var colours = []string{"#0b5cad", "#d55e00", "#009e73", "#6a3d9a"}

// SVG renders c.
func SVG(c Chart) []byte {
	var b bytes.Buffer
	esc := html.EscapeString
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" font-family="sans-serif" font-size="11">`,
		Width, Height, Width, Height, esc(c.Title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.Title+summary(c)))
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`, Width, Height)
	fmt.Fprintf(&b, `<text x="%d" y="14" font-weight="bold" fill="#222222">%s</text>`, left, esc(c.Title))
	highest := 0.0
	any := false
	for _, s := range c.Series {
		for _, v := range s.Values {
			if !v.Missing && !math.IsNaN(v.V) && !math.IsInf(v.V, 0) {
				any = true
				highest = math.Max(highest, v.V)
			}
		}
	}
	ymax := nice(highest)
	px, py := plotX(c), plotY(ymax)
	// Frame and grid: 0, half and the top, labelled with the unit.
	for _, f := range []float64{0, 0.5, 1} {
		y := py(ymax * f)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#dddddd"/>`, left, y, Width-right, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#555555">%s</text>`, left-4, y+4, esc(Number(ymax*f)))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555555">%s</text>`, left, Height-5, esc(clock(c.From)))
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#555555">%s</text>`, Width-right, Height-5, esc(clock(c.To)+" UTC"))
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#555555">%s</text>`, (left+Width-right)/2, Height-5, esc(c.Unit))
	if !any {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#777777">no data yet</text>`, (left+Width-right)/2, (top+Height-bottom)/2)
	}
	// Legend, right-aligned on the title's line.
	x := Width - right
	for i := len(c.Series) - 1; i >= 0; i-- {
		s := c.Series[i]
		label := s.Name
		if last, ok := lastValue(s); ok {
			label += " " + Number(last)
		}
		w := 8 + 6*len([]rune(label))
		x -= w
		fmt.Fprintf(&b, `<rect x="%d" y="6" width="8" height="8" fill="%s"/><text x="%d" y="14" fill="#222222">%s</text>`,
			x, colours[i%len(colours)], x+11, esc(label))
		x -= 10
	}
	for i, s := range c.Series {
		if d := path(s, px, py); d != "" {
			fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.5" stroke-linejoin="round"/>`, d, colours[i%len(colours)])
		}
	}
	b.WriteString(`</svg>`)
	return b.Bytes()
}

// plotX maps a time to its x coordinate.
func plotX(c Chart) func(time.Time) float64 {
	span := c.To.Sub(c.From).Seconds()
	return func(t time.Time) float64 {
		if span <= 0 {
			return float64(Width - right)
		}
		f := t.Sub(c.From).Seconds() / span
		return float64(left) + math.Max(0, math.Min(1, f))*float64(Width-right-left)
	}
}

// plotY maps a value to its y coordinate (0 at the bottom).
func plotY(ymax float64) func(float64) float64 {
	return func(v float64) float64 {
		return float64(Height-bottom) - v/ymax*float64(Height-bottom-top)
	}
}

// path is the SVG path of a series: a new sub-path after every gap, and a
// lone value as a short tick so it still shows.
func path(s Series, px func(time.Time) float64, py func(float64) float64) string {
	var b bytes.Buffer
	run := 0
	for _, v := range s.Values {
		if v.Missing || math.IsNaN(v.V) || math.IsInf(v.V, 0) {
			if run == 1 {
				b.WriteString("h2")
			}
			run = 0
			continue
		}
		cmd := "L"
		if run == 0 {
			cmd = "M"
		}
		fmt.Fprintf(&b, "%s%.1f %.1f", cmd, px(v.At), py(v.V))
		run++
	}
	if run == 1 {
		b.WriteString("h2")
	}
	return b.String()
}

func lastValue(s Series) (float64, bool) {
	for i := len(s.Values) - 1; i >= 0; i-- {
		if v := s.Values[i]; !v.Missing {
			return v.V, true
		}
	}
	return 0, false
}

// summary is the latest value of each series, for the chart's title.
func summary(c Chart) string {
	out := ""
	for _, s := range c.Series {
		if v, ok := lastValue(s); ok {
			out += fmt.Sprintf("; %s %s %s", s.Name, Number(v), c.Unit)
		}
	}
	return out
}

// nice rounds v up to 1, 2 or 5 times a power of ten (1 for nothing).
func nice(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// Number writes a value for people: "0", "0.25", "5", "12.5", "340", "12.3k".
func Number(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a < 0.01:
		return strconv.FormatFloat(v, 'g', 2, 64)
	case a < 10:
		return trim(strconv.FormatFloat(v, 'f', 2, 64))
	case a < 100:
		return trim(strconv.FormatFloat(v, 'f', 1, 64))
	case a < 10000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return trim(strconv.FormatFloat(v/1000, 'f', 1, 64)) + "k"
}

// trim drops the zeros that end a decimal fraction, and a lone point.
func trim(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("15:04:05")
}
