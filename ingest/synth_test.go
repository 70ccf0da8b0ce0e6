package ingest_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/ingest/synth"
)

// synthFrame is what synthOutput keeps of a frame after releasing it.
type synthFrame struct {
	streamID      string
	seq           uint64
	pts           time.Duration
	arrival       time.Time
	key           bool
	width, height int
	format        frame.PixelFormat
	luma          []byte
	stamp         int64 // synth.ReadStamp of the picture
	stamped       bool
}

// synthOutput collects frames. It hands each frame to a second goroutine
// that releases it, as a pipeline would, so the race detector sees the pool
// used across goroutines.
type synthOutput struct {
	mu       sync.Mutex
	frames   []synthFrame
	onFrame  func(n int) error // called with the number of frames so far
	release  chan *frame.Frame
	released sync.WaitGroup
}

func newSynthOutput() *synthOutput {
	o := &synthOutput{release: make(chan *frame.Frame, 8)}
	o.released.Go(func() {
		for f := range o.release {
			f.Release()
		}
	})
	return o
}

// close stops the releasing goroutine.
func (o *synthOutput) close() {
	close(o.release)
	o.released.Wait()
}

func (o *synthOutput) Count(ingest.Event, uint64) {}

func (o *synthOutput) Params(frame.CodecParams) error {
	return errors.New("synth source sent codec params")
}
func (o *synthOutput) Packet(*frame.Packet) error { return errors.New("synth source sent a packet") }

func (o *synthOutput) Frame(f *frame.Frame) error {
	o.mu.Lock()
	o.frames = append(o.frames, synthFrame{
		streamID: f.StreamID, seq: f.Seq, pts: f.PTS, arrival: f.Arrival, key: f.KeyFrame,
		width: f.Width, height: f.Height, format: f.Format,
		luma: append([]byte(nil), f.Planes[0]...),
	})
	fr := &o.frames[len(o.frames)-1]
	fr.stamp, fr.stamped = synth.ReadStamp(f)
	n := len(o.frames)
	o.mu.Unlock()
	o.release <- f
	if o.onFrame != nil {
		return o.onFrame(n)
	}
	return nil
}

func (o *synthOutput) got() []synthFrame {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.frames
}

func TestSynthFastFinite(t *testing.T) {
	defer goleak.VerifyNone(t)
	src, err := ingest.Open("cam", "synth://?w=320&h=240&fps=100&frames=20&realtime=0", ingest.Options{})
	require.NoError(t, err)
	require.False(t, src.Live())

	out := newSynthOutput()
	err = src.Run(t.Context(), out)
	out.close()
	require.ErrorIs(t, err, io.EOF)

	frames := out.got()
	require.Len(t, frames, 20)
	for i, f := range frames {
		require.Equal(t, "cam", f.streamID)
		require.Equal(t, uint64(i), f.seq)
		require.Equal(t, time.Duration(i)*10*time.Millisecond, f.pts)
		require.True(t, f.key)
		require.Equal(t, 320, f.width)
		require.Equal(t, 240, f.height)
		require.Equal(t, frame.PixelFormatYUV420P, f.format)
		require.False(t, f.arrival.IsZero())
		if i > 0 {
			require.Greater(t, f.pts, frames[i-1].pts)
			require.False(t, f.arrival.Before(frames[i-1].arrival))
		}
	}

	// Frame N is the scene after N steps, so its truth can be replayed.
	p := src.(*ingest.SynthSource).Params()
	scene := synth.NewScene(p)
	for range 13 {
		scene.Step()
	}
	var want frame.Frame
	scene.Render(&want)
	require.Equal(t, want.Planes[0], frames[13].luma)
	require.Equal(t, scene.Truth(), synth.Replay(p, 13))

	// A second run starts the scene again.
	out = newSynthOutput()
	require.ErrorIs(t, src.Run(t.Context(), out), io.EOF)
	out.close()
	require.Equal(t, frames[13].luma, out.got()[13].luma)
}

func TestSynthRealtime(t *testing.T) {
	defer goleak.VerifyNone(t)
	src, err := ingest.Open("cam", "synth://scene?w=64&h=48&fps=50&frames=10", ingest.Options{})
	require.NoError(t, err)
	require.True(t, src.Live())

	out := newSynthOutput()
	start := time.Now()
	err = src.Run(t.Context(), out)
	elapsed := time.Since(start)
	out.close()
	require.ErrorIs(t, err, io.EOF)
	require.Len(t, out.got(), 10)
	// The last of 10 frames at 50 fps is due 180 ms after the first.
	require.GreaterOrEqual(t, elapsed, 170*time.Millisecond)
	require.Less(t, elapsed, time.Second)
	frames := out.got()
	for i, f := range frames {
		due := frames[0].arrival.Add(f.pts)
		require.False(t, f.arrival.Before(due.Add(-5*time.Millisecond)), "frame %d came %v early", i, due.Sub(f.arrival))
	}
}

func TestSynthCancel(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  string
	}{
		{name: "waiting for the next frame", url: "synth://?w=64&h=48&fps=0.5"},
		{name: "as fast as possible", url: "synth:///?w=64&h=48&realtime=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			src, err := ingest.Open("cam", tc.url, ingest.Options{})
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			out := newSynthOutput()
			first := make(chan struct{})
			out.onFrame = func(n int) error {
				if n == 3 || (n == 1 && src.Live()) {
					close(first)
				}
				return nil
			}
			done := make(chan error, 1)
			go func() { done <- src.Run(ctx, out) }()
			<-first
			cancel()
			select {
			case err := <-done:
				require.ErrorIs(t, err, context.Canceled)
			case <-time.After(time.Second):
				t.Fatal("Run did not return after cancel")
			}
			out.close()
		})
	}
}

func TestSynthOutputError(t *testing.T) {
	defer goleak.VerifyNone(t)
	src, err := ingest.Open("cam", "synth://?w=64&h=48&realtime=0", ingest.Options{})
	require.NoError(t, err)
	out := newSynthOutput()
	stop := errors.New("consumer gone")
	out.onFrame = func(n int) error {
		if n == 5 {
			return stop
		}
		return nil
	}
	require.ErrorIs(t, src.Run(t.Context(), out), stop)
	out.close()
	require.Len(t, out.got(), 5)
}

func TestSynthStamp(t *testing.T) {
	defer goleak.VerifyNone(t)
	run := func(url string) []synthFrame {
		src, err := ingest.Open("cam", url, ingest.Options{})
		require.NoError(t, err)
		out := newSynthOutput()
		require.ErrorIs(t, src.Run(t.Context(), out), io.EOF)
		out.close()
		return out.got()
	}
	// Realtime at 40 fps, so that consecutive frames carry distinct ms.
	stamped := run("synth://?w=384&h=64&fps=40&frames=6&stamp=1")
	plain := run("synth://?w=384&h=64&fps=40&frames=6")
	require.Len(t, stamped, 6)
	for i, f := range stamped {
		require.True(t, f.stamped, "frame %d has no stamp", i)
		require.Equal(t, f.arrival.UnixMilli(), f.stamp, "frame %d", i)
		if i > 0 {
			require.Greater(t, f.stamp, stamped[i-1].stamp)
		}
		require.False(t, plain[i].stamped, "stamp=0 draws no stamp")
		// Below the stamp, the picture is the scene's.
		row := synth.StampHeight * 384
		require.Equal(t, plain[i].luma[row:], f.luma[row:])
		require.NotEqual(t, plain[i].luma[:row], f.luma[:row])
	}

	_, err := ingest.Open("cam", "synth://?w=320&h=240&stamp=1", ingest.Options{})
	require.ErrorContains(t, err, "synth: stamp: needs a picture of at least 384x32, not 320x240")
}

func TestSynthOpenErrors(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{url: "synth://?w=33", want: "synth: w: must be an even number"},
		{url: "synth://?fps=fast", want: `synth: fps: "fast" is not a valid number`},
		{url: "synth://?bogus=1", want: `synth: unknown parameter "bogus"`},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := ingest.Open("cam", tc.url, ingest.Options{})
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "opening stream cam")
		})
	}
}
