package ingest

import (
	"context"
	"io"
	"net/url"
	"time"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/synth"
)

func init() { Register("synth", openSynth) }

// SynthSource plays a generated street scene (package synth) as decoded
// YUV420P frames; it has no compressed form, so it calls only Output.Frame.
//
// URL form: synth://?objects=6&w=1280&h=720&fps=15&seed=1&frames=0&realtime=1
// &domain=day&distractors=0&texture=0&light=auto&noise=auto&jpeg=0&stamp=0
// (every key optional, defaults as shown; see synth.Params). The host and path
// are ignored, so synth://scene?… and synth:///?… work too. With stamp=1 each
// frame carries its Arrival in Unix milliseconds in its top-left corner
// (synth.Stamp), for a viewer that measures latency from the picture.
//
// Each Run starts the scene afresh, so frame N of a run (Seq N) is always the
// same picture, and its ground truth is synth.Replay(s.Params(), N). The
// source holds no mutable state: Run may be called again after it returns.
type SynthSource struct {
	streamID string
	params   synth.Params
}

func openSynth(streamID string, u *url.URL, _ Options) (Source, error) {
	p, err := synth.ParseParams(u.Query())
	if err != nil {
		return nil, err
	}
	return &SynthSource{streamID: streamID, params: p}, nil
}

// Params returns the scene's parameters, for replaying its ground truth.
func (s *SynthSource) Params() synth.Params { return s.params }

// Live reports whether the scene is paced in real time (realtime=1).
func (s *SynthSource) Live() bool { return s.params.Realtime }

// synthPoolSize is how many released frames Run keeps for reuse. A consumer
// that holds more gets freshly allocated ones.
const synthPoolSize = 4

// Run renders frames and hands them to out: as fast as out takes them, or
// for realtime=1 each at start + Seq/fps. It returns io.EOF after `frames`
// frames when that is set, ctx.Err() when ctx ends, or the first error of out.
func (s *SynthSource) Run(ctx context.Context, out Output) error {
	scene := synth.NewScene(s.params)
	// Frames come back through Release from whichever goroutine holds them
	// last; the channel makes that safe, and drops extras rather than block.
	pool := make(chan *frame.Frame, synthPoolSize)
	release := func(f *frame.Frame) {
		select {
		case pool <- f:
		default:
		}
	}
	pace := newPacer()
	defer pace.stop()
	for seq := uint64(0); ; seq++ {
		if s.params.Frames > 0 && seq == uint64(s.params.Frames) {
			return io.EOF
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if seq > 0 {
			scene.Step()
		}
		var f *frame.Frame
		select {
		case f = <-pool:
		default:
			f = new(frame.Frame)
		}
		f.SetRelease(release)
		scene.Render(f)
		f.StreamID = s.streamID
		f.Seq = seq
		f.PTS = time.Duration(float64(seq) * float64(time.Second) / s.params.FPS)
		f.KeyFrame = true
		if s.params.Realtime {
			if err := pace.wait(ctx, f.PTS); err != nil {
				f.Release()
				return err
			}
		}
		f.Arrival = time.Now()
		if s.params.Stamp {
			synth.Stamp(f, f.Arrival.UnixMilli())
		}
		if err := out.Frame(f); err != nil {
			return err
		}
	}
}
