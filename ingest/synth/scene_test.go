package synth_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/synth"
)

func params(w, h, objects int, seed uint64) synth.Params {
	p := synth.DefaultParams()
	p.Width, p.Height, p.Objects, p.Seed = w, h, objects, seed
	return p
}

func TestSceneDeterministic(t *testing.T) {
	p := params(320, 240, 8, 7)
	a, b := synth.NewScene(p), synth.NewScene(p)
	var fa, fb frame.Frame
	for i := range 60 {
		a.Render(&fa)
		b.Render(&fb)
		require.Equal(t, fa.Planes, fb.Planes, "frame %d", i)
		require.Equal(t, a.Truth(), b.Truth(), "frame %d", i)
		a.Step()
		b.Step()
	}
	require.Equal(t, a.Truth(), synth.Replay(p, 60))
	require.Equal(t, uint64(60), a.Seq())

	p.Seed = 8
	c := synth.NewScene(p)
	var fc frame.Frame
	c.Render(&fc)
	a.Render(&fa)
	require.NotEqual(t, fa.Planes[0], fc.Planes[0], "another seed, another scene")
}

func TestSceneTruth(t *testing.T) {
	for _, tc := range []struct {
		w, h, objects int
		seed          uint64
		distractors   int
		texture       float64
	}{
		{w: 640, h: 360, objects: 12, seed: 1},
		{w: 320, h: 240, objects: 6, seed: 99},
		{w: 16, h: 16, objects: 3, seed: 5},
		{w: 320, h: 180, objects: 10, seed: 4, distractors: 12, texture: 1},
		{w: 16, h: 16, objects: 2, seed: 6, distractors: 4, texture: 0.5},
	} {
		t.Run(fmt.Sprintf("%dx%d/%d/%d/%g", tc.w, tc.h, tc.objects, tc.distractors, tc.texture), func(t *testing.T) {
			p := params(tc.w, tc.h, tc.objects, tc.seed)
			p.Distractors, p.Texture = tc.distractors, tc.texture
			checkTruth(t, p, 300)
		})
	}
}

type sighting struct {
	frame int
	class int
	depth float32
}

// checkTruth checks the truth of a day scene without noise against its
// pictures, frame by frame, and against the same scene without targets
// (whose distractors, if any, move the same way).
func checkTruth(t *testing.T, p synth.Params, frames int) {
	bp := p
	bp.Objects = 0
	bare := synth.NewScene(bp)
	var bg frame.Frame

	s := synth.NewScene(p)
	var f frame.Frame
	last := map[uint64]sighting{}
	visible, occluded := 0, 0
	owner := make([]int, p.Width*p.Height)
	for n := range frames {
		if n > 0 {
			s.Step()
			bare.Step()
		}
		s.Render(&f)
		bare.Render(&bg)
		require.Len(t, bg.Planes[0], p.Width*p.Height)
		require.Equal(t, frame.PixelFormatYUV420P, f.Format)
		require.Equal(t, [3]int{p.Width, p.Width / 2, p.Width / 2}, f.Strides)
		truth := s.Truth()
		visible += len(truth)
		clear(owner)
		for i, o := range truth {
			if i > 0 {
				require.Less(t, truth[i-1].ID, o.ID, "frame %d: IDs sorted and unique", n)
			}
			b := o.Box
			require.True(t, b.X1 >= 0 && b.Y1 >= 0 && b.X1 < b.X2 && b.Y1 < b.Y2 &&
				b.X2 <= float32(p.Width) && b.Y2 <= float32(p.Height), "frame %d object %d: box %v", n, o.ID, b)
			require.True(t, o.Full.X1 <= b.X1+0.5 && o.Full.Y1 <= b.Y1+0.5 && o.Full.X2 >= b.X2-0.5 && o.Full.Y2 >= b.Y2-0.5,
				"frame %d object %d: full %v must contain box %v", n, o.ID, o.Full, b)
			require.GreaterOrEqual(t, o.Occlusion, float32(0))
			require.Less(t, o.Occlusion, float32(1))
			if o.Occlusion > 0 {
				occluded++
			}

			m := o.Mask
			require.NotNil(t, m)
			require.Equal(t, p.Width, m.Width)
			require.Equal(t, p.Height, m.Height)
			bw, bh := int(b.W()), int(b.H())
			x0, y0 := int(b.X1), int(b.Y1)
			data := m.Decode(nil)
			px := 0
			rows, cols := make([]bool, bh), make([]bool, bw)
			for y := y0; y < y0+bh; y++ {
				for x := x0; x < x0+bw; x++ {
					v := data[y*p.Width+x]
					if v == 0 {
						continue
					}
					px++
					rows[y-y0], cols[x-x0] = true, true
					i := y*p.Width + x
					if v != 1 || owner[i] != 0 {
						t.Fatalf("frame %d pixel %d,%d: mask value %d, already in the mask of %d", n, x, y, v, owner[i])
					}
					owner[i] = int(o.ID)
				}
			}
			require.Positive(t, px)
			require.Equal(t, m.Area(), px, "frame %d object %d: mask pixels outside box %v", n, o.ID, b)
			// The box is tight: its edge rows and columns hold mask pixels
			// (an occluder may split the object, so inner ones need not).
			require.True(t, rows[0] && rows[bh-1] && cols[0] && cols[bw-1], "frame %d object %d: box not tight", n, o.ID)

			switch o.Class {
			case synth.ClassPerson:
				require.Equal(t, "person", o.Label)
				require.Len(t, o.Keypoints, len(synth.KeypointNames))
				for k, kp := range o.Keypoints {
					if kp.Score == 0 {
						continue
					}
					require.Equal(t, float32(1), kp.Score)
					require.True(t, kp.X >= b.X1 && kp.X < b.X2 && kp.Y >= b.Y1 && kp.Y < b.Y2,
						"frame %d object %d: visible %s %v outside box %v", n, o.ID, synth.KeypointNames[k], kp, b)
					require.Equal(t, byte(1), data[int(kp.Y)*p.Width+int(kp.X)], "visible keypoint on the mask")
				}
			case synth.ClassCar:
				require.Equal(t, "car", o.Label)
				require.Nil(t, o.Keypoints)
			default:
				t.Fatalf("frame %d object %d: class %d", n, o.ID, o.Class)
			}

			// An identity keeps its class and moves continuously: a reused ID
			// would jump.
			if prev, ok := last[o.ID]; ok {
				require.Equal(t, prev.class, o.Class, "object %d changed class", o.ID)
				maxDz := 0.25 / float32(p.FPS) * float32(n-prev.frame)
				require.InDelta(t, prev.depth, o.Depth, float64(maxDz)+1e-3, "object %d jumped in depth", o.ID)
			}
			last[o.ID] = sighting{frame: n, class: o.Class, depth: o.Depth}
		}
		// Exactly the masked pixels differ from the bare background.
		for i, l := range f.Planes[0] {
			if (owner[i] != 0) != (l != bg.Planes[0][i]) {
				t.Fatalf("frame %d pixel %d,%d: owner %d, luma %d, background %d",
					n, i%p.Width, i/p.Width, owner[i], l, bg.Planes[0][i])
			}
		}
	}
	if p.Width >= 320 {
		require.Greater(t, float64(visible)/float64(frames), 0.5*float64(p.Objects), "the scene stays populated")
		require.Greater(t, len(last), 2*p.Objects, "objects leave and new ones enter")
		require.Positive(t, occluded, "some objects hide others")
	}
}

func TestRenderReusesPlanes(t *testing.T) {
	s := synth.NewScene(params(64, 48, 2, 1))
	f := frame.Frame{Planes: [3][]byte{make([]byte, 10000), make([]byte, 1000), make([]byte, 1000)}}
	y := &f.Planes[0][0]
	s.Render(&f)
	require.Same(t, y, &f.Planes[0][0])
	require.Len(t, f.Planes[0], 64*48)
	require.Len(t, f.Planes[1], 32*24)
	require.Equal(t, 64, f.Width)
	require.Equal(t, 48, f.Height)

	s = synth.NewScene(synth.DefaultParams())
	s.Render(&f)
	for range 10 {
		s.Step()
		s.Render(&f)
	}
	allocs := testing.AllocsPerRun(20, func() {
		s.Step()
		s.Render(&f)
	})
	require.Zero(t, allocs, "steady-state Step and Render allocate nothing")

	p := params(320, 180, 12, 3)
	p.Domain, p.Distractors, p.Texture = synth.Night, 8, 1
	s = synth.NewScene(p)
	s.Render(&f)
	allocs = testing.AllocsPerRun(20, func() {
		s.Step()
		s.Render(&f)
	})
	require.Zero(t, allocs, "nor at night with distractors")
}

func TestSkeleton(t *testing.T) {
	require.Len(t, synth.KeypointNames, 17)
	require.Len(t, synth.Skeleton, 19)
	for _, l := range synth.Skeleton {
		require.True(t, l[0] >= 0 && l[0] < 17 && l[1] >= 0 && l[1] < 17 && l[0] != l[1])
	}
}

// BenchmarkRender measures one frame of the default scene (1280x720, six
// objects): Step plus Render.
func BenchmarkRender(b *testing.B) {
	s := synth.NewScene(synth.DefaultParams())
	var f frame.Frame
	s.Render(&f)
	b.ReportAllocs()
	for b.Loop() {
		s.Step()
		s.Render(&f)
	}
}

// BenchmarkTruth measures the ground truth of one frame after Render.
func BenchmarkTruth(b *testing.B) {
	s := synth.NewScene(synth.DefaultParams())
	var f frame.Frame
	b.ReportAllocs()
	for b.Loop() {
		s.Step()
		s.Render(&f)
		_ = s.Truth()
	}
}
