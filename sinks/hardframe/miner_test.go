package hardframe

import (
	"context"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/training/store"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(killChild(os.Getenv(childEnv)))
	}
	goleak.VerifyTestMain(m)
}

// testConfig is the hard_frames section with its defaults, storing in a
// fresh folder, with no rate limit, dedup only of equal hashes and no
// random sample, so that a test sees exactly what its miners pick.
func testConfig(t testing.TB, miners ...string) config.HardFrames {
	c := config.Default()
	h := c.HardFrames
	h.Enabled, h.Dir, h.MaxMB = true, filepath.Join(t.TempDir(), "store"), 64
	if miners != nil {
		h.Miners = miners
	}
	h.PerStreamPerMinute, h.DedupHamming, h.Random.Rate, h.QueueSize = 0, 0, 0, 1024
	return h
}

// feeder plays the pipeline for one stream: it renders real synth frames
// from a pool that counts releases, hands each with a result to the
// miner and releases it, as the analyze goroutine does.
type feeder struct {
	t        testing.TB
	m        *Miner
	stream   string
	p        synth.Params
	scene    *synth.Scene // nil: each frame a different seed's scene
	n        uint64
	made     int
	released atomic.Int64
	base     time.Time
}

func newFeeder(t testing.TB, m *Miner, w, h int) *feeder {
	p := synth.DefaultParams()
	p.Width, p.Height, p.Texture = w, h, 1
	return &feeder{t: t, m: m, stream: "cam", p: p, base: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
}

// next renders the next frame: from the feeder's scene, or a different
// scene each time (pictures far apart, so dedup never interferes).
func (fd *feeder) next() *frame.Frame {
	f := &frame.Frame{}
	if fd.scene != nil {
		fd.scene.Render(f)
		fd.scene.Step()
	} else {
		p := fd.p
		p.Seed = 1000 + fd.n
		synth.Snapshot(p, 0, f)
	}
	fd.made++
	f.SetRelease(func(*frame.Frame) { fd.released.Add(1) })
	f.StreamID, f.Seq = fd.stream, fd.n
	f.PTS = time.Duration(fd.n) * time.Second / 15
	f.Arrival = fd.base.Add(f.PTS)
	return f
}

// feed gives the miner the next frame with these detections.
func (fd *feeder) feed(dets []frame.Detection) {
	f := fd.next()
	r := &frame.Result{
		StreamID: fd.stream, Seq: fd.n, PTS: f.PTS, Captured: f.Arrival, Width: f.Width, Height: f.Height,
		Model: "detector", ModelVersion: "1/int8", Detections: dets,
	}
	fd.n++
	fd.m.ObserveFrame(r, f)
	f.Release()
}

// allReleased checks that every frame went back to its pool.
func (fd *feeder) allReleased() {
	fd.t.Helper()
	require.Equal(fd.t, int64(fd.made), fd.released.Load(), "every frame released")
}

// walker is a steady object: tracked, confident, moving 2 px a frame.
func walker(n uint64, id uint64, x0 float32) frame.Detection {
	x := x0 + 2*float32(n)
	return frame.Detection{Box: frame.Box{X1: x, Y1: 20, X2: x + 12, Y2: 60}, Class: 0, Label: "person", Score: 0.9, TrackID: id}
}

// kept lists the store's entries by frame number.
func kept(t testing.TB, dir string) map[uint64]store.Entry {
	t.Helper()
	s, err := store.Open(dir, store.Options{})
	require.NoError(t, err)
	out := map[uint64]store.Entry{}
	for _, e := range s.List() {
		out[e.FrameSeq] = e
	}
	problems, err := store.Validate(dir)
	require.NoError(t, err)
	require.Empty(t, problems)
	return out
}

func newMiner(t testing.TB, o Options) *Miner {
	t.Helper()
	m, err := New(o)
	require.NoError(t, err)
	return m
}

// TestMiners plays one made-up scene with an event for each miner at a
// known frame, and checks which frames each miner keeps, and that a
// steady scene keeps nothing.
func TestMiners(t *testing.T) {
	// Two tracked people walk steadily; a third object has no track (a
	// tracker-less stream) and stands still.
	still := frame.Detection{Box: frame.Box{X1: 100, Y1: 40, X2: 130, Y2: 90}, Class: 1, Label: "car", Score: 0.8}
	scene := func(n uint64, events bool) []frame.Detection {
		a, b := walker(n, 1, 2), walker(n, 2, 60)
		dets := []frame.Detection{a, b, still}
		if !events {
			return dets
		}
		switch n {
		case 7: // band: a score near the threshold
			dets[1].Score = 0.3
		case 10: // flicker: a detection nothing matches before or after
			dets = append(dets, frame.Detection{Box: frame.Box{X1: 130, Y1: 5, X2: 150, Y2: 25}, Class: 0, Label: "person", Score: 0.7})
		case 13: // flicker: the untracked car missed for one frame
			dets = dets[:2]
		case 16, 17: // track_gap: person 1 missed for two frames
			dets = dets[1:]
		}
		return dets
	}
	for _, tc := range []struct {
		name   string
		miners []string
		events bool
		want   map[uint64]string // frame -> miner it is stored under
	}{
		{"steady scene", nil, false, map[uint64]string{}},
		{"events", nil, true, map[uint64]string{7: "band", 10: "flicker", 13: "flicker", 16: "track_gap", 17: "track_gap"}},
		{"band only", []string{"band"}, true, map[uint64]string{7: "band"}},
		{"flicker only", []string{"flicker"}, true, map[uint64]string{10: "flicker", 13: "flicker", 16: "flicker", 17: "flicker"}},
		{"track_gap only", []string{"track_gap"}, true, map[uint64]string{16: "track_gap", 17: "track_gap"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, tc.miners...)
			reg := prometheus.NewRegistry()
			m := newMiner(t, Options{Config: cfg, Registerer: reg})
			fd := newFeeder(t, m, 160, 96)
			for n := range uint64(30) {
				fd.feed(scene(n, tc.events))
			}
			require.NoError(t, m.Close(context.Background()))
			fd.allReleased()
			got := map[uint64]string{}
			entries := kept(t, cfg.Dir)
			for n, e := range entries {
				got[n] = e.Miner
			}
			require.Equal(t, tc.want, got)
			for _, name := range minerNames {
				n := 0
				for _, e := range entries {
					if e.Miner == name {
						n++
					}
				}
				require.Equal(t, float64(n), testutil.ToFloat64(m.m.kept[slices.Index(minerNames[:], name)]), name)
			}
			if !tc.events || tc.miners != nil {
				return
			}
			// The labels: the frame's detections, plus at a track gap the
			// box interpolated between frames 15 and 18, which for a
			// steady walk is where the person was.
			require.Contains(t, entries[7].Reason, "band: 1 detections scoring in [0.20, 0.45), lowest person 0.30")
			require.Contains(t, entries[10].Reason, "person (score 0.70) with no match in the 1 frames on either side")
			require.Contains(t, entries[13].Reason, "car missing for 1 frames between matches")
			for _, n := range []uint64{16, 17} {
				e := entries[n]
				require.Contains(t, e.Reason, "track_gap: person track 1 missed for 2 frames, box interpolated")
				require.Contains(t, e.Reason, "flicker: person track 1 missing for 2 frames")
				require.Len(t, e.Objects, 3)
				var interp *store.Object
				for i := range e.Objects {
					if e.Objects[i].TrackID == 1 {
						interp = &e.Objects[i]
					}
				}
				require.NotNil(t, interp, "frame %d has the interpolated box", n)
				want := walker(n, 1, 2).Box
				require.InDelta(t, want.X1, interp.Box.X1, 1e-3)
				require.InDelta(t, want.X2, interp.Box.X2, 1e-3)
				require.InDelta(t, want.Y1, interp.Box.Y1, 1e-3)
				require.InDelta(t, want.Y2, interp.Box.Y2, 1e-3)
				require.Equal(t, "person", interp.Label)
				require.InDelta(t, 0.9, interp.Score, 1e-6)
				require.Equal(t, "cam", e.StreamID)
				require.Equal(t, store.Model{Name: "detector", Version: "1/int8"}, e.Model)
				require.Equal(t, fd.base.Add(time.Duration(n)*time.Second/15), e.CaptureTime.UTC())
			}
			require.Equal(t, 1.0, testutil.ToFloat64(m.m.candidates[mBand]))
			require.Equal(t, 2.0, testutil.ToFloat64(m.m.candidates[mTrackGap]))
		})
	}
}

// TestTrackGapBounds: gaps outside track_gap's min..max keep nothing.
func TestTrackGapBounds(t *testing.T) {
	for _, gap := range []uint64{1, 2, 3, 4, 6} {
		t.Run(fmt.Sprint(gap), func(t *testing.T) {
			cfg := testConfig(t, "track_gap")
			cfg.TrackGap.Min, cfg.TrackGap.Max = 2, 3
			m := newMiner(t, Options{Config: cfg})
			fd := newFeeder(t, m, 64, 48)
			for n := range uint64(20) {
				var dets []frame.Detection
				if n < 5 || n >= 5+gap {
					dets = append(dets, walker(n, 1, 0))
				}
				fd.feed(dets)
			}
			require.NoError(t, m.Close(context.Background()))
			fd.allReleased()
			got := kept(t, cfg.Dir)
			if gap >= 2 && gap <= 3 {
				require.Len(t, got, int(gap))
			} else {
				require.Empty(t, got)
			}
		})
	}
}

// TestRandomSample: the random miner keeps about its rate of frames, the
// same ones for the same seed, and none at rate 0.
func TestRandomSample(t *testing.T) {
	run := func(rate float64, seed uint64) []uint64 {
		cfg := testConfig(t, "random")
		cfg.Random.Rate = rate
		m := newMiner(t, Options{Config: cfg, Seed: seed})
		fd := newFeeder(t, m, 32, 32)
		for range 300 {
			fd.feed(nil)
		}
		require.NoError(t, m.Close(context.Background()))
		fd.allReleased()
		var seqs []uint64
		for n := range kept(t, cfg.Dir) {
			seqs = append(seqs, n)
		}
		slices.Sort(seqs)
		return seqs
	}
	a := run(0.1, 7)
	// Binomial(300, 0.1): mean 30, sd 5.2.
	require.InDelta(t, 30, len(a), 16)
	require.Equal(t, a, run(0.1, 7), "same seed, same frames")
	require.NotEqual(t, a, run(0.1, 8))
	require.Empty(t, run(0, 7))
}

// TestRateLimit: with 6 frames a minute and a burst of 2, half a minute of
// stream time where every frame is picked keeps 2 + 3 frames.
func TestRateLimit(t *testing.T) {
	cfg := testConfig(t, "band")
	cfg.PerStreamPerMinute, cfg.Burst = 6, 2
	reg := prometheus.NewRegistry()
	m := newMiner(t, Options{Config: cfg, Registerer: reg})
	fd := newFeeder(t, m, 32, 32)
	hard := []frame.Detection{{Box: frame.Box{X1: 1, Y1: 1, X2: 9, Y2: 9}, Score: 0.3, Label: "person"}}
	for range 15*30 + 1 { // PTS 0 to 30 s
		fd.feed(hard)
	}
	require.NoError(t, m.Close(context.Background()))
	fd.allReleased()
	got := kept(t, cfg.Dir)
	require.Len(t, got, 5)
	require.Equal(t, 451.0, testutil.ToFloat64(m.m.candidates[mBand]))
	require.Equal(t, 446.0, testutil.ToFloat64(m.m.skipped[SkipRateLimit]))
	var seqs []int
	for n := range got {
		seqs = append(seqs, int(n))
	}
	slices.Sort(seqs)
	// The burst at once, then one every 10 s (150 frames).
	require.Equal(t, []int{0, 1, 150, 300, 450}, seqs)
}

// TestDedup: a still night scene, every frame picked, keeps only frames
// that differ from the kept ones by more than dedup_hamming bits; with
// different scenes, or with dedup off (-1), every frame is kept.
func TestDedup(t *testing.T) {
	for _, tc := range []struct {
		name    string
		still   bool
		hamming int
		kept    func(n int) bool
	}{
		{"still night scene", true, 6, func(n int) bool { return n <= 3 }},
		{"different scenes", false, 6, func(n int) bool { return n == 40 }},
		{"still night scene, dedup off", true, -1, func(n int) bool { return n == 40 }},
	} {
		// Cells of 35x24 pixels average the night's sensor noise away;
		// different scenes differ at any size.
		w, h := 160, 96
		if tc.still {
			w, h = 320, 192
		}
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "random")
			cfg.Random.Rate, cfg.DedupHamming = 1, tc.hamming
			m := newMiner(t, Options{Config: cfg})
			fd := newFeeder(t, m, w, h)
			if tc.still {
				p := fd.p
				p.Domain, p.Objects = synth.Night, 1
				fd.scene = synth.NewScene(p)
			}
			for range 40 {
				fd.feed(nil)
			}
			require.NoError(t, m.Close(context.Background()))
			fd.allReleased()
			n := len(kept(t, cfg.Dir))
			dups := testutil.ToFloat64(m.m.skipped[SkipDuplicate])
			t.Logf("%s: %d of 40 kept, %v duplicates", tc.name, n, dups)
			require.True(t, tc.kept(n), "kept %d", n)
			require.Equal(t, 40, n+int(dups))
		})
	}
}

// TestQueueFull: when the writer falls behind, frames are dropped and
// counted rather than ObserveFrame blocking, and all are released.
func TestQueueFull(t *testing.T) {
	cfg := testConfig(t, "random")
	cfg.Random.Rate, cfg.QueueSize = 1, 1
	m := newMiner(t, Options{Config: cfg})
	fd := newFeeder(t, m, 320, 192)
	frames := make([]*frame.Frame, 30)
	for i := range frames {
		frames[i] = fd.next()
		fd.n++
	}
	start := time.Now()
	for _, f := range frames {
		m.ObserveFrame(&frame.Result{StreamID: "cam", Seq: f.Seq, PTS: f.PTS, Captured: f.Arrival, Width: f.Width, Height: f.Height}, f)
		f.Release()
	}
	took := time.Since(start)
	require.NoError(t, m.Close(context.Background()))
	fd.allReleased()
	full := testutil.ToFloat64(m.m.skipped[SkipQueueFull])
	n := len(kept(t, cfg.Dir))
	t.Logf("30 frames observed in %v: %d kept, %v dropped with the queue full", took, n, full)
	require.Positive(t, full)
	require.Equal(t, 30, n+int(full))
}

// TestIdleStreamFlushed: a stream that stops sending has its ring flushed
// (frames released, picks stored) without waiting for Close.
func TestIdleStreamFlushed(t *testing.T) {
	cfg := testConfig(t, "random")
	cfg.Random.Rate = 1
	m := newMiner(t, Options{Config: cfg, IdleTimeout: 50 * time.Millisecond})
	defer m.Close(context.Background())
	fd := newFeeder(t, m, 32, 32)
	for range 3 {
		fd.feed(nil)
	}
	require.Eventually(t, func() bool { return fd.released.Load() == 3 && m.store.Stats().Entries == 3 },
		5*time.Second, 10*time.Millisecond)
}

// TestNewErrors: bad settings are refused, naming the key.
func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*config.HardFrames)
		want string
	}{
		{"dir", func(c *config.HardFrames) { c.Dir = "" }, "hard_frames.dir: required"},
		{"miner", func(c *config.HardFrames) { c.Miners = []string{"blur"} }, `hard_frames.miners[0]: unknown miner, got "blur"`},
		{"window", func(c *config.HardFrames) { c.Flicker.Window = 0 }, "hard_frames.flicker.window: must be in [1, 8], got 0"},
		{"track_gap", func(c *config.HardFrames) { c.TrackGap.Min = 4 }, "hard_frames.track_gap: must have 1 <= min <= max <= 8, got min 4, max 3"},
		{"queue", func(c *config.HardFrames) { c.QueueSize = 0 }, "hard_frames.queue_size: must be >= 1, got 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t)
			tc.edit(&c)
			_, err := New(Options{Config: c})
			require.ErrorContains(t, err, tc.want)
		})
	}
	// A file where the store's folder should be.
	c := testConfig(t)
	require.NoError(t, os.WriteFile(c.Dir, []byte("x"), 0o644))
	_, err := New(Options{Config: c})
	require.ErrorContains(t, err, "starting hard-frame miner")
	// Metrics registered twice.
	reg := prometheus.NewRegistry()
	c = testConfig(t)
	m := newMiner(t, Options{Config: c, Registerer: reg})
	defer m.Close(context.Background())
	c2 := testConfig(t)
	_, err = New(Options{Config: c2, Registerer: reg})
	require.ErrorContains(t, err, "registering metrics")
}

// TestMetricsLint: the metrics pass promlint and have the documented names.
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMiner(t, Options{Config: testConfig(t), Registerer: reg})
	defer m.Close(context.Background())
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	require.Equal(t, []string{
		"vigil_hardframe_candidates_total", "vigil_hardframe_errors_total", "vigil_hardframe_frames_kept_total",
		"vigil_hardframe_frames_skipped_total", "vigil_hardframe_quant_checks_total", "vigil_hardframe_store_bytes",
		"vigil_hardframe_store_entries", "vigil_hardframe_store_evictions_total",
	}, names)
}

// TestPixelFormats: gray and RGB24 frames are stored too, with the right
// colours, and unknown formats are counted as errors.
func TestPixelFormats(t *testing.T) {
	cfg := testConfig(t, "random")
	cfg.Random.Rate = 1
	m := newMiner(t, Options{Config: cfg})
	// Brightness rises to the right in one picture and falls in the other,
	// so their hashes differ.
	mk := func(seq uint64, format frame.PixelFormat, bpp int, fill []byte, step int) {
		f := &frame.Frame{StreamID: "cam", Seq: seq, PTS: time.Duration(seq) * time.Second, Width: 16, Height: 8, Format: format}
		f.Strides[0] = 16 * bpp
		f.Planes[0] = make([]byte, 16*8*bpp)
		for i := range f.Planes[0] {
			f.Planes[0][i] = byte(int(fill[i%bpp]) + step*(i%(16*bpp)/bpp))
		}
		m.ObserveFrame(&frame.Result{StreamID: "cam", Seq: seq, PTS: f.PTS, Width: 16, Height: 8}, f)
	}
	mk(0, frame.PixelFormatGray8, 1, []byte{50}, 10)
	mk(1, frame.PixelFormatRGB24, 3, []byte{200, 100, 10}, -5)
	mk(2, frame.PixelFormatUnknown, 1, []byte{1}, 0)
	require.NoError(t, m.Close(context.Background()))
	require.Equal(t, 1.0, testutil.ToFloat64(m.m.errors[stageConvert]))
	s, err := store.Open(cfg.Dir, store.Options{})
	require.NoError(t, err)
	byseq := map[uint64]string{}
	for _, e := range s.List() {
		byseq[e.FrameSeq] = e.ID
	}
	require.Len(t, byseq, 2)
	g, err := s.Get(byseq[0])
	require.NoError(t, err)
	require.Equal(t, []byte{50, 50, 50, 255}, g.Image.(*image.RGBA).Pix[:4])
	c, err := s.Get(byseq[1])
	require.NoError(t, err)
	require.Equal(t, []byte{200, 100, 10, 255}, c.Image.(*image.RGBA).Pix[:4])
	require.Equal(t, []byte{195, 95, 5, 255}, c.Image.(*image.RGBA).Pix[4:8], "second pixel")
	require.Equal(t, []byte{60, 60, 60, 255}, g.Image.(*image.RGBA).Pix[4:8])
}

// TestClean: pre-labels are fitted to the picture as the store requires.
func TestClean(t *testing.T) {
	o, ok := clean(store.Object{Box: frame.Box{X1: -5, Y1: 2, X2: 20, Y2: 50}, Score: 1.5,
		Keypoints: frame.Keypoints{{X: 3, Y: 3, Score: 0.9}, {X: 17, Y: 3, Score: 0.8}}}, 16, 40)
	require.True(t, ok)
	require.Equal(t, frame.Box{X1: 0, Y1: 2, X2: 16, Y2: 40}, o.Box)
	require.Equal(t, float32(1), o.Score)
	require.Equal(t, frame.Keypoint{X: 3, Y: 3, Score: 0.9}, o.Keypoints[0])
	require.Zero(t, o.Keypoints[1].Score, "a keypoint outside the picture is made invisible")
	_, ok = clean(store.Object{Box: frame.Box{X1: 20, Y1: 2, X2: 30, Y2: 5}}, 16, 40)
	require.False(t, ok, "a box wholly outside is dropped")
	nan := float32(0)
	nan /= nan
	_, ok = clean(store.Object{Box: frame.Box{X1: nan, Y1: 2, X2: 30, Y2: 5}}, 16, 40)
	require.False(t, ok)
}

// TestCloseDeadline: a Close whose context has ended drops what is left,
// says so, and still releases every frame and leaves a sound store.
func TestCloseDeadline(t *testing.T) {
	cfg := testConfig(t, "random")
	cfg.Random.Rate = 1
	m := newMiner(t, Options{Config: cfg})
	fd := newFeeder(t, m, 160, 96)
	for range 10 {
		fd.feed(nil)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorContains(t, m.Close(ctx), "closing hard-frame miner: frames left unstored: context canceled")
	fd.allReleased()
	n := len(kept(t, cfg.Dir))
	require.Equal(t, 10, n+int(testutil.ToFloat64(m.m.skipped[SkipShutdown])))
	require.ErrorContains(t, m.Close(context.Background()), "context canceled", "a second Close does nothing more")
	m.ObserveFrame(&frame.Result{StreamID: "cam"}, fd.next())
	require.Equal(t, int64(fd.made-1), fd.released.Load(), "after Close, ObserveFrame keeps nothing")
}
