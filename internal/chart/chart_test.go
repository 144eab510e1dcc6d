package chart

import (
	"bytes"
	"encoding/xml"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
)

// wellFormed parses b as XML and returns its element names.
func wellFormed(t *testing.T, b []byte) []string {
	t.Helper()
	var names []string
	dec := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, b)
		}
		if se, ok := tok.(xml.StartElement); ok {
			names = append(names, se.Name.Local)
			for _, a := range se.Attr {
				if a.Name.Local == "style" || strings.HasPrefix(a.Name.Local, "on") || a.Name.Local == "href" {
					t.Errorf("attribute %s on %s: a chart must not need a style sheet, script or link", a.Name.Local, se.Name.Local)
				}
			}
		}
	}
}

func TestChartDrawsLinesWithGaps(t *testing.T) {
	t0 := clocktest.Epoch()
	var p50, p99 []Value
	for i := 0; i < 6; i++ {
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		missing := i == 3
		p50 = append(p50, Value{At: at, V: float64(i), Missing: missing})
		p99 = append(p99, Value{At: at, V: float64(10 * i), Missing: missing})
	}
	svg := SVG(Chart{Title: "Latency <hello/hi>", Unit: "ms", From: t0, To: t0.Add(50 * time.Second),
		Series: []Series{{Name: "p50", Values: p50}, {Name: "p99", Values: p99}}})
	names := wellFormed(t, svg)
	if names[0] != "svg" {
		t.Fatalf("root %s", names[0])
	}
	for _, banned := range []string{"script", "style", "foreignObject", "image", "use"} {
		for _, n := range names {
			if n == banned {
				t.Errorf("element %s in a chart", n)
			}
		}
	}
	s := string(svg)
	if strings.Contains(s, "<hello") || !strings.Contains(s, "Latency &lt;hello/hi&gt;") {
		t.Errorf("the title is not escaped: %s", s)
	}
	// Two lines, each broken by the gap into two sub-paths.
	if n := strings.Count(s, "<path "); n != 2 {
		t.Errorf("%d paths, want 2", n)
	}
	moves := 0
	for _, d := range regexp.MustCompile(` d="([^"]*)"`).FindAllStringSubmatch(s, -1) {
		moves += strings.Count(d[1], "M")
	}
	if moves != 4 {
		t.Errorf("the gap did not break the lines: %s", s)
	}
	// The y axis reaches a round number above the highest value (50 → 50),
	// and the legend shows the latest values.
	if !strings.Contains(s, ">50<") || !strings.Contains(s, "p99 50") || !strings.Contains(s, "p50 5<") {
		t.Errorf("axis or legend: %s", s)
	}
	if strings.Contains(s, "no data") {
		t.Errorf("a chart with data says it has none")
	}
}

func TestChartWithoutDataSaysSo(t *testing.T) {
	t0 := clocktest.Epoch()
	for _, c := range []Chart{
		{Title: "Requests", Unit: "req/s", From: t0, To: t0.Add(time.Hour)},
		{Title: "Requests", Unit: "req/s", From: t0, To: t0.Add(time.Hour), Series: []Series{{Name: "all", Values: []Value{{At: t0, Missing: true}}}}},
		{Title: "Requests", Unit: "req/s"},
	} {
		svg := SVG(c)
		wellFormed(t, svg)
		if !bytes.Contains(svg, []byte("no data yet")) || bytes.Contains(svg, []byte("<path")) || bytes.Contains(svg, []byte("NaN")) {
			t.Errorf("empty chart: %s", svg)
		}
	}
	// One value alone still shows, as a tick.
	svg := SVG(Chart{Title: "r", From: t0, To: t0.Add(time.Minute), Series: []Series{{Name: "all", Values: []Value{{At: t0.Add(time.Minute), V: 3}}}}})
	if !bytes.Contains(svg, []byte("h2")) {
		t.Errorf("a lone value: %s", svg)
	}
}

func TestNumbersForPeople(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.25: "0.25", 5: "5", 2.5: "2.5", 0.004: "0.004", 12.54: "12.5", 340: "340", 12345: "12.3k"} {
		if got := Number(v); got != want {
			t.Errorf("Number(%g) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]float64{0: 1, 0.3: 0.5, 7: 10, 12: 20, 50: 50, 51: 100} {
		if got := nice(v); got != want {
			t.Errorf("nice(%g) = %g, want %g", v, got, want)
		}
	}
}
