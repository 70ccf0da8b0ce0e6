package hardframe

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/pipeline"
	"github.com/vigil-video/vigil/tracking"
	"github.com/vigil-video/vigil/training/store"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newEngine serves the built-in day detector as "det" in the given
// variant, as `vigil serve` loads it, with the tracker's low-score floor.
func newEngine(t testing.TB, variant string) *inference.Engine {
	t.Helper()
	orttest.Init(t)
	e := inference.NewEngine(inference.EngineOptions{
		Runtime: config.Runtime{Device: "cpu", Threads: 1}, Batching: config.Batching{MaxBatch: 1},
		LowScoreFloor: 0.1, Logger: quietLogger(),
	})
	t.Cleanup(func() { e.Close() })
	require.NoError(t, e.Load(config.Model{Name: "det", Bundle: "builtin:detector", Variant: variant, ScoreThreshold: 0.3}))
	return e
}

// TestQuantDisagreement: with a real Engine serving int8, frames whose
// result matches what fp32 finds are not kept, and frames whose result
// misses what fp32 finds are.
func TestQuantDisagreement(t *testing.T) {
	fp32 := newEngine(t, "fp32")
	for _, tc := range []struct {
		name  string
		agree bool
	}{{"results agree with fp32", true}, {"results miss what fp32 finds", false}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, "int8")
			cfg := testConfig(t, "quant_disagreement")
			cfg.QuantDisagreement.Every = 2
			m := newMiner(t, Options{Config: cfg, Variants: e, Classes: []string{"person", "car"}})
			fd := newFeeder(t, m, 320, 192)
			found := 0
			for i := range 20 {
				f := fd.next()
				var want frame.Result
				require.NoError(t, fp32.Analyze(context.Background(), []string{"det"}, f, &want))
				r := &frame.Result{StreamID: "cam", Seq: f.Seq, PTS: f.PTS, Captured: f.Arrival, Width: f.Width, Height: f.Height,
					Model: "detector", ModelVersion: "1/int8"}
				if tc.agree {
					r.Detections = want.Detections
				} else if i%2 == 1 && len(want.Detections) > 0 {
					found++
				}
				fd.n++
				m.ObserveFrame(r, f)
				f.Release()
			}
			require.NoError(t, m.Close(context.Background()))
			fd.allReleased()
			require.Equal(t, 10.0, testutil.ToFloat64(m.m.quantChecks), "every second frame checked")
			require.Zero(t, testutil.ToFloat64(m.m.errors[stageVariant]))
			entries := kept(t, cfg.Dir)
			if tc.agree {
				require.Empty(t, entries)
				return
			}
			require.Positive(t, found)
			require.Len(t, entries, found)
			for n, e := range entries {
				require.Equal(t, uint64(1), n%2, "only checked frames")
				require.Equal(t, "quant_disagreement", e.Miner)
				require.Regexp(t, `quant_disagreement: the other variant agrees with F1 0\.00 < 0\.80 \(0 vs [1-9]\d* detections\)`, e.Reason)
			}
		})
	}
}

// TestPipelineNight plays a night stream and a day stream through a real
// pipeline with the built-in day detector (int8), the tracker and the
// miner, and reports what each miner keeps. The day detector struggles at
// night, so the night stream gives more hard frames; the store is sound
// afterwards.
func TestPipelineNight(t *testing.T) {
	if testing.Short() {
		t.Skip("plays 2 x 200 frames through the detector")
	}
	e := newEngine(t, "int8")
	counts := map[string]map[string]float64{}
	for _, domain := range []string{"night", "day"} {
		cfg := testConfig(t)
		cfg.QuantDisagreement.Every, cfg.Random.Rate, cfg.DedupHamming = 10, 0.01, 6
		reg := prometheus.NewRegistry()
		m := newMiner(t, Options{Config: cfg, Variants: e, Classes: []string{"person", "car"}, Registerer: reg, Logger: quietLogger()})
		to := tracking.OptionsFromConfig(config.Default().Tracker)
		sc := config.Stream{ID: domain, URL: "synth://?domain=" + domain + "&w=320&h=192&fps=15&frames=200&realtime=0&objects=8&texture=1", Models: []string{"det"}}
		sc.ApplyDefaults()
		sc.InferFPS = 15
		p, err := pipeline.New(pipeline.Options{
			Streams: []config.Stream{sc}, Models: []string{"det"}, Analyzer: e, Tracker: &to,
			Observers: []pipeline.FrameObserver{m}, Offline: true, Logger: quietLogger(),
		})
		require.NoError(t, err)
		start := time.Now()
		require.NoError(t, p.Run(context.Background()))
		st, ok := p.Stream(domain)
		require.True(t, ok)
		require.Equal(t, uint64(200), st.FramesAnalyzed)
		require.NoError(t, m.Close(context.Background()))
		took := time.Since(start)

		entries := kept(t, cfg.Dir)
		c := map[string]float64{}
		var line []string
		for i, name := range minerNames {
			c["cand_"+name] = testutil.ToFloat64(m.m.candidates[i])
			c["kept_"+name] = testutil.ToFloat64(m.m.kept[i])
			line = append(line, fmt.Sprintf("%s %v/%v", name, c["kept_"+name], c["cand_"+name]))
		}
		c["kept"] = float64(len(entries))
		counts[domain] = c
		t.Logf("%s, 200 frames in %v: %d kept (kept/picked per miner: %s); skipped: %v duplicates, %v queue full; %v variant checks; store %d bytes",
			domain, took.Round(time.Millisecond), len(entries), strings.Join(line, ", "),
			testutil.ToFloat64(m.m.skipped[SkipDuplicate]), testutil.ToFloat64(m.m.skipped[SkipQueueFull]),
			testutil.ToFloat64(m.m.quantChecks), m.store.Stats().Bytes)
		require.Equal(t, 20.0, testutil.ToFloat64(m.m.quantChecks))
		require.Zero(t, testutil.ToFloat64(m.m.errors[stageStore])+testutil.ToFloat64(m.m.errors[stageVariant]))
		for _, e := range entries {
			require.Equal(t, store.Model{Name: "detector", Version: "1/int8"}, e.Model)
			require.Equal(t, domain, e.StreamID)
		}
	}
	n, d := counts["night"], counts["day"]
	require.GreaterOrEqual(t, n["kept"], 5.0, "the day detector finds night frames hard")
	require.Greater(t, n["cand_band"]+n["cand_flicker"]+n["cand_track_gap"], d["cand_band"]+d["cand_flicker"]+d["cand_track_gap"],
		"more frames are hard at night than by day")
}
