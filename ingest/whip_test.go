package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/whip"
	"github.com/vigil-video/vigil/ingest/whip/whiptest"
	"github.com/vigil-video/vigil/internal/shareddata"
	"github.com/vigil-video/vigil/pipeline"
)

// sizeSink counts results by frame size.
type sizeSink struct {
	mu    sync.Mutex
	sizes map[[2]int]int
}

func (s *sizeSink) Write(_ context.Context, r *frame.Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sizes == nil {
		s.sizes = map[[2]int]int{}
	}
	s.sizes[[2]int{r.Width, r.Height}]++
	return nil
}

func (s *sizeSink) Close(context.Context) error { return nil }

func (s *sizeSink) count(w, h int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sizes[[2]int{w, h}]
}

// whipPipeline runs a pipeline with one whip:// stream "cam" and an HTTP
// server that mounts whip.Default under /whip/ and extra under /.
func whipPipeline(t *testing.T, token string, extra http.Handler) (p *pipeline.Pipeline, base string, results *sizeSink, stop func()) {
	t.Helper()
	s := config.Stream{ID: "cam", URL: "whip://", Token: token}
	s.ApplyDefaults()
	s.InferFPS = 30
	s.ReadTimeout = config.Duration(3 * time.Second)
	results = &sizeSink{}
	p, err := pipeline.New(pipeline.Options{
		Streams: []config.Stream{s},
		Sinks:   []pipeline.NamedSink{{Name: "sizes", Sink: results}},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/whip/", whip.Default)
	if extra != nil {
		mux.Handle("/", extra)
	}
	hs := httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return p, hs.URL, results, func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(15 * time.Second):
			t.Fatal("pipeline did not stop")
		}
		hs.Close()
		http.DefaultClient.CloseIdleConnections()
	}
}

func whipStatus(t *testing.T, p *pipeline.Pipeline) pipeline.StreamStatus {
	st, ok := p.Stream("cam")
	require.True(t, ok)
	return st
}

// publish connects a pion publisher, retrying while the stream is not yet
// attached (404).
func publish(ctx context.Context, t *testing.T, url, token, mime string) *whiptest.Publisher {
	t.Helper()
	for {
		pub, err := whiptest.Publish(ctx, url, token, mime)
		var se *whiptest.StatusError
		if errors.As(err, &se) && se.Code == http.StatusNotFound && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		require.NoError(t, err)
		return pub
	}
}

func TestWHIPPipeline(t *testing.T) {
	defer goleak.VerifyNone(t)
	clip := whiptest.Clip(t, webrtc.MimeTypeH264, 2)
	p, base, results, stop := whipPipeline(t, "tok", nil)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// A wrong token is refused; the right one publishes.
	_, err := whiptest.Publish(ctx, base+"/whip/cam", "nope", webrtc.MimeTypeH264)
	var se *whiptest.StatusError
	require.ErrorAs(t, err, &se)
	pub := publish(ctx, t, base+"/whip/cam", "tok", webrtc.MimeTypeH264)
	defer pub.Close()
	require.NoError(t, pub.WaitConnected(ctx))
	sent, err := pub.SendH264(ctx, clip, 30)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return whipStatus(t, p).FramesIn >= uint64(sent*9/10) }, 5*time.Second, 20*time.Millisecond)
	st := whipStatus(t, p)
	t.Logf("sent %d frames; pipeline: %+v; results 320x240: %d", sent, st, results.count(320, 240))
	require.Equal(t, pipeline.StateStreaming, st.State)
	require.Zero(t, st.PacketsLost)
	require.Zero(t, st.DecodeErrors)
	require.GreaterOrEqual(t, results.count(320, 240), sent*9/10)

	// The publisher leaves and the stream waits. The next one sends VP8:
	// the decoder follows the codec change. When it falls silent, it is
	// counted as a stall after the read timeout and its session ends.
	code, err := pub.Delete(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	before := whipStatus(t, p).FramesIn
	vp8 := publish(ctx, t, base+"/whip/cam", "tok", webrtc.MimeTypeVP8)
	defer vp8.Close()
	require.NoError(t, vp8.WaitConnected(ctx))
	sent, err = vp8.SendIVF(ctx, whiptest.Clip(t, webrtc.MimeTypeVP8, 1), 30)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return whipStatus(t, p).FramesIn >= before+uint64(sent*9/10) }, 5*time.Second, 20*time.Millisecond)
	require.Zero(t, whipStatus(t, p).DecodeErrors)
	require.Eventually(t, func() bool { return whipStatus(t, p).Stalls == 1 }, 6*time.Second, 50*time.Millisecond)
	require.Zero(t, whip.Default.Sessions())
}

// chromiumPage publishes the fake camera over WHIP, preferring H.264, and
// posts what happened to /report.
var chromiumPage = template.Must(template.New("page").Parse(`<!doctype html>
<html><body><script>
async function report(r) {
  await fetch('/report', {method: 'POST', body: JSON.stringify(r)});
}
(async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({video: true});
    const track = stream.getVideoTracks()[0];
    track.contentHint = 'detail'; // keep the resolution, drop the frame rate
    const pc = new RTCPeerConnection();
    const tr = pc.addTransceiver(track, {direction: 'sendonly'});
    const want = 'video/' + new URLSearchParams(location.search).get('codec');
    const codecs = RTCRtpReceiver.getCapabilities('video').codecs;
    const preferred = codecs.filter(c => c.mimeType === want);
    if (preferred.length > 0 && tr.setCodecPreferences) {
      tr.setCodecPreferences(preferred.concat(codecs.filter(c => c.mimeType !== want)));
    }
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise(resolve => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') resolve();
      });
      setTimeout(resolve, 3000);
    });
    const resp = await fetch('/whip/cam', {
      method: 'POST',
      headers: {'Content-Type': 'application/sdp', 'Authorization': 'Bearer {{.}}'},
      body: pc.localDescription.sdp,
    });
    const answer = await resp.text();
    if (resp.status !== 201) {
      return report({error: 'WHIP answered ' + resp.status + ': ' + answer});
    }
    await pc.setRemoteDescription({type: 'answer', sdp: answer});
    await new Promise(resolve => {
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'connected') resolve();
      });
      setTimeout(resolve, 10000);
    });
    const s = track.getSettings();
    const codec = (answer.match(/a=rtpmap:\d+ (H264|VP8)/) || [])[1];
    report({state: pc.connectionState, width: s.width, height: s.height, codec: codec, offered: preferred.length});
  } catch (e) {
    report({error: String(e)});
  }
})();
</script></body></html>`))

type chromiumReport struct {
	Error  string `json:"error"`
	State  string `json:"state"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Codec  string `json:"codec"`
	// Offered counts Chromium's payload types of the wanted codec.
	Offered int `json:"offered"`
}

// TestWHIPChromium publishes headless Chromium's fake camera to Vigil and
// checks that Vigil decodes its frames at the camera's size.
func TestWHIPChromium(t *testing.T) {
	shareddata.NeedCommands(t, "chromium")
	for _, codec := range []string{"H264", "VP8"} {
		t.Run(codec, func(t *testing.T) { testWHIPChromium(t, codec) })
	}
}

func testWHIPChromium(t *testing.T, codec string) {
	defer goleak.VerifyNone(t)
	reports := make(chan chromiumReport, 1)
	page := http.NewServeMux()
	page.HandleFunc("GET /publish", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_ = chromiumPage.Execute(w, "chrome-token")
	})
	page.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var rep chromiumReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			rep.Error = "decoding report: " + err.Error()
		}
		select {
		case reports <- rep:
		default:
		}
	})
	p, base, results, stop := whipPipeline(t, "chrome-token", page)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	// Wait until the stream is attached, so the page's POST finds it.
	require.Eventually(t, func() bool { return whip.Default.Attached("cam") }, 5*time.Second, 10*time.Millisecond)

	cmd := exec.CommandContext(ctx, "chromium",
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--allow-loopback-in-peer-connection",
		"--disable-features=WebRtcHideLocalIpsWithMdns",
		"--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
		"--autoplay-policy=no-user-gesture-required",
		base+"/publish?codec="+codec)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	require.NoError(t, cmd.Start())
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()

	var rep chromiumReport
	select {
	case rep = <-reports:
	case <-ctx.Done():
		t.Fatal("Chromium sent no report")
	}
	t.Logf("Chromium: %+v", rep)
	require.Empty(t, rep.Error)
	require.Equal(t, "connected", rep.State)
	require.NotZero(t, rep.Width)
	require.Equal(t, codec, rep.Codec, "the answer keeps the preferred codec")

	// The fake camera runs at about 30 fps: expect a good part of 3 s.
	time.Sleep(3 * time.Second)
	st := whipStatus(t, p)
	n := results.count(rep.Width, rep.Height)
	t.Logf("after 3 s: %d frames of %dx%d analysed; stream %+v", n, rep.Width, rep.Height, st)
	require.GreaterOrEqual(t, n, 30, "frames of the camera's size")
	require.GreaterOrEqual(t, st.FramesIn, uint64(30))
}
