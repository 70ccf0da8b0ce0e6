// Package synth generates a street scene seen by a fixed camera, with exact
// ground truth, for testing and evaluating Vigil without a camera.
//
// Params (parsed from a synth:// URL query) go in; out come YUV420P pictures
// (Scene.Render) and, for the same instant, each visible object's class, box,
// COCO keypoints, instance mask and occlusion (Scene.Truth). People walk with
// an articulated gait and cars drive along a two-lane road; both enter and
// leave at the picture borders, and a new identity replaces each one that
// leaves. Everything follows from Params: the same Params give byte-identical
// pictures and truth. The package does no I/O and starts no goroutines.
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
	// Class is ClassPerson or ClassCar and Label its name ("person", "car").
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
	// exactly as Render draws it, and 0 elsewhere.
	Mask *frame.Mask
	// Occlusion is the fraction of the object's pixels inside the picture
	// that other objects hide, from 0 (fully seen) to below 1. Pixels outside
	// the picture do not count.
	Occlusion float32
	// Depth is the distance from the camera in metres; larger is further.
	Depth float32
}

const maxObjects = 256

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
	size   float64 // person height or car length, metres
	height float64 // car height, metres
	phase  float64 // gait phase, radians
	cycle  float64 // metres walked per gait cycle
	pal    [16]yuv // colours by part

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
	rng     *rand.Rand
	seq     uint64
	nextID  uint64
	objs    []object
	order   []int // slots, far to near
	bg      [3][]byte
	cv      canvas
	drawn   bool   // cv and the objects' render results are up to date
	maskBuf []byte // scratch for Truth's masks
}

// NewScene builds the scene at frame 0. It panics if p does not pass
// Validate; ParseParams returns only valid Params.
func NewScene(p Params) *Scene {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	s := &Scene{
		p:      p,
		cam:    newCamera(p.Width, p.Height),
		rng:    rand.New(rand.NewPCG(p.Seed, 0x5c3e)),
		nextID: 1,
		objs:   make([]object, p.Objects),
		order:  make([]int, p.Objects),
		cv:     canvas{w: p.Width, h: p.Height, lab: make([]uint16, p.Width*p.Height)},
	}
	s.bg[0], s.bg[1], s.bg[2] = renderBackground(p.Width, p.Height, p.Seed)
	for i := range s.objs {
		s.spawn(&s.objs[i], true)
		s.order[i] = i
	}
	s.sortOrder()
	return s
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
		if o.kind == kindPerson {
			o.phase = math.Mod(o.phase+2*math.Pi*math.Abs(o.vx)*dt/o.cycle, 2*math.Pi)
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
	if o.kind == kindCar {
		return o.size/2 + 0.3
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
		if o.kind == kindCar {
			s.drawCar(o, tag)
		} else {
			s.drawPerson(o, tag)
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
// Height, Format, Planes, Strides) and leaves the others alone.
func (s *Scene) Render(dst *frame.Frame) {
	s.rasterize()
	w, h := s.p.Width, s.p.Height
	cw := w / 2
	dst.Width, dst.Height = w, h
	dst.Format = frame.PixelFormatYUV420P
	dst.Strides = [3]int{w, cw, cw}
	for i := range dst.Planes {
		n := len(s.bg[i])
		if cap(dst.Planes[i]) >= n {
			dst.Planes[i] = dst.Planes[i][:n]
		} else {
			dst.Planes[i] = make([]byte, n)
		}
		copy(dst.Planes[i], s.bg[i])
	}
	py, pu, pv := dst.Planes[0], dst.Planes[1], dst.Planes[2]
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

// Truth returns the ground truth of the current frame: one Object per object
// with at least one visible pixel, in ID order. The result is the caller's.
func (s *Scene) Truth() []Object {
	s.rasterize()
	var out []Object
	w, h := s.p.Width, s.p.Height
	for _, slot := range s.order {
		o := &s.objs[slot]
		if o.visible == 0 {
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
			Label:     "person",
			Box:       frame.Box{X1: float32(b[0]), Y1: float32(b[1]), X2: float32(b[2]), Y2: float32(b[3])},
			Full:      frame.Box{X1: o.full[0], Y1: o.full[1], X2: o.full[2], Y2: o.full[3]},
			Mask:      &m,
			Occlusion: 1 - float32(o.visible)/float32(o.unoccluded),
			Depth:     float32(o.z),
		}
		if o.kind == kindCar {
			obj.Class, obj.Label = ClassCar, "car"
		} else {
			obj.Keypoints = make(frame.Keypoints, len(o.kp))
			for i, p := range o.kp {
				k := frame.Keypoint{X: p[0], Y: p[1]}
				px, py := int(math.Floor(float64(p[0]))), int(math.Floor(float64(p[1])))
				if px >= 0 && py >= 0 && px < w && py < h && s.cv.lab[py*w+px]&^0xf == tag {
					k.Score = 1
				}
				obj.Keypoints[i] = k
			}
		}
		out = append(out, obj)
	}
	slices.SortFunc(out, func(a, b Object) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
