package report

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"strconv"
)

// Series is one line of a chart.
type Series struct {
	// Name is shown in the legend.
	Name string
	// X are the abscissae, e.g. epochs; nil means 0, 1, 2, ...
	X []float64
	// Y are the values; a NaN or infinite value breaks the line.
	Y []float64
	// Right plots the series against a second y axis on the right, for a
	// value on another scale (a learning rate beside a loss).
	Right bool
	// Color is the line's colour; the zero value takes the next colour
	// of the palette.
	Color color.RGBA
}

// ChartWidth and ChartHeight are the size of a chart in pixels.
const (
	ChartWidth  = 800
	ChartHeight = 500
)

var (
	white   = color.RGBA{255, 255, 255, 255}
	black   = color.RGBA{0, 0, 0, 255}
	grey    = color.RGBA{225, 225, 225, 255}
	darkTxt = color.RGBA{40, 40, 40, 255}
	palette = []color.RGBA{
		{31, 119, 180, 255}, {214, 39, 40, 255}, {44, 160, 44, 255}, {255, 127, 14, 255},
		{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {23, 190, 207, 255},
	}
)

// Plot area margins.
const (
	marginLeft   = 80
	marginRight  = 24
	marginRightR = 80 // with a right axis
	marginTop    = 44
	marginBottom = 48
)

// PlotCurves writes a PNG line chart of the series to path: a title,
// axes with numbered ticks and grid lines, a legend, and a second y axis
// on the right when a series asks for one.
func PlotCurves(path, title string, series ...Series) error {
	img, err := Curves(title, series...)
	if err != nil {
		return fmt.Errorf("plotting %s: %w", path, err)
	}
	return writePNG(path, img)
}

// Curves draws the chart PlotCurves writes, ChartWidth x ChartHeight.
func Curves(title string, series ...Series) (*image.RGBA, error) {
	for i, s := range series {
		if s.X != nil && len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("series %d (%q) has %d x and %d y values", i, s.Name, len(s.X), len(s.Y))
		}
	}
	img := image.NewRGBA(image.Rect(0, 0, ChartWidth, ChartHeight))
	fillRect(img, 0, 0, ChartWidth, ChartHeight, white)

	hasRight := false
	for _, s := range series {
		hasRight = hasRight || s.Right
	}
	px0, px1 := marginLeft, ChartWidth-marginRight
	if hasRight {
		px1 = ChartWidth - marginRightR
	}
	py0, py1 := marginTop, ChartHeight-marginBottom

	// Ranges.
	xr, yl, yr := newRange(), newRange(), newRange()
	for _, s := range series {
		for i, y := range s.Y {
			x := xAt(s, i)
			if !finite(x) || !finite(y) {
				continue
			}
			xr.add(x)
			if s.Right {
				yr.add(y)
			} else {
				yl.add(y)
			}
		}
	}
	xt := xr.ticks(8, false)
	ylt := yl.ticks(6, true)
	yrt := yr.ticks(6, true)
	xs := func(v float64) int { return px0 + int(math.Round((v-xt.lo)/(xt.hi-xt.lo)*float64(px1-px0))) }
	ysFor := func(t axis) func(float64) int {
		return func(v float64) int { return py1 - int(math.Round((v-t.lo)/(t.hi-t.lo)*float64(py1-py0))) }
	}
	ysl, ysr := ysFor(ylt), ysFor(yrt)

	// Grid, ticks and labels.
	for _, v := range xt.at {
		x := xs(v)
		fillRect(img, x, py0, x+1, py1, grey)
		fillRect(img, x, py1, x+1, py1+5, black)
		l := xt.label(v)
		drawText(img, x-textWidth(l, 1)/2, py1+9, l, darkTxt, 1)
	}
	for _, v := range ylt.at {
		y := ysl(v)
		fillRect(img, px0, y, px1, y+1, grey)
		fillRect(img, px0-5, y, px0, y+1, black)
		l := ylt.label(v)
		drawText(img, px0-8-textWidth(l, 1), y-textHeight(1)/2, l, darkTxt, 1)
	}
	if hasRight {
		for _, v := range yrt.at {
			y := ysr(v)
			fillRect(img, px1, y, px1+5, y+1, black)
			drawText(img, px1+8, y-textHeight(1)/2, yrt.label(v), darkTxt, 1)
		}
		fillRect(img, px1, py0, px1+1, py1+1, black)
	}
	fillRect(img, px0, py0, px0+1, py1+1, black)
	fillRect(img, px0, py1, px1+1, py1+1, black)
	drawText(img, (ChartWidth-textWidth(title, 2))/2, 12, title, black, 2)

	// Lines, with a marker at each point when there are few.
	colors := make([]color.RGBA, len(series))
	next := 0
	for i, s := range series {
		c := s.Color
		if c == (color.RGBA{}) {
			c = palette[next%len(palette)]
			next++
		}
		colors[i] = c
		ys := ysl
		if s.Right {
			ys = ysr
		}
		marks := len(s.Y) <= 60
		havePrev := false
		var lx, ly int
		for j, y := range s.Y {
			x := xAt(s, j)
			if !finite(x) || !finite(y) {
				havePrev = false
				continue
			}
			cx, cy := xs(x), ys(y)
			if havePrev {
				drawLine(img, lx, ly, cx, cy, 2, c)
			}
			if marks {
				fillRect(img, cx-2, cy-2, cx+3, cy+3, c)
			}
			lx, ly, havePrev = cx, cy, true
		}
	}

	// Legend, top right inside the plot.
	if len(series) > 0 {
		w := 0
		names := make([]string, len(series))
		for i, s := range series {
			names[i] = s.Name
			if s.Right {
				names[i] += " (right)"
			}
			w = max(w, textWidth(names[i], 1))
		}
		lw, lh := w+40, len(series)*14+8
		lx0, ly0 := px1-lw-8, py0+8
		fillRect(img, lx0, ly0, lx0+lw, ly0+lh, white)
		strokeRect(img, lx0, ly0, lx0+lw, ly0+lh, 1, darkTxt)
		for i := range series {
			y := ly0 + 6 + i*14
			fillRect(img, lx0+6, y+2, lx0+26, y+5, colors[i])
			drawText(img, lx0+32, y, names[i], darkTxt, 1)
		}
	}
	return img, nil
}

func xAt(s Series, i int) float64 {
	if s.X == nil {
		return float64(i)
	}
	return s.X[i]
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

type valueRange struct{ lo, hi float64 }

func newRange() valueRange { return valueRange{math.Inf(1), math.Inf(-1)} }

func (r *valueRange) add(v float64) {
	r.lo, r.hi = math.Min(r.lo, v), math.Max(r.hi, v)
}

// axis is a range widened to whole tick steps and its ticks.
type axis struct {
	lo, hi, step float64
	at           []float64
}

// ticks picks a 1, 2 or 5 times a power of ten step giving at most about
// n ticks and widens the range to whole steps. fromZero starts a range of
// positive values at 0 when 0 is not far off, as losses and mAP read best.
func (r valueRange) ticks(n int, fromZero bool) axis {
	lo, hi := r.lo, r.hi
	if lo > hi { // no data
		lo, hi = 0, 1
	}
	if fromZero && lo > 0 && lo < hi/2 {
		lo = 0
	}
	if hi-lo < 1e-12*math.Max(math.Abs(hi), 1) {
		d := math.Max(math.Abs(hi)/10, 0.5)
		if math.Abs(hi) < 1e-9 {
			d = 0.5
		}
		lo, hi = lo-d, hi+d
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, f := range []float64{1, 2, 5} {
		if f*mag >= raw*(1-1e-9) {
			step = f * mag
			break
		}
	}
	// The slack keeps 2.7/0.1 = 26.999... from widening the range.
	a := axis{lo: math.Floor(lo/step+1e-9) * step, hi: math.Ceil(hi/step-1e-9) * step, step: step}
	if a.hi <= a.lo {
		a.hi = a.lo + step
	}
	for k := math.Round(a.lo / step); k*step <= a.hi+step*1e-9; k++ {
		a.at = append(a.at, k*step)
	}
	return a
}

// label formats a tick with as many decimals as the step needs, or in
// exponent form for very small or large numbers.
func (a axis) label(v float64) string {
	if math.Abs(v) < a.step*1e-9 {
		return "0"
	}
	big := math.Max(math.Abs(a.lo), math.Abs(a.hi))
	if a.step < 1e-3 || big >= 1e6 {
		return strconv.FormatFloat(v, 'e', 1, 64)
	}
	dec := max(0, int(-math.Floor(math.Log10(a.step)+1e-9)))
	return strconv.FormatFloat(v, 'f', dec, 64)
}
