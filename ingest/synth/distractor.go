package synth

import "math"

// ClassNone is the Class of a distractor: not an object a detector should
// report.
const ClassNone = -1

// Kinds of distractor, after kindPerson and kindCar.
const (
	kindPole kind = iota + kindCar + 1
	kindSign
	kindBin
	kindBush
	kindDog
)

var kindLabels = [...]string{
	kindPerson: "person", kindCar: "car", kindPole: "pole", kindSign: "sign",
	kindBin: "bin", kindBush: "bush", kindDog: "dog",
}

// distractorIDs is the first distractor ID, far above any target's, so that
// distractors never take an identity from the targets' sequence.
const distractorIDs = 1 << 62

// Kerb depths, where poles and signs stand.
const (
	zNearKerb = (zNearWalkEnd + zRoadStart) / 2
	zFarKerb  = (zRoadEnd + zFarWalkStart) / 2
)

// spawnDistractor replaces o with a new distractor, drawn from the
// distractors' own random stream. Poles and signs stand on the kerbs, bins
// and bushes on the sidewalks, and dogs walk along the sidewalks; only dogs
// move, and a dog that leaves the picture is replaced by one entering it.
func (s *Scene) spawnDistractor(o *object, initial bool) {
	r := s.drng
	*o = object{id: s.nextDID}
	s.nextDID++
	near := r.IntN(2) == 0
	walk := func() float64 {
		if near {
			return 10.8 + (zNearWalkEnd-0.3-10.8)*r.Float64()
		}
		return zFarWalkStart + 0.4 + (44-zFarWalkStart-0.4)*r.Float64()
	}
	// Colours stay inside the background's luma band, unlike the targets'.
	grey := func(lo, n int) yuv { return yuv{uint8(lo + r.IntN(n)), uint8(124 + r.IntN(8)), uint8(124 + r.IntN(8))} }
	switch o.kind = kindPole + kind(r.IntN(5)); o.kind {
	case kindPole:
		o.z = zFarKerb
		if near {
			o.z = zNearKerb
		}
		o.height = 3 + 1.5*r.Float64()
		o.pal[0] = grey(70, 40)
	case kindSign:
		o.z = zFarKerb
		if near {
			o.z = zNearKerb
		}
		o.height = 2.2 + 0.4*r.Float64()
		o.size = float64(r.IntN(2)) // 0 round, 1 square
		o.pal[0] = grey(80, 30)
		switch r.IntN(3) {
		case 0:
			o.pal[1] = yuv{uint8(76 + r.IntN(12)), 100, 196} // red
		case 1:
			o.pal[1] = yuv{uint8(70 + r.IntN(12)), 176, 108} // blue
		default:
			o.pal[1] = yuv{uint8(135 + r.IntN(10)), 60, 150} // yellow
		}
	case kindBin:
		o.z = walk()
		o.height = 0.9 + 0.2*r.Float64()
		o.size = 0.5 + 0.2*r.Float64()
		o.pal[0] = yuv{uint8(68 + r.IntN(30)), uint8(110 + r.IntN(20)), uint8(110 + r.IntN(20))}
		o.pal[1] = grey(70, 20)
	case kindBush:
		o.z = walk()
		o.height = 0.7 + 0.6*r.Float64()
		o.size = 1 + 0.8*r.Float64()
		g := uint8(72 + r.IntN(40))
		o.pal[0] = yuv{g, uint8(100 + r.IntN(12)), uint8(100 + r.IntN(14))}
		o.pal[1] = yuv{g - 6, o.pal[0].u + 3, o.pal[0].v}
	case kindDog:
		o.z = walk()
		o.size = 0.55 + 0.4*r.Float64()
		o.vx = 0.8 + 1.4*r.Float64()
		if r.IntN(2) == 0 {
			o.vx = -o.vx
		}
		o.cycle = 1.2 * o.size
		o.phase = 2 * math.Pi * r.Float64()
		fur := yuv{uint8(80 + r.IntN(60)), uint8(110 + r.IntN(14)), uint8(134 + r.IntN(16))}
		o.pal[0] = fur
		o.pal[1] = yuv{fur.y - 8, fur.u, fur.v}
		o.pal[2] = yuv{70, 128, 128}
	}
	o.zMin, o.zMax = o.z, o.z
	edge := s.cam.edge(o.z)
	switch {
	case initial || o.vx == 0:
		o.x = edge * (2*r.Float64() - 1)
	default:
		o.x = -math.Copysign(1, o.vx) * (edge + o.margin() + 2*r.Float64())
	}
}

// drawDistractor draws a distractor in metres.
func (s *Scene) drawDistractor(o *object, tag uint16) {
	pl := s.place(o, 1)
	H, L := float32(o.height), float32(o.size)
	switch o.kind {
	case kindPole:
		s.trapezoid(pl, 0, -0.07, 0.07, H, -0.05, 0.05, tag)
	case kindSign:
		s.trapezoid(pl, 0, -0.04, 0.04, H, -0.04, 0.04, tag)
		if L == 0 {
			s.ellipse(pl, [2]float32{0, H}, 0.32, 0.32, tag|1)
		} else {
			s.trapezoid(pl, H-0.3, -0.3, 0.3, H+0.3, -0.3, 0.3, tag|1)
		}
	case kindBin:
		s.trapezoid(pl, 0, -0.42*L, 0.42*L, H, -0.5*L, 0.5*L, tag)
		s.trapezoid(pl, H, -0.53*L, 0.53*L, H+0.06, -0.48*L, 0.48*L, tag|1)
	case kindBush:
		s.ellipse(pl, [2]float32{-0.28 * L, 0.4 * H}, 0.3*L, 0.4*H, tag|1)
		s.ellipse(pl, [2]float32{0.3 * L, 0.38 * H}, 0.28*L, 0.38*H, tag|1)
		s.ellipse(pl, [2]float32{0, 0.5 * H}, 0.36*L, 0.5*H, tag)
	case kindDog:
		legs := func(part uint16, off float64) {
			for _, x := range []float32{-0.3 * L, 0.28 * L} {
				a := 0.45 * math.Sin(o.phase+off+float64(x))
				s.capsule(pl, [2]float32{x, 0.42 * L}, add([2]float32{x, 0.42 * L}, polar(0.38*float64(L), a)), 0.05*L, tag|part)
			}
		}
		legs(1, math.Pi)
		s.capsule(pl, [2]float32{-0.4 * L, 0.5 * L}, [2]float32{-0.58 * L, 0.7 * L}, 0.035*L, tag)
		s.ellipse(pl, [2]float32{0, 0.5 * L}, 0.42*L, 0.15*L, tag)
		s.capsule(pl, [2]float32{0.3 * L, 0.52 * L}, [2]float32{0.46 * L, 0.7 * L}, 0.08*L, tag)
		s.ellipse(pl, [2]float32{0.5 * L, 0.74 * L}, 0.13*L, 0.11*L, tag)
		s.ellipse(pl, [2]float32{0.64 * L, 0.7 * L}, 0.07*L, 0.05*L, tag|2)
		legs(0, 0)
	}
}
