package augment

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/training/dataset"
)

// paintedObject is one object of a hand-made sample: a flat-coloured
// ellipse or rectangle.
type paintedObject struct {
	class     int
	ellipse   bool
	x, y      float64 // centre
	rx, ry    float64 // half sizes
	col       [3]uint8
	keypoints bool
	noMask    bool
}

var testObjects = []paintedObject{
	{class: 0, ellipse: true, x: 200, y: 180, rx: 40, ry: 110, col: [3]uint8{220, 40, 40}, keypoints: true},
	{class: 2, x: 450, y: 250, rx: 110, ry: 50, col: [3]uint8{40, 200, 60}},
	{class: 2, x: 600, y: 80, rx: 60, ry: 40, col: [3]uint8{40, 60, 220}}, // partly outside
	{class: 0, ellipse: true, x: 330, y: 120, rx: 25, ry: 70, col: [3]uint8{230, 220, 30}, keypoints: true},
	{class: 2, x: 80, y: 320, rx: 50, ry: 30, col: [3]uint8{200, 40, 200}, noMask: true},
}

// paintedSample draws testObjects over a smooth background into a w x h
// picture, with their masks, boxes (the masks' extent), COCO keypoints
// (left ones on the image's left, Score 1 where the point shows the
// object) and a class map; later objects hide earlier ones.
func paintedSample(w, h int) dataset.Sample {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	lab := make([]byte, w*h)
	seg := image.NewGray(img.Bounds())
	for y := range h {
		for x := range w {
			o := img.PixOffset(x, y)
			img.Pix[o], img.Pix[o+1], img.Pix[o+2], img.Pix[o+3] = uint8(60+x*80/w), uint8(70+y*60/h), 110, 255
		}
	}
	for i, p := range testObjects {
		for y := range h {
			for x := range w {
				dx, dy := (float64(x)+0.5-p.x)/p.rx, (float64(y)+0.5-p.y)/p.ry
				in := math.Abs(dx) <= 1 && math.Abs(dy) <= 1
				if p.ellipse {
					in = dx*dx+dy*dy <= 1
				}
				if in {
					o := img.PixOffset(x, y)
					img.Pix[o], img.Pix[o+1], img.Pix[o+2] = p.col[0], p.col[1], p.col[2]
					lab[y*w+x] = byte(i + 1)
					seg.Pix[y*seg.Stride+x] = byte(p.class + 1)
				}
			}
		}
	}
	s := dataset.Sample{ID: "painted", Sequence: "painted", Image: img, Segmentation: seg}
	one := make([]byte, w*h)
	for i, p := range testObjects {
		for j := range lab {
			one[j] = 0
			if lab[j] == byte(i+1) {
				one[j] = 1
			}
		}
		m := frame.EncodeMask(one, w, h)
		bb := m.BBox()
		o := dataset.Object{
			Class: p.class, Label: fmt.Sprint("class", p.class), TrackID: uint64(i + 1), Score: 1,
			Box: frame.Box{X1: float32(bb[0]), Y1: float32(bb[1]), X2: float32(bb[0] + bb[2]), Y2: float32(bb[1] + bb[3])},
		}
		if !p.noMask {
			o.Mask = &m
		}
		if p.keypoints {
			o.Keypoints = make(frame.Keypoints, 17)
			for k := range o.Keypoints {
				side := 0.0 // nose
				if k > 0 {
					side = -0.5 // left: odd indices, drawn on the image's left
					if k%2 == 0 {
						side = 0.5
					}
				}
				x := p.x + side*p.rx
				y := p.y - 0.8*p.ry + float64((k+1)/2)*0.2*p.ry
				score := float32(0)
				if xi, yi := int(x), int(y); xi >= 0 && yi >= 0 && xi < w && yi < h && lab[yi*w+xi] == byte(i+1) {
					score = 1
				}
				o.Keypoints[k] = frame.Keypoint{X: float32(x), Y: float32(y), Score: score}
			}
		}
		s.Objects = append(s.Objects, o)
	}
	return s
}

// synthSample is a labelled synth picture with a class map made from the
// truth masks.
func synthSample(t testing.TB, objects int, n uint64) dataset.Sample {
	t.Helper()
	p := synth.DefaultParams()
	p.Objects = objects
	p.Distractors = 3
	p.Texture = 0.5
	var f frame.Frame
	truth := synth.Snapshot(p, n, &f)
	img, err := synth.ToRGB(&f, nil)
	require.NoError(t, err)
	s := dataset.Sample{ID: fmt.Sprint("synth/", n), Sequence: "synth", Image: img}
	seg := image.NewGray(img.Bounds())
	var buf []byte
	for _, o := range truth {
		s.Objects = append(s.Objects, dataset.Object{
			Box: o.Box, Class: o.Class, Label: o.Label, TrackID: o.ID,
			Keypoints: o.Keypoints, Mask: o.Mask, Score: 1,
		})
		buf = o.Mask.Decode(buf)
		for i, v := range buf {
			if v != 0 {
				seg.Pix[(i/f.Width)*seg.Stride+i%f.Width] = byte(o.Class + 1)
			}
		}
	}
	s.Segmentation = seg
	return s
}

// geometryOnly is cfg without photometric changes.
func geometryOnly(cfg Config) Config {
	cfg.Brightness, cfg.Contrast, cfg.Saturation, cfg.Hue = 0, 0, 0, 0
	cfg.NoiseProb, cfg.BlurProb, cfg.JPEGProb = 0, 0, 0
	return cfg
}

func maskExtent(m frame.Mask) (frame.Box, []byte) {
	d := m.Decode(nil)
	lx, ly, hx, hy := m.Width, m.Height, -1, -1
	for i, v := range d {
		if v != 0 {
			x, y := i%m.Width, i/m.Width
			lx, hx, ly, hy = min(lx, x), max(hx, x), min(ly, y), max(hy, y)
		}
	}
	if hx < 0 {
		return frame.Box{}, d
	}
	return frame.Box{X1: float32(lx), Y1: float32(ly), X2: float32(hx + 1), Y2: float32(hy + 1)}, d
}

func requireBoxNear(t *testing.T, want, got frame.Box, tol float32, msg string) {
	t.Helper()
	for i, d := range []float32{got.X1 - want.X1, got.Y1 - want.Y1, got.X2 - want.X2, got.Y2 - want.Y2} {
		require.LessOrEqualf(t, abs(float64(d)), float64(tol), "%s: edge %d: want %v, got %v", msg, i, want, got)
	}
}

// TestGeometryConsistent checks, over many random draws, that picture,
// masks, boxes, keypoints and class map move together.
func TestGeometryConsistent(t *testing.T) {
	strong := geometryOnly(DefaultConfig())
	strong.MaxRotateDeg, strong.CropProb, strong.Translate = 15, 0.5, 0.2
	noRot := strong
	noRot.MaxRotateDeg = 0
	for _, tc := range []struct {
		name   string
		cfg    Config
		sample dataset.Sample
		outW   int
		outH   int
		iters  int
	}{
		{"painted-rotate", strong, paintedSample(640, 360), 320, 192, 25},
		{"painted-norotate", noRot, paintedSample(640, 360), 320, 192, 25},
		{"painted-upscale", noRot, paintedSample(640, 360), 800, 480, 6},
		{"synth-rotate", strong, synthSample(t, 10, 40), 384, 224, 25},
		{"synth-norotate", noRot, synthSample(t, 10, 40), 384, 224, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(tc.cfg)
			require.NoError(t, err)
			rng := rand.New(rand.NewPCG(1, 2))
			classes := map[uint8]bool{}
			for _, v := range tc.sample.Segmentation.Pix {
				classes[v] = true
			}
			extSlack := 0.0
			defer func() { t.Logf("largest gap between box and sampled mask extent: %.2f px", extSlack) }()
			for iter := range tc.iters {
				out, tr, err := a.Apply(tc.sample, rng, tc.outW, tc.outH)
				require.NoError(t, err)
				require.Equal(t, image.Rect(0, 0, tc.outW, tc.outH), out.Image.Bounds())
				require.Equal(t, out.Image.Bounds(), out.Segmentation.Bounds())
				for _, v := range out.Segmentation.Pix {
					if !classes[v] {
						t.Fatalf("iter %d: class id %d not in source", iter, v)
					}
				}
				rotated := tr.B != 0 || tr.D != 0
				for _, o := range out.Objects {
					src := sourceObject(t, tc.sample, o.TrackID)
					msg := fmt.Sprintf("iter %d object %d", iter, o.TrackID)
					mapped := tr.Box(src.Box)
					if o.Mask == nil {
						require.Equal(t, mapped, o.Box, msg)
						continue
					}
					require.NoError(t, o.Mask.Valid())
					require.Equal(t, tc.outW, o.Mask.Width)
					if full := tr.BoxUnclipped(src.Box); full == mapped && tc.name[:7] == "painted" {
						// Nearest sampling keeps a solid shape's area.
						want := float64(src.Mask.Area()) * abs(tr.Det())
						require.InDeltaf(t, want, float64(o.Mask.Area()), 0.03*want+20, "%s: area", msg)
					}
					ext, dec := maskExtent(*o.Mask)
					if ext.W() > 0 {
						// The sampled mask lies inside the box (a pixel whose
						// centre is inside reaches half a pixel beyond), within
						// 2 px of each edge for a mask of solid shapes.
						require.True(t, ext.X1 >= o.Box.X1-0.51 && ext.Y1 >= o.Box.Y1-0.51 && ext.X2 <= o.Box.X2+0.51 && ext.Y2 <= o.Box.Y2+0.51, "%s: mask %v outside box %v", msg, ext, o.Box)
						if tc.name[:7] == "painted" {
							requireBoxNear(t, o.Box, ext, 2, msg)
						}
						extSlack = max(extSlack, float64(ext.X1-o.Box.X1), float64(ext.Y1-o.Box.Y1), float64(o.Box.X2-ext.X2), float64(o.Box.Y2-ext.Y2))
					}
					if rotated {
						// The tight box lies inside the rotated corners' box.
						require.GreaterOrEqual(t, o.Box.X1, mapped.X1-1, msg)
						require.GreaterOrEqual(t, o.Box.Y1, mapped.Y1-1, msg)
						require.LessOrEqual(t, o.Box.X2, mapped.X2+1, msg)
						require.LessOrEqual(t, o.Box.Y2, mapped.Y2+1, msg)
					} else if full := tr.BoxUnclipped(src.Box); full == mapped {
						requireBoxNear(t, mapped, o.Box, 1e-3, msg)
					}
					for k, kp := range o.Keypoints {
						if kp.Score == 0 {
							continue
						}
						require.True(t, kp.X >= 0 && kp.Y >= 0 && kp.X < float32(tc.outW) && kp.Y < float32(tc.outH), msg)
						require.Truef(t, nearMask(dec, tc.outW, tc.outH, kp.X, kp.Y, 2), "%s: keypoint %d at %v,%v is off its mask", msg, k, kp.X, kp.Y)
					}
				}
				if tc.name[:7] == "painted" {
					requireColoursFollowMasks(t, out, iter)
				}
			}
		})
	}
}

func sourceObject(t *testing.T, s dataset.Sample, id uint64) dataset.Object {
	t.Helper()
	for _, o := range s.Objects {
		if o.TrackID == id {
			return o
		}
	}
	t.Fatalf("no source object %d", id)
	return dataset.Object{}
}

func nearMask(dec []byte, w, h int, x, y float32, r int) bool {
	cx, cy := int(x), int(y)
	for yy := max(cy-r, 0); yy <= min(cy+r, h-1); yy++ {
		for xx := max(cx-r, 0); xx <= min(cx+r, w-1); xx++ {
			if dec[yy*w+xx] != 0 {
				return true
			}
		}
	}
	return false
}

// requireColoursFollowMasks checks that the picture under each painted
// object's transformed mask (away from its edge) has the object's colour:
// the picture and the masks went through the same map, flips included.
func requireColoursFollowMasks(t *testing.T, s dataset.Sample, iter int) {
	t.Helper()
	w, h := s.Image.Bounds().Dx(), s.Image.Bounds().Dy()
	for _, o := range s.Objects {
		if o.Mask == nil {
			continue
		}
		col := testObjects[o.TrackID-1].col
		dec := o.Mask.Decode(nil)
		inner, bad := 0, 0
		for y := max(1, int(o.Box.Y1)); y < min(h-1, int(o.Box.Y2)+1); y++ {
			for x := max(1, int(o.Box.X1)); x < min(w-1, int(o.Box.X2)+1); x++ {
				if dec[(y-1)*w+x-1]&dec[(y-1)*w+x]&dec[(y-1)*w+x+1]&dec[y*w+x-1]&dec[y*w+x]&dec[y*w+x+1]&dec[(y+1)*w+x-1]&dec[(y+1)*w+x]&dec[(y+1)*w+x+1] == 0 {
					continue
				}
				inner++
				p := s.Image.Pix[s.Image.PixOffset(x, y):]
				for c := range 3 {
					if abs(float64(p[c])-float64(col[c])) > 3 {
						bad++
						break
					}
				}
			}
		}
		require.LessOrEqualf(t, bad, inner/100, "iter %d object %d: %d of %d inner pixels have the wrong colour", iter, o.TrackID, bad, inner)
	}
}

func TestFlipSwapsKeypoints(t *testing.T) {
	cfg := Config{FlipProb: 1, ScaleMin: 1, ScaleMax: 1, CropMin: 1, Pad: DefaultPad}
	a, err := New(cfg)
	require.NoError(t, err)
	s := paintedSample(640, 360)
	out, tr, err := a.Apply(s, rand.New(rand.NewPCG(3, 4)), 320, 180)
	require.NoError(t, err)
	require.Less(t, tr.Det(), 0.0)
	// Exact reference: halve, then mirror x about the output's width.
	for _, o := range out.Objects {
		src := sourceObject(t, s, o.TrackID)
		if src.Keypoints == nil {
			continue
		}
		for k := range 17 {
			from := k
			for _, p := range COCOFlipPairs {
				if k == p[0] {
					from = p[1]
				} else if k == p[1] {
					from = p[0]
				}
			}
			sk := src.Keypoints[from]
			require.InDelta(t, 320-float64(sk.X)/2, float64(o.Keypoints[k].X), 1e-4, "keypoint %d", k)
			require.InDelta(t, float64(sk.Y)/2, float64(o.Keypoints[k].Y), 1e-4, "keypoint %d", k)
			require.Equal(t, sk.Score, o.Keypoints[k].Score)
		}
		// Left keypoints were on the image's left; mirrored and swapped
		// they are again.
		require.Less(t, o.Keypoints[5].X, o.Keypoints[6].X)
	}
	// The picture is mirrored: row 90 of the output reads row 180 of the
	// source from right to left (2:1, centres at source 2x+1).
	for x := 0; x < 320; x += 7 {
		sp := s.Image.Pix[s.Image.PixOffset(640-2*x-1, 181)-4:]
		op := out.Image.Pix[out.Image.PixOffset(x, 90):]
		// Bilinear at the midpoint of four source pixels.
		for c := range 3 {
			want := (int(sp[c]) + int(sp[4+c]) + int(s.Image.Pix[s.Image.PixOffset(640-2*x-2, 180)+c]) + int(s.Image.Pix[s.Image.PixOffset(640-2*x-1, 180)+c]) + 2) / 4
			require.InDelta(t, want, int(op[c]), 1, "x %d channel %d", x, c)
		}
	}
}

func TestNoFlipForUnknownKeypoints(t *testing.T) {
	a, err := New(Config{FlipProb: 1, ScaleMin: 1, ScaleMax: 1, CropMin: 1})
	require.NoError(t, err)
	s := paintedSample(320, 180)
	s.Objects[0].Keypoints = s.Objects[0].Keypoints[:5]
	_, tr, err := a.Apply(s, rand.New(rand.NewPCG(1, 1)), 320, 180)
	require.NoError(t, err)
	require.Greater(t, tr.Det(), 0.0)
}

func TestLetterboxInverse(t *testing.T) {
	for _, tc := range []struct {
		name       string
		s          dataset.Sample
		outW, outH int
	}{
		{"synth-1280x720-to-416", synthSample(t, 12, 25), 416, 416},
		{"synth-1280x720-to-384x224", synthSample(t, 12, 25), 384, 224},
		{"painted-640x360-to-1280x736", paintedSample(640, 360), 1280, 736},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, tr, err := Letterbox(tc.s, tc.outW, tc.outH)
			require.NoError(t, err)
			inv := tr.Inverse()
			require.Equal(t, tc.s.Image.Bounds().Dx(), inv.DstW)
			kept := 0
			for _, o := range out.Objects {
				src := sourceObject(t, tc.s, o.TrackID)
				back := inv.Box(o.Box)
				requireBoxNear(t, src.Box, back, 1, fmt.Sprint("object ", o.TrackID))
				require.Equal(t, src.Ignore, o.Ignore)
				kept++
			}
			// Only objects too small to cover an output pixel centre vanish.
			for _, o := range tc.s.Objects {
				if o.Box.W()*float32(tr.A) >= 2 && o.Box.H()*float32(tr.E) >= 2 {
					found := false
					for _, n := range out.Objects {
						found = found || n.TrackID == o.TrackID
					}
					require.Truef(t, found, "object %d (%v) lost", o.TrackID, o.Box)
				}
			}
			require.NotZero(t, kept)
		})
	}
}

func TestLetterboxTransformMatchesPrep(t *testing.T) {
	// inference/prep's documented Center letterbox: content
	// round(w*scale) x round(h*scale) at ((W-nw)/2, (H-nh)/2) rounded down.
	for _, tc := range []struct {
		srcW, srcH, dstW, dstH int
		nw, nh, padX, padY     int
	}{
		{1280, 720, 416, 416, 416, 234, 0, 91},
		{1280, 720, 384, 224, 384, 216, 0, 4},
		{768, 576, 640, 640, 640, 480, 0, 80},
		{720, 1280, 416, 416, 234, 416, 91, 0},
		{100, 100, 101, 50, 50, 50, 25, 0},
	} {
		tr := LetterboxTransform(tc.srcW, tc.srcH, tc.dstW, tc.dstH)
		require.InDelta(t, float64(tc.nw)/float64(tc.srcW), tr.A, 1e-12)
		require.InDelta(t, float64(tc.nh)/float64(tc.srcH), tr.E, 1e-12)
		require.Equal(t, float64(tc.padX), tr.C)
		require.Equal(t, float64(tc.padY), tr.F)
	}
}

func TestLetterboxPixels(t *testing.T) {
	// 2:1 down with no padding: each output pixel is the mean of a 2x2
	// source block (bilinear at its centre); padding rows are exactly Pad.
	s := paintedSample(64, 32)
	out, _, err := Letterbox(s, 32, 20)
	require.NoError(t, err)
	for y := range 20 {
		for x := range 32 {
			op := out.Image.Pix[out.Image.PixOffset(x, y):]
			if y < 2 || y >= 18 {
				require.Equal(t, []uint8{DefaultPad, DefaultPad, DefaultPad, 255}, op[:4])
				continue
			}
			for c := range 3 {
				sum := 0
				for _, d := range [][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
					sum += int(s.Image.Pix[s.Image.PixOffset(2*x+d[0], 2*(y-2)+d[1])+c])
				}
				require.InDelta(t, float64(sum)/4, float64(op[c]), 0.51)
			}
		}
	}
}

func TestDropAndIgnore(t *testing.T) {
	w, h := 200, 100
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	box := func(x1, y1, x2, y2 int) (frame.Box, *frame.Mask) {
		buf := make([]byte, w*h)
		for y := y1; y < y2; y++ {
			for x := x1; x < x2; x++ {
				buf[y*w+x] = 1
			}
		}
		m := frame.EncodeMask(buf, w, h)
		return frame.Box{X1: float32(x1), Y1: float32(y1), X2: float32(x2), Y2: float32(y2)}, &m
	}
	s := dataset.Sample{Image: img}
	for i, b := range [][4]int{
		{10, 10, 40, 40},   // 1: pushed wholly out: dropped
		{90, 10, 130, 50},  // 2: 10 of 40 columns stay: Ignore
		{100, 50, 180, 90}, // 3: 60 of 80 stay: kept
		{150, 5, 151, 30},  // 4: one pixel wide: Ignore (MinSide)
	} {
		bx, m := box(b[0], b[1], b[2], b[3])
		for _, withMask := range []bool{true, false} {
			o := dataset.Object{Box: bx, TrackID: uint64(i + 1)}
			if withMask {
				o.Mask = m
			} else {
				o.TrackID += 10
			}
			s.Objects = append(s.Objects, o)
		}
	}
	// Shift left by 120 pixels.
	tr := Transform{A: 1, E: 1, C: -120, SrcW: w, SrcH: h, DstW: w, DstH: h}
	cfg := DefaultConfig()
	var wp warper
	out := wp.warp(s, tr, cfg, nil)
	got := map[uint64]dataset.Object{}
	for _, o := range out.Objects {
		got[o.TrackID] = o
	}
	for _, id := range []uint64{1, 11} {
		require.NotContains(t, got, id)
	}
	for _, id := range []uint64{2, 12} {
		require.Contains(t, got, id)
		require.True(t, got[id].Ignore, id)
		require.Equal(t, frame.Box{X1: 0, Y1: 10, X2: 10, Y2: 50}, got[id].Box)
	}
	for _, id := range []uint64{3, 13} {
		require.False(t, got[id].Ignore, id)
		require.Equal(t, frame.Box{X1: 0, Y1: 50, X2: 60, Y2: 90}, got[id].Box)
	}
	for _, id := range []uint64{4, 14} {
		require.True(t, got[id].Ignore, id)
	}
	require.Equal(t, 60*40, got[3].Mask.Area())
}

func TestKeypointsOutsideGetScoreZero(t *testing.T) {
	tr := Transform{A: 1, E: 1, C: -50, SrcW: 100, SrcH: 100, DstW: 100, DstH: 100}
	k := tr.Keypoints(frame.Keypoints{{X: 40, Y: 10, Score: 1}, {X: 60, Y: 10, Score: 1}, {X: 149.5, Y: 99.5, Score: 0.5}, {X: 150, Y: 10, Score: 1}})
	require.Equal(t, frame.Keypoints{{X: -10, Y: 10, Score: 0}, {X: 10, Y: 10, Score: 1}, {X: 99.5, Y: 99.5, Score: 0.5}, {X: 100, Y: 10, Score: 0}}, k)
}

func TestDeterministic(t *testing.T) {
	s := synthSample(t, 8, 10)
	cfg := DefaultConfig()
	cfg.NoiseProb, cfg.BlurProb, cfg.JPEGProb = 0.5, 0.5, 0.5
	run := func(seed uint64) []dataset.Sample {
		a, err := New(cfg)
		require.NoError(t, err)
		rng := rand.New(rand.NewPCG(seed, 7))
		var outs []dataset.Sample
		for range 6 {
			o, _, err := a.Apply(s, rng, 384, 224)
			require.NoError(t, err)
			outs = append(outs, o)
		}
		return outs
	}
	a, b, c := run(1), run(1), run(2)
	require.Equal(t, a, b)
	require.NotEqual(t, a[0].Image.Pix, c[0].Image.Pix)
}

func TestInputUntouched(t *testing.T) {
	s := paintedSample(320, 180)
	keep := paintedSample(320, 180)
	a, err := New(DefaultConfig())
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(5, 5))
	for range 5 {
		_, _, err := a.Apply(s, rng, 160, 96)
		require.NoError(t, err)
	}
	require.Equal(t, keep, s)
}

func TestValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	for _, tc := range []struct {
		key string
		mod func(*Config)
	}{
		{"flip_prob", func(c *Config) { c.FlipProb = 1.5 }},
		{"flip_prob", func(c *Config) { c.FlipProb = math.NaN() }},
		{"scale_min", func(c *Config) { c.ScaleMin = 0 }},
		{"scale_max", func(c *Config) { c.ScaleMax = 0.5 }},
		{"crop_min", func(c *Config) { c.CropMin = 0 }},
		{"max_rotate_deg", func(c *Config) { c.MaxRotateDeg = -1 }},
		{"hue", func(c *Config) { c.Hue = 0.6 }},
		{"noise_std", func(c *Config) { c.NoiseStd = math.Inf(1) }},
		{"blur_max_sigma", func(c *Config) { c.BlurMaxSigma = 0.1 }},
		{"jpeg_quality_min", func(c *Config) { c.JPEGQualityMin = 0 }},
		{"jpeg_quality_max", func(c *Config) { c.JPEGQualityMax = 20 }},
		{"min_visible", func(c *Config) { c.MinVisible = 2 }},
	} {
		t.Run(tc.key, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			require.ErrorContains(t, err, tc.key)
			_, err = New(c)
			require.Error(t, err)
		})
	}
}

func TestApplyErrors(t *testing.T) {
	a, err := New(DefaultConfig())
	require.NoError(t, err)
	good := paintedSample(64, 32)
	rng := rand.New(rand.NewPCG(1, 1))
	badMask := good
	badMask.Objects = append([]dataset.Object(nil), good.Objects...)
	badMask.Objects[0].Mask = &frame.Mask{Width: 64, Height: 32, Counts: []uint32{5, 3}}
	smallMask := good
	smallMask.Objects = append([]dataset.Object(nil), good.Objects...)
	smallMask.Objects[1].Mask = &frame.Mask{Width: 32, Height: 32, Counts: []uint32{1024}}
	nanBox := good
	nanBox.Objects = append([]dataset.Object(nil), good.Objects...)
	nanBox.Objects[2].Box.X2 = float32(math.NaN())
	badSeg := good
	badSeg.Segmentation = image.NewGray(image.Rect(0, 0, 10, 10))
	for _, tc := range []struct {
		name string
		s    dataset.Sample
		w, h int
		rng  *rand.Rand
		want string
	}{
		{"no image", dataset.Sample{ID: "x"}, 32, 32, rng, "no image"},
		{"zero size", good, 0, 32, rng, "output size"},
		{"huge size", good, 100000, 32, rng, "output size"},
		{"corrupt mask", badMask, 32, 32, rng, "object 0"},
		{"mask size", smallMask, 32, 32, rng, "object 1: mask is 32x32"},
		{"nan box", nanBox, 32, 32, rng, "object 2: box"},
		{"segmentation size", badSeg, 32, 32, rng, "segmentation"},
		{"nil rng", good, 32, 32, nil, "nil rand"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := a.Apply(tc.s, tc.rng, tc.w, tc.h)
			require.ErrorContains(t, err, tc.want)
			if tc.rng != nil {
				_, _, err = Letterbox(tc.s, tc.w, tc.h)
				require.ErrorContains(t, err, tc.want)
			}
		})
	}
}

// TestExtremeConfigs draws random configurations at the edges of their
// ranges: nothing panics, every mask stays valid and every box inside the
// picture.
func TestExtremeConfigs(t *testing.T) {
	s := synthSample(t, 12, 33)
	rng := rand.New(rand.NewPCG(11, 12))
	for i := range 30 {
		cfg := DefaultConfig()
		cfg.ScaleMin = 0.01 + rng.Float64()
		cfg.ScaleMax = cfg.ScaleMin + 3*rng.Float64()
		cfg.Translate, cfg.CropProb, cfg.CropMin = rng.Float64(), rng.Float64(), 0.01+0.99*rng.Float64()
		cfg.MaxRotateDeg, cfg.FlipProb = 45*rng.Float64(), 0.5
		cfg.Brightness, cfg.Contrast, cfg.Saturation, cfg.Hue = 1, 1, 1, 0.5
		cfg.NoiseProb, cfg.NoiseStd, cfg.BlurProb, cfg.BlurMaxSigma = 0.5, 64, 0.3, 5
		cfg.JPEGProb, cfg.JPEGQualityMin, cfg.JPEGQualityMax = 0.3, 1, 100
		a, err := New(cfg)
		require.NoError(t, err)
		w, h := 16+rng.IntN(400), 16+rng.IntN(300)
		out, _, err := a.Apply(s, rng, w, h)
		require.NoError(t, err, i)
		for _, o := range out.Objects {
			require.True(t, o.Box.X1 >= 0 && o.Box.Y1 >= 0 && o.Box.X2 <= float32(w) && o.Box.Y2 <= float32(h) && o.Box.X2 > o.Box.X1 && o.Box.Y2 > o.Box.Y1, "%d: %v", i, o.Box)
			if o.Mask != nil {
				require.NoError(t, o.Mask.Valid())
			}
		}
	}
}

// TestEncodeColsMatchesEncodeMask compares the column-major encoder with
// frame.EncodeMask, the reference.
func TestEncodeColsMatchesEncodeMask(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	for range 200 {
		w, h := 1+rng.IntN(20), 1+rng.IntN(20)
		x0 := rng.IntN(w + 1)
		x1 := x0 + rng.IntN(w-x0+1)
		rowMajor := make([]byte, w*h)
		col := make([]byte, w*h)
		for x := x0; x < x1; x++ {
			for y := range h {
				if rng.IntN(3) == 0 {
					rowMajor[y*w+x], col[x*h+y] = 1, 1
				}
			}
		}
		got := encodeCols(col, w, h, x0, x1)
		require.Equal(t, frame.EncodeMask(rowMajor, w, h), got)
		require.Equal(t, make([]byte, w*h), col, "columns cleared")
	}
}

func TestTransformInverse(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 5))
	a, err := New(DefaultConfig())
	require.NoError(t, err)
	s := paintedSample(64, 48)
	for range 50 {
		tr := a.draw(s, rng, 100, 60)
		id := tr.Then(tr.Inverse())
		for _, v := range []struct{ got, want float64 }{{id.A, 1}, {id.B, 0}, {id.C, 0}, {id.D, 0}, {id.E, 1}, {id.F, 0}} {
			require.InDelta(t, v.want, v.got, 1e-9)
		}
		x, y := tr.Inverse().Point(tr.Point(12.5, 40.25))
		require.InDelta(t, 12.5, x, 1e-9)
		require.InDelta(t, 40.25, y, 1e-9)
		require.Equal(t, 100, tr.DstW)
		require.Equal(t, 64, tr.Inverse().DstW)
	}
}

// TestLetterboxMatchesPrep compares Letterbox's picture and Transform with
// inference/prep, which feeds the models in Vigil: a model trained on one
// sees the same pixels from the other.
func TestLetterboxMatchesPrep(t *testing.T) {
	s := synthSample(t, 6, 20)
	b := s.Image.Bounds()
	f := frame.Frame{Width: b.Dx(), Height: b.Dy(), Format: frame.PixelFormatRGB24}
	f.Strides[0] = 3 * b.Dx()
	f.Planes[0] = make([]byte, 3*b.Dx()*b.Dy())
	for i := range b.Dx() * b.Dy() {
		copy(f.Planes[0][3*i:3*i+3], s.Image.Pix[4*i:4*i+3])
	}
	for _, size := range [][2]int{{416, 416}, {384, 224}, {640, 384}} {
		w, h := size[0], size[1]
		spec := prep.Spec{Width: w, Height: h, Layout: prep.NHWC, Color: prep.RGB, Resize: prep.Letterbox, Interp: prep.Bilinear, Align: prep.Center, Pad: DefaultPad}
		dst := make([]float32, w*h*3)
		pt, err := prep.Fill(dst, &f, spec)
		require.NoError(t, err)
		out, tr, err := Letterbox(s, w, h)
		require.NoError(t, err)
		require.InDelta(t, float64(pt.ScaleX), tr.A, 1e-6)
		require.InDelta(t, float64(pt.ScaleY), tr.E, 1e-6)
		require.InDelta(t, float64(pt.PadX), tr.C, 1e-6)
		require.InDelta(t, float64(pt.PadY), tr.F, 1e-6)
		worst := 0.0
		for i := range w * h {
			for c := range 3 {
				worst = max(worst, abs(float64(dst[3*i+c])-float64(out.Image.Pix[4*i+c])))
			}
		}
		// prep is within 0.5 of exact bilinear, Letterbox rounds to a byte.
		require.LessOrEqual(t, worst, 1.0, "%dx%d", w, h)
	}
}
