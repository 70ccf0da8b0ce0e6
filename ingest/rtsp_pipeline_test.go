package ingest_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/pipeline"
)

// runPipeline runs one RTSP stream through the pipeline until the test
// calls the returned stop function.
func runPipeline(t *testing.T, url, transport string, readTimeout time.Duration) (*pipeline.Pipeline, func()) {
	t.Helper()
	if transport == "vdk" {
		url, transport = url+"?rtsp_client=vdk", "tcp"
	}
	s := config.Stream{ID: "cam", URL: url}
	s.ApplyDefaults()
	s.Transport = transport
	s.InferFPS = 5
	s.ReadTimeout = config.Duration(readTimeout)
	s.ReconnectMin = config.Duration(100 * time.Millisecond)
	s.ReconnectMax = config.Duration(400 * time.Millisecond)
	p, err := pipeline.New(pipeline.Options{
		Streams: []config.Stream{s},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(15 * time.Second):
				t.Error("pipeline did not stop")
			}
		})
	}
	t.Cleanup(stop) // also when the test fails, so that nothing leaks into the next one
	return p, stop
}

func status(t *testing.T, p *pipeline.Pipeline) pipeline.StreamStatus {
	st, ok := p.Stream("cam")
	require.True(t, ok)
	return st
}

// waitFrames waits until the stream has decoded n more frames than from.
func waitFrames(t *testing.T, p *pipeline.Pipeline, from uint64, n uint64, within time.Duration) uint64 {
	t.Helper()
	var st pipeline.StreamStatus
	require.Eventually(t, func() bool {
		st = status(t, p)
		return st.FramesIn >= from+n
	}, within, 20*time.Millisecond, "frames_in stuck at %d (want %d): %+v", st.FramesIn, from+n, st)
	return st.FramesIn
}

func TestRTSPPipelineReconnectsAfterServerRestart(t *testing.T) {
	for _, transport := range []string{"tcp", "udp", "vdk"} {
		t.Run(transport, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			srv := ingest.StartTestRTSPServer(t, "viewer", "pw-never-shown")
			p, stop := runPipeline(t, srv.URL("viewer:pw-never-shown", "/cam"), transport, 2*time.Second)
			n := waitFrames(t, p, 0, 20, 10*time.Second)
			require.Equal(t, pipeline.StateStreaming, status(t, p).State)

			srv.Close()
			require.Eventually(t, func() bool {
				st := status(t, p)
				return st.Restarts >= 1 && st.LastError != ""
			}, 5*time.Second, 10*time.Millisecond)
			st := status(t, p)
			require.NotEmpty(t, st.LastError)
			require.NotContains(t, st.LastError, "pw-never-shown")
			require.NotContains(t, st.URL, "pw-never-shown")
			time.Sleep(300 * time.Millisecond) // a few failed reconnects
			srv.Restart()
			restarted := time.Now()
			// The backoff is bounded by reconnect_max (400ms): frames resume
			// within it, the session set-up and the next key frame (GOP 20 at
			// 40 fps: 0.5 s).
			waitFrames(t, p, n, 20, 5*time.Second)
			t.Logf("resumed within %v, status %+v", time.Since(restarted).Round(time.Millisecond), status(t, p))
			stop()
			srv.Close()
		})
	}
}

func TestRTSPPipelineReconnectsAfterStall(t *testing.T) {
	for _, transport := range []string{"tcp", "udp", "vdk"} {
		t.Run(transport, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			srv := ingest.StartTestRTSPServer(t, "", "")
			p, stop := runPipeline(t, srv.URL("", "/cam"), transport, 500*time.Millisecond)
			n := waitFrames(t, p, 0, 20, 10*time.Second)
			srv.Pause(true)
			// The stall is counted before the source returns; the error
			// and the restart are recorded when it has.
			require.Eventually(t, func() bool {
				st := status(t, p)
				return st.Stalls >= 1 && st.Restarts >= 1 && st.LastError != ""
			}, 5*time.Second, 10*time.Millisecond)
			st := status(t, p)
			require.Contains(t, st.LastError, "stalled: no packet for 500ms")
			require.GreaterOrEqual(t, st.Restarts, uint64(1))
			srv.Pause(false)
			waitFrames(t, p, n, 20, 5*time.Second)
			stop()
			srv.Close()
		})
	}
}
