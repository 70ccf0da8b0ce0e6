package pipeline

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/tracking"
)

// walkerAnalyzer "detects" one person walking right, plus low-score
// candidates: one on the person in frames where the detector misses it,
// and one far away that matches nothing.
type walkerAnalyzer struct{}

func (walkerAnalyzer) Analyze(_ context.Context, _ []string, f *frame.Frame, r *frame.Result) error {
	x := float32(f.Seq) * 2
	box := frame.Box{X1: x, Y1: 10, X2: x + 20, Y2: 60}
	if f.Seq%4 == 3 {
		r.Detections = append(r.Detections, frame.Detection{Box: box, Label: "person", Score: 0.2, Low: true})
	} else {
		r.Detections = append(r.Detections, frame.Detection{Box: box, Label: "person", Score: 0.9})
	}
	r.Detections = append(r.Detections, frame.Detection{Box: frame.Box{X1: 200, Y1: 200, X2: 220, Y2: 250}, Label: "person", Score: 0.15, Low: true})
	return nil
}

// TestTrackingInThePipeline: a stream's tracker gives its detections IDs,
// keeps low-score candidates only where they extend a track, and ends the
// open tracks in a last result when the stream ends.
func TestTrackingInThePipeline(t *testing.T) {
	c := &collector{}
	cfg := config.Default().Tracker
	o := tracking.OptionsFromConfig(cfg)
	p, err := New(Options{
		Streams:  []config.Stream{streamCfg("s", "synth://?w=64&h=48&fps=30&frames=20&realtime=0", 0)},
		Sinks:    []NamedSink{{Name: "c", Sink: c}},
		Analyzer: walkerAnalyzer{},
		Tracker:  &o,
		Logger:   quietLogger(),
		Offline:  true,
	})
	require.NoError(t, err)
	require.NoError(t, p.Run(context.Background()))
	res, _ := c.snapshot()
	require.Len(t, res, 21, "20 frames and the end of the stream")
	var started, ended int
	for i, r := range res[:20] {
		require.Len(t, r.Detections, 1, "frame %d: the far low-score candidate is dropped", i)
		d := r.Detections[0]
		if i >= 2 { // confirmed at the third hit (n_init 3)
			require.Equal(t, uint64(1), d.TrackID, "frame %d", i)
		}
		require.Equal(t, i%4 == 3, d.Low, "frame %d: the missed frames are bridged by the low-score pass", i)
		for _, e := range r.Events {
			require.Equal(t, tracking.EventStarted, e.Kind)
			started++
		}
	}
	last := res[20]
	require.True(t, last.EndOfStream)
	require.Equal(t, uint64(19), last.Seq)
	require.Empty(t, last.Detections)
	for _, e := range last.Events {
		require.Equal(t, tracking.EventEnded, e.Kind)
		require.Equal(t, 20, e.Frames)
		ended++
	}
	require.Equal(t, 1, started)
	require.Equal(t, 1, ended)
}
