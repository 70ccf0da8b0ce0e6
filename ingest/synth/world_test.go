package synth_test

import (
	"fmt"
	"image"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/synth"
)

// meanLuma is the average of the luma plane.
func meanLuma(f *frame.Frame) float64 {
	sum := 0
	for _, v := range f.Planes[0] {
		sum += int(v)
	}
	return float64(sum) / float64(len(f.Planes[0]))
}

// highFreq is the mean squared discrete Laplacian of the luma plane: the
// energy of its finest detail, which sensor noise raises.
func highFreq(f *frame.Frame) float64 {
	w, h := f.Width, f.Height
	y := f.Planes[0]
	sum := 0.0
	for r := 1; r < h-1; r++ {
		for c := 1; c < w-1; c++ {
			i := r*w + c
			l := 4*int(y[i]) - int(y[i-1]) - int(y[i+1]) - int(y[i-w]) - int(y[i+w])
			sum += float64(l * l)
		}
	}
	return sum / float64((w-2)*(h-2))
}

// psnr is the peak signal-to-noise ratio of b against a, over all planes.
func psnr(a, b *frame.Frame) float64 {
	se, n := 0.0, 0
	for p := range a.Planes {
		for i, v := range a.Planes[p] {
			d := float64(v) - float64(b.Planes[p][i])
			se += d * d
			n++
		}
	}
	return 10 * math.Log10(255*255/(se/float64(n)))
}

func night(p synth.Params) synth.Params {
	p.Domain = synth.Night
	return p
}

func TestNight(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			dp := params(640, 360, 12, seed)
			np := night(dp)
			day, nig := synth.NewScene(dp), synth.NewScene(np)
			var fd, fn frame.Frame
			for range 10 {
				day.Step()
				nig.Step()
			}
			day.Render(&fd)
			nig.Render(&fn)
			require.Equal(t, day.Truth(), nig.Truth(), "the domain changes the look, not the scene")

			md, mn := meanLuma(&fd), meanLuma(&fn)
			hd, hn := highFreq(&fd), highFreq(&fn)
			t.Logf("mean luma day %.1f night %.1f; high-frequency energy day %.0f night %.0f", md, mn, hd, hn)
			require.Greater(t, md-mn, 35.0, "night is darker")
			require.Greater(t, hn, 1.5*hd, "night is noisier")

			// Night's noise is new in every frame; by day a still scene is
			// still.
			var a, b frame.Frame
			for _, p := range []synth.Params{params(320, 180, 0, seed), night(params(320, 180, 0, seed))} {
				s := synth.NewScene(p)
				s.Render(&a)
				s.Step()
				s.Render(&b)
				diff := 0
				for i := range a.Planes[0] {
					if a.Planes[0][i] != b.Planes[0][i] {
						diff++
					}
				}
				if p.Domain == synth.Day {
					require.Zero(t, diff)
				} else {
					require.Greater(t, diff, len(a.Planes[0])*8/10, "noise changes most pixels between frames")
				}
			}
		})
	}
}

// TestNightGlare compares a night scene with the same scene without targets:
// outside the targets' masks only the glare of car lights may differ, and
// it only brightens.
func TestNightGlare(t *testing.T) {
	p := night(params(640, 360, 16, 5))
	bp := p
	bp.Objects = 0
	s, bare := synth.NewScene(p), synth.NewScene(bp)
	var f, bf frame.Frame
	brighter := 0
	for n := range 20 {
		s.Render(&f)
		bare.Render(&bf)
		truth := s.Truth()
		in := make([]bool, p.Width*p.Height)
		cars := 0
		for _, o := range truth {
			for i, v := range o.Mask.Decode(nil) {
				if v != 0 {
					in[i] = true
				}
			}
			if o.Class == synth.ClassCar {
				cars++
			}
		}
		for i, v := range f.Planes[0] {
			if in[i] {
				continue
			}
			d := int(v) - int(bf.Planes[0][i])
			if d < 0 || (d > 0 && cars == 0) {
				t.Fatalf("frame %d pixel %d: luma %d without targets, %d with %d cars", n, i, bf.Planes[0][i], v, cars)
			}
			if d > 60 {
				brighter++
			}
		}
		for range 3 {
			s.Step()
			bare.Step()
		}
	}
	require.Greater(t, brighter, 100, "car lights glare")
}

func TestLightAndNoiseKnobs(t *testing.T) {
	base := params(320, 180, 8, 2)
	var def, f frame.Frame
	synth.NewScene(base).Render(&def)

	same := base
	same.Light, same.Noise = 1, 0
	synth.NewScene(same).Render(&f)
	require.Equal(t, def.Planes, f.Planes, "light 1 and noise 0 are the day's own")

	dim := base
	dim.Light = 0.5
	synth.NewScene(dim).Render(&f)
	// Luma is scaled about black (16): mean 16 + (m-16)/2, within the
	// clamping of a level.
	require.InDelta(t, 16+(meanLuma(&def)-16)/2, meanLuma(&f), 1.0)

	noisy := base
	noisy.Noise = 10
	synth.NewScene(noisy).Render(&f)
	sd := 0.0
	for i, v := range f.Planes[0] {
		d := float64(v) - float64(def.Planes[0][i])
		sd += d * d
	}
	sd = math.Sqrt(sd / float64(len(f.Planes[0])))
	require.InDelta(t, 10, sd, 1.0, "the noise has the asked-for deviation (cut at 3 sigma)")
	require.InDelta(t, meanLuma(&def), meanLuma(&f), 0.5, "noise keeps the mean")

	// Independent noise of deviation s adds 20 s^2 to the mean squared
	// Laplacian (weights 4, -1, -1, -1, -1).
	quiet := night(base)
	quiet.Noise = 0
	synth.NewScene(quiet).Render(&f)
	hq := highFreq(&f)
	synth.NewScene(night(base)).Render(&f)
	require.InDelta(t, 20*7*7, highFreq(&f)-hq, 0.1*20*7*7, "night's noise has a deviation of 7")
}

// TestDistractors compares a scene with distractors with the same scene
// without: the targets are the same and move the same, and the pixels they
// lose are exactly those a distractor covers.
func TestDistractors(t *testing.T) {
	p := params(640, 360, 16, 3)
	p.Distractors = 24
	q := p
	q.Distractors = 0
	with, without := synth.NewScene(p), synth.NewScene(q)
	labels := map[string]bool{}
	more := 0
	var dogX float32 = -1
	dogMoved := false
	for n := range 40 {
		cover := make([]bool, p.Width*p.Height)
		ds := with.Distractors()
		for _, d := range ds {
			require.Equal(t, synth.ClassNone, d.Class)
			require.Nil(t, d.Keypoints)
			labels[d.Label] = true
			if d.Label == "dog" {
				if dogX >= 0 && d.Full.X1 != dogX {
					dogMoved = true
				}
				dogX = d.Full.X1
			}
			for i, v := range d.Mask.Decode(nil) {
				if v != 0 {
					if cover[i] {
						t.Fatalf("frame %d: distractor masks overlap at %d", n, i)
					}
					cover[i] = true
				}
			}
		}
		tw, to := with.Truth(), without.Truth()
		byID := map[uint64]synth.Object{}
		for _, o := range tw {
			byID[o.ID] = o
		}
		for _, d := range ds {
			_, clash := byID[d.ID]
			require.False(t, clash, "distractor IDs are not target IDs")
		}
		for _, o := range to {
			ow, seen := byID[o.ID]
			mo := o.Mask.Decode(nil)
			if !seen {
				for i, v := range mo {
					if v != 0 && !cover[i] {
						t.Fatalf("frame %d: object %d vanished but not behind a distractor", n, o.ID)
					}
				}
				continue
			}
			require.Equal(t, o.Full, ow.Full, "distractors do not move targets")
			require.Equal(t, o.Class, ow.Class)
			mw := ow.Mask.Decode(nil)
			for i := range mw {
				if mw[i] != 0 && (mo[i] == 0 || cover[i]) {
					t.Fatalf("frame %d object %d: pixel %d in the mask is covered or not the object's", n, o.ID, i)
				}
				if mw[i] == 0 && mo[i] != 0 && !cover[i] {
					t.Fatalf("frame %d object %d: pixel %d lost but not covered", n, o.ID, i)
				}
			}
			require.GreaterOrEqual(t, ow.Occlusion, o.Occlusion-1e-6)
			if ow.Occlusion > o.Occlusion+1e-6 {
				more++
			}
			for k, kp := range ow.Keypoints {
				ko := o.Keypoints[k]
				require.LessOrEqual(t, kp.Score, ko.Score)
				if ko.Score > kp.Score {
					require.True(t, cover[int(kp.Y)*p.Width+int(kp.X)], "a keypoint hides only behind a distractor")
				}
			}
		}
		for range 2 {
			with.Step()
			without.Step()
		}
	}
	require.Greater(t, more, 10, "distractors hide targets")
	require.Equal(t, map[string]bool{"pole": true, "sign": true, "bin": true, "bush": true, "dog": true}, labels)
	require.True(t, dogMoved, "dogs walk")
}

func TestTexture(t *testing.T) {
	bare := func(seed uint64, texture float64) *frame.Frame {
		p := params(320, 180, 0, seed)
		p.Texture = texture
		var f frame.Frame
		synth.NewScene(p).Render(&f)
		return &f
	}
	meanDiff := func(a, b *frame.Frame, plane int) float64 {
		sum := 0
		for i, v := range a.Planes[plane] {
			sum += max(int(v)-int(b.Planes[plane][i]), int(b.Planes[plane][i])-int(v))
		}
		return float64(sum) / float64(len(a.Planes[plane]))
	}
	plain1, plain2 := bare(1, 0), bare(2, 0)
	rich1, rich2 := bare(1, 1), bare(2, 1)
	t.Logf("mean |luma difference|: seeds 1-2 plain %.1f, textured %.1f; plain-textured %.1f",
		meanDiff(plain1, plain2, 0), meanDiff(rich1, rich2, 0), meanDiff(plain1, rich1, 0))
	t.Logf("mean |U difference|: seeds 1-2 plain %.1f, textured %.1f",
		meanDiff(plain1, plain2, 1), meanDiff(rich1, rich2, 1))
	require.Greater(t, meanDiff(rich1, rich2, 0), meanDiff(plain1, plain2, 0), "texture varies the background more")
	require.Greater(t, meanDiff(rich1, rich2, 1), 3.0, "in colour too")
	require.Greater(t, meanDiff(plain1, rich1, 0), 3.0)
	for _, v := range rich1.Planes[0] {
		require.True(t, v >= 64 && v <= 150, "the background stays in its luma band")
	}
}

func TestJPEG(t *testing.T) {
	p := params(320, 240, 8, 4)
	var raw, f, g frame.Frame
	synth.NewScene(p).Render(&raw)
	var last float64
	for _, q := range []int{10, 50, 95} {
		p.JPEG = q
		synth.NewScene(p).Render(&f)
		synth.NewScene(p).Render(&g)
		require.Equal(t, f.Planes, g.Planes, "jpeg=%d is deterministic", q)
		require.NotEqual(t, raw.Planes[0], f.Planes[0], "jpeg=%d changes the picture", q)
		require.InDelta(t, meanLuma(&raw), meanLuma(&f), 2.0, "jpeg=%d keeps the brightness", q)
		ps := psnr(&raw, &f)
		t.Logf("jpeg=%d: PSNR %.1f dB", q, ps)
		require.Greater(t, ps, last, "higher quality, smaller error")
		require.Less(t, ps, 50.0)
		require.Equal(t, [3]int{320, 160, 160}, f.Strides)
		require.Len(t, f.Planes[1], 160*120)
		last = ps
	}
}

func TestDeterministicWorld(t *testing.T) {
	p := params(320, 180, 10, 11)
	p.Domain, p.Distractors, p.Texture, p.JPEG = synth.Night, 10, 1, 60
	a, b := synth.NewScene(p), synth.NewScene(p)
	var fa, fb frame.Frame
	for i := range 15 {
		a.Render(&fa)
		b.Render(&fb)
		require.Equal(t, fa.Planes, fb.Planes, "frame %d", i)
		require.Equal(t, a.Truth(), b.Truth(), "frame %d", i)
		require.Equal(t, a.Distractors(), b.Distractors(), "frame %d", i)
		a.Step()
		b.Step()
	}
	var snap frame.Frame
	require.Equal(t, a.Truth(), synth.Snapshot(p, 15, &snap))
	a.Render(&fa)
	require.Equal(t, fa.Planes, snap.Planes, "Snapshot renders frame n")

	p.Seed++
	c := synth.NewScene(p)
	var fc frame.Frame
	c.Render(&fc)
	synth.NewScene(night(params(320, 180, 10, 11))).Render(&fa)
	require.NotEqual(t, fa.Planes[0], fc.Planes[0], "another seed, another scene")
}

func TestToRGB(t *testing.T) {
	// BT.601 limited-range codes of the primaries, black and white
	// (Rec. ITU-R BT.601-7, and the classic 75%-free colour-bar values).
	for _, tc := range []struct {
		name    string
		y, u, v byte
		want    [3]int
	}{
		{"red", 81, 90, 240, [3]int{255, 0, 0}},
		{"green", 145, 54, 34, [3]int{0, 255, 0}},
		{"blue", 41, 240, 110, [3]int{0, 0, 255}},
		{"white", 235, 128, 128, [3]int{255, 255, 255}},
		{"black", 16, 128, 128, [3]int{0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &frame.Frame{Width: 2, Height: 2, Format: frame.PixelFormatYUV420P, Strides: [3]int{2, 1, 1},
				Planes: [3][]byte{{tc.y, tc.y, tc.y, tc.y}, {tc.u}, {tc.v}}}
			img, err := synth.ToRGB(f, nil)
			require.NoError(t, err)
			for i := range 4 {
				px := img.Pix[4*i : 4*i+4]
				for c := range 3 {
					require.InDelta(t, tc.want[c], int(px[c]), 2, "channel %d", c)
				}
				require.Equal(t, byte(255), px[3])
			}
		})
	}
	full := &frame.Frame{Width: 2, Height: 2, Format: frame.PixelFormatYUVJ420P, Strides: [3]int{2, 1, 1},
		Planes: [3][]byte{{0, 128, 200, 255}, {128}, {128}}}
	img, err := synth.ToRGB(full, nil)
	require.NoError(t, err)
	require.Equal(t, []byte{0, 0, 0, 255, 128, 128, 128, 255, 200, 200, 200, 255, 255, 255, 255, 255}, img.Pix)

	odd := &frame.Frame{Width: 3, Height: 3, Format: frame.PixelFormatYUVJ420P, Strides: [3]int{3, 2, 2},
		Planes: [3][]byte{{10, 20, 30, 40, 50, 60, 70, 80, 90}, {128, 128, 128, 128}, {128, 128, 128, 128}}}
	img, err = synth.ToRGB(odd, nil)
	require.NoError(t, err)
	for i, y := range odd.Planes[0] {
		require.Equal(t, []byte{y, y, y, 255}, img.Pix[4*i:4*i+4], "odd sizes: pixel %d", i)
	}

	// A rendered frame converts, reusing the picture.
	var f frame.Frame
	synth.NewScene(params(64, 48, 3, 1)).Render(&f)
	dst := image.NewRGBA(image.Rect(0, 0, 64, 48))
	got, err := synth.ToRGB(&f, dst)
	require.NoError(t, err)
	require.Same(t, dst, got)

	_, err = synth.ToRGB(&frame.Frame{Width: 2, Height: 2, Format: frame.PixelFormatRGB24}, nil)
	require.ErrorContains(t, err, "want yuv420p or yuvj420p")
	_, err = synth.ToRGB(&frame.Frame{Width: 4, Height: 4, Format: frame.PixelFormatYUV420P, Strides: [3]int{4, 2, 2},
		Planes: [3][]byte{make([]byte, 15), make([]byte, 4), make([]byte, 4)}}, nil)
	require.ErrorContains(t, err, "planes or strides too small")
}

// BenchmarkRender640 measures Step plus Render of a 640x360 scene with 12
// targets in each domain, and with the other knobs.
func BenchmarkRender640(b *testing.B) {
	for _, bc := range []struct {
		name string
		set  func(p *synth.Params)
	}{
		{"day", func(*synth.Params) {}},
		{"night", func(p *synth.Params) { p.Domain = synth.Night }},
		{"day-distractors-texture", func(p *synth.Params) { p.Distractors, p.Texture = 12, 1 }},
		{"night-distractors-texture", func(p *synth.Params) { p.Domain, p.Distractors, p.Texture = synth.Night, 12, 1 }},
		{"night-jpeg75", func(p *synth.Params) { p.Domain, p.JPEG = synth.Night, 75 }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := params(640, 360, 12, 7)
			bc.set(&p)
			s := synth.NewScene(p)
			var f frame.Frame
			s.Render(&f)
			b.ReportAllocs()
			for b.Loop() {
				s.Step()
				s.Render(&f)
			}
		})
	}
}

// BenchmarkToRGB measures converting a 640x360 frame.
func BenchmarkToRGB(b *testing.B) {
	var f frame.Frame
	synth.NewScene(params(640, 360, 12, 7)).Render(&f)
	dst := image.NewRGBA(image.Rect(0, 0, 640, 360))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := synth.ToRGB(&f, dst); err != nil {
			b.Fatal(err)
		}
	}
}
