package synth

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
)

// lighting turns the scene's colours into what a camera records: the
// domain's light (ambient level, gamma, lamp pools, lit windows, glare),
// colour shift and sensor noise. It is fixed for a scene: the maps are built
// once in newLighting, and Render applies them to each frame. Off (day with
// the default light and noise), Render copies colours untouched.
type lighting struct {
	on    bool
	night bool
	// Ranges every sample is kept in before noise is added, so that adding
	// the noise cannot overflow a byte.
	lo, hi, clo, chi int32
	gam              [256]int32 // luma after the domain's gamma, 0-255
	sat              int32      // chroma gain, 8.8 fixed point
	gain             []uint16   // light per luma sample, 8.8 fixed point
	tu, tv           []int8     // chroma shift per chroma sample
	nY, nC           []byte     // noise tables (int8 bit patterns), nil for none
	seed             uint32
	lit              [3][]byte // the background as the camera records it
	lampU, lampV     int32     // chroma of the lamps' light, around 128
}

// Night's look.
const (
	nightGamma     = 1.5
	nightSat       = 0.6  // chroma kept
	nightSkyLight  = 0.5  // of the ambient light
	lampPoolFar    = 0.8  // light at the foot of a far lamp, above ambient
	lampPoolNear   = 1.1  // the same for the near lamps, out of the picture
	lampPoolRadius = 5.0  // metres, where a pool falls to a quarter
	lampGlare      = 150  // luma added at the centre of a lamp's halo
	lampGlareR     = 1.3  // metres, the halo's radius
	headGlare      = 140  // luma added at a headlight's centre
	headGlareR     = 0.6  // metres
	tailGlare      = 50   // luma added at a tail light's centre
	tailGlareR     = 0.35 // metres
)

// noiseTab is the length of the part of a noise table that rows start in;
// each table holds a picture row more.
const noiseTab = 1 << 16

// glareProfile is the halo's fall-off by squared distance in units of the
// radius, sampled 64 times per unit up to 2 radii (4 units): 256/(1+4t)^2.
var glareProfile = func() (p [256]int32) {
	for i := range p {
		t := float64(i) / 64
		p[i] = int32(math.Round(256 / ((1 + 4*t) * (1 + 4*t))))
	}
	return p
}()

func newLighting(p Params, cam camera, bg *background, lamps []lamp) *lighting {
	lt := &lighting{night: p.Domain == Night}
	light, sigma := p.light(), p.noise()
	lt.on = lt.night || light != 1 || sigma > 0
	if !lt.on {
		return lt
	}
	w, h := p.Width, p.Height
	cw, ch := w/2, h/2
	seed := uint32(p.Seed) ^ uint32(p.Seed>>32)
	lt.seed = hash32(seed ^ 0x4e16)
	r := rand.New(rand.NewPCG(p.Seed, 0x4e16))

	gamma, sat := 1.0, 1.0
	var ambU, ambV float64
	sodium := r.IntN(5) < 3 // drawn first, so that the noise does not change it
	if lt.night {
		gamma, sat = nightGamma, nightSat
		ambU, ambV = 5, -3 // moonlight blue
		if sodium {
			lt.lampU, lt.lampV = -16, 14 // orange
		} else {
			lt.lampU, lt.lampV = 12, -8 // cold LED
		}
	}

	// Noise tables: Gaussian, cut at 3 sigma, which sets the ranges.
	bound := int32(math.Ceil(3 * sigma))
	cbound := int32(math.Ceil(1.5 * sigma))
	if sigma > 0 {
		lt.nY = noiseTable(r, sigma, bound, w)
		lt.nC = noiseTable(r, sigma/2, cbound, cw)
	}
	lt.lo, lt.hi = max(bound, 1), 255-max(bound, 1)
	lt.clo, lt.chi = max(cbound, 1), 255-max(cbound, 1)
	for i := range lt.gam {
		lt.gam[i] = int32(math.Round(16 + 219*math.Pow(max(float64(i)-16, 0)/219, gamma)))
	}
	lt.sat = int32(math.Round(256 * sat))

	// Light per pixel: ambient, and at night the pools under the lamps on
	// the ground.
	lt.gain = make([]uint16, w*h)
	pool := make([]float32, w*h)
	_, baseRow := cam.ground(0, zBuildings)
	for py := range h {
		fy := float64(py) + 0.5
		for px := range w {
			i := py*w + px
			l := light
			switch bg.mat[i] {
			case matSky:
				if lt.night {
					l *= nightSkyLight
				}
			case matGround:
				if !lt.night || fy <= baseRow {
					break
				}
				z := cam.f * cam.height / (fy - cam.horizon)
				gx := (float64(px) + 0.5 - cam.cx) * z / cam.f
				var pl float64
				for _, lp := range lamps {
					dx, dz := gx-lp.x, z-lp.z
					q := 1 + (dx*dx+dz*dz)/(lampPoolRadius*lampPoolRadius)
					in := lampPoolNear
					if lp.shown {
						in = lampPoolFar
					}
					pl += in / (q * q)
				}
				pool[i] = float32(pl)
				l += pl
			}
			lt.gain[i] = uint16(min(math.Round(l*256), math.MaxUint16))
		}
	}
	lt.tu, lt.tv = make([]int8, cw*ch), make([]int8, cw*ch)
	if lt.night {
		for cy := range ch {
			for cx := range cw {
				wgt := math.Min(1, float64(pool[2*cy*w+2*cx])/0.6)
				lt.tu[cy*cw+cx] = int8(math.Round(ambU*(1-wgt) + float64(lt.lampU)*wgt))
				lt.tv[cy*cw+cx] = int8(math.Round(ambV*(1-wgt) + float64(lt.lampV)*wgt))
			}
		}
	}

	// The background as recorded.
	for i := range lt.lit {
		lt.lit[i] = make([]byte, len(bg.y)/[3]int{1, 4, 4}[i])
	}
	for i, y := range bg.y {
		v := lt.luma(y, i)
		if lt.night {
			switch bg.mat[i] {
			case matWindowLit:
				v = min(max(150+int32(hash32(uint32(i)^lt.seed)%6), lt.lo), lt.hi)
			case matLampHead:
				v = lt.hi
			}
		}
		lt.lit[0][i] = byte(v)
	}
	for ci := range bg.u {
		u, v := lt.chroma(bg.u[ci], bg.v[ci], ci)
		if lt.night {
			switch bg.mat[(ci/cw)*2*w+(ci%cw)*2] {
			case matWindowLit:
				u, v = min(max(108, lt.clo), lt.chi), min(max(150, lt.clo), lt.chi)
			case matLampHead:
				u, v = 128+lt.lampU/2, 128+lt.lampV/2
			}
		}
		lt.lit[1][ci], lt.lit[2][ci] = byte(u), byte(v)
	}
	if lt.night {
		for _, lp := range lamps {
			if lp.shown {
				u, v, ppm := lp.head(cam)
				lt.glare(lt.lit[0], lt.lit[1], lt.lit[2], w, h, u, v, lampGlareR*ppm, lampGlare, lt.lampU, lt.lampV)
			}
		}
	}
	return lt
}

func noiseTable(r *rand.Rand, sigma float64, bound int32, row int) []byte {
	t := make([]byte, noiseTab+row)
	for i := range t {
		n := int32(math.Round(r.NormFloat64() * sigma))
		t[i] = byte(int8(min(max(n, -bound), bound)))
	}
	return t
}

// luma returns the recorded luma of reflectance y at luma sample i.
func (lt *lighting) luma(y uint8, i int) int32 {
	v := 16 + (lt.gam[y]-16)*int32(lt.gain[i])>>8
	return min(max(v, lt.lo), lt.hi)
}

// chroma returns the recorded chroma of u, v at chroma sample ci.
func (lt *lighting) chroma(u, v uint8, ci int) (int32, int32) {
	cu := 128 + (int32(u)-128)*lt.sat>>8 + int32(lt.tu[ci])
	cv := 128 + (int32(v)-128)*lt.sat>>8 + int32(lt.tv[ci])
	return min(max(cu, lt.clo), lt.chi), min(max(cv, lt.clo), lt.chi)
}

// glare adds a halo of peak luma at picture position cx, cy with radius r
// pixels, pulling chroma towards the light's tint du, dv.
func (lt *lighting) glare(py, pu, pv []byte, w, h int, cx, cy, r float64, peak, du, dv int32) {
	r = max(r, 0.5)
	// Squared distances in 1/256 pixel units, scaled so that 4 radii^2
	// (the halo's end) is len(glareProfile).
	inv := int64(64 / (r * r) * (1 << 16))
	ccx, ccy := int64(cx*16), int64(cy*16) // 1/16 pixel
	x0, x1 := pixelRange(float32(cx-2*r), float32(cx+2*r), w)
	y0, y1 := pixelRange(float32(cy-2*r), float32(cy+2*r), h)
	for y := y0; y < y1; y++ {
		dy := int64(y)*16 + 8 - ccy
		row := py[y*w : y*w+w]
		for x := x0; x < x1; x++ {
			dx := int64(x)*16 + 8 - ccx
			t := (dx*dx + dy*dy) * inv >> 24
			if t < int64(len(glareProfile)) {
				row[x] = byte(min(int32(row[x])+peak*glareProfile[t]>>8, lt.hi))
			}
		}
	}
	// Strong light washes colour out towards the light's.
	cw := w / 2
	for y := y0 / 2; y < (y1+1)/2; y++ {
		dy := int64(y)*32 + 8 - ccy
		for x := x0 / 2; x < (x1+1)/2; x++ {
			dx := int64(x)*32 + 8 - ccx
			t := (dx*dx + dy*dy) * inv >> 24
			if t >= int64(len(glareProfile)) {
				continue
			}
			f := min(peak*glareProfile[t]>>7, 256)
			ci := y*cw + x
			u, v := int32(pu[ci]), int32(pv[ci])
			u += (128 + du - u) * f >> 8
			v += (128 + dv - v) * f >> 8
			pu[ci] = byte(min(max(u, lt.clo), lt.chi))
			pv[ci] = byte(min(max(v, lt.clo), lt.chi))
		}
	}
}

// addNoise adds frame seq's sensor noise to the planes: each row adds a
// stretch of the noise table that starts at a hash of the frame, the row and
// the seed.
func (lt *lighting) addNoise(py, pu, pv []byte, w, h int, seq uint64) {
	if lt.nY == nil {
		return
	}
	s := hash32(uint32(seq)^uint32(seq>>32)*0x27d4eb2f) ^ lt.seed
	for y := range h {
		off := int(hash32(s^uint32(y)*0x9e3779b1) % noiseTab)
		addBytes(py[y*w:y*w+w], lt.nY[off:off+w])
	}
	cw := w / 2
	for y := range h / 2 {
		off := int(hash32(s^uint32(y)*0x85ebca77^0x51ed) % noiseTab)
		addBytes(pu[y*cw:y*cw+cw], lt.nC[off:off+cw])
		off = int(hash32(s^uint32(y)*0xc2b2ae35^0x2f11) % noiseTab)
		addBytes(pv[y*cw:y*cw+cw], lt.nC[off:off+cw])
	}
}

// addBytes adds b to a byte by byte, modulo 256, eight bytes at a time.
func addBytes(a, b []byte) {
	const hi = 0x8080808080808080
	b = b[:len(a)]
	i := 0
	for ; i+8 <= len(a); i += 8 {
		x := binary.LittleEndian.Uint64(a[i:])
		y := binary.LittleEndian.Uint64(b[i:])
		// Add the low 7 bits of each byte, then put the top bit back without
		// a carry into the next byte.
		binary.LittleEndian.PutUint64(a[i:], ((x&^hi)+(y&^hi))^((x^y)&hi))
	}
	for ; i < len(a); i++ {
		a[i] += b[i]
	}
}
