package inference

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
	"github.com/vigil-video/vigil/ingest/synth"
)

// addDetectorVersion writes the built-in detector's fp32 variant, changed
// by edit, as version v of model "det" in the registry at root.
func addDetectorVersion(t *testing.T, root string, v int, edit func(*onnxpb.ModelProto)) {
	t.Helper()
	base, err := OpenBundle("builtin:detector", "")
	require.NoError(t, err)
	fp32, ok := base.Variant("fp32")
	require.True(t, ok)
	m, err := onnx.Read(base.Path(fp32))
	require.NoError(t, err)
	if edit != nil {
		edit(m)
	}
	tmp := filepath.Join(t.TempDir(), "fp32.onnx")
	require.NoError(t, onnx.Write(tmp, m))
	b := *base
	b.Dir = filepath.Join(root, "det", strconv.Itoa(v))
	b.Version, b.Variants = v, nil
	require.NoError(t, os.MkdirAll(b.Dir, 0o755))
	require.NoError(t, b.AddVariant(fp32, tmp, true))
	require.NoError(t, b.Write())
}

// nanWeights breaks every convolution's weights (the graph still loads:
// shapes and scales stay as they were).
func nanWeights(m *onnxpb.ModelProto) {
	for _, init := range m.Graph.Initializer {
		vals, err := onnx.Floats(init)
		if err != nil || len(init.Dims) != 4 {
			continue
		}
		for i := range vals {
			vals[i] = float32(math.NaN())
		}
		*init = *onnx.FloatTensor(init.Name, init.Dims, vals)
	}
}

// nanWhenDark puts sqrt(x - 0.4) in front of the network: a mid-grey
// picture (the load probe) runs fine, a real scene's dark pixels give NaN.
func nanWhenDark(m *onnxpb.ModelProto) {
	g := m.Graph
	in := g.Input[0].Name
	for _, n := range g.Node {
		for i, x := range n.Input {
			if x == in {
				n.Input[i] = "dark_sqrt"
			}
		}
	}
	g.Initializer = append(g.Initializer, onnx.FloatTensor("dark_offset", []int64{1}, []float32{0.4}))
	g.Node = append([]*onnxpb.NodeProto{
		{Name: "dark_sub", OpType: "Sub", Input: []string{in, "dark_offset"}, Output: []string{"dark_diff"}},
		{Name: "dark_sqrt", OpType: "Sqrt", Input: []string{"dark_diff"}, Output: []string{"dark_sqrt"}},
	}, g.Node...)
}

func sceneFrame(t *testing.T) *frame.Frame {
	p := synth.DefaultParams()
	p.Width, p.Height, p.Objects = 640, 360, 5
	f := new(frame.Frame)
	synth.NewScene(p).Render(f)
	f.StreamID = "cam"
	return f
}

func rollbackEngine(t *testing.T, root string) *Engine {
	e := NewEngine(EngineOptions{
		Runtime: config.Runtime{Device: "cpu", Threads: 1}, Batching: config.Batching{MaxBatch: 1},
		Probation: time.Minute, Logger: slog.New(slog.DiscardHandler),
	})
	t.Cleanup(func() { e.Close() })
	addDetectorVersion(t, root, 1, nil)
	require.NoError(t, e.Load(config.Model{Name: "det", Bundle: filepath.Join(root, "det"), ScoreThreshold: 0.3}))
	return e
}

func servingVersion(t *testing.T, e *Engine) int {
	m, ok := e.Model("det")
	require.True(t, ok)
	return m.Bundle().Version
}

// TestReloadRefusesBrokenModel: a version whose outputs are NaN fails its
// load probe and never serves; the old version carries on.
func TestReloadRefusesBrokenModel(t *testing.T) {
	root := t.TempDir()
	e := rollbackEngine(t, root)
	addDetectorVersion(t, root, 2, nanWeights)
	require.NoError(t, Registry{Root: root}.Promote("det", 2))
	e.checkRegistry()
	require.Equal(t, 1, servingVersion(t, e))
	require.Equal(t, 1.0, testutil.ToFloat64(e.metrics.loadErrs.WithLabelValues("det")))

	r := &frame.Result{}
	require.NoError(t, e.Analyze(context.Background(), []string{"det"}, sceneFrame(t), r))
	require.Equal(t, "1/fp32", r.ModelVersion)
	require.NotEmpty(t, r.Detections)
}

// TestReloadRollsBack: a version that passes its probe but gives NaN on
// real frames is rolled back on its first such frame, which the old
// version then analyses; the bad version is not loaded again.
func TestReloadRollsBack(t *testing.T) {
	root := t.TempDir()
	e := rollbackEngine(t, root)
	f := sceneFrame(t)
	want := &frame.Result{}
	require.NoError(t, e.Analyze(context.Background(), []string{"det"}, f, want))

	addDetectorVersion(t, root, 2, nanWhenDark)
	require.NoError(t, Registry{Root: root}.Promote("det", 2))
	e.checkRegistry()
	require.Equal(t, 2, servingVersion(t, e), "the probe passes")

	r := &frame.Result{}
	require.NoError(t, e.Analyze(context.Background(), []string{"det"}, f, r))
	require.Equal(t, "1/fp32", r.ModelVersion, "the frame is analysed by the restored version")
	require.Equal(t, want.Detections, r.Detections)
	require.Equal(t, 1, servingVersion(t, e))
	require.Equal(t, 1.0, testutil.ToFloat64(e.metrics.rollbacks.WithLabelValues("det")))
	e.checkRegistry()
	require.Equal(t, 1, servingVersion(t, e), "the bad version is not retried")
}

// TestPromoteAPI: POST /api/models/{name}/promote loads the version now;
// a version that does not load leaves the registry and the serving model
// as they were.
func TestPromoteAPI(t *testing.T) {
	root := t.TempDir()
	e := rollbackEngine(t, root)
	addDetectorVersion(t, root, 2, nil)
	addDetectorVersion(t, root, 3, nanWeights)
	post := func(path, body string) (int, string) {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		return w.Code, w.Body.String()
	}
	code, body := post("/api/models/det/promote", `{"version": 2}`)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"version":2`)
	require.Equal(t, 2, servingVersion(t, e))

	code, body = post("/api/models/det/promote", `{"version": 3}`)
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	require.Contains(t, body, "NaN")
	require.Equal(t, 2, servingVersion(t, e))
	active, err := Registry{Root: root}.Active("det")
	require.NoError(t, err)
	require.Equal(t, 2, active, "the registry's active version is restored")

	code, _ = post("/api/models/det/promote", `{"version": 9}`)
	require.Equal(t, http.StatusUnprocessableEntity, code)
	code, _ = post("/api/models/nope/promote", `{"version": 1}`)
	require.Equal(t, http.StatusNotFound, code)
	code, _ = post("/api/models/det/promote", `{"version": "2"}`)
	require.Equal(t, http.StatusBadRequest, code)
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/models/det/promote", nil))
	require.Equal(t, http.StatusMethodNotAllowed, w.Code)
}
