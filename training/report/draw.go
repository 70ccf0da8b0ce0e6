package report

import (
	"image"
	"image/color"
)

// fillRect fills [x0,x1) x [y0,y1), clipped to img.
func fillRect(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	r := image.Rect(x0, y0, x1, y1).Intersect(img.Rect)
	if r.Empty() {
		return
	}
	// Fill the first row, then copy it down.
	first := img.Pix[img.PixOffset(r.Min.X, r.Min.Y):][:4*r.Dx()]
	for i := 0; i < len(first); i += 4 {
		first[i], first[i+1], first[i+2], first[i+3] = c.R, c.G, c.B, c.A
	}
	for y := r.Min.Y + 1; y < r.Max.Y; y++ {
		copy(img.Pix[img.PixOffset(r.Min.X, y):], first)
	}
}

// strokeRect draws the outline of [x0,x1) x [y0,y1) with lines w pixels
// wide inside the rectangle.
func strokeRect(img *image.RGBA, x0, y0, x1, y1, w int, c color.RGBA) {
	fillRect(img, x0, y0, x1, y0+w, c)
	fillRect(img, x0, y1-w, x1, y1, c)
	fillRect(img, x0, y0, x0+w, y1, c)
	fillRect(img, x1-w, y0, x1, y1, c)
}

// drawLine draws a line w pixels wide from (x0,y0) to (x1,y1) with
// Bresenham's algorithm, clipped to img.
func drawLine(img *image.RGBA, x0, y0, x1, y1, w int, c color.RGBA) {
	// Far-off points (a NaN turned into a huge int) would loop for ever.
	const lim = 1 << 20
	if abs(x0) > lim || abs(y0) > lim || abs(x1) > lim || abs(y1) > lim {
		return
	}
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	e := dx + dy
	lo := w / 2
	for {
		fillRect(img, x0-lo, y0-lo, x0-lo+w, y0-lo+w, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
