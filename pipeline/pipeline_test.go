package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// collector is a sink that keeps every result.
type collector struct {
	mu      sync.Mutex
	results []*frame.Result
	closed  bool
	delay   time.Duration
}

func (c *collector) Write(_ context.Context, r *frame.Result) error {
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.results = append(c.results, r)
	return nil
}

func (c *collector) Close(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *collector) snapshot() ([]*frame.Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*frame.Result(nil), c.results...), c.closed
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func streamCfg(id, url string, fps float64) config.Stream {
	s := config.Stream{ID: id, URL: url}
	s.ApplyDefaults()
	s.InferFPS = fps
	return s
}

func TestOfflineDeliversEveryFrameInOrder(t *testing.T) {
	c := &collector{}
	p, err := New(Options{
		Streams: []config.Stream{streamCfg("s1", "synth://?w=64&h=48&fps=30&frames=50&realtime=0", 0)},
		Sinks:   []NamedSink{{Name: "c", Sink: c}},
		Logger:  quietLogger(),
		Offline: true,
	})
	require.NoError(t, err)
	require.NoError(t, p.Run(context.Background()))
	res, closed := c.snapshot()
	require.True(t, closed, "sink closed at the end")
	require.Len(t, res, 50)
	for i, r := range res {
		require.Equal(t, uint64(i), r.Seq)
		require.Equal(t, "s1", r.StreamID)
		require.Equal(t, 64, r.Width)
		require.Empty(t, r.Detections)
	}
	st, ok := p.Stream("s1")
	require.True(t, ok)
	require.Equal(t, StateEnded, st.State)
	require.Equal(t, uint64(50), st.FramesIn)
	require.Equal(t, uint64(50), st.FramesAnalyzed)
	require.Zero(t, st.FramesDropped)
}

func TestOfflineSamplesAtInferFPS(t *testing.T) {
	c := &collector{}
	p, err := New(Options{
		// 30 fps for 3 s analysed at 5 fps: 15 frames, every sixth one.
		Streams: []config.Stream{streamCfg("s", "synth://?w=32&h=32&fps=30&frames=90&realtime=0", 5)},
		Sinks:   []NamedSink{{Name: "c", Sink: c}},
		Logger:  quietLogger(),
		Offline: true,
	})
	require.NoError(t, err)
	require.NoError(t, p.Run(context.Background()))
	res, _ := c.snapshot()
	require.Len(t, res, 15)
	for i, r := range res {
		require.Equal(t, uint64(6*i), r.Seq)
	}
}

func TestMaxFramesStopsEndlessSource(t *testing.T) {
	c := &collector{}
	p, err := New(Options{
		Streams:   []config.Stream{streamCfg("s", "synth://?w=32&h=32&fps=30&realtime=0", 0)},
		Sinks:     []NamedSink{{Name: "c", Sink: c}},
		Logger:    quietLogger(),
		Offline:   true,
		MaxFrames: 12,
	})
	require.NoError(t, err)
	require.NoError(t, p.Run(context.Background()))
	res, _ := c.snapshot()
	require.Len(t, res, 12)
}

func TestOfflineSourceErrorIsReturned(t *testing.T) {
	p, err := New(Options{
		Streams: []config.Stream{streamCfg("bad", "file:///nonexistent/clip.mp4", 0)},
		Logger:  quietLogger(),
		Offline: true,
	})
	require.NoError(t, err)
	err = p.Run(context.Background())
	require.ErrorContains(t, err, "/nonexistent/clip.mp4")
}

type slowAnalyzer struct{ d time.Duration }

func (a slowAnalyzer) Analyze(ctx context.Context, _ []string, f *frame.Frame, r *frame.Result) error {
	select {
	case <-time.After(a.d):
	case <-ctx.Done():
	}
	return nil
}

func TestLiveSlowAnalysisDropsAndCounts(t *testing.T) {
	c := &collector{}
	reg := prometheus.NewRegistry()
	p, err := New(Options{
		Streams:    []config.Stream{streamCfg("live", "synth://?w=32&h=32&fps=100", 100)},
		Sinks:      []NamedSink{{Name: "c", Sink: c}},
		Analyzer:   slowAnalyzer{50 * time.Millisecond},
		Registerer: reg,
		Logger:     quietLogger(),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 1*time.Second)
	defer cancel()
	require.NoError(t, p.Run(ctx))

	st, _ := p.Stream("live")
	require.Greater(t, st.FramesIn, uint64(50))
	require.Greater(t, st.FramesDropped, uint64(0))
	require.Less(t, st.FramesAnalyzed, st.FramesIn/2)
	res, closed := c.snapshot()
	require.True(t, closed)
	require.Len(t, res, int(st.FramesAnalyzed))
	// The slot keeps the newest frame: sequence numbers jump.
	require.Greater(t, res[len(res)-1].Seq, uint64(len(res)))
	require.Equal(t, float64(st.FramesDropped),
		testutil.ToFloat64(metricWithLabels(t, reg, "vigil_ingest_frames_dropped_total", "reason", "inference_busy")))
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}

// metricWithLabels returns a collector for one gathered series, for testutil.ToFloat64.
func metricWithLabels(t *testing.T, g prometheus.Gatherer, name, label, value string) prometheus.Collector {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					v := m.GetCounter().GetValue()
					return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x", Help: "x"}, func() float64 { return v })
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return nil
}

func TestGracefulShutdownDrainsSinks(t *testing.T) {
	c := &collector{delay: 2 * time.Millisecond}
	p, err := New(Options{
		Streams:         []config.Stream{streamCfg("s", "synth://?w=32&h=32&fps=200", 200)},
		Sinks:           []NamedSink{{Name: "slow", Sink: c}},
		Logger:          quietLogger(),
		ShutdownTimeout: 2 * time.Second,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.NoError(t, p.Run(ctx))
	require.Less(t, time.Since(start), 3*time.Second)
	res, closed := c.snapshot()
	require.True(t, closed)
	st, _ := p.Stream("s")
	require.Equal(t, StateStopped, st.State)
	// Every analysed frame reached the sink or was counted as dropped there.
	require.NotEmpty(t, res)
}

func TestRestartWithBackoffRecordsError(t *testing.T) {
	p, err := New(Options{
		Streams: []config.Stream{streamCfg("cam", "file:///nonexistent/user:secret@x.mp4", 5)},
		Logger:  quietLogger(),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	require.Eventually(t, func() bool {
		st, _ := p.Stream("cam")
		return st.Restarts >= 2
	}, 5*time.Second, 20*time.Millisecond)
	st, _ := p.Stream("cam")
	require.Contains(t, st.LastError, "nonexistent")
	require.Contains(t, []State{StateBackoff, StateConnecting}, st.State)
	cancel()
	require.NoError(t, <-done)
}

func TestSampler(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name  string
		fps   float64
		pts   []time.Duration
		taken []int
	}{
		{"every frame", 0, []time.Duration{0, 10 * ms, 20 * ms}, []int{0, 1, 2}},
		{"half of 20fps", 10, []time.Duration{0, 50 * ms, 100 * ms, 150 * ms, 200 * ms}, []int{0, 2, 4}},
		{"jittered 10fps at 5", 5, []time.Duration{0, 101 * ms, 199 * ms, 302 * ms, 398 * ms, 500 * ms}, []int{0, 2, 4}},
		{"loop resets", 10, []time.Duration{0, 100 * ms, 200 * ms, 0, 100 * ms}, []int{0, 1, 2, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sampler{interval: intervalOf(tc.fps)}
			var got []int
			for i, p := range tc.pts {
				if s.take(p) {
					got = append(got, i)
				}
			}
			require.Equal(t, tc.taken, got)
		})
	}
}

func startServer(t *testing.T, opts Options) (*Pipeline, *httptest.Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	opts.Logger = quietLogger()
	p, err := New(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	require.Eventually(t, p.Ready, 2*time.Second, 5*time.Millisecond)
	srv := httptest.NewServer(Handler(p, reg, nil))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		require.NoError(t, <-done)
	})
	return p, srv, reg
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestAPIAddListRemove(t *testing.T) {
	_, srv, _ := startServer(t, Options{})

	code, body := do(t, "GET", srv.URL+"/healthz", "")
	require.Equal(t, 200, code)
	code, _ = do(t, "GET", srv.URL+"/readyz", "")
	require.Equal(t, 200, code)

	code, body = do(t, "POST", srv.URL+"/api/streams", `{"id":"cam-1","url":"synth://?w=32&h=32&fps=50","infer_fps":10}`)
	require.Equal(t, http.StatusCreated, code, body)

	var list []StreamStatus
	require.Eventually(t, func() bool {
		_, body := do(t, "GET", srv.URL+"/api/streams", "")
		require.NoError(t, json.Unmarshal([]byte(body), &list))
		return len(list) == 1 && list[0].FramesIn > 5 && list[0].FramesAnalyzed > 0
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, "cam-1", list[0].ID)
	require.Equal(t, StateStreaming, list[0].State)

	code, body = do(t, "GET", srv.URL+"/metrics", "")
	require.Equal(t, 200, code)
	require.Contains(t, body, `vigil_ingest_frames_total{stream="cam-1"}`)

	code, _ = do(t, "POST", srv.URL+"/api/streams", `{"id":"cam-1","url":"synth://"}`)
	require.Equal(t, http.StatusConflict, code)

	code, _ = do(t, "DELETE", srv.URL+"/api/streams/cam-1", "")
	require.Equal(t, http.StatusNoContent, code)
	code, _ = do(t, "DELETE", srv.URL+"/api/streams/cam-1", "")
	require.Equal(t, http.StatusNotFound, code)
	_, body = do(t, "GET", srv.URL+"/api/streams", "")
	require.JSONEq(t, `[]`, body)
	_, body = do(t, "GET", srv.URL+"/metrics", "")
	require.NotContains(t, body, `stream="cam-1"`, "series of a removed stream are deleted")
}

func TestAPIRedactsCredentials(t *testing.T) {
	_, srv, _ := startServer(t, Options{})
	code, body := do(t, "POST", srv.URL+"/api/streams", `{"id":"c","url":"file://user:hunter2@localhost/nonexistent.mp4"}`)
	require.Equal(t, http.StatusCreated, code, body)
	require.Eventually(t, func() bool {
		_, body := do(t, "GET", srv.URL+"/api/streams/c", "")
		return strings.Contains(body, "last_error\": \"") && !strings.Contains(body, `"last_error": ""`)
	}, 5*time.Second, 20*time.Millisecond)
	_, body = do(t, "GET", srv.URL+"/api/streams", "")
	require.NotContains(t, body, "hunter2")
	_, body = do(t, "GET", srv.URL+"/metrics", "")
	require.NotContains(t, body, "hunter2")
}

func TestAPIBadRequestsNameTheField(t *testing.T) {
	_, srv, _ := startServer(t, Options{})
	for _, tc := range []struct {
		name, body, want string
	}{
		{"not json", `{`, "decoding stream"},
		{"unknown field", `{"id":"a","url":"synth://","fps":3}`, `unknown field \"fps\"`},
		{"wrong type", `{"id":"a","url":"synth://","infer_fps":"fast"}`, "infer_fps"},
		{"missing id", `{"url":"synth://"}`, "stream.id"},
		{"bad scheme", `{"id":"a","url":"http://x"}`, "stream.url"},
		{"bad fps", `{"id":"a","url":"synth://","infer_fps":-1}`, "stream.infer_fps"},
		{"bad decode", `{"id":"a","url":"synth://","decode":"some"}`, "stream.decode"},
		{"unknown model", `{"id":"a","url":"synth://","models":["yolo"]}`, "stream.models[0]"},
		{"trailing", `{"id":"a","url":"synth://"} {}`, "trailing"},
		{"too big", `{"id":"` + strings.Repeat("a", 70<<10) + `"}`, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, "POST", srv.URL+"/api/streams", tc.body)
			require.Equal(t, http.StatusBadRequest, code, body)
			require.Contains(t, body, tc.want)
		})
	}
}

func FuzzAddStream(f *testing.F) {
	for _, s := range []string{`{"id":"a","url":"synth://?w=16&h=16&frames=1"}`, `{"id":"a","url":"file:///x"}`, `{}`, `[]`, `{"id":1}`} {
		f.Add([]byte(s))
	}
	reg := prometheus.NewRegistry()
	p, err := New(Options{Registerer: reg, Logger: quietLogger()})
	require.NoError(f, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	require.Eventually(f, p.Ready, 2*time.Second, 5*time.Millisecond)
	h := Handler(p, reg, nil)
	f.Cleanup(func() {
		cancel()
		<-done
	})
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/streams", bytes.NewReader(body)))
		require.Less(t, rec.Code, 500, rec.Body.String())
		if rec.Code == http.StatusCreated {
			var st StreamStatus
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("DELETE", fmt.Sprintf("/api/streams/%s", st.ID), nil))
			require.Contains(t, []int{http.StatusNoContent, http.StatusNotFound}, rec.Code)
		}
	})
}

func TestReloadRestartsOnlyChangedStreams(t *testing.T) {
	p, _, _ := startServer(t, Options{Streams: []config.Stream{
		streamCfg("keep", "synth://?w=32&h=32&fps=50", 5),
		streamCfg("change", "synth://?w=32&h=32&fps=50", 5),
		streamCfg("drop", "synth://?w=32&h=32&fps=50", 5),
	}})
	require.Eventually(t, func() bool {
		st, _ := p.Stream("keep")
		return st.FramesIn > 10
	}, 5*time.Second, 10*time.Millisecond)
	keepBefore, _ := p.Stream("keep")

	added, removed, restarted, err := p.Reload(context.Background(), []config.Stream{
		streamCfg("keep", "synth://?w=32&h=32&fps=50", 5),
		streamCfg("change", "synth://?w=32&h=32&fps=50", 10),
		streamCfg("new", "synth://?w=32&h=32&fps=50", 5),
		{ID: "bad", URL: "gopher://x"},
	})
	require.ErrorContains(t, err, "stream.url")
	require.Equal(t, []string{"new"}, added)
	require.Equal(t, []string{"drop"}, removed)
	require.Equal(t, []string{"change"}, restarted)

	keepAfter, _ := p.Stream("keep")
	require.GreaterOrEqual(t, keepAfter.FramesIn, keepBefore.FramesIn, "unchanged stream kept running")
	var ids []string
	for _, s := range p.Streams() {
		ids = append(ids, s.ID)
	}
	require.Equal(t, []string{"keep", "change", "new"}, ids)
}

// blockingSink holds every Write until released, to fill the fan-out queue.
type blockingSink struct {
	collector
	release chan struct{}
}

func (b *blockingSink) Write(ctx context.Context, r *frame.Result) error {
	<-b.release
	return b.collector.Write(ctx, r)
}

func TestSlowSinkLosesOldestAndCounts(t *testing.T) {
	m := newMetrics(nil, nil)
	sink := &blockingSink{release: make(chan struct{})}
	f := newFanout([]NamedSink{{Name: "slow", Sink: sink}}, false, m, quietLogger())
	ctx := context.Background()
	f.start(ctx, func() context.Context { return ctx })
	const total = sinkQueueLen + 100
	for i := range total {
		require.NoError(t, f.publish(ctx, &frame.Result{Seq: uint64(i)}))
	}
	close(sink.release)
	f.close()
	res, closed := sink.snapshot()
	require.True(t, closed)
	dropped := testutil.ToFloat64(m.sinkMessages.WithLabelValues("slow", "dropped"))
	require.Equal(t, total, len(res)+int(dropped), "every result was delivered or counted")
	require.GreaterOrEqual(t, dropped, 99.0)
	require.Equal(t, uint64(total-1), res[len(res)-1].Seq, "the newest result survives")
}
