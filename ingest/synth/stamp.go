package synth

import "github.com/vigil-video/vigil/frame"

// The capture-time stamp lets a viewer measure glass-to-glass latency and
// overlay alignment from the picture alone, without trusting any timestamp
// mapping on the way. Layout (the viewer protocol's "synth capture-time
// stamp"): the top-left StampWidth x StampHeight pixels hold 24x2 cells of
// stampCell pixels; cell k = row*24 + col carries bit k. Bits 0-3 are the
// sync pattern 1,0,1,0 and bits 4-47 the time in Unix milliseconds, most
// significant bit first. A 1 is luma 235, a 0 luma 16, and the chroma of the
// area is neutral, so the cells are white and black in RGB. Cells of 16x16
// fall on H.264 macroblocks, which keeps them sharp through an encoder.

// Size of the stamp area in pixels, from the top-left corner of the picture.
const (
	StampWidth  = stampCols * stampCell
	StampHeight = stampRows * stampCell
)

const (
	stampCell    = 16
	stampCols    = 24
	stampRows    = 2
	stampSync    = 4                               // bits of sync pattern
	stampBits    = stampCols*stampRows - stampSync // 44 bits of milliseconds
	stampPattern = 0b0101                          // bit k of the pattern is sync bit k: 1,0,1,0
	stampOne     = 235                             // luma of a 1 (limited-range white)
	stampZero    = 16                              // luma of a 0 (limited-range black)
	stampMask    = int64(1)<<stampBits - 1         // the milliseconds the stamp can hold
	stampProbe   = 8                               // side of the central square ReadStamp averages
	stampInset   = (stampCell - stampProbe) / 2    // offset of that square in its cell
	stampThresh  = 128 * stampProbe * stampProbe   // sum of a probe at the threshold
)

// stampBit returns bit k of the stamp for ms.
func stampBit(ms int64, k int) bool {
	if k < stampSync {
		return stampPattern>>k&1 == 1
	}
	return ms>>(stampBits-1-(k-stampSync))&1 == 1
}

// stampable reports whether f is a 4:2:0 frame whose planes hold the stamp area.
func stampable(f *frame.Frame) bool {
	if f == nil || (f.Format != frame.PixelFormatYUV420P && f.Format != frame.PixelFormatYUVJ420P) ||
		f.Width < StampWidth || f.Height < StampHeight {
		return false
	}
	cw, ch := StampWidth/2, StampHeight/2
	return f.Strides[0] >= StampWidth && f.Strides[1] >= cw && f.Strides[2] >= cw &&
		len(f.Planes[0]) >= (StampHeight-1)*f.Strides[0]+StampWidth &&
		len(f.Planes[1]) >= (ch-1)*f.Strides[1]+cw && len(f.Planes[2]) >= (ch-1)*f.Strides[2]+cw
}

// Stamp draws ms (Unix milliseconds) into the top-left StampWidth x
// StampHeight pixels of a YUV420P or YUVJ420P frame. Only the low 44 bits of
// ms are kept, which last until the year 2527. A frame of another format,
// smaller than the stamp or with short planes is left unchanged.
func Stamp(f *frame.Frame, ms int64) {
	if !stampable(f) {
		return
	}
	ms &= stampMask
	for k := range stampCols * stampRows {
		v := byte(stampZero)
		if stampBit(ms, k) {
			v = stampOne
		}
		x0, y0 := k%stampCols*stampCell, k/stampCols*stampCell
		for y := y0; y < y0+stampCell; y++ {
			row := f.Planes[0][y*f.Strides[0]+x0:][:stampCell]
			for i := range row {
				row[i] = v
			}
		}
	}
	for p := 1; p < 3; p++ {
		for y := range StampHeight / 2 {
			row := f.Planes[p][y*f.Strides[p]:][:StampWidth/2]
			for i := range row {
				row[i] = 128
			}
		}
	}
}

// ReadStamp reads the time Stamp drew into f, in Unix milliseconds. Each
// bit is the mean luma of its cell's central 8x8 pixels against 128, so it
// survives lossy coding; ok is false when the sync bits do not match (an
// unstamped picture) or f cannot hold a stamp.
func ReadStamp(f *frame.Frame) (ms int64, ok bool) {
	if !stampable(f) {
		return 0, false
	}
	for k := range stampCols * stampRows {
		x0 := k%stampCols*stampCell + stampInset
		y0 := k/stampCols*stampCell + stampInset
		sum := 0
		for y := y0; y < y0+stampProbe; y++ {
			for _, v := range f.Planes[0][y*f.Strides[0]+x0:][:stampProbe] {
				sum += int(v)
			}
		}
		bit := sum >= stampThresh
		if k < stampSync {
			if bit != stampBit(0, k) {
				return 0, false
			}
			continue
		}
		ms <<= 1
		if bit {
			ms |= 1
		}
	}
	return ms, true
}
