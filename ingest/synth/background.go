package synth

import (
	"math"
	"math/rand/v2"
)

// Luma bands. The background stays within [bgLumaMin, bgLumaMax] and every
// object colour lies outside it, so each pixel of an object's mask differs
// from the background under it: what a segmenter is asked to find is there
// in the picture.
const (
	bgLumaMin = 64
	bgLumaMax = 150
)

// Ground layout in metres of depth from the camera. The near sidewalk starts
// just below the bottom of the picture (zBottom is about 10.3 m).
const (
	zNearWalkEnd  = 16.2
	zRoadStart    = 16.8
	zRoadEnd      = 25.2
	zFarWalkStart = 25.8
	zFarWalkEnd   = 46
	zBuildings    = 60
)

// camera is a pinhole camera 5 m above flat ground, looking level along the
// depth axis with the horizon at 22% of the picture height. The focal length
// scales with the height, so a scene looks the same at every resolution.
type camera struct {
	f, cx, horizon, height float64
}

func newCamera(w, h int) camera {
	return camera{f: 1.6 * float64(h), cx: float64(w) / 2, horizon: 0.22 * float64(h), height: 5}
}

// ground returns the picture position of a point on the ground.
func (c camera) ground(x, z float64) (u, v float64) {
	return c.cx + c.f*x/z, c.horizon + c.f*c.height/z
}

// edge returns the lateral distance at depth z where the picture ends.
func (c camera) edge(z float64) float64 { return c.cx / c.f * z }

// hash32 is a small integer hash (lowbias32) for per-pixel noise.
func hash32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	return x
}

func noise(x, y int, seed uint32) int {
	return int(hash32(uint32(x)*0x9e3779b1^uint32(y)*0x85ebca77^seed) & 0xff)
}

type building struct {
	x0, x1 int // picture columns
	top    int // picture row of the roof
	col    yuv
	win    yuv
	winW   int // window pitch in pixels
}

// renderBackground draws the empty street: sky, buildings, grass, sidewalks
// with tiles, and a two-lane road with markings. It depends only on the size
// and the seed, so a scene without objects shows the bare background.
func renderBackground(w, h int, seed uint64) (y, u, v []byte) {
	cam := newCamera(w, h)
	rng := rand.New(rand.NewPCG(seed, 0xb4c4))
	nseed := uint32(seed) ^ uint32(seed>>32)
	y = make([]byte, w*h)
	u = make([]byte, w/2*h/2)
	v = make([]byte, w/2*h/2)

	_, baseRow := cam.ground(0, zBuildings)
	base := int(baseRow)
	var blds []building
	for x := 0; x < w; {
		bw := int(float64(h) * (0.08 + 0.2*rng.Float64()))
		b := building{
			x0:   x,
			x1:   min(x+bw, w),
			top:  int(float64(h) * (0.02 + 0.2*rng.Float64())),
			col:  yuv{uint8(75 + rng.IntN(45)), uint8(118 + rng.IntN(20)), uint8(118 + rng.IntN(20))},
			winW: max(4, h/60+rng.IntN(h/90+1)),
		}
		b.win = yuv{b.col.y - 10 + uint8(rng.IntN(3))*10, 128 + uint8(rng.IntN(8)), 124 + uint8(rng.IntN(8))}
		blds = append(blds, b)
		x = b.x1 + rng.IntN(h/25+1)
	}
	tile := 1.0 + 0.4*rng.Float64()
	grassY := 85 + rng.IntN(10)

	pix := func(px, py int) yuv {
		n := noise(px, py, nseed)
		fy := float64(py) + 0.5
		if py < base {
			for i := range blds {
				b := &blds[i]
				if px >= b.x0 && px < b.x1 && py >= b.top {
					c := b.col
					// A grid of windows, regular in picture space.
					if (px-b.x0)%b.winW > b.winW/3 && (py-b.top)%(b.winW*3/2) > b.winW/2 &&
						px-b.x0 > b.winW/3 && b.x1-px > b.winW/3 {
						c = b.win
					}
					c.y = uint8(int(c.y) + n%7 - 3)
					return c
				}
			}
			if fy < cam.horizon+float64(h)/20 {
				t := fy / (cam.horizon + float64(h)/20)
				return yuv{uint8(138 + 10*t + float64(n%3)), 140, 118}
			}
		}
		// Ground: back-project the pixel centre.
		z := cam.f * cam.height / (fy - cam.horizon)
		gx := (float64(px) + 0.5 - cam.cx) * z / cam.f
		switch {
		case z < zNearWalkEnd, z > zFarWalkStart && z < zFarWalkEnd:
			lum := 120
			if z > zFarWalkStart {
				lum = 110
			}
			tx, tz := gx/tile, z/tile
			if fx, fz := tx-math.Floor(tx), tz-math.Floor(tz); fx < 0.04 || fz < 0.04*z/12 {
				lum -= 22 // seams between tiles
			}
			return yuv{uint8(lum + n%9 - 4), 127, 129}
		case z < zRoadStart, z > zRoadEnd && z <= zFarWalkStart:
			return yuv{uint8(138 + n%5), 128, 128} // kerbs
		case z <= zRoadEnd:
			lum := 72 + n%12
			if (z > 17.0 && z < 17.15) || (z > 24.85 && z < 25.0) ||
				(z > 20.92 && z < 21.08 && math.Mod(gx+1000, 6) < 3) {
				lum = 142 + n%6
			}
			return yuv{uint8(lum), 128, 127}
		default:
			return yuv{uint8(grassY + n%16), 110, 112}
		}
	}
	for py := range h {
		for px := range w {
			c := pix(px, py)
			y[py*w+px] = clampLuma(c.y)
			if px%2 == 0 && py%2 == 0 {
				u[py/2*(w/2)+px/2] = c.u
				v[py/2*(w/2)+px/2] = c.v
			}
		}
	}
	return y, u, v
}

func clampLuma(l uint8) uint8 { return min(max(l, bgLumaMin), bgLumaMax) }
