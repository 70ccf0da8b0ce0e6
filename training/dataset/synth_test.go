package dataset

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/ingest/synth"
)

func smallParams(seed uint64) synth.Params {
	p := synth.DefaultParams()
	p.Width, p.Height, p.Seed, p.Objects, p.Distractors = 320, 192, seed, 8, 3
	p.Realtime = false
	return p
}

func TestSynthSourceDeterministicAndLabelled(t *testing.T) {
	opts := SynthOptions{Params: smallParams(3), Sequences: 2, Frames: 6, Stride: 5, Skip: 10, Workers: 2}
	var calls, last int
	opts.Progress = func(done, total int) { calls++; last = done; require.Equal(t, 12, total) }
	a, err := NewSynthSource(opts)
	require.NoError(t, err)
	require.Equal(t, 12, calls)
	require.Equal(t, 12, last)
	opts.Progress, opts.Workers = nil, 1
	b, err := NewSynthSource(opts)
	require.NoError(t, err)
	require.Equal(t, 12, a.Len())

	seqs := map[string]int{}
	var objects, ignored, people int
	for i := range a.Len() {
		sa, err := a.At(i)
		require.NoError(t, err)
		sb, err := b.At(i)
		require.NoError(t, err)
		require.Equal(t, sa.Image.Pix, sb.Image.Pix, "sample %d", i)
		require.Equal(t, sa.Objects, sb.Objects)
		require.Equal(t, sa.ID, sb.ID)
		seqs[sa.Sequence]++
		seq, err := a.SequenceOf(i)
		require.NoError(t, err)
		require.Equal(t, sa.Sequence, seq)

		// Frames kept: skip 10, then every 5th.
		require.Contains(t, sa.ID, []string{"/000010", "/000015", "/000020", "/000025", "/000030", "/000035"}[i%6])
		require.Equal(t, Segment(sa.Objects, 320, 192).Pix, sa.Segmentation.Pix)
		ids := map[uint64]bool{}
		for _, o := range sa.Objects {
			objects++
			require.False(t, ids[o.TrackID])
			ids[o.TrackID] = true
			require.NotNil(t, o.Mask)
			require.Equal(t, float32(1), o.Score)
			// At the render size, the visible box is the mask's extent.
			bb := o.Mask.BBox()
			require.InDelta(t, bb[0], o.Box.X1, 1e-3)
			require.InDelta(t, bb[1], o.Box.Y1, 1e-3)
			require.InDelta(t, bb[0]+bb[2], o.Box.X2, 1e-3)
			require.InDelta(t, bb[1]+bb[3], o.Box.Y2, 1e-3)
			if o.Box.W() < 4 || o.Box.H() < 4 {
				require.True(t, o.Ignore)
			}
			if o.Ignore {
				ignored++
			}
			if o.Class == synth.ClassPerson {
				people++
				require.Len(t, o.Keypoints, 17)
			}
		}
	}
	require.Equal(t, map[string]int{"synth-day-s3": 6, "synth-day-s4": 6}, seqs)
	require.Greater(t, objects, 30)
	require.Greater(t, people, 5)
	t.Logf("%d objects, %d ignored; %+v, %v per sample", objects, ignored, a.Stats(), a.Stats().PerSample())
	_, err = a.At(12)
	require.ErrorIs(t, err, ErrRange)
}

func TestSynthSourceStrideAndScale(t *testing.T) {
	every, err := NewSynthSource(SynthOptions{Params: smallParams(5), Frames: 7})
	require.NoError(t, err)
	third, err := NewSynthSource(SynthOptions{Params: smallParams(5), Frames: 3, Stride: 3})
	require.NoError(t, err)
	half, err := NewSynthSource(SynthOptions{Params: smallParams(5), Frames: 3, Stride: 3, Width: 160, Height: 96})
	require.NoError(t, err)
	for i := range 3 {
		e, err := every.At(3 * i)
		require.NoError(t, err)
		s, err := third.At(i)
		require.NoError(t, err)
		require.Equal(t, e.Image.Pix, s.Image.Pix)
		require.Equal(t, e.Objects, s.Objects)

		h, err := half.At(i)
		require.NoError(t, err)
		require.Equal(t, 160, h.Image.Bounds().Dx())
		require.Equal(t, 96, h.Segmentation.Bounds().Dy())
		// A 2x2 area average of the full picture, to the rounding.
		for _, pt := range [][2]int{{0, 0}, {80, 50}, {159, 95}} {
			x, y := pt[0], pt[1]
			for c := range 3 {
				sum := 0
				for _, d := range [][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
					sum += int(s.Image.Pix[s.Image.PixOffset(2*x+d[0], 2*y+d[1])+c])
				}
				require.InDelta(t, float64(sum)/4, float64(h.Image.Pix[h.Image.PixOffset(x, y)+c]), 0.51)
			}
		}
		require.Len(t, h.Objects, len(s.Objects))
		for k, o := range h.Objects {
			full := s.Objects[k]
			require.Equal(t, full.TrackID, o.TrackID)
			require.InDelta(t, full.Box.X1/2, o.Box.X1, 1e-4)
			require.InDelta(t, full.Box.Y2/2, o.Box.Y2, 1e-4)
			require.Equal(t, 160, o.Mask.Width)
			// The sampled mask keeps about a quarter of the pixels.
			require.InDelta(t, float64(full.Mask.Area())/4, float64(o.Mask.Area()), float64(full.Mask.Area())/8+8)
			for j, kp := range o.Keypoints {
				require.InDelta(t, full.Keypoints[j].X/2, kp.X, 1e-4)
				require.Equal(t, full.Keypoints[j].Score, kp.Score)
			}
		}
		require.Equal(t, Segment(h.Objects, 160, 96).Pix, h.Segmentation.Pix)
	}
}

func TestSynthSourceBadOptions(t *testing.T) {
	bad := smallParams(1)
	bad.Width = 17
	for _, tc := range []struct {
		name string
		opts SynthOptions
		msg  string
	}{
		{"params", SynthOptions{Params: bad}, "params"},
		{"larger output", SynthOptions{Params: smallParams(1), Width: 640, Height: 96}, "width, height"},
		{"negative frames", SynthOptions{Params: smallParams(1), Frames: -1}, "frames"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSynthSource(tc.opts)
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

func BenchmarkSynthSample(b *testing.B) {
	for _, tc := range []struct {
		name string
		w, h int
	}{{"640x384", 640, 384}, {"640x384to320x192", 320, 192}} {
		b.Run(tc.name, func(b *testing.B) {
			p := smallParams(1)
			p.Width, p.Height = 640, 384
			r := newSynthRenderer(&SynthOptions{Params: p, Width: tc.w, Height: tc.h, Stride: 1, MinVisible: 0.1, MinBoxSize: 4})
			// One scene of 16 frames per op, as NewSynthSource renders.
			dst := make([]Sample, 16)
			var render, label time.Duration
			b.ReportAllocs()
			for b.Loop() {
				if err := r.sequence(p, dst, func(r, l time.Duration) { render += r; label += l }); err != nil {
					b.Fatal(err)
				}
			}
			n := float64(b.N * len(dst))
			b.ReportMetric(float64(render.Nanoseconds())/n, "render-ns/sample")
			b.ReportMetric(float64(label.Nanoseconds())/n, "label-ns/sample")
		})
	}
}
