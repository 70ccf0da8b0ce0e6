package augment

import (
	"image"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/training/dataset"
)

// warper moves a sample through one Transform. Its buffers hold one
// decoded mask (its bounding box only) and one transformed mask (column
// major, as COCO's RLE runs), reused from object to object and call to
// call.
type warper struct {
	src []byte // source mask inside its bounding box, row major
	dst []byte // output mask, column major: dst[x*outH+y]
}

// warp applies t to s. ph, when not nil, holds the colour matrix to apply
// while sampling (its contrast needs the source's mean grey, so the matrix
// is finished here).
func (w *warper) warp(s dataset.Sample, t Transform, cfg Config, ph *photoParams) dataset.Sample {
	out := dataset.Sample{ID: s.ID, Sequence: s.Sequence}
	var cm *[12]float64
	if ph != nil && ph.color {
		ph.finishMatrix(meanGrey(s.Image))
		cm = &ph.m
	}
	inv := t.Inverse()
	out.Image = warpRGBA(s.Image, inv, t.DstW, t.DstH, cfg.Pad, cm)
	if s.Segmentation != nil {
		out.Segmentation = warpGray(s.Segmentation, inv, t.DstW, t.DstH)
	}
	if len(s.Objects) > 0 {
		out.Objects = make([]dataset.Object, 0, len(s.Objects))
	}
	for _, o := range s.Objects {
		n, ok := w.object(o, t, inv, cfg)
		if ok {
			out.Objects = append(out.Objects, n)
		}
	}
	return out
}

// object moves one object; ok is false when nothing of it is left.
func (w *warper) object(o dataset.Object, t, inv Transform, cfg Config) (dataset.Object, bool) {
	n := o
	n.Keypoints = t.Keypoints(o.Keypoints)
	if t.Det() < 0 {
		SwapLeftRight(n.Keypoints)
	}
	var vis float64
	if o.Mask != nil && o.Mask.Area() > 0 {
		m, box, area := w.mask(*o.Mask, t, inv)
		if box.W() <= 0 || box.H() <= 0 {
			return dataset.Object{}, false
		}
		n.Mask, n.Box = &m, box
		vis = float64(area) / (float64(o.Mask.Area()) * abs(t.Det()))
	} else {
		full := t.BoxUnclipped(o.Box)
		n.Box = clipBox(full, t.DstW, t.DstH)
		if n.Box.W() <= 0 || n.Box.H() <= 0 {
			return dataset.Object{}, false
		}
		vis = float64(n.Box.Area()) / float64(full.Area())
		if o.Mask != nil { // empty mask: keep it empty at the new size
			n.Mask = &frame.Mask{Width: t.DstW, Height: t.DstH, Counts: []uint32{uint32(t.DstW * t.DstH)}}
		}
	}
	if vis < cfg.MinVisible || float64(n.Box.W()) < cfg.MinSide || float64(n.Box.H()) < cfg.MinSide {
		n.Ignore = true
	}
	return n, true
}

// mask transforms one non-empty mask by nearest-neighbour sampling. It
// returns the new mask, its area, and the box: the extent of the source
// mask's pixel squares mapped exactly (each column run is a rectangle,
// whose corners are mapped) and clipped to the output. Nearest sampling can
// lose parts thinner than an output pixel, so the new mask's own extent may
// lie up to a pixel or two inside the box, never outside.
func (w *warper) mask(m frame.Mask, t, inv Transform) (frame.Mask, frame.Box, int) {
	bb := m.BBox()
	x0, y0, bw, bh := int(bb[0]), int(bb[1]), int(bb[2]), int(bb[3])
	w.src = grow(w.src, bw*bh)
	outW, outH := t.DstW, t.DstH
	fw, fh := float32(outW), float32(outH)
	ext := frame.Box{X1: fw, Y1: fh}
	pos, H := 0, m.Height
	for k, c := range m.Counts {
		end := pos + int(c)
		if k%2 == 1 {
			for j := pos; j < end; {
				col, row := j/H, j%H
				n := min(H-row, end-j)
				base := col - x0 - y0*bw
				for r := row; r < row+n; r++ {
					w.src[r*bw+base] = 1
				}
				// The run's part in the output lies between the parts
				// of its left and right edges that are.
				ya, yb := clipLine(t, float64(col), float64(row), float64(row+n))
				ya1, yb1 := clipLine(t, float64(col+1), float64(row), float64(row+n))
				if yb <= ya {
					ya, yb = ya1, yb1
				} else if yb1 > ya1 {
					ya, yb = min(ya, ya1), max(yb, yb1)
				}
				seg := clipBox(t.BoxUnclipped(frame.Box{X1: float32(col), Y1: float32(ya), X2: float32(col + 1), Y2: float32(yb)}), outW, outH)
				if yb > ya && seg.X2 > seg.X1 && seg.Y2 > seg.Y1 {
					ext.X1, ext.Y1 = min(ext.X1, seg.X1), min(ext.Y1, seg.Y1)
					ext.X2, ext.Y2 = max(ext.X2, seg.X2), max(ext.Y2, seg.Y2)
				}
				j += n
			}
		}
		pos = end
	}
	if ext.X2 <= ext.X1 || ext.Y2 <= ext.Y1 {
		return frame.Mask{}, frame.Box{}, 0
	}

	w.dst = grow(w.dst, outW*outH)
	ox0, oy0 := max(int(ext.X1)-1, 0), max(int(ext.Y1)-1, 0)
	ox1, oy1 := min(int(ext.X2)+2, outW), min(int(ext.Y2)+2, outH)
	area := 0
	for y := oy0; y < oy1; y++ {
		yc := float64(y) + 0.5
		u := inv.A*(float64(ox0)+0.5) + inv.B*yc + inv.C - float64(x0)
		v := inv.D*(float64(ox0)+0.5) + inv.E*yc + inv.F - float64(y0)
		for x := ox0; x < ox1; x++ {
			if u >= 0 && v >= 0 && u < float64(bw) && v < float64(bh) && w.src[int(v)*bw+int(u)] != 0 {
				w.dst[x*outH+y] = 1
				area++
			}
			u += inv.A
			v += inv.D
		}
	}
	return encodeCols(w.dst, outW, outH, ox0, ox1), ext, area
}

// clipLine returns the part [ya, yb] of the source column x, rows y0 to
// y1, whose image under t lies in the output (Liang-Barsky); yb <= ya when
// none does. It keeps a rotated run that crosses the border from widening
// the box with the part outside.
func clipLine(t Transform, x, y0, y1 float64) (float64, float64) {
	// p(y) = (t.A*x + t.C, t.D*x + t.F) + y*(t.B, t.E)
	px, py := t.A*x+t.C, t.D*x+t.F
	lo, hi := y0, y1
	for _, c := range [4][2]float64{
		{t.B, px},                    // x' >= 0
		{-t.B, float64(t.DstW) - px}, // x' <= W
		{t.E, py},                    // y' >= 0
		{-t.E, float64(t.DstH) - py}, // y' <= H
	} {
		// Need c[0]*y + c[1] >= 0.
		switch {
		case c[0] == 0:
			if c[1] < 0 {
				return 0, 0
			}
		case c[0] > 0:
			lo = max(lo, -c[1]/c[0])
		default:
			hi = min(hi, -c[1]/c[0])
		}
	}
	return lo, hi
}

// encodeCols run-length encodes a column-major 0/1 mask whose foreground
// lies in columns [x0, x1), as frame.EncodeMask would, and clears those
// columns for the next use.
func encodeCols(col []byte, w, h, x0, x1 int) frame.Mask {
	m := frame.Mask{Width: w, Height: h, Counts: make([]uint32, 0, 16)}
	run := uint32(x0 * h)
	cur := byte(0)
	seg := col[x0*h : x1*h]
	for _, v := range seg {
		if v != cur {
			m.Counts = append(m.Counts, run)
			run, cur = 0, v
		}
		run++
	}
	clear(seg)
	trailing := uint32((w - x1) * h)
	if cur == 1 {
		m.Counts = append(m.Counts, run)
		if trailing > 0 {
			m.Counts = append(m.Counts, trailing)
		}
	} else {
		m.Counts = append(m.Counts, run+trailing)
	}
	return m
}

// warpRGBA samples src bilinearly at inv(output pixel centre); points
// outside src get pad. cm, when not nil, is a colour matrix (3x4, row
// major) applied to each sampled pixel.
func warpRGBA(src *image.RGBA, inv Transform, outW, outH int, pad uint8, cm *[12]float64) *image.RGBA {
	out := newRGBA(outW, outH)
	b := src.Bounds()
	sw, sh := b.Dx(), b.Dy()
	fw, fh := float64(sw), float64(sh)
	spix, stride := src.Pix[src.PixOffset(b.Min.X, b.Min.Y):], src.Stride
	for y := range outH {
		yc := float64(y) + 0.5
		u := inv.A*0.5 + inv.B*yc + inv.C
		v := inv.D*0.5 + inv.E*yc + inv.F
		row := out.Pix[y*out.Stride : y*out.Stride+outW*4]
		for x := 0; x < len(row); x += 4 {
			p := row[x : x+4 : x+4]
			if !(u >= 0 && v >= 0 && u < fw && v < fh) {
				p[0], p[1], p[2], p[3] = pad, pad, pad, 255
				u += inv.A
				v += inv.D
				continue
			}
			// Pixel centres sit at i+0.5; fx >= -0.5, so int(fx+1)-1 floors.
			fx, fy := u-0.5, v-0.5
			x0, y0 := int(fx+1)-1, int(fy+1)-1
			ax, ay := fx-float64(x0), fy-float64(y0)
			x1, y1 := min(x0+1, sw-1), min(y0+1, sh-1)
			x0, y0 = max(x0, 0), max(y0, 0)
			r0, r1 := spix[y0*stride:], spix[y1*stride:]
			i00, i01, i10, i11 := x0*4, x1*4, x0*4, x1*4
			w00, w01 := (1-ax)*(1-ay), ax*(1-ay)
			w10, w11 := (1-ax)*ay, ax*ay
			var c [3]float64
			for k := range 3 {
				c[k] = w00*float64(r0[i00+k]) + w01*float64(r0[i01+k]) + w10*float64(r1[i10+k]) + w11*float64(r1[i11+k])
			}
			if cm != nil {
				c = [3]float64{
					cm[0]*c[0] + cm[1]*c[1] + cm[2]*c[2] + cm[3],
					cm[4]*c[0] + cm[5]*c[1] + cm[6]*c[2] + cm[7],
					cm[8]*c[0] + cm[9]*c[1] + cm[10]*c[2] + cm[11],
				}
			}
			p[0], p[1], p[2], p[3] = clampByte(c[0]), clampByte(c[1]), clampByte(c[2]), 255
			u += inv.A
			v += inv.D
		}
	}
	return out
}

// warpGray samples a class map at the nearest source pixel; points outside
// it are background (0).
func warpGray(src *image.Gray, inv Transform, outW, outH int) *image.Gray {
	out := image.NewGray(image.Rect(0, 0, outW, outH))
	b := src.Bounds()
	fw, fh := float64(b.Dx()), float64(b.Dy())
	spix := src.Pix[src.PixOffset(b.Min.X, b.Min.Y):]
	for y := range outH {
		yc := float64(y) + 0.5
		u := inv.A*0.5 + inv.B*yc + inv.C
		v := inv.D*0.5 + inv.E*yc + inv.F
		row := out.Pix[y*out.Stride : y*out.Stride+outW]
		for x := range row {
			if u >= 0 && v >= 0 && u < fw && v < fh {
				row[x] = spix[int(v)*src.Stride+int(u)]
			}
			u += inv.A
			v += inv.D
		}
	}
	return out
}

// meanGrey estimates a picture's mean luma from every 4th pixel of every
// 4th row, the pivot of a contrast change.
func meanGrey(img *image.RGBA) float64 {
	b := img.Bounds()
	var sum float64
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		row := img.Pix[img.PixOffset(b.Min.X, y) : img.PixOffset(b.Min.X, y)+b.Dx()*4]
		for x := 0; x < len(row); x += 16 {
			sum += 0.299*float64(row[x]) + 0.587*float64(row[x+1]) + 0.114*float64(row[x+2])
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

func clampByte(v float64) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}

// grow returns buf resized to n zeroed bytes, reusing its memory.
func grow(buf []byte, n int) []byte {
	if cap(buf) < n {
		return make([]byte, n)
	}
	buf = buf[:n]
	clear(buf)
	return buf
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
