package inference

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// TestEngineModelInfoMetric: vigil_inference_model_info names the version
// served, follows a promotion with one series per model, and goes with the
// model.
func TestEngineModelInfoMetric(t *testing.T) {
	orttest.Init(t)
	src := shareddata.Path(t, "models/yolox_nano_416.onnx")
	models := Registry{Root: t.TempDir()}
	for range 2 {
		_, err := models.Import(src, "yolox", "det")
		require.NoError(t, err)
	}
	require.NoError(t, models.Promote("det", 1))

	reg := prometheus.NewRegistry()
	e := newEngine(t, reg, 1)
	require.NoError(t, e.Load(config.Model{Name: "det", Bundle: filepath.Join(models.Root, "det"), ScoreThreshold: 0.3}))
	want := func(version string) string {
		return `
# HELP vigil_inference_model_info 1 for each model served, with the bundle version, variant, device profile and runtime serving it.
# TYPE vigil_inference_model_info gauge
vigil_inference_model_info{device="cpu",model="det",runtime="onnxruntime",variant="fp32",version="` + version + `"} 1
`
	}
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want("1")), "vigil_inference_model_info"))

	require.NoError(t, models.Promote("det", 2))
	e.checkRegistry()
	require.Equal(t, 2, e.Status()[0].Version)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want("2")), "vigil_inference_model_info"),
		"the old version's series is gone")

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)

	e.Unload("det")
	require.Zero(t, testutil.CollectAndCount(e.metrics.info))
}
