//go:build cgo

package ort

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/inference/decoders"
	"github.com/vigil-video/vigil/inference/prep"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// initORT loads the library, skipping the test when it is not installed or
// failing it when VIGIL_REQUIRE_SHARED=1 (CI installs it).
func initORT(tb testing.TB) {
	tb.Helper()
	path, err := FindLibrary("")
	if errors.Is(err, ErrLibraryNotFound) {
		if shareddata.Required() {
			tb.Fatalf("VIGIL_REQUIRE_SHARED=1: %v", err)
		}
		tb.Skipf("skipping: %v", err)
	}
	require.NoError(tb, err)
	require.NoError(tb, Init(path))
	require.NoError(tb, Init(path), "Init must be idempotent")
}

const (
	frameW, frameH = 768, 576
	yoloSize       = 416
)

// decodeFrame returns frame t=30 s of vtest.avi as packed BGR24, decoded by
// the ffmpeg CLI.
func decodeFrame(tb testing.TB) []byte {
	tb.Helper()
	clip := shareddata.Path(tb, "video/vtest.avi")
	shareddata.NeedCommands(tb, "ffmpeg")
	cmd := exec.Command("ffmpeg", "-v", "error", "-ss", "30", "-i", clip,
		"-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "bgr24", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(tb, err, stderr.String())
	require.Len(tb, out, frameW*frameH*3)
	return out
}

// bilinear samples channel c of a packed BGR image at (x, y) with OpenCV's
// INTER_LINEAR pixel-centre convention.
func bilinear(img []byte, w, h int, x, y float64, c int) float32 {
	x = math.Max(0, math.Min(x, float64(w-1)))
	y = math.Max(0, math.Min(y, float64(h-1)))
	x0, y0 := int(x), int(y)
	x1, y1 := min(x0+1, w-1), min(y0+1, h-1)
	fx, fy := x-float64(x0), y-float64(y0)
	p := func(xx, yy int) float64 { return float64(img[(yy*w+xx)*3+c]) }
	top := p(x0, y0)*(1-fx) + p(x1, y0)*fx
	bot := p(x0, y1)*(1-fx) + p(x1, y1)*fx
	return float32(top*(1-fy) + bot*fy)
}

// letterbox fills dst (NCHW 3x416x416, BGR 0..255) with the frame scaled to
// fit, top-left aligned, padded with 114, as YOLOX's preproc does.
func letterbox(dst []float32, img []byte) float64 {
	r := math.Min(float64(yoloSize)/frameH, float64(yoloSize)/frameW)
	nw, nh := int(float64(frameW)*r), int(float64(frameH)*r)
	plane := yoloSize * yoloSize
	for c := range 3 {
		for y := range yoloSize {
			for x := range yoloSize {
				v := float32(114)
				if x < nw && y < nh {
					sx := (float64(x)+0.5)*float64(frameW)/float64(nw) - 0.5
					sy := (float64(y)+0.5)*float64(frameH)/float64(nh) - 0.5
					v = bilinear(img, frameW, frameH, sx, sy, c)
				}
				dst[c*plane+y*yoloSize+x] = v
			}
		}
	}
	return r
}

func openModel(tb testing.TB, name string, opts SessionOptions) *Session {
	tb.Helper()
	path := shareddata.Path(tb, "models/"+name)
	initORT(tb)
	s, err := Open(path, opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, s.Close()) })
	return s
}

// TestYOLOXFrame checks the detector against the reference run recorded in
// ../shared/data/README.md: 8 persons, 2 cars, 1 truck on frame t=30 s.
func TestYOLOXFrame(t *testing.T) {
	s := openModel(t, "yolox_nano_416.onnx", SessionOptions{IntraOpThreads: 2})
	require.Equal(t, []TensorInfo{{Name: "images", Shape: []int64{1, 3, 416, 416}, Type: "float32"}}, s.Inputs())
	require.Equal(t, []TensorInfo{{Name: "output", Shape: []int64{1, 3549, 85}, Type: "float32"}}, s.Outputs())

	letterbox(s.Input(0), decodeFrame(t))
	require.NoError(t, s.Run())
	first := slices.Clone(s.Output(0))

	dec, err := decoders.New("yolox", decoders.Options{InputW: 416, InputH: 416, ScoreThreshold: 0.3, NMSIoU: 0.45})
	require.NoError(t, err)
	identity := prep.Transform{ScaleX: 1, ScaleY: 1, SrcW: 416, SrcH: 416}
	dets, err := dec.Decode(nil, []decoders.Tensor{{Name: "output", Shape: []int64{1, 3549, 85}, Data: first}}, 0, identity)
	require.NoError(t, err)
	counts := map[int]int{}
	for _, d := range dets {
		counts[d.Class]++
	}
	const person, car, truck = 0, 2, 7
	t.Logf("persons %d, cars %d, trucks %d, all %v", counts[person], counts[car], counts[truck], counts)
	require.InDelta(t, 8, counts[person], 1, "persons")
	require.Equal(t, 2, counts[car], "cars")
	require.Equal(t, 1, counts[truck], "trucks")
	require.Len(t, counts, 3, "no other classes")

	// Reused buffers: a second run on the same input gives the same output.
	clear(s.Output(0))
	require.NoError(t, s.Run())
	require.Equal(t, first, s.Output(0))
}

// cropReID fills dst (NHWC 256x128x3, BGR 0..255) from the frame region
// (x, y, w, h).
func cropReID(dst []float32, img []byte, x, y, w, h int) {
	for oy := range 256 {
		for ox := range 128 {
			sx := float64(x) + (float64(ox)+0.5)*float64(w)/128 - 0.5
			sy := float64(y) + (float64(oy)+0.5)*float64(h)/256 - 0.5
			for c := range 3 {
				dst[(oy*128+ox)*3+c] = bilinear(img, frameW, frameH, sx, sy, c)
			}
		}
	}
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

func TestReIDEmbedding(t *testing.T) {
	s := openModel(t, "person_reid_0287.onnx", SessionOptions{IntraOpThreads: 2})
	require.Equal(t, []int64{1, 256, 128, 3}, s.Inputs()[0].Shape)
	require.Equal(t, []int64{1, 256}, s.Outputs()[0].Shape)
	img := decodeFrame(t)

	embed := func(x, y, w, h int) []float32 {
		cropReID(s.Input(0), img, x, y, w, h)
		require.NoError(t, s.Run())
		out := slices.Clone(s.Output(0))
		require.Len(t, out, 256)
		return out
	}
	a := embed(100, 200, 80, 160)
	b := embed(500, 250, 80, 160)
	a2 := embed(100, 200, 80, 160)
	require.Equal(t, a, a2, "same input, same output across runs")
	require.InDelta(t, 1, cosine(a, a2), 1e-6)
	cab := cosine(a, b)
	t.Logf("cosine of two different crops: %.3f", cab)
	require.Less(t, cab, 0.999)
}

func TestOpenCorruptModel(t *testing.T) {
	initORT(t)
	path := filepath.Join(t.TempDir(), "corrupt.onnx")
	junk := make([]byte, 4096)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(junk)
	require.NoError(t, os.WriteFile(path, junk, 0o644))
	s, err := Open(path, SessionOptions{})
	require.Error(t, err)
	require.Nil(t, s)
	require.ErrorContains(t, err, path)
	t.Logf("corrupt model: %v", err)

	_, err = Open(filepath.Join(t.TempDir(), "absent.onnx"), SessionOptions{})
	require.ErrorContains(t, err, "absent.onnx")
}

// TestInitNotALibrary loads a junk file in a fresh process (a process can
// load ONNX Runtime only once) and expects an error naming it, not a crash.
func TestInitNotALibrary(t *testing.T) {
	if junk := os.Getenv("VIGIL_ORT_TEST_JUNK"); junk != "" {
		err := Init(junk)
		if err == nil {
			fmt.Println("Init succeeded on junk")
			os.Exit(3)
		}
		fmt.Println(err)
		os.Exit(0)
	}
	junk := filepath.Join(t.TempDir(), "libjunk.so.1")
	require.NoError(t, os.WriteFile(junk, []byte("not a shared library"), 0o644))
	cmd := exec.Command(os.Args[0], "-test.run=^TestInitNotALibrary$")
	cmd.Env = append(os.Environ(), "VIGIL_ORT_TEST_JUNK="+junk)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "initialising ONNX Runtime from "+junk)
	t.Logf("%s", out)
}

func TestInitBadLibrary(t *testing.T) {
	initORT(t)
	// Once loaded, another library path is refused by name.
	err := Init("/nonexistent/libonnxruntime.so.1")
	require.ErrorContains(t, err, "/nonexistent/libonnxruntime.so.1")
}

// BenchmarkYOLOXRun times one batch-1 run of yolox_nano_416 on a real frame
// (compare with the README: 14.9 ms on 1 thread, 9.7 ms on 2).
func BenchmarkYOLOXRun(b *testing.B) {
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			s := openModel(b, "yolox_nano_416.onnx", SessionOptions{IntraOpThreads: threads})
			letterbox(s.Input(0), decodeFrame(b))
			require.NoError(b, s.Run()) // warm-up
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/image")
		})
	}
}

func TestDynamicInputShape(t *testing.T) {
	initORT(t)
	path := shareddata.Path(t, "models/bodypix_mnv1_050_s16.onnx")
	_, err := Open(path, SessionOptions{})
	require.ErrorContains(t, err, "symbolic")
	_, err = Open(path, SessionOptions{InputShapes: map[string][]int64{"input": {1, 257}}})
	require.ErrorContains(t, err, "rank")
	_, err = Open(path, SessionOptions{InputShapes: map[string][]int64{"nope": {1, 257, 257, 3}}})
	require.ErrorContains(t, err, `"nope"`)

	s, err := Open(path, SessionOptions{IntraOpThreads: 1, InputShapes: map[string][]int64{"input": {0, 257, 353, 3}}})
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, []int64{1, 257, 353, 3}, s.Inputs()[0].Shape)
	found := false
	for i, o := range s.Outputs() {
		if o.Name == "heatmaps" {
			found = true
			require.Equal(t, []int64{1, 17, 23, 17}, o.Shape, "stride 16: (257-1)/16+1 rows, (353-1)/16+1 columns")
			require.Len(t, s.Output(i), o.Elements())
		}
	}
	require.True(t, found, "outputs %v", s.Outputs())
	require.NoError(t, s.Run())
	t.Logf("outputs: %v", s.Outputs())
}

func TestProviderUnavailable(t *testing.T) {
	initORT(t)
	path := shareddata.Path(t, "models/yolox_nano_416.onnx")
	_, err := Open(path, SessionOptions{Provider: "cuda"})
	require.ErrorIs(t, err, ErrProviderUnavailable)
	_, err = Open(path, SessionOptions{Provider: "tpu"})
	require.ErrorContains(t, err, `unknown execution provider "tpu"`)
}
