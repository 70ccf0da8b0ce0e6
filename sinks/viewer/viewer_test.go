package viewer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/decode"
	"github.com/vigil-video/vigil/ingest/h264"
	"github.com/vigil-video/vigil/internal/shareddata"
	"github.com/vigil-video/vigil/pipeline"
	"github.com/vigil-video/vigil/sinks/viewer"
	"github.com/vigil-video/vigil/sinks/viewer/viewertest"
	"github.com/vigil-video/vigil/tracking"
)

// boxAnalyzer "detects" one person whose box moves with the frame number,
// so a test knows what every result must say.
type boxAnalyzer struct{}

func boxFor(seq uint64) frame.Box {
	x := float32(seq%200) * 2
	return frame.Box{X1: x, Y1: 40, X2: x + 60, Y2: 200}
}

func (boxAnalyzer) Analyze(_ context.Context, _ []string, f *frame.Frame, r *frame.Result) error {
	r.Detections = append(r.Detections, frame.Detection{Box: boxFor(f.Seq), Label: "person", Score: 0.9})
	return nil
}

// server runs a pipeline of one stream with the hub as tap and sink, and
// the hub's WHEP endpoint on 127.0.0.1.
type server struct {
	p    *pipeline.Pipeline
	hub  *viewer.Hub
	http *httptest.Server
	stop func()
}

func startServer(t *testing.T, streams []config.Stream, opts viewer.Options) *server {
	t.Helper()
	for i := range streams {
		streams[i].ApplyDefaults()
	}
	var p *pipeline.Pipeline // set before the hub serves anyone
	if opts.Describe == nil {
		opts.Describe = func(id string) (viewer.StreamInfo, bool) {
			_, ok := p.StreamConfig(id)
			return viewer.StreamInfo{Models: []viewer.ModelInfo{{Name: "det", Task: "detect", Labels: []string{"person"}}}}, ok
		}
	}
	// ICE gathers on loopback only: nothing a test starts listens elsewhere.
	opts.IPFilter = func(ip net.IP) bool { return ip.IsLoopback() }
	hub := viewer.New(opts)
	tr := tracking.Options{Mode: tracking.ModeSORT}
	var err error
	p, err = pipeline.New(pipeline.Options{
		Streams: streams, Analyzer: boxAnalyzer{}, Tracker: &tr,
		Sinks: []pipeline.NamedSink{{Name: "viewer", Sink: hub}}, Tap: hub,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	hs := httptest.NewServer(hub)
	var once sync.Once
	s := &server{p: p, hub: hub, http: hs, stop: func() {
		once.Do(func() {
			hs.Close()
			cancel()
			require.NoError(t, <-done)
		})
	}}
	t.Cleanup(s.stop)
	return s
}

// message is any data channel message, with the fields the tests read.
type message struct {
	Type       string  `json:"type"`
	Stream     string  `json:"stream"`
	Video      string  `json:"video"`
	ClockRate  int     `json:"clock_rate"`
	Seq        uint64  `json:"seq"`
	RTP        uint32  `json:"rtp"`
	PTS        float64 `json:"pts"`
	CapturedMS float64 `json:"captured_ms"`
	Detections []struct {
		Box       [4]float32 `json:"box"`
		Label     string     `json:"label"`
		TrackID   uint64     `json:"track_id"`
		Embedding []float32  `json:"embedding"`
	} `json:"detections"`
	FPSIn   float64            `json:"fps_in"`
	Viewers int                `json:"viewers"`
	Models  []viewer.ModelInfo `json:"models"`
}

// recorder collects what a viewer receives.
type recorder struct {
	mu       sync.Mutex
	msgs     []message
	aus      []h264.AccessUnit // copies
	auTimes  map[uint32]bool
	decodeOK bool
}

func (r *recorder) options() viewertest.Options {
	r.auTimes = map[uint32]bool{}
	return viewertest.Options{
		OnMessage: func(b []byte) {
			var m message
			if err := json.Unmarshal(b, &m); err != nil {
				m.Type = "invalid: " + err.Error()
			}
			r.mu.Lock()
			r.msgs = append(r.msgs, m)
			r.mu.Unlock()
		},
		OnAccessUnit: func(au h264.AccessUnit) {
			r.mu.Lock()
			if len(r.aus) < 400 {
				au.Data = bytes.Clone(au.Data)
				r.aus = append(r.aus, au)
			}
			r.auTimes[au.Timestamp] = true
			r.mu.Unlock()
		},
	}
}

func (r *recorder) snapshot() ([]message, []h264.AccessUnit, map[uint32]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	times := make(map[uint32]bool, len(r.auTimes))
	for k := range r.auTimes {
		times[k] = true
	}
	return append([]message(nil), r.msgs...), append([]h264.AccessUnit(nil), r.aus...), times
}

func (r *recorder) count(typ string) int {
	msgs, _, _ := r.snapshot()
	n := 0
	for _, m := range msgs {
		if m.Type == typ {
			n++
		}
	}
	return n
}

// decodeAll decodes the access units and returns the frames' sizes.
func decodeAll(t *testing.T, aus []h264.AccessUnit) (n, w, h int) {
	t.Helper()
	dec, err := decode.NewDecoder(decode.Config{StreamID: "viewer", Params: frame.CodecParams{Codec: frame.CodecH264}})
	require.NoError(t, err)
	defer dec.Close()
	for i, au := range aus {
		err := dec.Decode(&frame.Packet{Codec: frame.CodecH264, Data: au.Data, KeyFrame: au.KeyFrame, PTS: time.Duration(i)}, func(f *frame.Frame) {
			n, w, h = n+1, f.Width, f.Height
			f.Release()
		})
		require.NoError(t, err, "access unit %d", i)
	}
	require.NoError(t, dec.Flush(func(f *frame.Frame) {
		n, w, h = n+1, f.Width, f.Height
		f.Release()
	}))
	require.Zero(t, dec.Stats().CorruptFrames)
	return n, w, h
}

func synthStream(id string) config.Stream {
	return config.Stream{ID: id, URL: "synth://?objects=4&w=640&h=360&fps=15&seed=3", InferFPS: 15}
}

func TestWHEPEncodedStream(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	srv := startServer(t, []config.Stream{synthStream("cam")}, viewer.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rec recorder
	v, err := viewertest.Dial(ctx, srv.http.URL+"/whep/cam", rec.options())
	require.NoError(t, err)
	require.Equal(t, 1, srv.hub.Sessions())

	require.Eventually(t, func() bool {
		_, aus, _ := rec.snapshot()
		return len(aus) >= 45 && rec.count("stats") >= 2
	}, 15*time.Second, 50*time.Millisecond)
	msgs, aus, times := rec.snapshot()

	require.Equal(t, "hello", msgs[0].Type, "hello comes first")
	require.Equal(t, "cam", msgs[0].Stream)
	require.Equal(t, "encoded", msgs[0].Video)
	require.Equal(t, viewer.ClockRate, msgs[0].ClockRate)
	require.Equal(t, []string{"person"}, msgs[0].Models[0].Labels)

	require.True(t, aus[0].KeyFrame, "a viewer starts at a key frame")
	n, w, h := decodeAll(t, aus)
	require.Equal(t, len(aus), n, "every access unit decodes to a frame")
	require.Equal(t, [2]int{640, 360}, [2]int{w, h})

	// Results carry the RTP timestamp of their frame: after the first
	// access unit, nearly every result's frame was sent as video (the
	// encoder may skip a frame when it falls behind).
	var results, matched int
	for _, m := range msgs {
		switch m.Type {
		case "result":
			require.Equal(t, viewer.RTPTimestamp(time.Duration(m.PTS*float64(time.Second))), m.RTP)
			require.Len(t, m.Detections, 1)
			require.Equal(t, boxFor(m.Seq), frame.Box{X1: m.Detections[0].Box[0], Y1: m.Detections[0].Box[1], X2: m.Detections[0].Box[2], Y2: m.Detections[0].Box[3]})
			require.NotZero(t, m.CapturedMS)
			if int32(m.RTP-aus[0].Timestamp) >= 0 && int32(m.RTP-aus[len(aus)-1].Timestamp) <= 0 {
				results++
				if times[m.RTP] {
					matched++
				}
			}
		case "stats":
			require.InDelta(t, 15, m.FPSIn, 4, "fps in")
			require.Equal(t, 1, m.Viewers)
			require.Equal(t, "encoded", m.Video)
		}
	}
	t.Logf("%d access units, %d results in their span, %d with their frame's timestamp", len(aus), results, matched)
	require.Greater(t, results, 30)
	require.GreaterOrEqual(t, matched, results*9/10)

	require.NoError(t, v.Close(true))
	require.Eventually(t, func() bool { return srv.hub.Sessions() == 0 }, 5*time.Second, 20*time.Millisecond)
	srv.stop()
}

// makeH264Clip encodes a 2 s test clip with ffmpeg.
func makeH264Clip(t *testing.T, bframes int) string {
	t.Helper()
	shareddata.NeedCommands(t, "ffmpeg")
	path := filepath.Join(t.TempDir(), "clip.mp4")
	out, err := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-t", "2", "-c:v", "libx264", "-g", "25", "-bf", string(rune('0'+bframes)), "-pix_fmt", "yuv420p", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return path
}

// vclHashes returns the hashes of the clip's coded slices.
func vclHashes(t *testing.T, path string) map[[32]byte]bool {
	t.Helper()
	d, err := decode.OpenFile(path)
	require.NoError(t, err)
	defer d.Close()
	cfg, err := h264.ParseDecoderConfig(d.Params().Extradata)
	require.NoError(t, err)
	out := map[[32]byte]bool{}
	var p frame.Packet
	for {
		if err := d.ReadPacket(&p); err != nil {
			break
		}
		nals, err := h264.SplitAVCC(nil, p.Data, cfg.LengthSize)
		require.NoError(t, err)
		for _, n := range nals {
			if h264.TypeOf(n).IsVCL() {
				out[sha256.Sum256(n)] = true
			}
		}
	}
	return out
}

func fileStream(id, path string) config.Stream {
	yes := true
	return config.Stream{ID: id, URL: "file://" + path, Loop: true, Realtime: &yes, InferFPS: 25}
}

// TestWHEPForwardsH264 checks that an H.264 stream reaches the viewer
// untouched: every coded slice it receives is byte for byte one of the
// file's.
func TestWHEPForwardsH264(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	clip := makeH264Clip(t, 0)
	want := vclHashes(t, clip)
	srv := startServer(t, []config.Stream{fileStream("file", clip)}, viewer.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rec recorder
	v, err := viewertest.Dial(ctx, srv.http.URL+"/whep/file", rec.options())
	require.NoError(t, err)
	defer v.Close(true)
	require.Eventually(t, func() bool {
		_, aus, _ := rec.snapshot()
		return len(aus) >= 40
	}, 15*time.Second, 50*time.Millisecond)
	msgs, aus, _ := rec.snapshot()
	require.Equal(t, "passthrough", msgs[0].Video)
	require.True(t, aus[0].KeyFrame)
	slices := 0
	for i, au := range aus {
		for _, n := range h264.SplitAnnexB(nil, au.Data) {
			if h264.TypeOf(n).IsVCL() {
				slices++
				require.True(t, want[sha256.Sum256(n)], "access unit %d has a slice that is not the file's", i)
			}
		}
	}
	require.GreaterOrEqual(t, slices, len(aus))
	n, w, h := decodeAll(t, aus)
	require.Equal(t, len(aus), n)
	require.Equal(t, [2]int{320, 240}, [2]int{w, h})
}

// TestWHEPEncodesBFrames checks that a stream with B-frames, which WebRTC
// players do not take, is encoded for its viewers instead.
func TestWHEPEncodesBFrames(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	clip := makeH264Clip(t, 2)
	srv := startServer(t, []config.Stream{fileStream("file", clip)}, viewer.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rec recorder
	v, err := viewertest.Dial(ctx, srv.http.URL+"/whep/file", rec.options())
	require.NoError(t, err)
	defer v.Close(true)
	require.Eventually(t, func() bool {
		msgs, aus, _ := rec.snapshot()
		last := ""
		for _, m := range msgs {
			if m.Type == "stats" {
				last = m.Video
			}
		}
		return last == "encoded" && len(aus) >= 30
	}, 15*time.Second, 50*time.Millisecond)
	_, aus, _ := rec.snapshot()
	// From the first encoded key frame on, everything decodes.
	for len(aus) > 0 && !(aus[0].KeyFrame && bytes.Contains(aus[0].Data, []byte("x264"))) {
		aus = aus[1:]
	}
	require.NotEmpty(t, aus, "no access unit from Vigil's encoder (its SEI names x264)")
	n, w, h := decodeAll(t, aus)
	require.Equal(t, len(aus), n)
	require.Equal(t, [2]int{320, 240}, [2]int{w, h})
}

func TestWHEPErrors(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	srv := startServer(t, []config.Stream{synthStream("cam")}, viewer.Options{MaxViewers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	post := func(path, ctype, body string) (int, string) {
		resp, err := http.Post(srv.http.URL+path, ctype, strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	code, body := post("/whep/nope", "application/sdp", "v=0")
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, body, `stream "nope" not found`)
	code, body = post("/whep/cam", "text/plain", "v=0")
	require.Equal(t, http.StatusUnsupportedMediaType, code)
	require.Contains(t, body, "application/sdp")
	code, body = post("/whep/cam", "application/sdp", "this is not SDP")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "applying offer")
	code, _ = post("/whep/cam", "application/sdp", strings.Repeat("a", viewer.MaxOfferSize+1))
	require.Equal(t, http.StatusRequestEntityTooLarge, code)
	req, _ := http.NewRequest(http.MethodDelete, srv.http.URL+"/whep/cam/unknown", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	var rec recorder
	v, err := viewertest.Dial(ctx, srv.http.URL+"/whep/cam", rec.options())
	require.NoError(t, err)
	_, err = viewertest.Dial(ctx, srv.http.URL+"/whep/cam", rec.options())
	var se *viewertest.StatusError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, http.StatusServiceUnavailable, se.Code)
	require.Contains(t, se.Body, "max_viewers")
	// A viewer that vanishes without DELETE is let go when ICE fails.
	require.NoError(t, v.Close(false))
	require.Eventually(t, func() bool { return srv.hub.Sessions() == 0 }, 20*time.Second, 100*time.Millisecond)
	srv.stop()
	http.DefaultClient.CloseIdleConnections()
}

// TestWHEPStreamRemoved: removing a stream ends its viewers' sessions.
func TestWHEPStreamRemoved(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	srv := startServer(t, []config.Stream{synthStream("cam")}, viewer.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rec recorder
	v, err := viewertest.Dial(ctx, srv.http.URL+"/whep/cam", rec.options())
	require.NoError(t, err)
	require.NoError(t, srv.p.Remove(ctx, "cam"))
	require.Eventually(t, func() bool { return srv.hub.Sessions() == 0 }, 5*time.Second, 20*time.Millisecond)
	require.NoError(t, v.Close(false))
	srv.stop()
}
