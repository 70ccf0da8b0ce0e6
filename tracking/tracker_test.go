package tracking

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/tracking/motmetrics"
)

// synthRun tracks a crowded generated scene, whose detections are the
// ground truth's visible boxes with jitter and, when embed is set, an
// appearance vector per identity with noise; some detections are dropped.
// It returns the CLEAR/identity/HOTA metrics against the truth.
func synthRun(t *testing.T, o Options, embed bool, frames int) motmetrics.Result {
	t.Helper()
	p := synth.DefaultParams()
	p.Objects, p.Width, p.Height, p.Seed = 24, 640, 360, 7
	sc := synth.NewScene(p)
	rng := rand.New(rand.NewPCG(1, 2))
	appearance := map[uint64][]float32{}
	tr := New(o)
	var gt, res motmetrics.Sequence
	for n := range frames {
		// Every third frame of a 15 fps scene: 5 fps, as a stream with
		// infer_fps 5 is analysed, so objects move far between frames.
		sc.Step()
		sc.Step()
		sc.Step()
		var dets []frame.Detection
		for _, ob := range sc.Truth() {
			b := ob.Full
			if b.W() < 4 || b.H() < 8 || ob.Occlusion > 0.7 {
				continue
			}
			gt.Add(n+1, motmetrics.Object{ID: int(ob.ID), Box: motmetrics.Box{X: float64(b.X1), Y: float64(b.Y1), W: float64(b.W()), H: float64(b.H())}})
			if rng.Float64() < 0.1 {
				continue // missed detection
			}
			j := func() float32 { return float32(rng.NormFloat64()) * 0.02 * b.H() }
			d := frame.Detection{Box: frame.Box{X1: b.X1 + j(), Y1: b.Y1 + j(), X2: b.X2 + j(), Y2: b.Y2 + j()}, Class: int(ob.Class), Score: 0.9}
			if embed {
				a, ok := appearance[ob.ID]
				if !ok {
					a = unit(randVec(rng, 64))
					appearance[ob.ID] = a
				}
				e := randVec(rng, 64)
				for k := range e {
					e[k] = a[k] + 0.03*e[k] // noise of norm about 0.24
				}
				d.Embedding = unit(e)
			}
			dets = append(dets, d)
		}
		tr.Update(dets, time.Duration(n)*time.Second/5)
		for _, d := range dets {
			if d.TrackID != 0 {
				res.Add(n+1, motmetrics.Object{ID: int(d.TrackID), Box: motmetrics.Box{X: float64(d.Box.X1), Y: float64(d.Box.Y1), W: float64(d.Box.W()), H: float64(d.Box.H())}})
			}
		}
	}
	r, err := motmetrics.Evaluate(gt, res, motmetrics.Options{})
	require.NoError(t, err)
	return r
}

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func unit(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	n := float32(math.Sqrt(s))
	for i := range v {
		v[i] /= n
	}
	return v
}

// TestTrackerOnSynth: the tracker follows a crowded scene with occlusions
// and crossing paths; appearance (Deep SORT) switches identities less often
// than IoU alone (SORT).
func TestTrackerOnSynth(t *testing.T) {
	sort := synthRun(t, Options{Mode: ModeSORT, ScoreThreshold: 0.5}, false, 200)
	deep := synthRun(t, Options{Mode: ModeDeepSORT, ScoreThreshold: 0.5}, true, 200)
	t.Logf("SORT:      MOTA %.3f IDF1 %.3f HOTA %.3f IDSW %d", sort.MOTA, sort.IDF1, sort.HOTA, sort.IDSW)
	t.Logf("Deep SORT: MOTA %.3f IDF1 %.3f HOTA %.3f IDSW %d", deep.MOTA, deep.IDF1, deep.HOTA, deep.IDSW)
	require.Greater(t, deep.MOTA, 0.6)
	require.Greater(t, sort.MOTA, 0.5)
	require.Less(t, deep.IDSW, sort.IDSW, "appearance reduces identity switches")
	require.Greater(t, deep.IDF1, sort.IDF1)
}

// TestTrackerLifecycle: a track is confirmed after NInit hits, keeps its ID
// through a short gap, and ends after MaxAge misses; IDs are not reused.
func TestTrackerLifecycle(t *testing.T) {
	tr := New(Options{NInit: 3, MaxAge: 5, ScoreThreshold: 0.5})
	box := func(x float32) frame.Box { return frame.Box{X1: x, Y1: 100, X2: x + 40, Y2: 200} }
	look := []float32{0.6, 0.8} // the object's appearance, which bridges gaps
	var events []Event
	step := func(n int, dets ...frame.Detection) []frame.Detection {
		_, ev := tr.Update(dets, time.Duration(n)*time.Second)
		events = append(events, ev...)
		return dets
	}
	for n := range 3 {
		d := step(n, frame.Detection{Box: box(float32(10 * n)), Score: 0.9, Embedding: look})
		if n < 2 {
			require.Zero(t, d[0].TrackID, "tentative until the third hit")
		} else {
			require.Equal(t, uint64(1), d[0].TrackID)
		}
	}
	require.Len(t, events, 1)
	require.Equal(t, EventStarted, events[0].Kind)
	step(3) // a missed frame
	d := step(4, frame.Detection{Box: box(40), Score: 0.8, Embedding: look})
	require.Equal(t, uint64(1), d[0].TrackID, "the same track after a gap")
	for n := 5; n < 12; n++ {
		step(n)
	}
	require.Len(t, events, 2)
	require.Equal(t, EventEnded, events[1].Kind)
	require.Equal(t, 4, events[1].Frames)
	require.InDelta(t, 0.875, events[1].MeanScore, 1e-6)
	require.Equal(t, time.Duration(0), events[1].First)
	require.Equal(t, 4*time.Second, events[1].Last)
	d = step(12, frame.Detection{Box: box(40), Score: 0.9})
	step(13, d...)
	d = step(14, frame.Detection{Box: box(40), Score: 0.9})
	require.Equal(t, uint64(2), d[0].TrackID, "a new identity, never a reused one")

	// A low-score detection extends a confirmed track in the second pass
	// but never starts one.
	tl := New(Options{NInit: 1, ScoreThreshold: 0.5, LowScoreThreshold: 0.1})
	d = []frame.Detection{{Box: box(0), Score: 0.9}}
	tl.Update(d, 0)
	d = []frame.Detection{{Box: box(2), Score: 0.2}, {Box: box(300), Score: 0.2}}
	tracks, _ := tl.Update(d, time.Second)
	require.Equal(t, uint64(1), d[0].TrackID)
	require.Zero(t, d[1].TrackID)
	require.Len(t, tracks, 1)
}

// BenchmarkUpdate is the case: 50 confirmed tracks whose galleries
// are full (nn_budget 100) and 50 detections with 256-d embeddings per
// frame. nwojke/deep_sort takes 13.2 ms per frame for this.
func BenchmarkUpdate(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, dim = 50, 256
	looks := make([][]float32, n)
	for i := range looks {
		looks[i] = unit(randVec(rng, dim))
	}
	frameDets := func(f int) []frame.Detection {
		dets := make([]frame.Detection, n)
		for i := range dets {
			x := float32(i%10)*60 + float32(f%7)
			y := float32(i/10)*100 + float32(f%5)
			e := randVec(rng, dim)
			for k := range e {
				e[k] = looks[i][k] + 0.01*e[k]
			}
			dets[i] = frame.Detection{Box: frame.Box{X1: x, Y1: y, X2: x + 30, Y2: y + 80}, Score: 0.9, Embedding: unit(e)}
		}
		return dets
	}
	tr := New(Options{NInit: 1, NNBudget: 100, ScoreThreshold: 0.5})
	for f := range 110 { // fill the galleries
		tr.Update(frameDets(f), 0)
	}
	inputs := make([][]frame.Detection, 16)
	for i := range inputs {
		inputs[i] = frameDets(110 + i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		dets := inputs[i%len(inputs)]
		for k := range dets {
			dets[k].TrackID = 0
		}
		tracks, _ := tr.Update(dets, 0)
		if len(tracks) != n {
			b.Fatalf("%d tracks, want %d", len(tracks), n)
		}
		i++
	}
}
