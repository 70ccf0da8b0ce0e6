package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/internal/shareddata"
	"github.com/vigil-video/vigil/tracking"
)

// series returns the gathered series of name whose stream or sink label is
// id, or fails.
func series(t *testing.T, g prometheus.Gatherer, name, id string) *dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if (lp.GetName() == "stream" || lp.GetName() == "sink") && lp.GetValue() == id {
					return m
				}
			}
		}
	}
	t.Fatalf("no %s for %q", name, id)
	return nil
}

func hasSeries(t *testing.T, g prometheus.Gatherer, name, stream string) bool {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if mf.GetName() == name && lp.GetName() == "stream" && lp.GetValue() == stream {
					return true
				}
			}
		}
	}
	return false
}

// TestStreamMetrics runs a decoded clip and a synthetic stream through a
// tracker: the decode time counts every packet of the clip and nothing for
// the synthetic stream, the tracking counters agree with the events the
// sink received, and every sink write is timed.
func TestStreamMetrics(t *testing.T) {
	clip := shareddata.Path(t, "video/vtest_h264.mp4")
	reg := prometheus.NewRegistry()
	c := &collector{}
	o := tracking.OptionsFromConfig(config.Default().Tracker)
	p, err := New(Options{
		Streams: []config.Stream{
			streamCfg("clip", "file://"+clip, 0),
			streamCfg("walk", "synth://?w=64&h=48&fps=30&frames=20&realtime=0", 0),
		},
		Sinks:      []NamedSink{{Name: "c", Sink: c}},
		Analyzer:   walkerAnalyzer{},
		Tracker:    &o,
		Registerer: reg,
		Logger:     quietLogger(),
		Offline:    true,
		MaxFrames:  30,
	})
	require.NoError(t, err)
	require.NoError(t, p.Run(context.Background()))

	// One observation per packet decoded: at least one per analysed frame,
	// at most the packets read before the frame limit stopped the source.
	packets := series(t, reg, "vigil_ingest_packets_total", "clip").GetCounter().GetValue()
	h := series(t, reg, "vigil_decode_duration_seconds", "clip").GetHistogram()
	require.GreaterOrEqual(t, h.GetSampleCount(), uint64(30))
	require.LessOrEqual(t, float64(h.GetSampleCount()), packets)
	require.Positive(t, h.GetSampleSum())
	require.Less(t, h.GetSampleSum()/float64(h.GetSampleCount()), 0.1, "a 768x576 packet decodes in well under 100 ms")
	require.Zero(t, series(t, reg, "vigil_decode_duration_seconds", "walk").GetHistogram().GetSampleCount(), "synthetic frames are not decoded")

	res, _ := c.snapshot()
	events := map[string]map[string]float64{"clip": {}, "walk": {}}
	for _, r := range res {
		for _, e := range r.Events {
			events[r.StreamID][e.Kind]++
		}
	}
	for _, id := range []string{"clip", "walk"} {
		require.Positive(t, events[id][tracking.EventStarted], id)
		require.Equal(t, events[id][tracking.EventStarted], series(t, reg, "vigil_tracking_tracks_started_total", id).GetCounter().GetValue(), id)
		require.Equal(t, events[id][tracking.EventEnded], series(t, reg, "vigil_tracking_tracks_ended_total", id).GetCounter().GetValue(), id)
	}
	// Both streams ended (the clip at its frame limit): every track ended.
	for _, id := range []string{"clip", "walk"} {
		require.Equal(t, events[id][tracking.EventStarted], events[id][tracking.EventEnded], id)
		require.Zero(t, series(t, reg, "vigil_tracking_active_tracks", id).GetGauge().GetValue(), id)
	}

	w := series(t, reg, "vigil_sink_write_duration_seconds", "c").GetHistogram()
	require.Equal(t, uint64(len(res)), w.GetSampleCount())

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}

// TestStreamMetricsGoWithTheStream: a removed stream's decode and tracking
// series disappear; a stream without a tracker has no tracking series.
func TestStreamMetricsGoWithTheStream(t *testing.T) {
	reg := prometheus.NewRegistry()
	o := tracking.OptionsFromConfig(config.Default().Tracker)
	p, err := New(Options{
		Streams:    []config.Stream{streamCfg("walk", "synth://?w=64&h=48&fps=30", 0)},
		Analyzer:   walkerAnalyzer{},
		Tracker:    &o,
		Registerer: reg,
		Logger:     quietLogger(),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	require.Eventually(t, func() bool {
		return hasSeries(t, reg, "vigil_tracking_tracks_started_total", "walk") &&
			series(t, reg, "vigil_tracking_active_tracks", "walk").GetGauge().GetValue() == 1
	}, 10*time.Second, 10*time.Millisecond, "the walker is tracked")
	require.True(t, hasSeries(t, reg, "vigil_decode_duration_seconds", "walk"))

	require.NoError(t, p.Remove(ctx, "walk"))
	for _, name := range []string{"vigil_decode_duration_seconds", "vigil_tracking_active_tracks", "vigil_tracking_tracks_started_total", "vigil_tracking_tracks_ended_total"} {
		require.False(t, hasSeries(t, reg, name, "walk"), name)
	}
}

func TestDurationHist(t *testing.T) {
	var h durationHist
	// Bounds are inclusive, as Prometheus' le.
	for _, d := range []time.Duration{50 * time.Microsecond, 100 * time.Microsecond, 101 * time.Microsecond, 3 * time.Millisecond, time.Second} {
		h.observe(d)
	}
	desc := prometheus.NewDesc("x_seconds", "x", []string{"stream"}, nil)
	var m dto.Metric
	require.NoError(t, h.metric(desc, "s").Write(&m))
	hist := m.GetHistogram()
	require.Equal(t, uint64(5), hist.GetSampleCount())
	require.InDelta(t, 1.003251, hist.GetSampleSum(), 1e-9)
	got := map[float64]uint64{}
	for _, b := range hist.GetBucket() {
		got[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	require.Equal(t, map[float64]uint64{
		.0001: 2, .00025: 3, .0005: 3, .001: 3, .0025: 3, .005: 4, .01: 4, .025: 4, .05: 4, .1: 4, .25: 4,
	}, got)
}

func TestTrackStats(t *testing.T) {
	var s trackStats
	s.record([]frame.Track{{ID: 1, State: frame.TrackConfirmed}, {ID: 2, State: frame.TrackTentative}, {ID: 3, State: frame.TrackConfirmed}},
		[]frame.TrackEvent{{Kind: tracking.EventStarted, TrackID: 1}, {Kind: tracking.EventStarted, TrackID: 3}})
	require.Equal(t, int64(2), s.active.Load())
	s.record([]frame.Track{{ID: 3, State: frame.TrackConfirmed}}, []frame.TrackEvent{{Kind: tracking.EventEnded, TrackID: 1}})
	s.record(nil, []frame.TrackEvent{{Kind: tracking.EventEnded, TrackID: 3}})
	require.Zero(t, s.active.Load())
	require.Equal(t, uint64(2), s.started.Load())
	require.Equal(t, uint64(2), s.ended.Load())
}
