package prep

import "math"

// cubicA is the free parameter of the bicubic kernel. OpenCV's INTER_CUBIC
// uses -0.75 (PIL and Catmull-Rom use -0.5); Vigil matches OpenCV, which
// most training pipelines resize with.
const cubicA = -0.75

// planKey identifies a geometry: the source region's size and the Spec.
// Tables are relative to the region, so crops of one size share them.
type planKey struct {
	w, h int
	spec Spec
}

// plan holds the resampling tables of one geometry.
type plan struct {
	key        planKey
	nw, nh     int       // content size
	offX, offY int       // content position in the input
	taps       int       // source pixels per output pixel and axis: 1, 2 or 4
	cols       []int32   // source columns some tap reads, ascending
	runs       []int32   // cols as (start, length) runs of adjacent columns
	useRuns    bool      // convert by runs rather than column by column
	adjacent   bool      // bilinear taps are always adjacent pixels (and so adjacent in the converted row)
	x0         []int32   // when adjacent: each content column's first tap
	xIdx       []int32   // per content column, taps offsets (3*index) into the converted row
	xW         []float32 // and their weights
	yIdx       []int32   // per content row, taps source rows
	yW         []float32
	need       []int32 // scratch: compact index of each source column
}

// plan returns the tables for a w x h region and s, building them (into
// the buffers of the least recently built plan when all are in use) when
// the Preparer has none.
func (p *Preparer) plan(w, h int, s Spec) *plan {
	if s.Interp == "" {
		s.Interp = Bilinear
	}
	if s.Align == "" {
		s.Align = Center
	}
	k := planKey{w, h, s}
	for _, pl := range p.plans {
		if pl.key == k {
			return pl
		}
	}
	var pl *plan
	if len(p.plans) < maxPlans {
		pl = new(plan)
		p.plans = append(p.plans, pl)
	} else {
		pl = p.plans[p.next]
		p.next = (p.next + 1) % maxPlans
	}
	pl.build(k)
	return pl
}

func (pl *plan) build(k planKey) {
	pl.key = k
	s := k.spec
	pl.nw, pl.nh, pl.offX, pl.offY = s.Width, s.Height, 0, 0
	if s.Resize == Letterbox {
		scale := min(float64(s.Width)/float64(k.w), float64(s.Height)/float64(k.h))
		pl.nw = min(max(int(math.Round(float64(k.w)*scale)), 1), s.Width)
		pl.nh = min(max(int(math.Round(float64(k.h)*scale)), 1), s.Height)
		if s.Align == Center {
			pl.offX, pl.offY = (s.Width-pl.nw)/2, (s.Height-pl.nh)/2
		}
	}
	switch s.Interp {
	case Nearest:
		pl.taps = 1
	case Bicubic:
		pl.taps = 4
	default:
		pl.taps = 2
	}
	pl.xIdx, pl.xW = axis(pl.xIdx[:0], pl.xW[:0], k.w, pl.nw, s.Interp)
	pl.yIdx, pl.yW = axis(pl.yIdx[:0], pl.yW[:0], k.h, pl.nh, s.Interp)

	// Convert only the source columns some tap reads.
	pl.need = grow(pl.need, k.w)
	fill(pl.need, -1)
	for _, x := range pl.xIdx {
		pl.need[x] = 0
	}
	pl.cols = pl.cols[:0]
	for x, n := range pl.need {
		if n >= 0 {
			pl.need[x] = int32(len(pl.cols))
			pl.cols = append(pl.cols, int32(x))
		}
	}
	for i, x := range pl.xIdx {
		pl.xIdx[i] = 3 * pl.need[x] // offset of the packed RGB triple
	}
	pl.runs = pl.runs[:0]
	for i, x := range pl.cols {
		if i > 0 && x == pl.cols[i-1]+1 {
			pl.runs[len(pl.runs)-1]++
			continue
		}
		pl.runs = append(pl.runs, x, 1)
	}
	pl.adjacent = pl.taps == 2
	for i := 0; i+1 < len(pl.xIdx) && pl.adjacent; i += 2 {
		j0, j1 := pl.xIdx[i]/3, pl.xIdx[i+1]/3
		pl.adjacent = j1 == j0+1 && pl.cols[j1] == pl.cols[j0]+1
	}
	pl.x0 = pl.x0[:0]
	for i := 0; i < len(pl.xIdx) && pl.adjacent; i += 2 {
		pl.x0 = append(pl.x0, pl.cols[pl.xIdx[i]/3])
	}
	// Runs pay off when they are long (upscaling, moderate downscaling);
	// sparse columns (large downscaling with few taps) go one by one.
	pl.useRuns = len(pl.runs)/2*4 <= len(pl.cols)
}

// axis appends, for each of dst output pixels, the source pixels it reads
// (clamped to 0..src-1) and their weights.
func axis(idx []int32, w []float32, src, dst int, interp Interp) ([]int32, []float32) {
	scale := float64(src) / float64(dst)
	last := float64(src - 1)
	for d := range dst {
		c := (float64(d)+0.5)*scale - 0.5
		switch interp {
		case Nearest:
			x := min(int(math.Floor((float64(d)+0.5)*scale)), src-1)
			idx = append(idx, int32(x))
			w = append(w, 1)
		case Bicubic:
			x0 := math.Floor(c)
			k := cubic(c - x0)
			for t := range 4 {
				x := min(max(int(x0)-1+t, 0), src-1)
				idx = append(idx, int32(x))
				w = append(w, float32(k[t]))
			}
		default:
			c = max(0, min(c, last))
			x0 := int(c)
			fx := c - float64(x0)
			if x0 == src-1 && src > 1 {
				// The same value from pixels (src-2, src-1), so that the
				// two taps are always adjacent.
				x0, fx = src-2, 1
			}
			idx = append(idx, int32(x0), int32(min(x0+1, src-1)))
			w = append(w, float32(1-fx), float32(fx))
		}
	}
	return idx, w
}

// cubic returns the weights of pixels -1, 0, 1, 2 around a point at
// fraction x past pixel 0, as OpenCV's interpolateCubic.
func cubic(x float64) [4]float64 {
	const a = cubicA
	var k [4]float64
	k[0] = ((a*(x+1)-5*a)*(x+1)+8*a)*(x+1) - 4*a
	k[1] = ((a+2)*x-(a+3))*x*x + 1
	k[2] = ((a+2)*(1-x)-(a+3))*(1-x)*(1-x) + 1
	k[3] = 1 - k[0] - k[1] - k[2]
	return k
}
