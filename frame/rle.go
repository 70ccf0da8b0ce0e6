package frame

// Mask is a binary mask over a whole Width x Height frame in COCO's
// run-length encoding: Counts alternate runs of 0s and 1s, starting with 0s
// (so Counts[0] may be 0), over the pixels in column-major order (down
// each column, then across), exactly as pycocotools stores it. A person in
// a 768x576 frame takes a few hundred runs instead of 442 KB of pixels.
type Mask struct {
	Width, Height int
	Counts        []uint32
}

// EncodeMask run-length encodes a row-major mask of w*h bytes; any
// non-zero byte is foreground.
func EncodeMask(data []byte, w, h int) Mask {
	m := Mask{Width: w, Height: h}
	var run uint32
	cur := byte(0)
	for x := range w {
		for y := range h {
			v := byte(0)
			if data[y*w+x] != 0 {
				v = 1
			}
			if v != cur {
				m.Counts = append(m.Counts, run)
				run, cur = 0, v
			}
			run++
		}
	}
	m.Counts = append(m.Counts, run)
	return m
}

// Decode writes the mask row-major into dst (1 for foreground, 0 for
// background), growing it to Width*Height bytes, and returns it.
func (m Mask) Decode(dst []byte) []byte {
	n := m.Width * m.Height
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	clear(dst)
	i := 0
	for k, c := range m.Counts {
		if k%2 == 1 {
			for j := i; j < i+int(c) && j < n; j++ {
				dst[(j%m.Height)*m.Width+j/m.Height] = 1
			}
		}
		i += int(c)
	}
	return dst
}

// Area returns the number of foreground pixels.
func (m Mask) Area() int {
	a := 0
	for k := 1; k < len(m.Counts); k += 2 {
		a += int(m.Counts[k])
	}
	return a
}
