package sim

import (
	"bytes"
	"encoding/xml"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

// svgNode is any element of a parsed SVG document.
type svgNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []svgNode  `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (n svgNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// find returns the elements under n (n included) for which keep is true, in
// document order.
func (n svgNode) find(keep func(svgNode) bool) []svgNode {
	var out []svgNode
	if keep(n) {
		out = append(out, n)
	}
	for _, c := range n.Children {
		out = append(out, c.find(keep)...)
	}
	return out
}

func byClass(class string) func(svgNode) bool {
	return func(n svgNode) bool { return n.attr("class") == class }
}

func parseSVG(t *testing.T, data []byte) svgNode {
	t.Helper()
	var root svgNode
	if err := xml.Unmarshal(data, &root); err != nil {
		t.Fatalf("output is not well-formed XML: %v\n%s", err, data)
	}
	if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" {
		t.Fatalf("root element is %v, want svg in the SVG namespace", root.XMLName)
	}
	return root
}

// points parses a polyline's points attribute.
func points(t *testing.T, n svgNode) [][2]float64 {
	t.Helper()
	var out [][2]float64
	for _, f := range strings.Fields(n.attr("points")) {
		xs, ys, ok := strings.Cut(f, ",")
		x, err1 := strconv.ParseFloat(xs, 64)
		y, err2 := strconv.ParseFloat(ys, 64)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("bad point %q in %q", f, n.attr("points"))
		}
		out = append(out, [2]float64{x, y})
	}
	return out
}

func constant(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func seconds(n int, step float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(i) * step
	}
	return out
}

func writePlot(t *testing.T, c Chart) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WritePlot(&b, c); err != nil {
		t.Fatalf("WritePlot: %v", err)
	}
	return b.Bytes()
}

func TestWritePlotPanels(t *testing.T) {
	for _, tc := range []struct {
		name  string
		chart Chart
	}{
		{"one series", Chart{
			Title:  "one.yaml: share of the cluster by consumer",
			Times:  []float64{0, 60, 120, 180},
			Series: []Series{{Name: "alpha", Held: []float64{0, 0.2, 0.5, 0.4}, Deserved: []float64{0.5, 0.5, 0.5, 0.5}, Owned: 0.25}},
		}},
		{"four series, escaping, some own nothing", Chart{
			Title: `q<"1"> & more`,
			Times: seconds(50, 30),
			Series: []Series{
				{Name: "a<b&c", Held: constant(50, 0.3), Deserved: constant(50, 0.25), Owned: 0.1},
				{Name: "team-b", Held: constant(50, 0.6), Deserved: constant(50, 0.7)},
				{Name: `quote"'apos`, Held: constant(50, 0), Deserved: constant(50, 0), Owned: 1.5},
				{Name: "", Held: constant(50, 0.01), Deserved: constant(50, 0.02)},
			},
		}},
		{"single sample", Chart{
			Title:  "one instant",
			Times:  []float64{0},
			Series: []Series{{Name: "solo", Held: []float64{0.3}, Deserved: []float64{0.4}}, {Name: "duo", Held: []float64{0}, Deserved: []float64{0}, Owned: 0.5}},
		}},
		{"repeated instants", Chart{
			Title:  "steps",
			Times:  []float64{0, 10, 10, 20, 20, 20},
			Series: []Series{{Name: "s", Held: []float64{0, 0, 0.5, 0.5, 0.1, 0.2}, Deserved: []float64{0.3, 0.3, 0.3, 0.3, 0.3, 0.3}}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := parseSVG(t, writePlot(t, tc.chart))

			titles := root.find(byClass("title"))
			if len(titles) != 1 || titles[0].Text != tc.chart.Title {
				t.Errorf("chart title elements = %+v, want one reading %q", titles, tc.chart.Title)
			}
			legends := root.find(byClass("legend"))
			if len(legends) != 1 {
				t.Fatalf("got %d legends, want 1", len(legends))
			}
			for class, dash := range map[string]string{"held": "", "deserved": deservedDash, "owned": ownedDash} {
				lines := legends[0].find(byClass(class))
				if len(lines) != 1 || lines[0].attr("stroke-dasharray") != dash {
					t.Errorf("legend entries for %s = %+v, want one with dash %q", class, lines, dash)
				}
			}

			panels := root.find(byClass("panel"))
			if len(panels) != len(tc.chart.Series) {
				t.Fatalf("got %d panels, want %d", len(panels), len(tc.chart.Series))
			}
			for i, p := range panels {
				s := tc.chart.Series[i]
				want := s.Name
				if want == "" {
					want = "(unnamed)"
				}
				pt := p.find(byClass("panel-title"))
				if len(pt) != 1 || pt[0].Text != want {
					t.Errorf("panel %d title = %+v, want %q", i, pt, want)
				}

				held := p.find(byClass("held"))
				if len(held) != 1 || held[0].XMLName.Local != "polyline" || held[0].attr("stroke-dasharray") != "" {
					t.Errorf("panel %q: held lines = %+v, want one solid polyline", s.Name, held)
				}
				deserved := p.find(byClass("deserved"))
				if len(deserved) != 1 || deserved[0].XMLName.Local != "polyline" || deserved[0].attr("stroke-dasharray") != deservedDash {
					t.Errorf("panel %q: deserved lines = %+v, want one dashed polyline", s.Name, deserved)
				}
				owned := p.find(byClass("owned"))
				if s.Owned > 0 {
					if len(owned) != 1 || owned[0].attr("stroke-dasharray") != ownedDash {
						t.Errorf("panel %q owns %v: owned lines = %+v, want one dotted line", s.Name, s.Owned, owned)
					}
				} else if len(owned) != 0 {
					t.Errorf("panel %q owns nothing but has owned lines %+v", s.Name, owned)
				}
				// Dashes and dots appear on the deserved and owned lines only.
				for _, n := range p.find(func(n svgNode) bool { return n.attr("stroke-dasharray") != "" }) {
					switch {
					case n.attr("class") == "deserved" && n.attr("stroke-dasharray") == deservedDash:
					case n.attr("class") == "owned" && n.attr("stroke-dasharray") == ownedDash && s.Owned > 0:
					default:
						t.Errorf("panel %q: unexpected dashed element %+v", s.Name, n)
					}
				}
				for _, line := range append(held, deserved...) {
					pts := points(t, line)
					if len(pts) < 2 {
						t.Errorf("panel %q: %s line has %d points, want at least 2 (a visible mark)", s.Name, line.attr("class"), len(pts))
					}
					for _, q := range pts {
						if q[0] < panelLeft || q[0] > panelLeft+plotW || q[1] < panelTop || q[1] > panelTop+plotH {
							t.Errorf("panel %q: %s point %v lies outside the plot area", s.Name, line.attr("class"), q)
						}
					}
				}
			}
		})
	}
}

func TestWritePlotEscapesText(t *testing.T) {
	out := writePlot(t, Chart{
		Title:  "a<b&c > d",
		Times:  []float64{0, 1},
		Series: []Series{{Name: "a<b&c", Held: []float64{0, 1}, Deserved: []float64{1, 0}}},
	})
	for _, raw := range []string{"a<b", "b&c"} {
		if bytes.Contains(out, []byte(raw)) {
			t.Errorf("output contains unescaped %q", raw)
		}
	}
	if !bytes.Contains(out, []byte("a&lt;b&amp;c")) {
		t.Errorf("output lacks the escaped name a&lt;b&amp;c")
	}
}

func TestWritePlotLongNameIsShortened(t *testing.T) {
	long := strings.Repeat("x", 200)
	root := parseSVG(t, writePlot(t, Chart{
		Times:  []float64{0, 1},
		Series: []Series{{Name: long, Held: []float64{0, 1}, Deserved: []float64{1, 0}}},
	}))
	pt := root.find(byClass("panel-title"))
	if len(pt) != 1 {
		t.Fatalf("got %d panel titles, want 1", len(pt))
	}
	if got := []rune(pt[0].Text); len(got) != maxNameRunes || got[len(got)-1] != '…' {
		t.Errorf("panel title = %q, want %d runes ending in an ellipsis", pt[0].Text, maxNameRunes)
	}
	if tips := pt[0].find(func(n svgNode) bool { return n.XMLName.Local == "title" }); len(tips) != 1 || tips[0].Text != long {
		t.Errorf("panel title tooltip = %+v, want the full name", tips)
	}
}

func TestWritePlotDecimatesLongSeries(t *testing.T) {
	const n = 100_000
	const spike = 54_321
	times := seconds(n, 0.5)
	held := make([]float64, n)
	deserved := make([]float64, n)
	for i := range held {
		held[i] = 0.3 + 0.2*math.Sin(float64(i)/700)
		deserved[i] = 0.4 + 0.1*math.Sin(float64(i)*1.7) // noisy: every sample differs
	}
	held[spike] = 0.95
	c := Chart{Title: "long", Times: times, Series: []Series{{Name: "busy", Held: held, Deserved: deserved, Owned: 0.2}}}
	root := parseSVG(t, writePlot(t, c))

	top, _ := shareAxis(c.Series[0])
	wantTop := float64(tenths(panelTop+plotH-0.95/top*plotH)) / 10
	for _, line := range root.find(func(n svgNode) bool { return n.XMLName.Local == "polyline" }) {
		pts := points(t, line)
		class := line.attr("class")
		if len(pts) > maxPoints {
			t.Errorf("%s line has %d points, want at most %d", class, len(pts), maxPoints)
		}
		if len(pts) < 100 {
			t.Errorf("%s line has %d points; decimation lost the shape", class, len(pts))
		}
		if first := pts[0][0]; first != panelLeft {
			t.Errorf("%s line starts at x=%v, want %v (first sample kept)", class, first, panelLeft)
		}
		xmax, _ := timeAxis(times[n-1])
		wantLast := float64(tenths(panelLeft+times[n-1]/xmax*plotW)) / 10
		if last := pts[len(pts)-1][0]; last != wantLast {
			t.Errorf("%s line ends at x=%v, want %v (last sample kept)", class, last, wantLast)
		}
		if class == "held" {
			minY := math.Inf(1)
			for _, q := range pts {
				minY = min(minY, q[1])
			}
			if minY != wantTop {
				t.Errorf("held line peaks at y=%v, want %v (the one-sample spike kept)", minY, wantTop)
			}
		}
	}
}

func TestPlotDecimate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		times  []float64
		values []float64
		limit  int
		want   []int
	}{
		{"short kept whole", []float64{0, 1, 2}, []float64{1, 2, 3}, 10, []int{0, 1, 2}},
		{"empty", nil, nil, 10, []int{}},
		{"min and max per stretch", seconds(10, 1), []float64{5, 1, 9, 5, 5, 5, 0, 5, 7, 5}, 6,
			// Two stretches of time: [1,4.5) and [4.5,9); 0 and 9 always kept.
			[]int{0, 1, 2, 6, 8, 9}},
		{"one instant split by index", constant(10, 3), []float64{5, 1, 9, 5, 5, 5, 0, 5, 7, 5}, 6,
			[]int{0, 1, 2, 6, 8, 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decimate(tc.times, tc.values, tc.limit)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("decimate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWritePlotIsDeterministic(t *testing.T) {
	mk := func() Chart {
		c := Chart{Title: "det", Times: seconds(3000, 2)}
		for _, name := range []string{"z", "a", "m<", "b"} {
			h := make([]float64, 3000)
			for i := range h {
				h[i] = math.Abs(math.Sin(float64(i) / float64(len(name)+3)))
			}
			c.Series = append(c.Series, Series{Name: name, Held: h, Deserved: constant(3000, 0.25), Owned: 0.1 * float64(len(name)-1)})
		}
		return c
	}
	first := writePlot(t, mk())
	for range 3 {
		if diff := cmp.Diff(string(first), string(writePlot(t, mk()))); diff != "" {
			t.Fatalf("second rendering differs (-first +again):\n%s", diff)
		}
	}
}

func TestPlotTimeAxis(t *testing.T) {
	for _, tc := range []struct {
		last      float64
		wantEnd   float64
		wantStep  float64
		wantLabel []string // labels of the ticks from 0 to the end
	}{
		{0, 1, 0.2, []string{"0", "200ms", "400ms", "600ms", "800ms", "1s"}},
		{0.9, 1, 0.2, []string{"0", "200ms", "400ms", "600ms", "800ms", "1s"}},
		{5.5, 6, 1, []string{"0", "1s", "2s", "3s", "4s", "5s", "6s"}},
		{600, 600, 120, []string{"0", "2m", "4m", "6m", "8m", "10m"}},
		{601, 720, 120, []string{"0", "2m", "4m", "6m", "8m", "10m", "12m"}},
		{5000, 5400, 900, []string{"0", "15m", "30m", "45m", "1h", "1h15m", "1h30m"}},
		{100, 120, 30, []string{"0", "30s", "1m", "1m30s", "2m"}},
		{20 * 3600, 24 * 3600, 6 * 3600, []string{"0", "6h", "12h", "18h", "24h"}},
	} {
		end, step := timeAxis(tc.last)
		if end != tc.wantEnd || step != tc.wantStep {
			t.Errorf("timeAxis(%v) = %v, %v; want %v, %v", tc.last, end, step, tc.wantEnd, tc.wantStep)
			continue
		}
		var labels []string
		for i := 0; float64(i)*step <= end*(1+1e-9); i++ {
			labels = append(labels, timeLabel(float64(i)*step, step))
		}
		if diff := cmp.Diff(tc.wantLabel, labels); diff != "" {
			t.Errorf("labels for last=%v (-want +got):\n%s", tc.last, diff)
		}
	}
}

func TestPlotShareAxis(t *testing.T) {
	for _, tc := range []struct {
		s        Series
		wantTop  float64
		wantStep float64
		wantTick string // label of the top tick
	}{
		{Series{Held: []float64{0}, Deserved: []float64{0}}, 0.1, 0.02, "10%"},
		{Series{Held: []float64{0.37}, Deserved: []float64{0.1}}, 0.4, 0.1, "40%"},
		{Series{Held: []float64{0.2}, Deserved: []float64{1}}, 1, 0.2, "100%"},
		{Series{Held: []float64{0.2}, Deserved: []float64{0.3}, Owned: 0.6}, 0.6, 0.2, "60%"},
		{Series{Held: []float64{1.1}, Deserved: []float64{0}}, 1.25, 0.25, "125%"},
	} {
		top, step := shareAxis(tc.s)
		if math.Abs(top-tc.wantTop) > 1e-12 || math.Abs(step-tc.wantStep) > 1e-12 {
			t.Errorf("shareAxis(%+v) = %v, %v; want %v, %v", tc.s, top, step, tc.wantTop, tc.wantStep)
		}
		if got := percent(top); got != tc.wantTick {
			t.Errorf("percent(%v) = %q, want %q", top, got, tc.wantTick)
		}
	}
}

func TestWritePlotErrors(t *testing.T) {
	good := func() Series {
		return Series{Name: "s", Held: []float64{0, 0.5}, Deserved: []float64{0.5, 0.5}}
	}
	with := func(f func(*Series)) []Series {
		s := good()
		f(&s)
		return []Series{good(), s}
	}
	for _, tc := range []struct {
		name  string
		chart Chart
	}{
		{"no series", Chart{Times: []float64{0, 1}}},
		{"no times", Chart{Series: []Series{{Name: "s"}}}},
		{"times descend", Chart{Times: []float64{0, 2, 1}, Series: []Series{{Held: constant(3, 0), Deserved: constant(3, 0)}}}},
		{"negative time", Chart{Times: []float64{-1, 0}, Series: []Series{good()}}},
		{"NaN time", Chart{Times: []float64{0, math.NaN()}, Series: []Series{good()}}},
		{"infinite time", Chart{Times: []float64{0, math.Inf(1)}, Series: []Series{good()}}},
		{"short held", Chart{Times: []float64{0, 1}, Series: with(func(s *Series) { s.Held = s.Held[:1] })}},
		{"long deserved", Chart{Times: []float64{0, 1}, Series: with(func(s *Series) { s.Deserved = append(s.Deserved, 0) })}},
		{"nil held", Chart{Times: []float64{0, 1}, Series: with(func(s *Series) { s.Held = nil })}},
		{"NaN held", Chart{Times: []float64{0, 1}, Series: with(func(s *Series) { s.Held[1] = math.NaN() })}},
		{"infinite deserved", Chart{Times: []float64{0, 1}, Series: with(func(s *Series) { s.Deserved[0] = math.Inf(1) })}},
		{"negative held", Chart{Times: []float64{0, 1}, Series: with(func(s *Series) { s.Held[0] = -0.1 })}},
		{"negative deserved", Chart{Times: []float64{0, 1}, Series: with(func(s *Series) { s.Deserved[1] = -1 })}},
		{"negative owned", Chart{Times: []float64{0, 1}, Series: with(func(s *Series) { s.Owned = -0.5 })}},
		{"NaN owned", Chart{Times: []float64{0, 1}, Series: with(func(s *Series) { s.Owned = math.NaN() })}},
		{"infinite owned", Chart{Times: []float64{0, 1}, Series: with(func(s *Series) { s.Owned = math.Inf(-1) })}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			err := WritePlot(&b, tc.chart)
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("WritePlot = %v, want an error wrapping api.ErrInvalid", err)
			}
			if msg := err.Error(); msg != strings.ToLower(msg[:1])+msg[1:] || strings.HasSuffix(msg, ".") {
				t.Errorf("error %q should start lowercase and have no trailing period", msg)
			}
			if b.Len() != 0 {
				t.Errorf("WritePlot wrote %d bytes despite the error", b.Len())
			}
		})
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestWritePlotReturnsWriteErrors(t *testing.T) {
	errDisk := errors.New("disk full")
	err := WritePlot(failingWriter{errDisk}, Chart{
		Times:  []float64{0},
		Series: []Series{{Name: "s", Held: []float64{0}, Deserved: []float64{0}}},
	})
	if !errors.Is(err, errDisk) {
		t.Errorf("WritePlot = %v, want the writer's error", err)
	}
}
