// Package synth generates a street scene seen by a fixed camera, with exact
// ground truth, for testing, evaluating and training Vigil without a camera.
//
// Params (parsed from a synth:// URL query) go in; out come YUV420P pictures
// (Scene.Render) and, for the same instant, each visible object's identity,
// class, box, COCO keypoints, instance mask and occlusion (Scene.Truth).
// People walk with an articulated gait and cars drive along a two-lane road;
// both enter and leave at the picture borders, and a new identity replaces
// each one that leaves. Distractors (poles, signs, bins, bushes, dogs) hide
// the targets behind them but are not targets themselves. The background's
// variety, the domain (Day, or Night with its low light, lamps, glare,
// colour shift and sensor noise) and JPEG artefacts change the picture but
// never the truth.
//
// Everything follows from Params: the same Params give byte-identical
// pictures and truth. Labelled pictures come from a Scene walked frame by
// frame (Render, Truth, Step) or, one at a time, from Snapshot; ToRGB turns
// a picture into RGBA for a trainer. The package does no I/O and starts no
// goroutines.
package synth

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/vigil-video/vigil/frame"
)

// Classes of objects, numbered as in the 80-class COCO detection set that
// YOLOX and the other COCO-trained detectors emit.
const (
	ClassPerson = 0
	ClassCar    = 2
)

// KeypointNames are the 17 COCO person keypoints, in the order of
// Object.Keypoints.
var KeypointNames = []string{
	"nose", "left_eye", "right_eye", "left_ear", "right_ear",
	"left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
	"left_wrist", "right_wrist", "left_hip", "right_hip",
	"left_knee", "right_knee", "left_ankle", "right_ankle",
}

// Skeleton lists the limbs between KeypointNames as 0-based index pairs: the
// COCO person skeleton (which numbers keypoints from 1).
var Skeleton = [][2]int{
	{15, 13}, {13, 11}, {16, 14}, {14, 12}, {11, 12}, {5, 11}, {6, 12},
	{5, 6}, {5, 7}, {6, 8}, {7, 9}, {8, 10}, {1, 2}, {0, 1}, {0, 2},
	{1, 3}, {2, 4}, {3, 5}, {4, 6},
}

// Object is the ground truth for one visible object at the scene's current
// frame.
type Object struct {
	// ID identifies the object for as long as it stays in the scene; IDs start
	// at 1 and are never reused.
	ID uint64
	// Class is ClassPerson or ClassCar and Label its name ("person", "car");
	// a distractor (Scene.Distractors) has ClassNone and its kind as Label.
	Class int
	Label string
	// Box is the visible extent: the pixels of Mask, so clipped to the
	// picture and cut back by whatever stands in front.
	Box frame.Box
	// Full is the whole object's extent, as if nothing hid it and the picture
	// were unbounded (what MOT benchmarks annotate).
	Full frame.Box
	// Keypoints holds the 17 COCO keypoints of a person (nil for a car).
	// Score is 1 when the point's pixel shows this object, 0 when the point
	// lies outside the picture or behind another object.
	Keypoints frame.Keypoints
	// Mask covers the frame with 1 for each pixel that shows this object,
	// exactly as Render draws it (before light, noise and compression
	// change its colour), and 0 elsewhere.
	Mask *frame.Mask
	// Occlusion is the fraction of the object's pixels inside the picture
	// that other objects or distractors hide, from 0 (fully seen) to below 1.
	// Pixels outside the picture do not count.
	Occlusion float32
	// Depth is the distance from the camera in metres; larger is further.
	Depth float32
}

type kind uint8

const (
	kindPerson kind = iota
	kindCar
)

type yuv struct{ y, u, v uint8 }

// object is one person or car in world coordinates: x is lateral and z the
// depth in metres, on the ground plane.
type object struct {
	id     uint64
	kind   kind
	x, z   float64
	vx, vz float64
	zMin   float64 // the band of depths it may wander in
	zMax   float64
	size   float64       // person height or car length, metres
	height float64       // car height, metres
	phase  float64       // gait phase, radians
	cycle  float64       // metres walked per gait cycle
	pal    [16]yuv       // colours by part
	lights [2][2]float32 // a car's head and tail light in the picture
	ppm    float32       // a car's pixels per metre

	// Results of the last rasterisation.
	full       [4]float32
	kp         [17][2]float32
	unoccluded int // pixels inside the picture before nearer objects were drawn
	visible    int
	vbox       [4]int // visible pixels: x0, y0, x1, y1 (exclusive)
}

// Scene is a generated street scene at one frame. It starts at frame 0; Step
// moves it to the next frame. A Scene is not safe for concurrent use.
//
// The truth for frame N of a stream is reproducible: NewScene with the
// stream's Params, then N calls to Step (or Replay).
type Scene struct {
	p       Params
	cam     camera
	rng     *rand.Rand // the targets'
	drng    *rand.Rand // the distractors'
	seq     uint64
	nextID  uint64
	nextDID uint64
	objs    []object // targets, then distractors
	order   []int    // slots, far to near
	bg      [3][]byte
	lt      *lighting
	cv      canvas
	drawn   bool   // cv and the objects' render results are up to date
	maskBuf []byte // scratch for Truth's masks
	jpeg    jpegCodec
}

// NewScene builds the scene at frame 0. It panics if p does not pass
// Validate; ParseParams returns only valid Params.
func NewScene(p Params) *Scene {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	n := p.Objects + p.Distractors
	s := &Scene{
		p:       p,
		cam:     newCamera(p.Width, p.Height),
		rng:     rand.New(rand.NewPCG(p.Seed, 0x5c3e)),
		drng:    rand.New(rand.NewPCG(p.Seed, 0xd157)),
		nextID:  1,
		nextDID: distractorIDs,
		objs:    make([]object, n),
		order:   make([]int, n),
		cv:      canvas{w: p.Width, h: p.Height, lab: make([]uint16, p.Width*p.Height)},
	}
	opt := bgOptions{texture: p.Texture}
	lamps := streetLamps(s.cam, p.Seed)
	if p.Texture > 0 || p.Domain == Night {
		opt.lamps = lamps
	}
	bg := renderBackground(p.Width, p.Height, p.Seed, opt)
	s.bg = [3][]byte{bg.y, bg.u, bg.v}
	s.lt = newLighting(p, s.cam, &bg, lamps)
	for i := range s.objs {
		if i < p.Objects {
			s.spawn(&s.objs[i], true)
		} else {
			s.spawnDistractor(&s.objs[i], true)
		}
		s.order[i] = i
	}
	s.sortOrder()
	return s
}

// Snapshot renders frame n of the scene that p describes into dst (as
// Render does) and returns its truth (as Truth does): one labelled picture,
// for training and evaluation. It replays the scene from frame 0, so to walk
// through a sequence, step one Scene instead: Render, Truth, Step.
func Snapshot(p Params, n uint64, dst *frame.Frame) []Object {
	s := NewScene(p)
	for range n {
		s.Step()
	}
	s.Render(dst)
	return s.Truth()
}

// Replay returns the truth of frame n of the scene that p describes.
func Replay(p Params, n uint64) []Object {
	s := NewScene(p)
	for range n {
		s.Step()
	}
	return s.Truth()
}

// Params returns the parameters the scene was built with.
func (s *Scene) Params() Params { return s.p }

// Seq returns the number of the current frame, 0 for a new scene.
func (s *Scene) Seq() uint64 { return s.seq }

// Step advances the scene by one frame (1/FPS seconds): objects move, and
// those that left the picture are replaced by new ones entering it.
func (s *Scene) Step() {
	dt := 1 / s.p.FPS
	for i := range s.objs {
		o := &s.objs[i]
		o.x += o.vx * dt
		o.z += o.vz * dt
		if o.z < o.zMin || o.z > o.zMax {
			o.vz = -o.vz
			o.z = min(max(o.z, o.zMin), o.zMax)
		}
		if o.kind == kindPerson || o.kind == kindDog {
			o.phase = math.Mod(o.phase+2*math.Pi*math.Abs(o.vx)*dt/o.cycle, 2*math.Pi)
		}
		if i >= s.p.Objects {
			if o.vx != 0 && o.x*math.Copysign(1, o.vx) > s.cam.edge(o.z)+o.margin() {
				s.spawnDistractor(o, false)
			}
			continue
		}
		if o.x*math.Copysign(1, o.vx) > s.cam.edge(o.z)+o.margin() {
			s.spawn(o, false)
		}
	}
	s.sortOrder()
	s.seq++
	s.drawn = false
}

// margin is how far past the picture edge the object's centre must be for
// none of it to show.
func (o *object) margin() float64 {
	switch o.kind {
	case kindCar:
		return o.size/2 + 0.3
	case kindDog:
		return 0.7*o.size + 0.3
	}
	return 0.4 * o.size
}

// spawn replaces o with a new object. At the start objects are placed
// anywhere across the picture; later they enter from a side.
func (s *Scene) spawn(o *object, initial bool) {
	r := s.rng
	*o = object{id: s.nextID}
	s.nextID++
	dir := 1.0
	if r.IntN(2) == 0 {
		dir = -1
	}
	if r.Float64() < 0.3 {
		o.kind = kindCar
		o.size = 3.9 + 1.0*r.Float64()
		o.height = 1.4 + 0.25*r.Float64()
		// Right-hand traffic: the near lane drives right, the far lane left.
		lane := 19.0
		if dir < 0 {
			lane = 23.0
		}
		o.z = lane + 0.6*(r.Float64()-0.5)
		o.zMin, o.zMax = o.z, o.z
		o.vx = dir * (4 + 5*r.Float64())
		s.carColours(o)
	} else {
		o.kind = kindPerson
		o.size = 1.5 + 0.4*r.Float64()
		if r.IntN(2) == 0 {
			o.zMin, o.zMax = 10.6, zNearWalkEnd-0.3
		} else {
			o.zMin, o.zMax = zFarWalkStart+0.4, 44
		}
		o.z = o.zMin + (o.zMax-o.zMin)*r.Float64()
		o.vx = dir * (1.0 + 0.7*r.Float64())
		o.vz = 0.5 * (r.Float64() - 0.5)
		o.cycle = 0.8 * o.size
		o.phase = 2 * math.Pi * r.Float64()
		s.personColours(o)
	}
	edge := s.cam.edge(o.z)
	if initial {
		o.x = edge * (2*r.Float64() - 1)
	} else {
		// Enter from the side it moves away from, up to 1.5 s out so that
		// replacements do not arrive in step.
		o.x = -dir * (edge + o.margin() + 1.5*math.Abs(o.vx)*r.Float64())
	}
}

// colour returns a colour whose luma lies outside the background band:
// dark or bright.
func (s *Scene) colour(bright bool, sat float64) yuv {
	r := s.rng
	var l int
	if bright {
		l = 170 + r.IntN(60)
	} else {
		l = 19 + r.IntN(34)
		sat *= 0.5
	}
	h := 2 * math.Pi * r.Float64()
	c := sat * math.Sqrt(r.Float64())
	return yuv{uint8(l), uint8(128 + c*math.Cos(h)), uint8(128 + c*math.Sin(h))}
}

// shade darkens a colour for the far side of a body, staying in its band.
func shade(c yuv) yuv {
	if c.y >= bgLumaMax {
		c.y = max(c.y-12, bgLumaMax+16)
	} else {
		c.y = max(c.y-8, 16)
	}
	return c
}

func (s *Scene) carColours(o *object) {
	r := s.rng
	body := s.colour(r.IntN(2) == 0, 60)
	o.pal[partBody] = body
	o.pal[partTrim] = yuv{28, 128, 128}
	o.pal[partWindow] = yuv{uint8(30 + r.IntN(12)), 136, 122}
	o.pal[partWheel] = yuv{20, 128, 128}
	o.pal[partHub] = yuv{uint8(175 + r.IntN(30)), 128, 128}
	o.pal[partHeadlight] = yuv{232, 124, 136}
	o.pal[partTaillight] = yuv{45, 110, 190}
}

func (s *Scene) personColours(o *object) {
	r := s.rng
	if r.IntN(2) == 0 {
		o.pal[partSkin] = yuv{uint8(172 + r.IntN(30)), uint8(110 + r.IntN(8)), uint8(140 + r.IntN(10))}
	} else {
		o.pal[partSkin] = yuv{uint8(38 + r.IntN(15)), uint8(118 + r.IntN(6)), uint8(134 + r.IntN(6))}
	}
	o.pal[partHair] = s.colour(r.IntN(5) == 0, 20)
	o.pal[partShirt] = s.colour(r.IntN(2) == 0, 70)
	o.pal[partShirtFar] = shade(o.pal[partShirt])
	o.pal[partPants] = s.colour(r.IntN(3) == 0, 40)
	o.pal[partPantsFar] = shade(o.pal[partPants])
	o.pal[partShoe] = yuv{uint8(20 + r.IntN(10)), 128, 128}
	o.pal[partSkinFar] = shade(o.pal[partSkin])
	o.pal[partForearm], o.pal[partForearmFar] = o.pal[partShirt], o.pal[partShirtFar]
	if r.IntN(2) == 0 { // short sleeves
		o.pal[partForearm], o.pal[partForearmFar] = o.pal[partSkin], o.pal[partSkinFar]
	}
}

// sortOrder sorts slots far to near (ties by ID) with an insertion sort:
// the order barely changes between frames, and it allocates nothing.
func (s *Scene) sortOrder() {
	less := func(a, b int) bool {
		oa, ob := &s.objs[a], &s.objs[b]
		if oa.z != ob.z {
			return oa.z > ob.z
		}
		return oa.id < ob.id
	}
	for i := 1; i < len(s.order); i++ {
		for j := i; j > 0 && less(s.order[j], s.order[j-1]); j-- {
			s.order[j], s.order[j-1] = s.order[j-1], s.order[j]
		}
	}
}

// rasterize draws every object into the label map, far to near, and records
// each one's extent, keypoints and pixel counts.
func (s *Scene) rasterize() {
	if s.drawn {
		return
	}
	s.drawn = true
	cv := &s.cv
	clear(cv.lab)
	for _, slot := range s.order {
		o := &s.objs[slot]
		tag := uint16(slot+1) << 4
		cv.resetExt()
		switch o.kind {
		case kindCar:
			s.drawCar(o, tag)
		case kindPerson:
			s.drawPerson(o, tag)
		default:
			s.drawDistractor(o, tag)
		}
		o.full = cv.ext
		o.unoccluded, _ = s.count(o, tag)
	}
	for slot := range s.objs {
		o := &s.objs[slot]
		o.visible, o.vbox = s.count(o, uint16(slot+1)<<4)
	}
}

// count returns how many pixels of o's extent carry its tag, and their
// bounding box.
func (s *Scene) count(o *object, tag uint16) (int, [4]int) {
	cv := &s.cv
	x0, x1 := pixelRange(o.full[0], o.full[2], cv.w)
	y0, y1 := pixelRange(o.full[1], o.full[3], cv.h)
	n := 0
	box := [4]int{cv.w, cv.h, 0, 0}
	for y := y0; y < y1; y++ {
		row := cv.lab[y*cv.w+x0 : y*cv.w+x1]
		rowN, first, last := 0, 0, 0
		for i, l := range row {
			if l&^0xf == tag {
				if rowN == 0 {
					first = i
				}
				last = i
				rowN++
			}
		}
		if rowN > 0 {
			n += rowN
			box[0] = min(box[0], x0+first)
			box[2] = max(box[2], x0+last+1)
			box[1] = min(box[1], y)
			box[3] = y + 1
		}
	}
	if n == 0 {
		box = [4]int{}
	}
	return n, box
}

// Render draws the current frame into dst as YUV420P, reusing dst's planes
// when they are large enough. It sets the picture fields of dst (Width,
// Height, Format, Planes, Strides) and leaves the others alone. Steady-state
// rendering allocates nothing unless Params.JPEG is set.
//
// The picture is what the camera records: the domain's light, colour shift
// and glare, sensor noise (new on every frame, the same for the same frame
// of the same Params) and compression artefacts. None of these move an
// object's pixels, so Truth's masks hold for every domain.
func (s *Scene) Render(dst *frame.Frame) {
	s.rasterize()
	w, h := s.p.Width, s.p.Height
	cw := w / 2
	dst.Width, dst.Height = w, h
	dst.Format = frame.PixelFormatYUV420P
	dst.Strides = [3]int{w, cw, cw}
	src := s.bg
	if s.lt.on {
		src = s.lt.lit
	}
	for i := range dst.Planes {
		n := len(src[i])
		if cap(dst.Planes[i]) >= n {
			dst.Planes[i] = dst.Planes[i][:n]
		} else {
			dst.Planes[i] = make([]byte, n)
		}
		copy(dst.Planes[i], src[i])
	}
	py, pu, pv := dst.Planes[0], dst.Planes[1], dst.Planes[2]
	if s.lt.on {
		s.paintLit(py, pu, pv)
		s.lt.addNoise(py, pu, pv, w, h, s.seq)
	} else {
		s.paint(py, pu, pv)
	}
	if s.p.JPEG > 0 {
		s.jpeg.roundTrip(dst, s.p.JPEG)
	}
}

// paint colours the objects' pixels with their palettes.
func (s *Scene) paint(py, pu, pv []byte) {
	w := s.p.Width
	cw := w / 2
	lab := s.cv.lab
	for slot := range s.objs {
		o := &s.objs[slot]
		if o.visible == 0 {
			continue
		}
		tag := uint16(slot+1) << 4
		b := o.vbox
		for y := b[1]; y < b[3]; y++ {
			row := lab[y*w+b[0] : y*w+b[2]]
			out := py[y*w+b[0] : y*w+b[2]]
			for i, l := range row {
				if l&^0xf == tag {
					out[i] = o.pal[l&0xf].y
				}
			}
		}
		// Chroma takes the part under the top-left luma sample of each 2x2
		// block.
		for cy := b[1] / 2; cy < (b[3]+1)/2; cy++ {
			row := lab[2*cy*w:]
			for cx := b[0] / 2; cx < (b[2]+1)/2; cx++ {
				if l := row[2*cx]; l&^0xf == tag {
					pu[cy*cw+cx] = o.pal[l&0xf].u
					pv[cy*cw+cx] = o.pal[l&0xf].v
				}
			}
		}
	}
}

// paintLit colours the objects' pixels as the camera records them, then
// adds the glare of cars' lights at night.
func (s *Scene) paintLit(py, pu, pv []byte) {
	w, h := s.p.Width, s.p.Height
	cw := w / 2
	lab := s.cv.lab
	lt := s.lt
	for slot := range s.objs {
		o := &s.objs[slot]
		if o.visible == 0 {
			continue
		}
		// Per part: luma above black before the light's gain (-1 for a
		// light source), and chroma after the domain's colour shift.
		var ly [16]int32
		var cu, cv [16]int32
		for k, c := range o.pal {
			ly[k] = lt.gam[c.y] - 16
			cu[k] = 128 + (int32(c.u)-128)*lt.sat>>8
			cv[k] = 128 + (int32(c.v)-128)*lt.sat>>8
		}
		if lt.night && o.kind == kindCar {
			ly[partHeadlight], ly[partTaillight] = -1, -1
		}
		tag := uint16(slot+1) << 4
		b := o.vbox
		for y := b[1]; y < b[3]; y++ {
			row := lab[y*w+b[0] : y*w+b[2]]
			out := py[y*w+b[0] : y*w+b[2]]
			gain := lt.gain[y*w+b[0] : y*w+b[2]]
			for i, l := range row {
				if l&^0xf != tag {
					continue
				}
				v := ly[l&0xf]
				if v < 0 {
					v = int32(o.pal[l&0xf].y) // gives light: as bright as it is
				} else {
					v = 16 + v*int32(gain[i])>>8
				}
				out[i] = byte(min(max(v, lt.lo), lt.hi))
			}
		}
		for cy := b[1] / 2; cy < (b[3]+1)/2; cy++ {
			row := lab[2*cy*w:]
			for cx := b[0] / 2; cx < (b[2]+1)/2; cx++ {
				if l := row[2*cx]; l&^0xf == tag {
					ci := cy*cw + cx
					u := cu[l&0xf] + int32(lt.tu[ci])
					v := cv[l&0xf] + int32(lt.tv[ci])
					pu[ci] = byte(min(max(u, lt.clo), lt.chi))
					pv[ci] = byte(min(max(v, lt.clo), lt.chi))
				}
			}
		}
	}
	if !lt.night {
		return
	}
	for slot := range s.p.Objects {
		o := &s.objs[slot]
		if o.kind != kindCar || o.visible == 0 {
			continue
		}
		hl, tl := o.lights[0], o.lights[1]
		lt.glare(py, pu, pv, w, h, float64(hl[0]), float64(hl[1]), headGlareR*float64(o.ppm), headGlare, lt.lampU/2, lt.lampV/2)
		lt.glare(py, pu, pv, w, h, float64(tl[0]), float64(tl[1]), tailGlareR*float64(o.ppm), tailGlare, -10, 40)
	}
}

// Truth returns the ground truth of the current frame: one Object per target
// (person or car) with at least one visible pixel, in ID order. Distractors
// are not in it, but the pixels they hide are left out of the targets'
// masks, boxes and keypoints. The result is the caller's.
func (s *Scene) Truth() []Object {
	return s.collect(0, s.p.Objects)
}

// Distractors returns the visible distractors of the current frame, in the
// form of Truth, with Class ClassNone, Label "pole", "sign", "bin", "bush" or
// "dog", and no keypoints. Their IDs do not overlap the targets'. They are
// not objects a detector should report; a trainer may use them as hard
// negatives or to check what hides a target.
func (s *Scene) Distractors() []Object {
	return s.collect(s.p.Objects, len(s.objs))
}

// collect returns the truth of the visible objects in slots [from, to).
func (s *Scene) collect(from, to int) []Object {
	s.rasterize()
	var out []Object
	w, h := s.p.Width, s.p.Height
	for _, slot := range s.order {
		o := &s.objs[slot]
		if o.visible == 0 || slot < from || slot >= to {
			continue
		}
		tag := uint16(slot+1) << 4
		b := o.vbox
		s.maskBuf = s.maskBuf[:0]
		s.maskBuf = slices.Grow(s.maskBuf, w*h)[:w*h]
		clear(s.maskBuf)
		for y := b[1]; y < b[3]; y++ {
			for x := b[0]; x < b[2]; x++ {
				if s.cv.lab[y*w+x]&^0xf == tag {
					s.maskBuf[y*w+x] = 1
				}
			}
		}
		m := frame.EncodeMask(s.maskBuf, w, h)
		obj := Object{
			ID:        o.id,
			Class:     ClassPerson,
			Label:     kindLabels[o.kind],
			Box:       frame.Box{X1: float32(b[0]), Y1: float32(b[1]), X2: float32(b[2]), Y2: float32(b[3])},
			Full:      frame.Box{X1: o.full[0], Y1: o.full[1], X2: o.full[2], Y2: o.full[3]},
			Mask:      &m,
			Occlusion: 1 - float32(o.visible)/float32(o.unoccluded),
			Depth:     float32(o.z),
		}
		switch o.kind {
		case kindCar:
			obj.Class = ClassCar
		case kindPerson:
			obj.Keypoints = make(frame.Keypoints, len(o.kp))
			for i, p := range o.kp {
				k := frame.Keypoint{X: p[0], Y: p[1]}
				px, py := int(math.Floor(float64(p[0]))), int(math.Floor(float64(p[1])))
				if px >= 0 && py >= 0 && px < w && py < h && s.cv.lab[py*w+px]&^0xf == tag {
					k.Score = 1
				}
				obj.Keypoints[i] = k
			}
		default:
			obj.Class = ClassNone
		}
		out = append(out, obj)
	}
	slices.SortFunc(out, func(a, b Object) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
