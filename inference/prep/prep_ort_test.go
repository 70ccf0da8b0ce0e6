//go:build cgo

package prep_test

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/inference/prep"
	"github.com/vigil-video/vigil/ingest/decode"
	"github.com/vigil-video/vigil/internal/shareddata"
)

const (
	clipW, clipH = 768, 576
	clipFrame    = 300 // t = 30 s at 10 fps: the frame of the README's reference run
	yoloSize     = 416
)

// decodeYUV returns frame n of the clip as libavcodec decodes it (yuv420p),
// copied out of the decoder's pool.
func decodeYUV(tb testing.TB, path string, n uint64) *frame.Frame {
	tb.Helper()
	dmx, err := decode.OpenFile(path)
	require.NoError(tb, err)
	defer dmx.Close()
	dec, err := decode.NewDecoder(decode.Config{Params: dmx.Params(), Threads: 1})
	require.NoError(tb, err)
	defer dec.Close()
	var got *frame.Frame
	emit := func(f *frame.Frame) {
		defer f.Release()
		if f.Seq != n || got != nil {
			return
		}
		got = &frame.Frame{Width: f.Width, Height: f.Height, Format: f.Format, Strides: f.Strides}
		for i := range f.Planes {
			got.Planes[i] = slices.Clone(f.Planes[i])
		}
	}
	var pkt frame.Packet
	for got == nil {
		err := dmx.ReadPacket(&pkt)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(tb, err)
		require.NoError(tb, dec.Decode(&pkt, emit))
	}
	require.NoError(tb, dec.Flush(emit))
	require.NotNil(tb, got, "frame %d of %s", n, path)
	return got
}

// ffmpegBGR returns frame n of the clip as the ffmpeg CLI converts it to
// packed BGR (libswscale).
func ffmpegBGR(tb testing.TB, path string, n int) []byte {
	tb.Helper()
	shareddata.NeedCommands(tb, "ffmpeg")
	cmd := exec.Command("ffmpeg", "-v", "error", "-i", path, "-vf", fmt.Sprintf("select=eq(n\\,%d)", n), "-fps_mode", "passthrough",
		"-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "bgr24", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(tb, err, stderr.String())
	require.Len(tb, out, clipW*clipH*3)
	return out
}

// refLetterbox is inference/ort's test reference: YOLOX's preproc (scale to
// fit, top-left, pad 114) with cv2.resize's bilinear sampling, on packed BGR.
func refLetterbox(dst []float32, img []byte) {
	r := math.Min(float64(yoloSize)/clipH, float64(yoloSize)/clipW)
	nw, nh := int(float64(clipW)*r), int(float64(clipH)*r)
	plane := yoloSize * yoloSize
	for c := range 3 {
		for y := range yoloSize {
			for x := range yoloSize {
				v := float32(114)
				if x < nw && y < nh {
					sx := (float64(x)+0.5)*float64(clipW)/float64(nw) - 0.5
					sy := (float64(y)+0.5)*float64(clipH)/float64(nh) - 0.5
					v = bilinear(img, sx, sy, c)
				}
				dst[c*plane+y*yoloSize+x] = v
			}
		}
	}
}

func bilinear(img []byte, x, y float64, c int) float32 {
	x = math.Max(0, math.Min(x, clipW-1))
	y = math.Max(0, math.Min(y, clipH-1))
	x0, y0 := int(x), int(y)
	x1, y1 := min(x0+1, clipW-1), min(y0+1, clipH-1)
	fx, fy := x-float64(x0), y-float64(y0)
	p := func(xx, yy int) float64 { return float64(img[(yy*clipW+xx)*3+c]) }
	top := p(x0, y0)*(1-fx) + p(x1, y0)*fx
	bot := p(x0, y1)*(1-fx) + p(x1, y1)*fx
	return float32(top*(1-fy) + bot*fy)
}

func maxAbsDiff(a, b []float32) (worst float64, at int) {
	for i := range a {
		if d := math.Abs(float64(a[i] - b[i])); d > worst {
			worst, at = d, i
		}
	}
	return worst, at
}

func meanAbsDiff(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += math.Abs(float64(a[i] - b[i]))
	}
	return s / float64(len(a))
}

// yoloxScores returns obj * best class score per anchor of YOLOX's raw
// 3549x85 output.
func yoloxScores(out []float32) []float32 {
	scores := make([]float32, len(out)/85)
	for i := range scores {
		p := out[i*85 : (i+1)*85]
		scores[i] = p[4] * slices.Max(p[5:])
	}
	return scores
}

// yoloxCounts decodes YOLOX's raw output (grids over strides 8, 16, 32;
// score = obj * best class >= 0.3; per-class NMS at IoU 0.45, as in
// inference/ort's test) and counts detections per class.
func yoloxCounts(out []float32) map[int]int {
	type det struct {
		box   frame.Box
		score float32
		class int
	}
	var cands []det
	row := 0
	for _, stride := range []int{8, 16, 32} {
		g := yoloSize / stride
		for gy := range g {
			for gx := range g {
				p := out[row*85 : (row+1)*85]
				row++
				cls := 0
				for c, v := range p[5:] {
					if v > p[5+cls] {
						cls = c
					}
				}
				score := p[4] * p[5+cls]
				if score < 0.3 {
					continue
				}
				st := float32(stride)
				cx, cy := (p[0]+float32(gx))*st, (p[1]+float32(gy))*st
				w, h := float32(math.Exp(float64(p[2])))*st, float32(math.Exp(float64(p[3])))*st
				cands = append(cands, det{frame.Box{X1: cx - w/2, Y1: cy - h/2, X2: cx + w/2, Y2: cy + h/2}, score, cls})
			}
		}
	}
	slices.SortFunc(cands, func(a, b det) int { return -cmp.Compare(a.score, b.score) })
	var keep []det
	counts := map[int]int{}
	for _, c := range cands {
		if !slices.ContainsFunc(keep, func(k det) bool { return k.class == c.class && k.box.IoU(c.box) > 0.45 }) {
			keep = append(keep, c)
			counts[c.class]++
		}
	}
	return counts
}

// TestYOLOXInput fills yolox_nano_416's input with Fill from the decoded
// yuv420p frame and checks that the model's output stays close to what the
// ort package's reference letterbox gives on ffmpeg's BGR conversion of the
// same frame.
func TestYOLOXInput(t *testing.T) {
	clip := shareddata.Path(t, "video/vtest_h264.mp4")
	model := shareddata.Path(t, "models/yolox_nano_416.onnx")
	orttest.Init(t)
	s, err := ort.Open(model, ort.SessionOptions{IntraOpThreads: 2})
	require.NoError(t, err)
	defer s.Close()

	yuv := decodeYUV(t, clip, clipFrame)
	require.Equal(t, frame.PixelFormatYUV420P, yuv.Format)
	require.Equal(t, clipW, yuv.Width)
	bgr := ffmpegBGR(t, clip, clipFrame)

	spec := prep.Spec{Width: yoloSize, Height: yoloSize, Layout: prep.NCHW, Color: prep.BGR,
		Resize: prep.Letterbox, Interp: prep.Bilinear, Align: prep.TopLeft, Std: [3]float32{1, 1, 1}, Pad: 114}
	n := 3 * yoloSize * yoloSize
	ref, fromYUV, fromRGB := make([]float32, n), make([]float32, n), make([]float32, n)
	refLetterbox(ref, bgr)

	// The same BGR pixels as an rgb24 frame: only the resize differs from
	// the reference, so the inputs must agree to float precision.
	rgb := &frame.Frame{Width: clipW, Height: clipH, Format: frame.PixelFormatRGB24, Strides: [3]int{3 * clipW}}
	rgb.Planes[0] = make([]byte, len(bgr))
	for i := 0; i < len(bgr); i += 3 {
		rgb.Planes[0][i], rgb.Planes[0][i+1], rgb.Planes[0][i+2] = bgr[i+2], bgr[i+1], bgr[i]
	}
	tr, err := prep.Fill(fromRGB, rgb, spec)
	require.NoError(t, err)
	require.Equal(t, prep.Transform{ScaleX: 416.0 / 768, ScaleY: 312.0 / 576, SrcW: clipW, SrcH: clipH}, tr)
	d, at := maxAbsDiff(ref, fromRGB)
	require.Less(t, d, 1e-3, "input from rgb24 vs reference, element %d", at)

	// From the decoder's YUV, Fill converts itself; libswscale rounds to
	// integers and may interpolate chroma, so allow a few levels.
	_, err = prep.Fill(fromYUV, yuv, spec)
	require.NoError(t, err)
	d, at = maxAbsDiff(ref, fromYUV)
	mean := meanAbsDiff(ref, fromYUV)
	t.Logf("input from yuv420p vs reference: max abs diff %.3f (element %d), mean %.3f (0..255)", d, at, mean)
	require.Less(t, mean, 1.5)

	run := func(in []float32) []float32 {
		copy(s.Input(0), in)
		require.NoError(t, s.Run())
		return slices.Clone(s.Output(0))
	}
	outRef, outYUV, outRGB := run(ref), run(fromYUV), run(fromRGB)
	d, at = maxAbsDiff(outRef, outRGB)
	t.Logf("output from rgb24 vs reference: max abs diff %.2g", d)
	require.Less(t, d, 1e-2, "output element %d", at)

	d, at = maxAbsDiff(outRef, outYUV)
	sd, sat := maxAbsDiff(yoloxScores(outRef), yoloxScores(outYUV))
	t.Logf("output from yuv420p vs reference: max abs diff %.3f (element %d, anchor %d field %d), max score diff %.3f (anchor %d), mean abs diff %.4f",
		d, at, at/85, at%85, sd, sat, meanAbsDiff(outRef, outYUV))
	require.Less(t, sd, 0.05, "detection scores (obj * class)")
	require.Less(t, meanAbsDiff(outRef, outYUV), 0.01)
	require.Less(t, d, 1.0)

	// The reference run recorded in the shared data README (frame t=30 s):
	// 8 persons, 2 cars, 1 truck.
	const person, car, truck = 0, 2, 7
	counts := yoloxCounts(outYUV)
	t.Logf("detections from Fill: %v (reference letterbox: %v)", counts, yoloxCounts(outRef))
	require.InDelta(t, 8, counts[person], 1, "persons")
	require.Equal(t, 2, counts[car], "cars")
	require.Equal(t, 1, counts[truck], "trucks")
	require.Len(t, counts, 3, "no other classes")
}
