package synth

import "math"

// Palette slots of an object's parts (the low 4 bits of a label).
const (
	partSkin = iota
	partSkinFar
	partHair
	partShirt
	partShirtFar
	partForearm
	partForearmFar
	partPants
	partPantsFar
	partShoe
)

// Car parts share the palette slots; a car has none of the person parts.
const (
	partBody = iota
	partTrim
	partWindow
	partWheel
	partHub
	partHeadlight
	partTaillight
)

// placement maps an object's local coordinates (x forward along its motion,
// y up from the ground, in units of unit metres) to picture pixels.
type placement struct {
	u0, v0 float32 // picture position of the local origin (on the ground)
	px     float32 // pixels per local unit
	dir    float32 // +1 moving right, -1 moving left
}

func (s *Scene) place(o *object, unit float64) placement {
	u, v := s.cam.ground(o.x, o.z)
	dir := float32(1)
	if o.vx < 0 {
		dir = -1
	}
	return placement{u0: float32(u), v0: float32(v), px: float32(s.cam.f / o.z * unit), dir: dir}
}

func (pl placement) at(x, y float32) (float32, float32) {
	return pl.u0 + pl.dir*x*pl.px, pl.v0 - y*pl.px
}

// span maps a local x range to an ordered picture range.
func (pl placement) span(x0, x1 float32) (float32, float32) {
	a, _ := pl.at(x0, 0)
	b, _ := pl.at(x1, 0)
	return min(a, b), max(a, b)
}

func (s *Scene) capsule(pl placement, a, b [2]float32, r float32, l uint16) {
	ax, ay := pl.at(a[0], a[1])
	bx, by := pl.at(b[0], b[1])
	s.cv.capsule(ax, ay, bx, by, r*pl.px, l)
}

func (s *Scene) ellipse(pl placement, c [2]float32, rx, ry float32, l uint16) {
	x, y := pl.at(c[0], c[1])
	s.cv.ellipse(x, y, rx*pl.px, ry*pl.px, l)
}

// trapezoid draws a local trapezoid: [bl, br] at height y0 and [tl, tr] at
// height y1 > y0.
func (s *Scene) trapezoid(pl placement, y0, bl, br, y1, tl, tr float32, l uint16) {
	_, vb := pl.at(0, y0)
	_, vt := pl.at(0, y1)
	bl, br = pl.span(bl, br)
	tl, tr = pl.span(tl, tr)
	s.cv.trapezoid(vt, vb, tl, tr, bl, br, l)
}

func add(a, b [2]float32) [2]float32 { return [2]float32{a[0] + b[0], a[1] + b[1]} }

// polar returns a vector of length n at angle a from straight down, positive
// angles swinging forward.
func polar(n, a float64) [2]float32 {
	return [2]float32{float32(n * math.Sin(a)), float32(-n * math.Cos(a))}
}

// limb is the pose of one side of a walking body, relative to the hip and
// shoulder.
type limb struct {
	knee, ankle, toe  [2]float32
	elbow, wrist      [2]float32
	shoulder, hip     [2]float32
	shirt, arm, pants uint16
	skin              uint16
	kpShoulder, kpHip int
}

// drawPerson draws a side view of a walking person in units of their height.
// The gait swings the legs from the hip with the knee bending in the swing
// phase, and the arms in opposition to the legs; the body rides on whichever
// foot is lower.
func (s *Scene) drawPerson(o *object, tag uint16) {
	pl := s.place(o, o.size)
	var sides [2]limb // near, far
	lowest := float32(0)
	for i := range sides {
		a := o.phase + float64(i)*math.Pi
		th := 0.42 * math.Sin(a)
		k := 0.12 + 0.6*max(0, math.Cos(a))
		sd := &sides[i]
		sd.knee = polar(0.245, th)
		sd.ankle = add(sd.knee, polar(0.245, th-k))
		sd.toe = add(sd.ankle, [2]float32{0.055, -0.012})
		lowest = min(lowest, sd.ankle[1])
		al := -0.35 * math.Sin(a)
		e := 0.25 + 0.3*max(0, -math.Sin(a))
		sd.elbow = polar(0.17, al)
		sd.wrist = add(sd.elbow, polar(0.15, al+e))
	}
	hipY := 0.035 - lowest
	hip := [2]float32{0, hipY}
	shoulder := [2]float32{0.025, hipY + 0.29}
	for i := range sides {
		sd := &sides[i]
		sd.hip, sd.shoulder = hip, shoulder
		sd.knee, sd.ankle, sd.toe = add(hip, sd.knee), add(hip, sd.ankle), add(hip, sd.toe)
		sd.elbow, sd.wrist = add(shoulder, sd.elbow), add(shoulder, sd.wrist)
	}
	sides[0].shirt, sides[0].arm, sides[0].pants, sides[0].skin = partShirt, partForearm, partPants, partSkin
	sides[1].shirt, sides[1].arm, sides[1].pants, sides[1].skin = partShirtFar, partForearmFar, partPantsFar, partSkinFar

	arm := func(sd *limb) {
		s.capsule(pl, sd.shoulder, sd.elbow, 0.032, tag|sd.shirt)
		s.capsule(pl, sd.elbow, sd.wrist, 0.027, tag|sd.arm)
		s.ellipse(pl, sd.wrist, 0.022, 0.024, tag|sd.skin)
	}
	leg := func(sd *limb) {
		s.capsule(pl, sd.hip, sd.knee, 0.046, tag|sd.pants)
		s.capsule(pl, sd.knee, sd.ankle, 0.038, tag|sd.pants)
		s.capsule(pl, sd.ankle, sd.toe, 0.022, tag|partShoe)
	}
	near, far := &sides[0], &sides[1]
	arm(far)
	leg(far)
	s.capsule(pl, [2]float32{0.01, hipY + 0.06}, [2]float32{0.025, hipY + 0.28}, 0.085, tag|partShirt)
	s.ellipse(pl, [2]float32{0, hipY + 0.01}, 0.075, 0.06, tag|partPants)
	leg(near)
	s.capsule(pl, [2]float32{0.025, hipY + 0.30}, [2]float32{0.035, hipY + 0.37}, 0.028, tag|partSkin)
	head := [2]float32{0.04, hipY + 0.40}
	s.ellipse(pl, add(head, [2]float32{-0.008, 0.008}), 0.058, 0.066, tag|partHair)
	s.ellipse(pl, add(head, [2]float32{0.006, -0.006}), 0.052, 0.06, tag|partSkin)
	arm(near)

	// COCO keypoints. Walking right, the camera sees the right side (the
	// person faces along +x with the camera on their right); walking left,
	// the left side.
	l, r := far, near
	lEye, rEye := [2]float32{0.038, 0.013}, [2]float32{0.032, 0.012}
	lEar, rEar := [2]float32{-0.004, 0.002}, [2]float32{-0.008, 0}
	if pl.dir < 0 {
		l, r = near, far
		lEye, rEye = rEye, lEye
		lEar, rEar = rEar, lEar
	}
	pts := [17][2]float32{
		add(head, [2]float32{0.05, -0.01}),
		add(head, lEye), add(head, rEye),
		add(head, lEar), add(head, rEar),
		l.shoulder, r.shoulder,
		l.elbow, r.elbow,
		l.wrist, r.wrist,
		l.hip, r.hip,
		l.knee, r.knee,
		l.ankle, r.ankle,
	}
	for i, p := range pts {
		x, y := pl.at(p[0], p[1])
		o.kp[i] = [2]float32{x, y}
	}
}

// drawCar draws a side view of a car: body, cabin with two windows, wheels
// with hubs, and lights, in metres.
func (s *Scene) drawCar(o *object, tag uint16) {
	pl := s.place(o, 1)
	L, H := float32(o.size), float32(o.height)
	half := L / 2
	bodyTop := 0.52*H + 0.12
	s.trapezoid(pl, 0.2, -half, half, bodyTop, -half+0.06, half-0.12, tag|partBody)
	// Cabin and windows: the windows follow the cabin's sloping sides, inset.
	rb, fb, rt, ft := -0.40*L, 0.22*L, -0.30*L, 0.04*L
	s.trapezoid(pl, bodyTop, rb, fb, H, rt, ft, tag|partBody)
	side := func(b, t, y float32) float32 { return b + (t-b)*(y-bodyTop)/(H-bodyTop) }
	wy0, wy1 := bodyTop+0.05, H-0.06
	s.trapezoid(pl, wy0, side(rb, rt, wy0)+0.08, side(fb, ft, wy0)-0.08,
		wy1, side(rb, rt, wy1)+0.08, side(fb, ft, wy1)-0.08, tag|partWindow)
	pillar := -0.09 * L
	s.trapezoid(pl, wy0-0.01, pillar-0.05, pillar+0.05, wy1+0.01, pillar-0.04, pillar+0.04, tag|partBody)
	s.trapezoid(pl, 0.2, -half, half, 0.33, -half, half, tag|partTrim)
	s.trapezoid(pl, bodyTop-0.2, half-0.24, half-0.1, bodyTop-0.08, half-0.24, half-0.12, tag|partHeadlight)
	s.trapezoid(pl, bodyTop-0.22, -half+0.02, -half+0.14, bodyTop-0.08, -half+0.06, -half+0.16, tag|partTaillight)
	o.lights[0][0], o.lights[0][1] = pl.at(half-0.17, bodyTop-0.14)
	o.lights[1][0], o.lights[1][1] = pl.at(-half+0.09, bodyTop-0.15)
	o.ppm = pl.px
	for _, wx := range []float32{-0.31 * L, 0.31 * L} {
		c := [2]float32{wx, 0.31}
		s.ellipse(pl, c, 0.31, 0.31, tag|partWheel)
		s.ellipse(pl, c, 0.13, 0.13, tag|partHub)
	}
}
