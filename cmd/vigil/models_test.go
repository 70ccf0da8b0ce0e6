package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/internal/shareddata"
)

func TestModelsImportListAnalyze(t *testing.T) {
	src := shareddata.Path(t, "models/yolox_nano_416.onnx")
	clip := shareddata.Path(t, "video/vtest_h264.mp4")
	reg := t.TempDir()

	r := vigil(t, time.Minute, "models", "import", src, "--family", "yolox", "--name", "det", "--registry", reg)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "imported")
	require.Contains(t, r.stdout, "det version 1")

	r = vigil(t, time.Minute, "models", "list", "--registry", reg)
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `det\s+1\s+\[1\]\s+detect\s+yolox\s+416x416 nchw bgr\s+fp32 \(0\.0000\)`, r.stdout)

	r = vigil(t, time.Minute, "models", "list", "--registry", reg, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var row modelListing
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &row))
	require.Equal(t, "det", row.Name)
	require.Len(t, row.Variants[0].SHA256, 64)

	r = vigil(t, time.Minute, "models", "import", src, "--family", "yolox", "--name", "det", "--registry", reg)
	require.Equal(t, 0, r.code, r.stderr)
	r = vigil(t, time.Minute, "models", "promote", "det", "1", "--registry", reg)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "det: version 1 is active")
	r = vigil(t, time.Minute, "models", "list", "--registry", reg)
	require.Regexp(t, `det\s+1\s+\[1 2\]`, r.stdout)
	r = vigil(t, time.Minute, "models", "promote", "det", "9", "--registry", reg)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "no version 9")
	r = vigil(t, time.Minute, "models", "promote", "det", "--registry", reg)
	require.Equal(t, 2, r.code)

	r = vigil(t, time.Minute, "models", "import", src, "--registry", reg)
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--family are required")
	r = vigil(t, time.Minute, "models", "import", src, "--family", "yolo9000", "--registry", reg)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `unknown family "yolo9000"`)

	// Analyse every tenth frame (1 fps of a 10 fps clip) up to frame 300.
	out := filepath.Join(t.TempDir(), "det.jsonl")
	r = vigil(t, 3*time.Minute, "analyze", "--input", "file://"+clip, "--model", filepath.Join(reg, "det"),
		"--infer-fps", "1", "--frames", "31", "--out", out)
	require.Equal(t, 0, r.code, r.stderr)
	lines := readLines(t, out)
	require.Len(t, lines, 32, "31 frames and the end of the stream, which ends the open tracks")
	require.True(t, lines[31].EndOfStream)
	require.Empty(t, lines[31].Detections)
	m := lines[30]
	require.Equal(t, uint64(300), m.Seq)
	require.Equal(t, "det", m.Model)
	labels := map[string]int{}
	for _, d := range m.Detections {
		labels[d.Label]++
		require.True(t, d.Box[0] >= 0 && d.Box[1] >= 0 && d.Box[2] <= 768 && d.Box[3] <= 576 && d.Box[0] < d.Box[2], "box %v in source pixels", d.Box)
	}
	require.Equal(t, 8, labels["person"], "frame 300 has 8 persons: %v", labels)
}

// TestAnalyzeAllTasks runs a detector, a keypoint model, a segmenter and
// an embedder together on the reference clip, and checks frame 300.
func TestAnalyzeAllTasks(t *testing.T) {
	clip := shareddata.Path(t, "video/vtest_h264.mp4")
	out := filepath.Join(t.TempDir(), "all.jsonl")
	r := vigil(t, 3*time.Minute, "analyze", "--input", "file://"+clip, "--frames", "4", "--infer-fps", "0.1",
		"--model", shareddata.Path(t, "models/yolox_nano_416.onnx"), "--family", "yolox",
		"--model", shareddata.Path(t, "models/bodypix_mnv1_050_s16.onnx"), "--family", "bodypix",
		"--model", shareddata.Path(t, "models/selfie_segmentation_landscape.onnx"), "--family", "selfie",
		"--model", shareddata.Path(t, "models/person_reid_0287.onnx"), "--family", "embedding",
		"--out", out)
	require.Equal(t, 0, r.code, r.stderr)
	lines := readLines(t, out)
	require.Len(t, lines, 5, "4 frames and the end of the stream")
	m := lines[3]
	require.Equal(t, uint64(300), m.Seq)
	var persons, poses, masks, embedded int
	for _, d := range m.Detections {
		if len(d.Keypoints) > 0 { // bodypix
			require.Len(t, d.Keypoints, 17)
			for _, kp := range d.Keypoints {
				if kp[2] > 0.5 {
					require.True(t, kp[0] >= d.Box[0]-1 && kp[0] <= d.Box[2]+1 && kp[1] >= d.Box[1]-1 && kp[1] <= d.Box[3]+1,
						"confident keypoint %v outside its person %v", kp, d.Box)
				}
			}
			poses++
			continue
		}
		if d.Label != "person" {
			continue
		}
		persons++          // yolox
		if d.Mask != nil { // selfie on the person's surroundings
			require.Equal(t, [2]int{576, 768}, d.Mask.Size)
			require.NotEmpty(t, d.Mask.Counts)
			masks++
		}
		if d.Embedding != nil { // re-ID on the person's box
			require.Len(t, d.Embedding, 256)
			var n float64
			for _, v := range d.Embedding {
				n += float64(v) * float64(v)
			}
			require.InDelta(t, 1, math.Sqrt(n), 1e-4)
			embedded++
		}
	}
	t.Logf("frame 300: %d persons, %d poses, %d person masks, %d embeddings", persons, poses, masks, embedded)
	require.Equal(t, 8, persons)
	require.GreaterOrEqual(t, poses, 4)
	require.GreaterOrEqual(t, masks, 6)
	require.Equal(t, persons, embedded, "every person detection has an embedding")
	require.Contains(t, r.stderr, "embed embedding")
}

// TestServeModels serves a detector to a generated stream, shows it in
// /api/models and the metrics, survives a corrupt model file, and reloads
// a changed model from the config file.
func TestServeModels(t *testing.T) {
	det := shareddata.Path(t, "models/yolox_nano_416.onnx")
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.onnx")
	require.NoError(t, os.WriteFile(bad, []byte("not a model"), 0o644))
	cfgPath := filepath.Join(dir, "vigil.yaml")
	write := func(threshold float64) {
		cfg := fmt.Sprintf(`listen: 127.0.0.1:0
shutdown_timeout: 2s
runtime: {threads: 1}
models:
  - {name: det, bundle: %q, family: yolox, score_threshold: %g}
  - {name: bad, bundle: %q, family: yolox}
streams:
  - {id: cam, url: "synth://?w=320&h=240&fps=10", infer_fps: 2, models: [det, bad]}
`, det, threshold, bad)
		require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	}
	write(0.3)
	cmd, url, stderr := startServe(t, "--config", cfgPath)
	get := func(path string) string {
		resp, err := http.Get(url + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	var rep struct {
		ONNXRuntime string `json:"onnxruntime"`
		Models      []struct {
			Name, Variant, Runtime string
			Variants               []struct {
				Name    string
				MeanMS  float64 `json:"mean_ms"`
				Serving bool
			}
		}
	}
	require.NoError(t, json.Unmarshal([]byte(get("/api/models")), &rep))
	require.Len(t, rep.Models, 1, "the bad model is not served")
	require.Equal(t, "det", rep.Models[0].Name)
	require.Equal(t, "fp32", rep.Models[0].Variant)
	require.True(t, rep.Models[0].Variants[0].Serving)
	require.Positive(t, rep.Models[0].Variants[0].MeanMS)
	require.Contains(t, rep.ONNXRuntime, "loaded from")
	require.Contains(t, stderr.String(), "model not loaded")
	require.Contains(t, stderr.String(), "bad.onnx")

	require.Eventually(t, func() bool {
		return strings.Contains(get("/metrics"), `vigil_inference_images_total{model="det"}`)
	}, 20*time.Second, 200*time.Millisecond)
	metrics := get("/metrics")
	require.Contains(t, metrics, `vigil_inference_model_load_errors_total{model="bad"} 1`)
	require.Contains(t, metrics, `vigil_inference_batch_size_bucket{model="det"`)

	time.Sleep(1100 * time.Millisecond) // a new modification time
	write(0.5)
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "model reloaded") }, 10*time.Second, 100*time.Millisecond)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), stderr.String())
}

func TestModelsQuantize(t *testing.T) {
	src := shareddata.Path(t, "models/yolox_nano_416.onnx")
	clip := shareddata.Path(t, "video/vtest_h264.mp4")
	reg := t.TempDir()
	r := vigil(t, time.Minute, "models", "import", src, "--family", "yolox", "--name", "det", "--registry", reg)
	require.Equal(t, 0, r.code, r.stderr)
	r = vigil(t, 3*time.Minute, "models", "quantize", filepath.Join(reg, "det"), "--calib", "file://"+clip,
		"--frames", "4", "--holdout", "3", "--threads", "1")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "int8 variant")
	require.Regexp(t, `accuracy on 3 held-out frames: f1_vs_fp32 0\.\d+`, r.stdout)

	r = vigil(t, time.Minute, "models", "list", "--registry", reg)
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `fp32 \(0\.0000\), int8 \(0\.\d{4}\)`, r.stdout)

	// The int8 variant (uint8 input) against a bare session of itself.
	r = vigil(t, 3*time.Minute, "bench", "infer", "--model", filepath.Join(reg, "det"), "--variant", "int8", "--runs", "1", "--iters", "2")
	require.Equal(t, 0, r.code, r.stderr)
	var rep benchInferReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	require.Equal(t, "int8", rep.Variant)
	require.GreaterOrEqual(t, rep.Detections, 8)

	r = vigil(t, time.Minute, "models", "quantize", src, "--calib", "file://"+clip)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "import it first")
}

func TestBenchInfer(t *testing.T) {
	shareddata.Path(t, "models/yolox_nano_416.onnx")
	r := vigil(t, 3*time.Minute, "bench", "infer", "--runs", "1", "--iters", "3")
	require.Equal(t, 0, r.code, r.stderr)
	var rep benchInferReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	require.Positive(t, rep.VigilMS)
	require.Positive(t, rep.ORTMS)
	require.InDelta(t, rep.VigilMS/rep.ORTMS, rep.Ratio, 1e-9)
	require.Equal(t, 11, rep.Detections, "8 persons, 2 cars, 1 truck")
}

// TestAnalyzeTracks runs a detector and a re-ID model with the tracker on
// the reference clip and writes MOTChallenge output.
func TestAnalyzeTracks(t *testing.T) {
	clip := shareddata.Path(t, "video/vtest_h264.mp4")
	dir := t.TempDir()
	res, out := filepath.Join(dir, "res.txt"), filepath.Join(dir, "out.jsonl")
	r := vigil(t, 3*time.Minute, "analyze", "--input", "file://"+clip, "--frames", "30", "--infer-fps", "5",
		"--model", shareddata.Path(t, "models/yolox_nano_416.onnx"), "--family", "yolox",
		"--model", shareddata.Path(t, "models/person_reid_0287.onnx"), "--family", "embedding",
		"--mot-out", res, "--out", out)
	require.Equal(t, 0, r.code, r.stderr)
	b, err := os.ReadFile(res)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	ids := map[string]int{}
	for _, l := range lines {
		f := strings.Split(l, ",")
		require.Len(t, f, 10, l)
		ids[f[1]]++
	}
	t.Logf("%d tracked detections, %d tracks", len(lines), len(ids))
	require.Greater(t, len(lines), 100)
	require.Less(t, len(ids), len(lines)/5, "tracks last many frames")
	msgs := readLines(t, out)
	end := msgs[len(msgs)-1]
	require.True(t, end.EndOfStream, "the last line ends the open tracks")
	msgs = msgs[:len(msgs)-1]
	ended := map[uint64]bool{}
	for _, e := range end.TrackEvents {
		require.Equal(t, "ended", e.Kind)
		ended[e.TrackID] = true
	}
	tracked := 0
	for _, d := range msgs[len(msgs)-1].Detections {
		if d.TrackID != 0 {
			tracked++
		}
	}
	require.Positive(t, tracked, "the JSON lines carry track IDs too")
	started := 0
	for _, m := range msgs {
		for _, e := range m.TrackEvents {
			require.Equal(t, "started", e.Kind, "no track ends within 30 frames of max_age 30")
			require.Positive(t, e.TrackID)
			started++
		}
	}
	require.Equal(t, len(ids), started, "one started event per track in the MOT output")
	require.Len(t, ended, started, "every started track ends with the stream")
}
