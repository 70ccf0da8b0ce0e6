package dataset

import (
	"bufio"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // decodes JPEG images in COCO and YOLO folders
	"image/png"
	"os"

	"github.com/vigil-video/vigil/frame"
)

// loadImage reads a PNG or JPEG file as RGBA.
func loadImage(path string) (*image.RGBA, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading image: %w", err)
	}
	defer f.Close()
	img, _, err := image.Decode(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("decoding image %s: %w", path, err)
	}
	return toRGBA(img), nil
}

// toRGBA returns img as an *image.RGBA with its origin at 0,0, converting
// when needed.
func toRGBA(img image.Image) *image.RGBA {
	if r, ok := img.(*image.RGBA); ok && r.Bounds().Min == (image.Point{}) {
		return r
	}
	b := img.Bounds()
	r := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(r, r.Bounds(), img, b.Min, draw.Src)
	return r
}

// writePNG writes img to path as PNG.
func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing image: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	err = enc.Encode(w, img)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing image %s: %w", path, err)
	}
	return nil
}

// resizeRGBA shrinks (or grows) src to w x h by averaging the source
// pixels each destination pixel covers (area filter, nearest when
// growing). It reuses dst when its size fits.
func resizeRGBA(src *image.RGBA, w, h int, dst *image.RGBA) *image.RGBA {
	sw, sh := src.Bounds().Dx(), src.Bounds().Dy()
	if dst == nil || dst.Bounds().Dx() != w || dst.Bounds().Dy() != h {
		dst = image.NewRGBA(image.Rect(0, 0, w, h))
	}
	x0s, x1s := spans(sw, w)
	y0s, y1s := spans(sh, h)
	for y := range h {
		ya, yb := y0s[y], y1s[y]
		for x := range w {
			xa, xb := x0s[x], x1s[x]
			var s [4]uint32
			for sy := ya; sy < yb; sy++ {
				row := src.Pix[sy*src.Stride:]
				for sx := xa; sx < xb; sx++ {
					p := row[sx*4 : sx*4+4]
					s[0] += uint32(p[0])
					s[1] += uint32(p[1])
					s[2] += uint32(p[2])
					s[3] += uint32(p[3])
				}
			}
			n := uint32((yb - ya) * (xb - xa))
			d := dst.Pix[y*dst.Stride+x*4 : y*dst.Stride+x*4+4]
			for c := range 4 {
				d[c] = byte((s[c] + n/2) / n)
			}
		}
	}
	return dst
}

// spans returns, for each of n destination cells over a source of length
// src, the source range [a, b) it covers (at least one pixel).
func spans(src, n int) (a, b []int) {
	a, b = make([]int, n), make([]int, n)
	for i := range n {
		a[i] = i * src / n
		b[i] = (i + 1) * src / n
		if b[i] <= a[i] {
			b[i] = a[i] + 1
		}
		if b[i] > src {
			a[i], b[i] = src-1, src
		}
	}
	return a, b
}

// resampleMask maps a row-major byte mask of sw x sh to w x h by sampling
// each destination pixel's centre, writing into dst.
func resampleMask(src []byte, sw, sh, w, h int, dst []byte) []byte {
	if cap(dst) < w*h {
		dst = make([]byte, w*h)
	}
	dst = dst[:w*h]
	xs := make([]int, w)
	for x := range w {
		xs[x] = min((2*x+1)*sw/(2*w), sw-1)
	}
	for y := range h {
		sy := min((2*y+1)*sh/(2*h), sh-1)
		srow := src[sy*sw : sy*sw+sw]
		drow := dst[y*w : y*w+w]
		for x, sx := range xs {
			drow[x] = srow[sx]
		}
	}
	return dst
}

// Segment paints the objects' masks into a class map of w x h: 0 for
// background and Class+1 under each mask, later objects over earlier
// ones. Objects without a mask or with a class outside 0-254 are skipped.
func Segment(objs []Object, w, h int) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	var buf []byte
	for _, o := range objs {
		if o.Mask == nil || o.Class < 0 || o.Class > 254 || o.Mask.Width != w || o.Mask.Height != h {
			continue
		}
		buf = o.Mask.Decode(buf)
		v := byte(o.Class + 1)
		for i, m := range buf {
			if m != 0 {
				g.Pix[i] = v
			}
		}
	}
	return g
}

// scaleBox scales a box by sx, sy.
func scaleBox(b frame.Box, sx, sy float32) frame.Box {
	return frame.Box{X1: b.X1 * sx, Y1: b.Y1 * sy, X2: b.X2 * sx, Y2: b.Y2 * sy}
}
