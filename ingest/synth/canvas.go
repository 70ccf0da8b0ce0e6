package synth

import "math"

// canvas is the scene's label map: one uint16 per pixel, 0 for background and
// tag<<4|part for a pixel of an object (tag = slot+1, part indexes the
// object's palette). Shapes are drawn back to front, so the map ends up
// holding exactly what is visible; Render colours it and Truth reads masks
// from it. A pixel belongs to a shape when its centre lies inside.
type canvas struct {
	w, h int
	lab  []uint16
	// ext is the analytic extent of everything drawn since resetExt, whether
	// on the picture or not: x1, y1, x2, y2.
	ext [4]float32
}

func (c *canvas) resetExt() {
	c.ext = [4]float32{math.MaxFloat32, math.MaxFloat32, -math.MaxFloat32, -math.MaxFloat32}
}

func (c *canvas) extend(x1, y1, x2, y2 float32) {
	c.ext[0] = min(c.ext[0], x1)
	c.ext[1] = min(c.ext[1], y1)
	c.ext[2] = max(c.ext[2], x2)
	c.ext[3] = max(c.ext[3], y2)
}

// pixelRange returns the pixels [i0, i1) whose centres lie in [lo, hi],
// clipped to [0, n).
func pixelRange(lo, hi float32, n int) (int, int) {
	if !(lo <= hi) {
		return 0, 0
	}
	a := math.Ceil(float64(lo) - 0.5)
	b := math.Floor(float64(hi)-0.5) + 1
	a = max(a, 0)
	b = min(b, float64(n))
	if a >= b {
		return 0, 0
	}
	return int(a), int(b)
}

// span fills the pixels of row y whose centres lie in [xl, xr].
func (c *canvas) span(y int, xl, xr float32, l uint16) {
	x0, x1 := pixelRange(xl, xr, c.w)
	if x0 < x1 {
		row := c.lab[y*c.w+x0 : y*c.w+x1]
		for i := range row {
			row[i] = l
		}
	}
}

// ellipse fills an axis-aligned ellipse.
func (c *canvas) ellipse(cx, cy, rx, ry float32, l uint16) {
	c.extend(cx-rx, cy-ry, cx+rx, cy+ry)
	if rx <= 0 || ry <= 0 {
		return
	}
	y0, y1 := pixelRange(cy-ry, cy+ry, c.h)
	for y := y0; y < y1; y++ {
		d := (float32(y) + 0.5 - cy) / ry
		if q := 1 - d*d; q >= 0 {
			half := rx * float32(math.Sqrt(float64(q)))
			c.span(y, cx-half, cx+half, l)
		}
	}
}

// capsule fills the points within r of the segment a-b: a limb with round
// ends.
func (c *canvas) capsule(ax, ay, bx, by, r float32, l uint16) {
	c.extend(min(ax, bx)-r, min(ay, by)-r, max(ax, bx)+r, max(ay, by)+r)
	if r <= 0 {
		return
	}
	dx, dy := bx-ax, by-ay
	len2 := dx*dx + dy*dy
	if len2 < 1e-6 {
		c.ellipse(ax, ay, r, r, l)
		return
	}
	inv := 1 / len2
	r2 := r * r
	y0, y1 := pixelRange(min(ay, by)-r, max(ay, by)+r, c.h)
	x0, x1 := pixelRange(min(ax, bx)-r, max(ax, bx)+r, c.w)
	for y := y0; y < y1; y++ {
		py := float32(y) + 0.5 - ay
		row := c.lab[y*c.w : (y+1)*c.w]
		// Find the first and last pixel of the row inside the capsule; the
		// capsule is convex, so everything between them is inside too.
		first, last := -1, -1
		for x := x0; x < x1; x++ {
			if capsuleHit(float32(x)+0.5-ax, py, dx, dy, inv, r2) {
				first = x
				break
			}
		}
		if first < 0 {
			continue
		}
		for x := x1 - 1; x >= first; x-- {
			if capsuleHit(float32(x)+0.5-ax, py, dx, dy, inv, r2) {
				last = x
				break
			}
		}
		for x := first; x <= last; x++ {
			row[x] = l
		}
	}
}

func capsuleHit(px, py, dx, dy, inv, r2 float32) bool {
	t := min(max((px*dx+py*dy)*inv, 0), 1)
	ex, ey := px-t*dx, py-t*dy
	return ex*ex+ey*ey <= r2
}

// trapezoid fills a shape with horizontal top and bottom edges: at y=top it
// spans [tl, tr], at y=bot [bl, br], with straight sides between.
func (c *canvas) trapezoid(top, bot, tl, tr, bl, br float32, l uint16) {
	c.extend(min(tl, bl), top, max(tr, br), bot)
	if bot <= top {
		return
	}
	y0, y1 := pixelRange(top, bot, c.h)
	inv := 1 / (bot - top)
	for y := y0; y < y1; y++ {
		t := (float32(y) + 0.5 - top) * inv
		c.span(y, tl+(bl-tl)*t, tr+(br-tr)*t, l)
	}
}
