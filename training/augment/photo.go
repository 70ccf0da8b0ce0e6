package augment

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"math"
	"math/rand/v2"
)

// photoParams are one draw of the photometric changes.
type photoParams struct {
	// color is set when brightness, contrast, saturation or hue change;
	// m is then their combined 3x4 colour matrix (row major), finished by
	// finishMatrix once the source's mean grey is known.
	color                   bool
	bright, contr, sat, hue float64
	m                       [12]float64
	noise                   float64 // standard deviation in levels, 0 for none
	blur                    float64 // sigma in pixels, 0 for none
	quality                 int     // JPEG quality, 0 for none
}

// photo holds the scratch memory of the photometric changes.
type photo struct {
	blur blurScratch
	buf  bytes.Buffer
}

// draw picks the photometric changes of one sample.
func (*photo) draw(c Config, rng *rand.Rand) photoParams {
	factor := func(r float64) float64 { return 1 + r*(2*rng.Float64()-1) }
	p := photoParams{
		bright: factor(c.Brightness),
		contr:  factor(c.Contrast),
		sat:    factor(c.Saturation),
		hue:    c.Hue * (2*rng.Float64() - 1),
	}
	p.color = c.Brightness > 0 || c.Contrast > 0 || c.Saturation > 0 || c.Hue > 0
	if rng.Float64() < c.NoiseProb {
		p.noise = c.NoiseStd * rng.Float64()
	}
	if rng.Float64() < c.BlurProb {
		lo := min(0.5, c.BlurMaxSigma)
		p.blur = lo + (c.BlurMaxSigma-lo)*rng.Float64()
	}
	if rng.Float64() < c.JPEGProb {
		p.quality = c.JPEGQualityMin + rng.IntN(c.JPEGQualityMax-c.JPEGQualityMin+1)
	}
	return p
}

// Luma weights of ITU-R BT.601, which saturation and contrast pivot on.
const wr, wg, wb = 0.299, 0.587, 0.114

// finishMatrix combines, in this order, brightness (scale), contrast
// (towards the mean grey, mean being the source's), saturation (towards
// each pixel's grey) and a hue rotation about the grey axis in YIQ space.
// Grey stays grey through saturation and hue, so the offset is the
// contrast's alone.
func (p *photoParams) finishMatrix(mean float64) {
	// Hue: H = T^-1 * R(angle) * T with T the RGB to YIQ matrix.
	t := [9]float64{wr, wg, wb, 0.596, -0.274, -0.322, 0.211, -0.523, 0.312}
	ti := inv3(t)
	s, c := math.Sincos(2 * math.Pi * p.hue)
	r := [9]float64{1, 0, 0, 0, c, -s, 0, s, c}
	h := mul3(ti, mul3(r, t))
	// Saturation: S = sat*I + (1-sat) * 1 * w^T.
	var sm [9]float64
	w := [3]float64{wr, wg, wb}
	for i := range 3 {
		for j := range 3 {
			sm[i*3+j] = (1 - p.sat) * w[j]
			if i == j {
				sm[i*3+j] += p.sat
			}
		}
	}
	l := mul3(h, sm)
	k := p.contr * p.bright
	off := (1 - p.contr) * p.bright * mean
	for i := range 3 {
		for j := range 3 {
			p.m[i*4+j] = l[i*3+j] * k
		}
		p.m[i*4+3] = off
	}
}

// finish applies the changes that work on the output picture: blur, then
// noise, then JPEG, the order a camera applies optics, sensor and encoder.
func (ph *photo) finish(img *image.RGBA, p *photoParams, rng *rand.Rand) error {
	if p.blur > 0 {
		gaussianBlur(img, p.blur, &ph.blur)
	}
	if p.noise > 0 {
		addNoise(img, p.noise, rng)
	}
	if p.quality > 0 {
		if err := ph.jpeg(img, p.quality); err != nil {
			return err
		}
	}
	return nil
}

// jpeg passes img through a JPEG encoder and decoder in place.
func (ph *photo) jpeg(img *image.RGBA, quality int) error {
	ph.buf.Reset()
	if err := jpeg.Encode(&ph.buf, img, &jpeg.Options{Quality: quality}); err != nil {
		return fmt.Errorf("encoding JPEG at quality %d: %w", quality, err)
	}
	dec, err := jpeg.Decode(bytes.NewReader(ph.buf.Bytes()))
	if err != nil {
		return fmt.Errorf("decoding JPEG at quality %d: %w", quality, err)
	}
	draw.Draw(img, img.Bounds(), dec, dec.Bounds().Min, draw.Src)
	return nil
}

// addNoise adds Gaussian noise of standard deviation sigma to each colour
// channel. Each normal deviate is the sum of four random bytes (Irwin-Hall,
// close to normal within 3 sigma), so one Uint64 makes two: cheap enough
// for every pixel of every sample.
func addNoise(img *image.RGBA, sigma float64, rng *rand.Rand) {
	// Four uniform bytes sum to mean 510 and variance 4*(256^2-1)/12.
	const mean, std = 510, 147.80
	k := sigma / std
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := img.Pix[img.PixOffset(b.Min.X, y) : img.PixOffset(b.Min.X, y)+b.Dx()*4]
		for x := 0; x < len(row); x += 4 {
			r1, r2 := rng.Uint64(), rng.Uint64()
			n0 := float64(int(r1&255+r1>>8&255+r1>>16&255+r1>>24&255) - mean)
			n1 := float64(int(r1>>32&255+r1>>40&255+r1>>48&255+r1>>56) - mean)
			n2 := float64(int(r2&255+r2>>8&255+r2>>16&255+r2>>24&255) - mean)
			row[x] = clampByte(float64(row[x]) + k*n0)
			row[x+1] = clampByte(float64(row[x+1]) + k*n1)
			row[x+2] = clampByte(float64(row[x+2]) + k*n2)
		}
	}
}

// gaussianBlur blurs img in place with a separable Gaussian of the given
// sigma (radius 2 sigma, edges repeated), in 14-bit fixed point.
func gaussianBlur(img *image.RGBA, sigma float64, sc *blurScratch) {
	const one = 1 << 14
	radius := max(1, int(math.Ceil(2*sigma)))
	kern := make([]int32, 2*radius+1)
	var wsum float64
	wf := make([]float64, len(kern))
	for i := range wf {
		d := float64(i - radius)
		wf[i] = math.Exp(-d * d / (2 * sigma * sigma))
		wsum += wf[i]
	}
	var isum int32
	for i := range kern {
		kern[i] = int32(math.Round(wf[i] / wsum * one))
		isum += kern[i]
	}
	kern[radius] += one - isum // weights sum to exactly one

	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if cap(sc.hb) < w*h*4 {
		sc.hb = make([]byte, w*h*4)
	}
	if cap(sc.acc) < w*4 {
		sc.acc = make([]int32, w*4)
	}
	hb, acc := sc.hb[:w*h*4], sc.acc[:w*4]
	pix, stride := img.Pix[img.PixOffset(b.Min.X, b.Min.Y):], img.Stride
	// Both passes add one shifted row per tap into a row of accumulators:
	// simple loops the compiler keeps free of bounds checks. Alpha is
	// blurred too; it stays 255 since the weights sum to one.
	// Horizontal: img -> hb.
	n := w * 4
	for y := range h {
		src := pix[y*stride : y*stride+n]
		clear(acc)
		for i, kv := range kern {
			off := (i - radius) * 4
			lo, hi := max(0, -off), min(n, n-off)
			if lo < hi {
				mac(acc[lo:hi], src[lo+off:hi+off], kv)
			}
			for j := 0; j < min(lo, n); j++ { // left edge repeats pixel 0
				acc[j] += kv * int32(src[j%4])
			}
			for j := max(hi, 0); j < n; j++ { // right edge repeats the last
				acc[j] += kv * int32(src[n-4+j%4])
			}
		}
		store14(hb[y*n:(y+1)*n], acc)
	}
	// Vertical: hb -> img.
	for y := range h {
		clear(acc)
		for i, kv := range kern {
			r := min(max(y+i-radius, 0), h-1)
			mac(acc, hb[r*n:(r+1)*n], kv)
		}
		store14(pix[y*stride:y*stride+n], acc)
	}
}

// mac adds k*src to acc, element by element.
func mac(acc []int32, src []byte, k int32) {
	src = src[:len(acc)]
	for j, v := range src {
		acc[j] += k * int32(v)
	}
}

// store14 writes the 14-bit fixed-point values of acc, rounded, to dst.
func store14(dst []byte, acc []int32) {
	dst = dst[:len(acc)]
	for j, v := range acc {
		dst[j] = round14(v)
	}
}

// blurScratch is gaussianBlur's memory: the horizontally blurred picture
// and one row of accumulators.
type blurScratch struct {
	hb  []byte
	acc []int32
}

func round14(v int32) uint8 { return uint8(min(max((v+1<<13)>>14, 0), 255)) }

func mul3(a, b [9]float64) [9]float64 {
	var c [9]float64
	for i := range 3 {
		for j := range 3 {
			c[i*3+j] = a[i*3]*b[j] + a[i*3+1]*b[3+j] + a[i*3+2]*b[6+j]
		}
	}
	return c
}

func inv3(m [9]float64) [9]float64 {
	a, b, c, d, e, f, g, h, i := m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]
	det := a*(e*i-f*h) - b*(d*i-f*g) + c*(d*h-e*g)
	return [9]float64{
		(e*i - f*h) / det, (c*h - b*i) / det, (b*f - c*e) / det,
		(f*g - d*i) / det, (a*i - c*g) / det, (c*d - a*f) / det,
		(d*h - e*g) / det, (b*g - a*h) / det, (a*e - b*d) / det,
	}
}
