package hardframe

import (
	"context"
	"image"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/tracking"
)

// benchScene is a 1280x720 synth frame and six steady tracked walkers.
func benchScene(b *testing.B) (*frame.Frame, func(n uint64) []frame.Detection) {
	p := synth.DefaultParams()
	f := &frame.Frame{}
	synth.Snapshot(p, 0, f)
	return f, func(n uint64) []frame.Detection {
		dets := make([]frame.Detection, 6)
		for i := range dets {
			dets[i] = walker(n, uint64(i+1), float32(200*i))
		}
		return dets
	}
}

// BenchmarkObserveFrame measures what the miner adds to a stream's analyze
// goroutine per frame (ring, band, flicker, track_gap, random, rate limit),
// beside the tracker's update on the same six detections, which runs on
// that goroutine too. "hard" scores every detection in the band, so every
// frame is picked and meets the rate limit.
func BenchmarkObserveFrame(b *testing.B) {
	f, scene := benchScene(b)
	const pool = 1024 // more than the ring and queue hold, so reuse is safe
	for _, tc := range []struct {
		name  string
		score float32
	}{{"steady", 0.9}, {"hard", 0.3}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := testConfig(b)
			cfg.PerStreamPerMinute, cfg.DedupHamming = 30, 6
			m, err := New(Options{Config: cfg, Logger: quietLogger()})
			require.NoError(b, err)
			frames := make([]*frame.Frame, pool)
			results := make([]frame.Result, pool)
			dets := make([][]frame.Detection, pool)
			for i := range pool {
				frames[i] = f.Share()
				dets[i] = scene(uint64(i))
				for k := range dets[i] {
					dets[i][k].Score = tc.score
				}
			}
			b.ReportAllocs()
			n := uint64(0)
			for b.Loop() {
				i := n % pool
				g, r := frames[i], &results[i]
				g.Seq, g.PTS = n, time.Duration(n)*time.Second/15
				*r = frame.Result{StreamID: "cam", Seq: n, PTS: g.PTS, Width: g.Width, Height: g.Height, Detections: dets[i]}
				m.ObserveFrame(r, g)
				n++
			}
			b.StopTimer()
			require.NoError(b, m.Close(context.Background()))
		})
	}
	b.Run("peer=tracker", func(b *testing.B) {
		tr := tracking.New(tracking.Options{Mode: tracking.ModeSORT})
		all := make([][]frame.Detection, pool)
		for i := range all {
			all[i] = scene(uint64(i))
			for k := range all[i] {
				all[i][k].TrackID = 0
			}
		}
		b.ReportAllocs()
		n := uint64(0)
		for b.Loop() {
			tr.Update(all[n%pool], time.Duration(n)*time.Second/15)
			n++
		}
	})
}

// BenchmarkKeepWork measures the worker's per-frame work on a 1280x720
// frame it keeps, which ObserveFrame leaves off the analyze goroutine:
// the perceptual hash, and the RGB conversion before the PNG encoding.
func BenchmarkKeepWork(b *testing.B) {
	f, _ := benchScene(b)
	b.Run("dhash", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dHash(f)
		}
	})
	b.Run("rgba", func(b *testing.B) {
		dst := image.NewRGBA(image.Rect(0, 0, f.Width, f.Height))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := toRGBA(f, dst); err != nil {
				b.Fatal(err)
			}
		}
	})
}
