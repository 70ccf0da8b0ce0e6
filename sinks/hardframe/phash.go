package hardframe

import (
	"math/bits"

	"github.com/vigil-video/vigil/frame"
)

// dHash returns the 64-bit difference hash of f's luma (Krawetz, "Kind of
// Like That", 2013): the picture averaged down to 9x8 cells, and one bit per
// pair of horizontal neighbours, set where the left cell is brighter by
// more than dHashMargin. Averaging whole cells (every second pixel of each)
// rather than sampling points, and the margin, keep sensor noise from
// flipping bits, so two frames of a still night scene hash alike. It reads
// luma from plane 0 of YUV and gray frames and computes it from RGB24; ok
// is false for a frame it cannot read.
func dHash(f *frame.Frame) (h uint64, ok bool) {
	var cells [8][9]uint32
	var counts [8][9]uint32
	w, ht := f.Width, f.Height
	if w < 9 || ht < 8 {
		return 0, false
	}
	rgb := f.Format == frame.PixelFormatRGB24
	switch f.Format {
	case frame.PixelFormatYUV420P, frame.PixelFormatYUVJ420P, frame.PixelFormatGray8, frame.PixelFormatRGB24:
	default:
		return 0, false
	}
	plane, stride := f.Planes[0], f.Strides[0]
	minStride := w
	if rgb {
		minStride = 3 * w
	}
	if stride < minStride || len(plane) < stride*(ht-1)+minStride {
		return 0, false
	}
	// Column cx covers the even x in [edge[cx], edge[cx+1]).
	var edge [10]int
	for cx := range edge {
		edge[cx] = (cx*w + 8) / 9
		edge[cx] += edge[cx] & 1
	}
	for y := 0; y < ht; y += 2 {
		cy := y * 8 / ht
		row := plane[y*stride:]
		for cx := range 9 {
			var sum, n uint32
			for x := edge[cx]; x < edge[cx+1]; x += 2 {
				if rgb {
					p := row[3*x : 3*x+3]
					// BT.601 luma, in integers.
					sum += (299*uint32(p[0]) + 587*uint32(p[1]) + 114*uint32(p[2])) / 1000
				} else {
					sum += uint32(row[x])
				}
				n++
			}
			cells[cy][cx] += sum
			counts[cy][cx] += n
		}
	}
	for y := range 8 {
		for x := range 8 {
			// Compare means without dividing: a/na > b/nb + margin <=>
			// a*nb > b*na + margin*na*nb.
			na, nb := uint64(counts[y][x]), uint64(counts[y][x+1])
			a, b := uint64(cells[y][x]), uint64(cells[y][x+1])
			if a*nb > b*na+dHashMargin*na*nb {
				h |= 1 << (y*8 + x)
			}
		}
	}
	return h, true
}

// dHashMargin is how much brighter, in luma levels, a cell must be than
// its right neighbour to set its bit. Plain dHash sets it for any
// difference, so in flat regions (sky, asphalt) sensor noise flips bits
// from frame to frame; with the margin, near-equal cells stay 0.
const dHashMargin = 2

// hamming is the number of bits in which a and b differ.
func hamming(a, b uint64) int { return bits.OnesCount64(a ^ b) }
