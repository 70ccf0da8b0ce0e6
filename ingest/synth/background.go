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

// Materials of background pixels, which the lighting treats differently.
const (
	matGround = iota
	matSky
	matWall
	matWindow
	matWindowLit // a window with the light on at night
	matLampHead
)

// background is the empty street: a YUV420P picture and the material of
// each luma sample.
type background struct {
	y, u, v []byte
	mat     []byte
}

// zLamps is the depth of the street lamps, behind the far sidewalk and in
// front of the buildings, so that every object passes in front of them.
const zLamps = 47

// lamp is a street lamp on the ground at x, z; the near ones stand behind
// the camera, out of the picture, and only light the near sidewalk.
type lamp struct {
	x, z   float64
	height float64
	shown  bool
}

// streetLamps places the scene's lamps from the seed.
func streetLamps(cam camera, seed uint64) []lamp {
	r := rand.New(rand.NewPCG(seed, 0x1a3b))
	var ls []lamp
	edge := cam.edge(zLamps) + 1
	for x := -edge - 12*r.Float64(); x < edge; x += 13 + 9*r.Float64() {
		ls = append(ls, lamp{x: x, z: zLamps, height: 6 + r.Float64(), shown: true})
	}
	near := cam.edge(8.5)
	for x := -near - 1 - 2*r.Float64(); ; x = near + 1 + 2*r.Float64() {
		ls = append(ls, lamp{x: x, z: 8.5, height: 6.5})
		if x > 0 {
			break
		}
	}
	return ls
}

// head returns the picture position of the lamp's head and its pixels per
// metre.
func (l lamp) head(cam camera) (u, v, ppm float64) {
	u, v = cam.ground(l.x, l.z)
	ppm = cam.f / l.z
	return u, v - l.height*ppm, ppm
}

// bgOptions are what renderBackground draws beyond the plain street.
type bgOptions struct {
	texture float64 // 0-1, Params.Texture
	lamps   []lamp  // street lamps to draw, nil for none
}

// valueNoise is smooth noise in [0, 1) with a lattice pitch of 1.
func valueNoise(x, y float64, seed uint32) float64 {
	fx, fy := math.Floor(x), math.Floor(y)
	ix, iy := int(fx), int(fy)
	tx, ty := x-fx, y-fy
	tx, ty = tx*tx*(3-2*tx), ty*ty*(3-2*ty)
	c := func(dx, dy int) float64 { return float64(noise(ix+dx, iy+dy, seed)) / 256 }
	a := c(0, 0) + (c(1, 0)-c(0, 0))*tx
	b := c(0, 1) + (c(1, 1)-c(0, 1))*tx
	return a + (b-a)*ty
}

// renderBackground draws the empty street: sky, buildings, grass, sidewalks
// with tiles, and a two-lane road with markings. It depends only on the size,
// the seed and opt, so a scene without objects shows the bare background.
// With opt's zero value it draws the plain street of texture 0; texture
// draws on a random stream of its own, so the plain street's stays as it is.
func renderBackground(w, h int, seed uint64, opt bgOptions) background {
	cam := newCamera(w, h)
	rng := rand.New(rand.NewPCG(seed, 0xb4c4))
	xr := rand.New(rand.NewPCG(seed, 0x7e47)) // texture's stream
	nseed := uint32(seed) ^ uint32(seed>>32)
	bg := background{
		y:   make([]byte, w*h),
		u:   make([]byte, w/2*h/2),
		v:   make([]byte, w/2*h/2),
		mat: make([]byte, w*h),
	}
	t := opt.texture
	tint := func(sat float64) (int, int) {
		a := 2 * math.Pi * xr.Float64()
		c := t * sat * math.Sqrt(xr.Float64())
		return int(math.Round(c * math.Cos(a))), int(math.Round(c * math.Sin(a)))
	}

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
		if du, dv := tint(30); t > 0 {
			dy := int(math.Round(t * 16 * (2*xr.Float64() - 1)))
			b.col = yuv{uint8(int(b.col.y) + dy), uint8(int(b.col.u) + du), uint8(int(b.col.v) + dv)}
			b.win = yuv{uint8(int(b.win.y) + dy), uint8(int(b.win.u) + du/2), uint8(int(b.win.v) + dv/2)}
		}
		blds = append(blds, b)
		x = b.x1 + rng.IntN(h/25+1)
	}
	tile := 1.0 + 0.4*rng.Float64()
	grassY := 85 + rng.IntN(10)

	// Texture's colours: a tint each for sky, paving and grass.
	skyU, skyV := tint(14)
	paveU, paveV := tint(10)
	grassU, grassV := tint(16)
	roadY := int(math.Round(t * 8 * (2*xr.Float64() - 1)))
	course := max(3, h/90) // brick courses on the facades
	tseed := hash32(nseed ^ 0x7e47)
	litSeed := hash32(nseed ^ 0x11)

	pix := func(px, py int) (yuv, byte) {
		n := noise(px, py, nseed)
		fy := float64(py) + 0.5
		if py < base {
			for i := range blds {
				b := &blds[i]
				if px >= b.x0 && px < b.x1 && py >= b.top {
					c := b.col
					m := byte(matWall)
					// A grid of windows, regular in picture space.
					if (px-b.x0)%b.winW > b.winW/3 && (py-b.top)%(b.winW*3/2) > b.winW/2 &&
						px-b.x0 > b.winW/3 && b.x1-px > b.winW/3 {
						c = b.win
						m = matWindow
						if hash32(uint32(i)*0x9e3779b1^uint32((px-b.x0)/b.winW)*0x85ebca77^uint32((py-b.top)/(b.winW*3/2))*0xc2b2ae35^litSeed)%100 < 35 {
							m = matWindowLit
						}
					} else if t > 0 && (py-b.top)%course == 0 {
						c.y = uint8(int(c.y) - int(6*t))
					}
					c.y = uint8(int(c.y) + n%7 - 3)
					return c, m
				}
			}
			if fy < cam.horizon+float64(h)/20 {
				t2 := fy / (cam.horizon + float64(h)/20)
				return yuv{uint8(138 + 10*t2 + float64(n%3)), uint8(140 + skyU), uint8(118 + skyV)}, matSky
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
			if t > 0 {
				lum += int(t * float64(int(hash32(uint32(int(math.Floor(tx))+1<<20)*0x9e3779b1^uint32(int(math.Floor(tz)))^tseed)%13)-6))
				lum += int(t * 16 * (valueNoise(gx/2, z/2, tseed) - 0.5))
			}
			return yuv{uint8(lum + n%9 - 4), uint8(127 + paveU), uint8(129 + paveV)}, matGround
		case z < zRoadStart, z > zRoadEnd && z <= zFarWalkStart:
			return yuv{uint8(138 + n%5), 128, 128}, matGround // kerbs
		case z <= zRoadEnd:
			lum := 72 + n%12
			if (z > 17.0 && z < 17.15) || (z > 24.85 && z < 25.0) ||
				(z > 20.92 && z < 21.08 && math.Mod(gx+1000, 6) < 3) {
				lum = 142 + n%6
			} else if t > 0 {
				// Patched and worn asphalt.
				lum += roadY + int(t*24*(valueNoise(gx/4, z/1.5, tseed^1)-0.5))
				if valueNoise(gx/7, z/3, tseed^2) > 0.72 {
					lum -= int(8 * t)
				}
			}
			return yuv{uint8(lum), 128, 127}, matGround
		default:
			if t > 0 {
				g := int(t * 28 * (valueNoise(gx/1.5, z/1.5, tseed^3) - 0.5))
				return yuv{uint8(grassY + n%16 + g), uint8(110 + grassU), uint8(112 + grassV)}, matGround
			}
			return yuv{uint8(grassY + n%16), 110, 112}, matGround
		}
	}
	for py := range h {
		for px := range w {
			c, m := pix(px, py)
			bg.y[py*w+px] = clampLuma(c.y)
			bg.mat[py*w+px] = m
			if px%2 == 0 && py%2 == 0 {
				bg.u[py/2*(w/2)+px/2] = c.u
				bg.v[py/2*(w/2)+px/2] = c.v
			}
		}
	}
	for _, l := range opt.lamps {
		if l.shown {
			drawLamp(&bg, cam, w, h, l)
		}
	}
	return bg
}

// drawLamp paints a street lamp's pole and head into the background.
func drawLamp(bg *background, cam camera, w, h int, l lamp) {
	u, v := cam.ground(l.x, l.z)
	hu, hv, ppm := l.head(cam)
	fill := func(x0, x1, y0, y1 float64, c yuv, m byte) {
		ix0, ix1 := pixelRange(float32(x0), float32(x1), w)
		iy0, iy1 := pixelRange(float32(y0), float32(y1), h)
		if c := int(math.Floor((x0 + x1) / 2)); ix0 == ix1 && c >= 0 && c < w {
			ix0, ix1 = c, c+1 // at least a pixel wide
		}
		for y := iy0; y < iy1; y++ {
			for x := ix0; x < ix1; x++ {
				bg.y[y*w+x] = c.y
				bg.mat[y*w+x] = m
				if x%2 == 0 && y%2 == 0 {
					bg.u[y/2*(w/2)+x/2] = c.u
					bg.v[y/2*(w/2)+x/2] = c.v
				}
			}
		}
	}
	fill(u-0.09*ppm, u+0.09*ppm, hv, v, yuv{78, 128, 128}, matWall)
	fill(hu-0.4*ppm, hu+0.4*ppm, hv-0.1*ppm, hv+0.12*ppm, yuv{96, 126, 130}, matLampHead)
}

func clampLuma(l uint8) uint8 { return min(max(l, bgLumaMin), bgLumaMax) }
