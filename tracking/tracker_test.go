package tracking

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/tracking/motmetrics"
)

// synthData is a crowded generated scene as a detector would see it, with
// its ground truth: detections are the truth's full boxes with jitter, a
// score that falls with occlusion (so partly hidden people score below the
// detector's threshold) and an appearance vector per identity with noise;
// some detections are missed.
type synthData struct {
	gt   motmetrics.Sequence
	dets [][]frame.Detection
}

func makeSynth(objects, frames int) synthData {
	p := synth.DefaultParams()
	p.Objects, p.Width, p.Height, p.Seed = objects, 640, 360, 7
	sc := synth.NewScene(p)
	rng := rand.New(rand.NewPCG(1, 2))
	appearance := map[uint64][]float32{}
	outfits := make([][]float32, 4)
	for i := range outfits {
		outfits[i] = unit(randVec(rng, 64))
	}
	look := func(id uint64) []float32 {
		if id == 0 {
			return nil
		}
		a, ok := appearance[id]
		if !ok {
			a = randVec(rng, 64)
			o := outfits[rng.IntN(len(outfits))]
			u := unit(a)
			for k := range a {
				a[k] = o[k] + 0.6*u[k]
			}
			a = unit(a)
			appearance[id] = a
		}
		return a
	}
	var d synthData
	for n := range frames {
		// Every third frame of a 15 fps scene: 5 fps, as a stream with
		// infer_fps 5 is analysed, so objects move far between frames.
		sc.Step()
		sc.Step()
		sc.Step()
		var dets []frame.Detection
		truth := sc.Truth()
		for _, ob := range truth {
			b := ob.Full
			if b.W() < 4 || b.H() < 8 || ob.Occlusion > 0.7 {
				continue
			}
			d.gt.Add(n+1, motmetrics.Object{ID: int(ob.ID), Box: motmetrics.Box{X: float64(b.X1), Y: float64(b.Y1), W: float64(b.W()), H: float64(b.H())}})
			if rng.Float64() < 0.1 {
				continue // missed detection
			}
			j := func() float32 { return float32(rng.NormFloat64()) * 0.02 * b.H() }
			score := min(0.95, 0.9-ob.Occlusion+0.1*float32(rng.NormFloat64()))
			det := frame.Detection{Box: frame.Box{X1: b.X1 + j(), Y1: b.Y1 + j(), X2: b.X2 + j(), Y2: b.Y2 + j()}, Class: int(ob.Class), Score: score}
			// The re-ID features: each person wears one of a few outfits
			// (people in the same outfit are 0.25 apart), samples are
			// noisy, and a partly hidden person's crop shows the one in
			// front of it, whose look mixes in.
			e := randVec(rng, 64)
			own, front := look(ob.ID), look(occluder(truth, ob))
			for k := range e {
				e[k] = (1-ob.Occlusion)*own[k] + 0.0375*e[k]
				if front != nil {
					e[k] += ob.Occlusion * front[k]
				}
			}
			if score >= 0.5 {
				// The pipeline embeds only detections above the threshold.
				det.Embedding = unit(e)
			}
			dets = append(dets, det)
		}
		d.dets = append(d.dets, dets)
	}
	return d
}

// run tracks the data with o and scores the confirmed tracks against the
// truth; embeddings are withheld in SORT mode.
func (d synthData) run(t *testing.T, o Options) (motmetrics.Result, motmetrics.Summary) {
	t.Helper()
	tr := New(o)
	var res motmetrics.Sequence
	for n, in := range d.dets {
		dets := slices.Clone(in)
		for i := range dets {
			if o.Mode == ModeSORT {
				dets[i].Embedding = nil
			}
		}
		tr.Update(dets, time.Duration(n)*time.Second/5)
		for _, det := range dets {
			if det.TrackID != 0 {
				res.Add(n+1, motmetrics.Object{ID: int(det.TrackID), Box: motmetrics.Box{X: float64(det.Box.X1), Y: float64(det.Box.Y1), W: float64(det.Box.W()), H: float64(det.Box.H())}})
			}
		}
	}
	r, err := motmetrics.Evaluate(d.gt, res, motmetrics.Options{})
	require.NoError(t, err)
	return r, motmetrics.Summarize(res, 10)
}

// occluder is the ID of the object in front of ob that overlaps it most,
// 0 if none.
func occluder(truth []synth.Object, ob synth.Object) uint64 {
	var id uint64
	var best float32
	for _, o := range truth {
		if o.ID == ob.ID || o.Depth >= ob.Depth {
			continue
		}
		if v := o.Full.IoU(ob.Full); v > best {
			id, best = o.ID, v
		}
	}
	return id
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

// TestTrackerOnSynth is the ablation on a crowded scene with occlusions and
// crossing paths: appearance (Deep SORT) switches identities clearly less
// often than IoU alone (SORT), and the low-score pass recovers partly
// hidden people. The table is in the README.
func TestTrackerOnSynth(t *testing.T) {
	d := makeSynth(40, 300)
	rows := []struct {
		name string
		o    Options
	}{
		{"SORT (IoU only)", Options{Mode: ModeSORT}},
		{"Deep SORT (as published)", Options{}},
		{"Deep SORT + IoU appearance gate", Options{IoUAppearanceGate: true}},
		{"Deep SORT + gate + low-score pass", Options{IoUAppearanceGate: true, LowScoreThreshold: 0.1}},
		{"Deep SORT, EMA appearance + gate", Options{Appearance: AppearanceEMA, IoUAppearanceGate: true}},
		{"Deep SORT, EMA + gate + low-score pass", Options{Appearance: AppearanceEMA, IoUAppearanceGate: true, LowScoreThreshold: 0.1}},
	}
	res := make([]motmetrics.Result, len(rows))
	t.Log("| mode | MOTA | IDF1 | HOTA | ID switches | FP | FN | no GT: hand-overs + jumps |")
	for i, row := range rows {
		row.o.ScoreThreshold = 0.5
		var sum motmetrics.Summary
		res[i], sum = d.run(t, row.o)
		r := res[i]
		t.Logf("| %s | %.3f | %.3f | %.3f | %d | %d | %d | %d + %d |", row.name, r.MOTA, r.IDF1, r.HOTA, r.IDSW, r.FP, r.FN, sum.SuspectedSwitches, sum.Jumps)
	}
	sort, deep, gated, low, ema, emaLow := res[0], res[1], res[2], res[3], res[4], res[5]
	for _, r := range res {
		require.Greater(t, r.MOTA, 0.7)
	}
	require.Less(t, deep.IDSW, sort.IDSW, "appearance reduces identity switches")
	require.LessOrEqual(t, 2*gated.IDSW, sort.IDSW, "with the gate, appearance halves them")
	require.Greater(t, gated.IDF1, deep.IDF1)
	require.Greater(t, low.MOTA, gated.MOTA+0.02, "the low-score pass recovers occluded people")
	require.Less(t, low.FN, gated.FN)
	require.Less(t, ema.IDSW, gated.IDSW, "one smoothed embedding is polluted less than a gallery")
	require.Greater(t, emaLow.IDF1, sort.IDF1)
	require.Greater(t, emaLow.HOTA, sort.HOTA)
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

// benchUpdate runs the tracker on 50 objects with 256-d embeddings whose
// galleries are full. spread is the distance between neighbours in pixels:
// 60 keeps them apart (the motion gate admits about one detection per
// track); 0.1 packs them so that every pair passes the gate and the whole
// 50x100x50x256 product is computed, as nwojke/deep_sort always does.
func benchUpdate(b *testing.B, o Options, spread float32) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, dim = 50, 256
	looks := make([][]float32, n)
	for i := range looks {
		looks[i] = unit(randVec(rng, dim))
	}
	frameDets := func(f int) []frame.Detection {
		dets := make([]frame.Detection, n)
		for i := range dets {
			x := float32(i%10)*spread + float32(f%7)
			y := float32(i/10)*spread*5/3 + float32(f%5)
			e := randVec(rng, dim)
			for k := range e {
				e[k] = looks[i][k] + 0.01*e[k]
			}
			dets[i] = frame.Detection{Box: frame.Box{X1: x, Y1: y, X2: x + 30, Y2: y + 80}, Score: 0.9, Embedding: unit(e)}
		}
		return dets
	}
	o.NInit, o.ScoreThreshold = 1, 0.5
	tr := New(o)
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

// BenchmarkUpdate is the case: 50 confirmed tracks whose galleries
// are full (nn_budget 100) and 50 detections with 256-d embeddings per
// frame. nwojke/deep_sort takes 13.2 ms per frame for this.
func BenchmarkUpdate(b *testing.B) { benchUpdate(b, Options{NNBudget: 100}, 60) }

// BenchmarkUpdateDense is BenchmarkUpdate with every pair inside the gate.
func BenchmarkUpdateDense(b *testing.B) { benchUpdate(b, Options{NNBudget: 100}, 0.1) }

// BenchmarkUpdateEMA is BenchmarkUpdate with one smoothed embedding per
// track (StrongSORT's EMA bank).
func BenchmarkUpdateEMA(b *testing.B) { benchUpdate(b, Options{Appearance: AppearanceEMA}, 60) }

// BenchmarkUpdateEMADense is BenchmarkUpdateEMA with every pair inside the gate.
func BenchmarkUpdateEMADense(b *testing.B) { benchUpdate(b, Options{Appearance: AppearanceEMA}, 0.1) }

// TestTrackerMemoryFlat: a long run with a constant crowd whose members
// come and go keeps the tracker's memory flat: ended tracks and their
// embeddings are released and the scratch buffers stop growing.
func TestTrackerMemoryFlat(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	type person struct {
		x, y, vx, vy float32
		look         []float32
		left         int
	}
	const n, dim = 30, 128
	spawn := func() person {
		return person{
			x: rng.Float32() * 1200, y: rng.Float32() * 600, vx: rng.Float32()*4 - 2, vy: rng.Float32()*2 - 1,
			look: unit(randVec(rng, dim)), left: 20 + rng.IntN(200),
		}
	}
	crowd := make([]person, n)
	for i := range crowd {
		crowd[i] = spawn()
	}
	tr := New(Options{Appearance: AppearanceGallery, NNBudget: 50, ScoreThreshold: 0.5, LowScoreThreshold: 0.1, IoUAppearanceGate: true})
	dets := make([]frame.Detection, n)
	embs := make([][]float32, n)
	for i := range embs {
		embs[i] = make([]float32, dim)
	}
	var started, ended int
	step := func(f int) {
		for i := range crowd {
			p := &crowd[i]
			if p.left--; p.left <= 0 {
				*p = spawn()
			}
			p.x += p.vx
			p.y += p.vy
			for k := range embs[i] {
				embs[i][k] = p.look[k] + 0.02*float32(rng.NormFloat64())
			}
			NormalizeL2(embs[i])
			score := float32(0.9)
			if rng.IntN(10) == 0 {
				score = 0.3
			}
			dets[i] = frame.Detection{Box: frame.Box{X1: p.x, Y1: p.y, X2: p.x + 40, Y2: p.y + 100}, Score: score, Embedding: embs[i]}
		}
		_, ev := tr.Update(dets, time.Duration(f)*time.Second/5)
		for _, e := range ev {
			if e.Kind == EventStarted {
				started++
			} else {
				ended++
			}
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	frames := 6000
	if testing.Short() || raceEnabled {
		frames = 2000
	}
	for f := range frames / 3 {
		step(f)
	}
	before := heap()
	for f := frames / 3; f < frames; f++ {
		step(f)
	}
	after := heap()
	t.Logf("%d frames: %d tracks started, %d ended, %d live; heap %d -> %d bytes", frames, started, ended, len(tr.tracks), before, after)
	require.Greater(t, ended, 100, "the crowd renews itself")
	require.LessOrEqual(t, len(tr.tracks), 3*n, "ended tracks are deleted")
	require.Less(t, after, before+512<<10, "memory stays flat")
}

// TestTrackerSteps: the Kalman filter takes one step per 1/30 s of stream
// time, at least one and at most 30 per Update.
func TestTrackerSteps(t *testing.T) {
	tr := New(Options{})
	require.Equal(t, 1, tr.steps(0), "the first frame")
	require.Equal(t, 6, tr.steps(200*time.Millisecond), "5 fps")
	require.Equal(t, 1, tr.steps(210*time.Millisecond), "never fewer than one")
	require.Equal(t, 1, tr.steps(100*time.Millisecond), "time going back (a restarted source)")
	require.Equal(t, 30, tr.steps(time.Hour), "a long gap is capped")
	fixed := New(Options{StepInterval: -1})
	fixed.steps(0)
	require.Equal(t, 1, fixed.steps(time.Second), "negative: one step per Update")
}
