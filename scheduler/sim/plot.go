package sim

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/caisson/caisson/api"
)

// Series is one consumer's line on the share chart: at each sample time, the
// share of the cluster it held and the share it deserved (both dominant shares,
// 0..1), and its owned share (constant, 0 when it owns nothing).
type Series struct {
	Name     string
	Held     []float64
	Deserved []float64
	Owned    float64
}

// Chart is what WritePlot draws.
type Chart struct {
	Title  string    // e.g. "sim-multitenant.yaml: share of the cluster by consumer"
	Times  []float64 // sample times in seconds from the start of the run, ascending; len == len(Held) of every series
	Series []Series
}

// Layout of the chart, in SVG user units (pixels).
const (
	plotCols     = 3   // panels per row at most
	panelW       = 400 // width of one panel, margins included
	panelH       = 230 // height of one panel, margins included
	panelLeft    = 52  // room for the y labels
	panelRight   = 14
	panelTop     = 26 // room for the panel title
	panelBottom  = 30 // room for the x labels
	headerH      = 62 // chart title and legend
	footerH      = 8
	plotW        = panelW - panelLeft - panelRight
	plotH        = panelH - panelTop - panelBottom
	maxPoints    = 2000 // most points in one polyline
	maxNameRunes = 54   // panel titles longer than this are cut short
	xTicksWanted = 6    // most intervals on the time axis
	yTicksWanted = 5    // most intervals on the share axis

	heldColour     = "#1f77b4"
	deservedColour = "#d62728"
	ownedColour    = "#2ca02c"
	deservedDash   = "6 4"
	ownedDash      = "1 4"
)

// WritePlot writes the chart as a standalone SVG document: one panel per
// series in a grid of up to three columns, each showing the share of the
// cluster the consumer held (solid line), the share it deserved (dashed line)
// and, when it owns part of the cluster, its owned share (dotted line) over
// time, under a single legend. Times may repeat (a step at one instant) but
// must not go back. Series longer than 2000 samples are thinned to at most
// 2000 points per line, keeping the first and last samples and the lowest and
// highest value in each stretch of time. The same chart always gives the same
// bytes. Bad input gives an error wrapping api.ErrInvalid and writes nothing.
func WritePlot(w io.Writer, c Chart) error {
	if err := c.validate(); err != nil {
		return err
	}
	var b bytes.Buffer
	c.render(&b)
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write plot: %w", err)
	}
	return nil
}

// validate checks the chart before anything is drawn.
func (c Chart) validate() error {
	if len(c.Series) == 0 {
		return fmt.Errorf("plot: no series: %w", api.ErrInvalid)
	}
	if len(c.Times) == 0 {
		return fmt.Errorf("plot: no sample times: %w", api.ErrInvalid)
	}
	for i, t := range c.Times {
		if math.IsNaN(t) || math.IsInf(t, 0) || t < 0 {
			return fmt.Errorf("plot: time %d is %v; want a finite number of seconds, 0 or more: %w", i, t, api.ErrInvalid)
		}
		if i > 0 && t < c.Times[i-1] {
			return fmt.Errorf("plot: times not ascending: time %d (%vs) comes before time %d (%vs): %w", i, t, i-1, c.Times[i-1], api.ErrInvalid)
		}
	}
	for _, s := range c.Series {
		if len(s.Held) != len(c.Times) {
			return fmt.Errorf("plot: series %q: %d held values for %d times: %w", s.Name, len(s.Held), len(c.Times), api.ErrInvalid)
		}
		if len(s.Deserved) != len(c.Times) {
			return fmt.Errorf("plot: series %q: %d deserved values for %d times: %w", s.Name, len(s.Deserved), len(c.Times), api.ErrInvalid)
		}
		if !validShare(s.Owned) {
			return fmt.Errorf("plot: series %q: owned share is %v; want a finite share, 0 or more: %w", s.Name, s.Owned, api.ErrInvalid)
		}
		for i := range s.Held {
			if !validShare(s.Held[i]) {
				return fmt.Errorf("plot: series %q: held share %d is %v; want a finite share, 0 or more: %w", s.Name, i, s.Held[i], api.ErrInvalid)
			}
			if !validShare(s.Deserved[i]) {
				return fmt.Errorf("plot: series %q: deserved share %d is %v; want a finite share, 0 or more: %w", s.Name, i, s.Deserved[i], api.ErrInvalid)
			}
		}
	}
	return nil
}

func validShare(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0
}

// render writes the SVG document for a validated chart.
func (c Chart) render(b *bytes.Buffer) {
	cols := min(plotCols, len(c.Series))
	rows := (len(c.Series) + cols - 1) / cols
	width := cols * panelW
	height := headerH + rows*panelH + footerH

	fmt.Fprintf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
	fmt.Fprintf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n", width, height, width, height)
	fmt.Fprintf(b, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", width, height)
	fmt.Fprintf(b, "<text class=\"title\" x=\"%d\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", width/2, escape(c.Title))
	writeLegend(b, width)

	xmax, xstep := timeAxis(c.Times[len(c.Times)-1])
	for i, s := range c.Series {
		x0 := (i % cols) * panelW
		y0 := headerH + (i/cols)*panelH
		writePanel(b, x0, y0, s, c.Times, xmax, xstep)
	}
	b.WriteString("</svg>\n")
}

// writeLegend writes the one legend, centred under the chart title.
func writeLegend(b *bytes.Buffer, width int) {
	type entry struct {
		class, colour, dash, label string
		textW                      int // rough width of the label
	}
	entries := []entry{
		{"held", heldColour, "", "held share", 60},
		{"deserved", deservedColour, deservedDash, "deserved share", 84},
		{"owned", ownedColour, ownedDash, "owned share", 66},
	}
	const lineW, gap, pad = 28, 6, 24
	total := 0
	for _, e := range entries {
		total += lineW + gap + e.textW + pad
	}
	total -= pad
	x := (width - total) / 2
	fmt.Fprintf(b, "<g class=\"legend\" transform=\"translate(%d,42)\">\n", max(x, 4))
	x = 0
	for _, e := range entries {
		fmt.Fprintf(b, "<line class=\"%s\" x1=\"%d\" y1=\"0\" x2=\"%d\" y2=\"0\" stroke=\"%s\" stroke-width=\"2\"%s/>", e.class, x, x+lineW, e.colour, dashAttr(e.dash))
		fmt.Fprintf(b, "<text x=\"%d\" y=\"4\">%s</text>\n", x+lineW+gap, e.label)
		x += lineW + gap + e.textW + pad
	}
	b.WriteString("</g>\n")
}

func dashAttr(dash string) string {
	switch dash {
	case "":
		return ""
	case ownedDash:
		return " stroke-dasharray=\"" + dash + "\" stroke-linecap=\"round\""
	default:
		return " stroke-dasharray=\"" + dash + "\""
	}
}

// writePanel writes one series' panel with its top left corner at (x0, y0).
func writePanel(b *bytes.Buffer, x0, y0 int, s Series, times []float64, xmax, xstep float64) {
	ymax, ystep := shareAxis(s)
	fmt.Fprintf(b, "<g class=\"panel\" transform=\"translate(%d,%d)\">\n", x0, y0)
	name := s.Name
	if name == "" {
		name = "(unnamed)"
	}
	short := name
	if utf8.RuneCountInString(short) > maxNameRunes {
		r := []rune(short)
		short = string(r[:maxNameRunes-1]) + "…"
	}
	fmt.Fprintf(b, "<text class=\"panel-title\" x=\"%d\" y=\"16\" font-size=\"12\" font-weight=\"bold\">", panelLeft)
	if short != name {
		fmt.Fprintf(b, "<title>%s</title>", escape(name))
	}
	fmt.Fprintf(b, "%s</text>\n", escape(short))
	fmt.Fprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fafafa\" stroke=\"#999999\"/>\n", panelLeft, panelTop, plotW, plotH)

	px := func(t float64) float64 { return panelLeft + t/xmax*plotW }
	py := func(v float64) float64 { return panelTop + plotH - v/ymax*plotH }

	// Share axis: grid lines and percentage labels.
	for i := 0; ; i++ {
		v := float64(i) * ystep
		if v > ymax*(1+1e-9) {
			break
		}
		y := fmtCoord(py(v))
		if i > 0 {
			fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%s\" x2=\"%d\" y2=\"%s\" stroke=\"#e0e0e0\"/>", panelLeft, y, panelLeft+plotW, y)
		}
		fmt.Fprintf(b, "<text x=\"%d\" y=\"%s\" text-anchor=\"end\" dy=\"4\">%s</text>\n", panelLeft-5, y, percent(v))
	}
	// Time axis: ticks and labels.
	for i := 0; ; i++ {
		t := float64(i) * xstep
		if t > xmax*(1+1e-9) {
			break
		}
		x := fmtCoord(px(t))
		fmt.Fprintf(b, "<line x1=\"%s\" y1=\"%d\" x2=\"%s\" y2=\"%d\" stroke=\"#999999\"/>", x, panelTop+plotH, x, panelTop+plotH+4)
		fmt.Fprintf(b, "<text x=\"%s\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x, panelTop+plotH+16, timeLabel(t, xstep))
	}

	if s.Owned > 0 {
		// Across the samples, or the whole panel when they share one instant.
		x1, x2 := px(times[0]), px(times[len(times)-1])
		if x2-x1 < 4 {
			x1, x2 = panelLeft, panelLeft+plotW
		}
		y := fmtCoord(py(s.Owned))
		fmt.Fprintf(b, "<line class=\"owned\" x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s/>\n", fmtCoord(x1), y, fmtCoord(x2), y, ownedColour, dashAttr(ownedDash))
	}
	writeLine(b, "deserved", deservedColour, deservedDash, times, s.Deserved, px, py)
	writeLine(b, "held", heldColour, "", times, s.Held, px, py)
	b.WriteString("</g>\n")
}

// writeLine writes one polyline of values over times, thinned to at most
// maxPoints points. A single sample draws as a short horizontal stroke; no
// samples draw nothing.
func writeLine(b *bytes.Buffer, class, colour, dash string, times, values []float64, px, py func(float64) float64) {
	if len(values) == 0 {
		return
	}
	fmt.Fprintf(b, "<polyline class=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" stroke-linejoin=\"round\"%s points=\"", class, colour, dashAttr(dash))
	if len(values) == 1 {
		x, y := px(times[0]), py(values[0])
		b.WriteString(fmtCoord(max(x-2, panelLeft)) + "," + fmtCoord(y) + " " + fmtCoord(min(x+2, panelLeft+plotW)) + "," + fmtCoord(y))
		b.WriteString("\"/>\n")
		return
	}
	pts := make([]point, 0, min(len(values), maxPoints))
	for _, i := range decimate(times, values, maxPoints) {
		pts = append(pts, point{tenths(px(times[i])), tenths(py(values[i]))})
	}
	pts = simplify(pts)
	for i, p := range pts {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(fmtTenths(p.x) + "," + fmtTenths(p.y))
	}
	b.WriteString("\"/>\n")
}

// point is a polyline vertex in tenths of a pixel, the precision printed.
type point struct{ x, y int64 }

func tenths(v float64) int64 { return int64(math.Round(v * 10)) }

func fmtTenths(v int64) string {
	return strconv.FormatFloat(float64(v)/10, 'f', 1, 64)
}

func fmtCoord(v float64) string { return fmtTenths(tenths(v)) }

// simplify drops points that repeat the one before and middle points of
// horizontal or vertical runs, which change nothing once drawn.
func simplify(pts []point) []point {
	out := pts[:0]
	for _, p := range pts {
		if n := len(out); n > 0 && out[n-1] == p {
			continue
		}
		if n := len(out); n >= 2 {
			a, m := out[n-2], out[n-1]
			if (a.y == m.y && m.y == p.y && between(a.x, m.x, p.x)) || (a.x == m.x && m.x == p.x && between(a.y, m.y, p.y)) {
				out[n-1] = p
				continue
			}
		}
		out = append(out, p)
	}
	return out
}

// between reports whether m lies between a and c, inclusive.
func between(a, m, c int64) bool {
	return (a <= m && m <= c) || (c <= m && m <= a)
}

// decimate returns the indices of the samples to draw, in order: all of them
// when there are at most limit, otherwise the first and the last and, for
// each of (limit-2)/2 equal stretches of time, the samples with the lowest and
// highest value in it, so peaks and troughs survive.
func decimate(times, values []float64, limit int) []int {
	n := len(values)
	if n <= limit {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	buckets := (limit - 2) / 2
	t0, t1 := times[0], times[n-1]
	span := t1 - t0
	idx := make([]int, 0, limit)
	idx = append(idx, 0)
	lo, hi, cur := -1, -1, -1
	flush := func() {
		if lo < 0 {
			return
		}
		a, c := min(lo, hi), max(lo, hi)
		if a != 0 && a != n-1 {
			idx = append(idx, a)
		}
		if c != a && c != 0 && c != n-1 {
			idx = append(idx, c)
		}
	}
	for i := 1; i < n-1; i++ {
		var k int
		if span > 0 {
			k = min(int((times[i]-t0)/span*float64(buckets)), buckets-1)
		} else {
			k = min(i*buckets/n, buckets-1) // all at one instant: split by index
		}
		if k != cur {
			flush()
			lo, hi, cur = i, i, k
			continue
		}
		if values[i] < values[lo] {
			lo = i
		}
		if values[i] > values[hi] {
			hi = i
		}
	}
	flush()
	return append(idx, n-1)
}

// shareAxis returns the top of a panel's share axis, a round number at or
// above every value in the series and at least 0.1, and the step between its
// labels.
func shareAxis(s Series) (top, step float64) {
	peak := max(s.Owned, 0.1)
	for i := range s.Held {
		peak = max(peak, s.Held[i], s.Deserved[i])
	}
	step = niceStep(peak / yTicksWanted)
	top = math.Ceil(peak/step-1e-9) * step
	return top, step
}

// niceStep returns the smallest of 1, 2, 2.5 and 5 times a power of ten that
// is at least v (v > 0).
func niceStep(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// timeSteps are the round spacings of time-axis ticks, in seconds.
var timeSteps = []float64{
	1, 2, 5, 10, 15, 30,
	60, 2 * 60, 5 * 60, 10 * 60, 15 * 60, 30 * 60,
	3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600,
	2 * 86400, 7 * 86400,
}

// timeAxis returns the end of the time axis, the first round tick at or after
// the last sample (never 0), and the spacing of its ticks.
func timeAxis(last float64) (end, step float64) {
	if last <= 0 {
		return 1, 0.2
	}
	want := last / xTicksWanted
	switch {
	case want < 1:
		step = niceStep(want)
		if step == 2.5*math.Pow(10, math.Floor(math.Log10(step))) {
			step *= 2 // 0.25 s, 0.025 s: avoid three-digit fractions
		}
	case want > timeSteps[len(timeSteps)-1]:
		step = 86400 * niceStep(want/86400)
	default:
		for _, s := range timeSteps {
			if s >= want {
				step = s
				break
			}
		}
	}
	end = math.Ceil(last/step-1e-9) * step
	return end, step
}

// timeLabel formats a tick time in seconds compactly: 0, 500ms, 1.5s, 30s,
// 2m, 1m30s, 1h, 1h30m, 48h.
func timeLabel(t, step float64) string {
	if t == 0 {
		return "0"
	}
	if step < 1 {
		if t < 1 {
			return strconv.FormatFloat(math.Round(t*1e6)/1e3, 'f', -1, 64) + "ms"
		}
		return strconv.FormatFloat(math.Round(t*1e6)/1e6, 'f', -1, 64) + "s"
	}
	sec := int64(math.Round(t))
	h, m, s := sec/3600, sec/60%60, sec%60
	out := ""
	if h > 0 {
		out += strconv.FormatInt(h, 10) + "h"
	}
	if m > 0 {
		out += strconv.FormatInt(m, 10) + "m"
	}
	if s > 0 {
		out += strconv.FormatInt(s, 10) + "s"
	}
	return out
}

// percent formats a share as a percentage label: 0%, 2.5%, 40%.
func percent(v float64) string {
	return strconv.FormatFloat(math.Round(v*1e6)/1e4, 'f', -1, 64) + "%"
}

// escape returns s with the characters XML reserves replaced by entities.
func escape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s)) // writing to a bytes.Buffer does not fail
	return b.String()
}
