package frame

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// The functions in this file follow pycocotools' C mask API
// (cocodataset/cocoapi common/maskApi.c, Simplified BSD licence) step for
// step, including its integer rounding and uint32 arithmetic, so that masks,
// boxes and IoUs computed here equal those of the COCO evaluator exactly.

// maxPolygonCoord bounds polygon coordinates: maskApi.c walks every
// upsampled boundary pixel, so absurd coordinates would allocate without
// limit (and overflow its int arithmetic).
const maxPolygonCoord = 1 << 22

// maxPolygonPoints bounds the upsampled boundary (5 points per pixel of
// outline; 128 MB of work space at the limit), so that a hostile
// polygon cannot exhaust memory.
const maxPolygonPoints = 1 << 24

// ErrMaskString reports a malformed compressed COCO RLE string.
var ErrMaskString = errors.New("malformed COCO RLE string")

// COCOString returns the compressed string form of the mask's counts, as
// pycocotools' rleToString writes it into "counts": each count (after the
// second, as the difference to the count two before it) in a LEB128-like
// code of 5 value bits per character, characters '0' (48) to 'o' (111).
func (m Mask) COCOString() string {
	s := make([]byte, 0, len(m.Counts)*2)
	for i, c := range m.Counts {
		x := int64(c)
		if i > 2 {
			x -= int64(m.Counts[i-2])
		}
		for more := true; more; {
			ch := byte(x & 0x1f)
			x >>= 5
			if ch&0x10 != 0 {
				more = x != -1
			} else {
				more = x != 0
			}
			if more {
				ch |= 0x20
			}
			s = append(s, ch+48)
		}
	}
	return string(s)
}

// MaskFromCOCOString decodes a compressed COCO RLE string (pycocotools'
// rleFrString) into a width x height mask. It rejects characters outside
// '0'..'o', a value cut short at the end of the string, and counts that do
// not fit in uint32, where the C code would read past the string or wrap.
// It does not check that the counts add up to width*height, as pycocotools
// does not either.
func MaskFromCOCOString(s string, width, height int) (Mask, error) {
	m := Mask{Width: width, Height: height}
	if len(s) > 0 {
		m.Counts = make([]uint32, 0, len(s)/2+1)
	}
	for p := 0; p < len(s); {
		start := p
		var x int64
		for k := 0; ; k++ {
			if p == len(s) {
				return Mask{}, fmt.Errorf("%w: value at byte %d is cut short", ErrMaskString, start)
			}
			if k == 7 {
				return Mask{}, fmt.Errorf("%w: value at byte %d is longer than 7 characters", ErrMaskString, start)
			}
			c := int64(s[p]) - 48
			if c < 0 || c > 63 {
				return Mask{}, fmt.Errorf("%w: byte %d is %q, want '0' to 'o'", ErrMaskString, p, s[p])
			}
			x |= (c & 0x1f) << (5 * k)
			p++
			if c&0x20 == 0 {
				if c&0x10 != 0 {
					x |= -1 << (5 * (k + 1))
				}
				break
			}
		}
		if n := len(m.Counts); n > 2 {
			x += int64(m.Counts[n-2])
		}
		if x < 0 || x > math.MaxUint32 {
			return Mask{}, fmt.Errorf("%w: count %d at byte %d is %d, outside 0..2^32-1", ErrMaskString, len(m.Counts), start, x)
		}
		m.Counts = append(m.Counts, uint32(x))
	}
	return m, nil
}

// MaskFromPolygon rasterises a closed polygon xy = [x0 y0 x1 y1 ...] (COCO
// pixel coordinates, as in "segmentation" polygons) into a
// width x height mask, exactly as pycocotools' rleFrPoly: the boundary is
// upsampled 5 times, walked pixel by pixel and cut into column runs. An odd
// trailing coordinate is ignored, as there. It fails on coordinates that
// are not finite or beyond ±2^22.
func MaskFromPolygon(xy []float64, width, height int) (Mask, error) {
	for i, v := range xy {
		if math.IsNaN(v) || math.Abs(v) > maxPolygonCoord {
			return Mask{}, fmt.Errorf("polygon coordinate %d is %v, outside ±%d", i, v, maxPolygonCoord)
		}
	}
	if width <= 0 || height <= 0 {
		return Mask{Width: width, Height: height, Counts: []uint32{0}}, nil
	}
	k := len(xy) / 2
	const scale = 5.0
	x := make([]int, k+1)
	y := make([]int, k+1)
	for j := range k {
		x[j] = int(scale*xy[2*j] + .5)
		y[j] = int(scale*xy[2*j+1] + .5)
	}
	if k > 0 {
		x[k], y[k] = x[0], y[0]
	}
	n := 0
	for j := range k {
		n += max(absInt(x[j]-x[j+1]), absInt(y[j]-y[j+1])) + 1
	}
	if n > maxPolygonPoints {
		return Mask{}, fmt.Errorf("polygon outline of %d upsampled points is longer than %d", n, maxPolygonPoints)
	}
	u := make([]int32, 0, n)
	v := make([]int32, 0, n)
	for j := range k {
		xs, xe, ys, ye := x[j], x[j+1], y[j], y[j+1]
		dx, dy := absInt(xe-xs), absInt(ys-ye)
		if dx == 0 && dy == 0 {
			// maskApi.c divides 0 by 0 here and converts NaN to int; the
			// point's y is never read (its neighbours share its x), so
			// any value gives the same mask.
			u = append(u, int32(xs))
			v = append(v, int32(ys))
			continue
		}
		flip := (dx >= dy && xs > xe) || (dx < dy && ys > ye)
		if flip {
			xs, xe = xe, xs
			ys, ye = ye, ys
		}
		if dx >= dy {
			s := float64(ye-ys) / float64(dx)
			for d := 0; d <= dx; d++ {
				t := d
				if flip {
					t = dx - d
				}
				u = append(u, int32(t+xs))
				// float64(...) forbids fusing into an FMA, which would round
				// differently from the C code.
				v = append(v, int32(float64(ys)+float64(s*float64(t))+.5))
			}
		} else {
			s := float64(xe-xs) / float64(dy)
			for d := 0; d <= dy; d++ {
				t := d
				if flip {
					t = dy - d
				}
				v = append(v, int32(t+ys))
				u = append(u, int32(float64(xs)+float64(s*float64(t))+.5))
			}
		}
	}
	// Points on the y-boundary, downsampled.
	h, w := uint32(height), uint32(width)
	a := make([]uint32, 0, len(u)+1)
	for j := 1; j < len(u); j++ {
		if u[j] == u[j-1] {
			continue
		}
		var xd float64
		if u[j] < u[j-1] {
			xd = float64(u[j])
		} else {
			xd = float64(u[j] - 1)
		}
		xd = (xd+.5)/scale - .5
		if math.Floor(xd) != xd || xd < 0 || xd > float64(width-1) {
			continue
		}
		yd := float64(min(v[j], v[j-1]))
		yd = (yd+.5)/scale - .5
		if yd < 0 {
			yd = 0
		} else if yd > float64(height) {
			yd = float64(height)
		}
		yd = math.Ceil(yd)
		a = append(a, uint32(int(xd)*height+int(yd)))
	}
	a = append(a, h*w)
	slices.Sort(a)
	var prev uint32
	for j, t := range a {
		a[j] -= prev
		prev = t
	}
	b := make([]uint32, 0, len(a))
	b = append(b, a[0])
	for j := 1; j < len(a); {
		if a[j] > 0 {
			b = append(b, a[j])
			j++
			continue
		}
		j++
		if j < len(a) {
			b[len(b)-1] += a[j]
			j++
		}
	}
	return Mask{Width: width, Height: height, Counts: b}, nil
}

// MaskFromBox rasterises the box [x, y, x+bw, y+bh] as a polygon, as
// pycocotools' rleFrBbox does.
func MaskFromBox(x, y, bw, bh float64, width, height int) (Mask, error) {
	xe, ye := x+bw, y+bh
	return MaskFromPolygon([]float64{x, y, x, ye, xe, ye, xe, y}, width, height)
}

// BBox returns the mask's bounding box [x, y, w, h] in pixels, as
// pycocotools' rleToBbox computes it (all zero for an empty mask).
func (m Mask) BBox() [4]float64 {
	h, w := uint32(m.Height), uint32(m.Width)
	n := len(m.Counts) / 2 * 2
	if n == 0 || h == 0 {
		return [4]float64{}
	}
	xs, ys, xe, ye := w, h, uint32(0), uint32(0)
	var cc, xp uint32
	for j := range n {
		cc += m.Counts[j]
		t := cc - uint32(j%2)
		y := t % h
		x := (t - y) / h
		if j%2 == 0 {
			xp = x
		} else if xp < x {
			ys, ye = 0, h-1
		}
		xs, xe = min(xs, x), max(xe, x)
		ys, ye = min(ys, y), max(ye, y)
	}
	return [4]float64{float64(xs), float64(ys), float64(xe - xs + 1), float64(ye - ys + 1)}
}

// BoxIoU is the IoU of two [x, y, w, h] boxes as pycocotools' bbIou
// computes it; with crowd, the union is the area of dt alone, so a
// detection inside a crowd region scores high.
func BoxIoU(dt, gt [4]float64, crowd bool) float64 {
	w := math.Min(dt[2]+dt[0], gt[2]+gt[0]) - math.Max(dt[0], gt[0])
	if w <= 0 {
		return 0
	}
	h := math.Min(dt[3]+dt[1], gt[3]+gt[1]) - math.Max(dt[1], gt[1])
	if h <= 0 {
		return 0
	}
	// float64() keeps Go from fusing products into FMAs, which the C
	// code (built for plain x86-64) never does.
	i := float64(w * h)
	da := float64(dt[2] * dt[3])
	u := da
	if !crowd {
		u = da + float64(gt[2]*gt[3]) - i
	}
	return i / u
}

// MaskIoU is the IoU of two masks as pycocotools' rleIou computes it: 0
// when their bounding boxes do not overlap, -1 when their sizes differ,
// and with crowd the intersection over the area of dt alone. Masks whose
// runs add up to different lengths (invalid; see Valid) also give -1.
func MaskIoU(dt, gt Mask, crowd bool) float64 {
	if BoxIoU(dt.BBox(), gt.BBox(), crowd) <= 0 {
		return 0
	}
	if dt.Width != gt.Width || dt.Height != gt.Height {
		return -1
	}
	if len(dt.Counts) == 0 || len(gt.Counts) == 0 || dt.runLength() != gt.runLength() {
		// maskApi.c reads past an empty list, and loops forever when one
		// list runs out before the other.
		return -1
	}
	ca, cb := dt.Counts[0], gt.Counts[0]
	ka, kb := len(dt.Counts), len(gt.Counts)
	va, vb := false, false
	a, b := 1, 1
	var i, u uint32
	for ct := uint32(1); ct > 0; {
		c := min(ca, cb)
		if va || vb {
			u += c
			if va && vb {
				i += c
			}
		}
		ct = 0
		ca -= c
		if ca == 0 && a < ka {
			ca = dt.Counts[a]
			a++
			va = !va
		}
		ct += ca
		cb -= c
		if cb == 0 && b < kb {
			cb = gt.Counts[b]
			b++
			vb = !vb
		}
		ct += cb
	}
	if i == 0 {
		u = 1
	} else if crowd {
		u = uint32(dt.Area())
	}
	return float64(i) / float64(u)
}

// MergeMasks returns the union of the masks (pycocotools' merge with
// intersect=false). Masks of different sizes give an empty 0x0 mask, as
// there (and so do masks whose runs add up to different lengths); no
// masks give the zero Mask.
func MergeMasks(ms ...Mask) Mask { return mergeMasks(ms, false) }

// IntersectMasks returns the intersection of the masks, with the same
// rules as MergeMasks.
func IntersectMasks(ms ...Mask) Mask { return mergeMasks(ms, true) }

func mergeMasks(ms []Mask, intersect bool) Mask {
	switch len(ms) {
	case 0:
		return Mask{}
	case 1:
		return Mask{Width: ms[0].Width, Height: ms[0].Height, Counts: append([]uint32(nil), ms[0].Counts...)}
	}
	h, w := ms[0].Height, ms[0].Width
	cnts := append([]uint32(nil), ms[0].Counts...)
	for _, B := range ms[1:] {
		if B.Height != h || B.Width != w {
			return Mask{}
		}
		if len(cnts) > 0 && len(B.Counts) > 0 && runLength(cnts) != B.runLength() {
			return Mask{}
		}
		if len(cnts) == 0 || len(B.Counts) == 0 {
			// maskApi.c would read past an empty count list; an empty
			// list holds no pixels, so the result is the other mask.
			if len(cnts) == 0 {
				cnts = append(cnts[:0], B.Counts...)
			}
			continue
		}
		A := cnts
		out := make([]uint32, 0, len(A)+len(B.Counts))
		ca, cb := A[0], B.Counts[0]
		v, va, vb := false, false, false
		a, b := 1, 1
		var cc uint32
		for ct := uint32(1); ct > 0; {
			c := min(ca, cb)
			cc += c
			ct = 0
			ca -= c
			if ca == 0 && a < len(A) {
				ca = A[a]
				a++
				va = !va
			}
			ct += ca
			cb -= c
			if cb == 0 && b < len(B.Counts) {
				cb = B.Counts[b]
				b++
				vb = !vb
			}
			ct += cb
			vp := v
			if intersect {
				v = va && vb
			} else {
				v = va || vb
			}
			if v != vp || ct == 0 {
				out = append(out, cc)
				cc = 0
			}
		}
		cnts = out
	}
	return Mask{Width: w, Height: h, Counts: cnts}
}

// Valid reports whether the mask's runs cover exactly Width*Height
// pixels, as every mask pycocotools makes does.
func (m Mask) Valid() error {
	if m.Width < 0 || m.Height < 0 {
		return fmt.Errorf("mask size %dx%d is negative", m.Width, m.Height)
	}
	if n, want := m.runLength(), uint64(m.Width)*uint64(m.Height); n != want {
		return fmt.Errorf("mask runs add up to %d pixels, want %dx%d = %d", n, m.Width, m.Height, want)
	}
	return nil
}

func (m Mask) runLength() uint64 { return runLength(m.Counts) }

func runLength(c []uint32) uint64 {
	var n uint64
	for _, v := range c {
		n += uint64(v)
	}
	return n
}

func absInt(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
