package decoders

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
)

// Hand-built tensors with hand-computed expected detections.

var identity100 = prep.Transform{ScaleX: 1, ScaleY: 1, SrcW: 100, SrcH: 100}

func newDec(t *testing.T, family string, o Options) Decoder {
	t.Helper()
	d, err := New(family, o)
	require.NoError(t, err)
	return d
}

func TestNew(t *testing.T) {
	require.Equal(t, []string{"bodypix", "centernet", "embedding", "fastestdet", "nanodet", "selfie", "ultraface", "yolox"}, Families())
	_, err := New("yolov9", Options{InputW: 32, InputH: 32})
	require.ErrorContains(t, err, `unknown decoder family "yolov9": known are bodypix, centernet, embedding, fastestdet, nanodet, selfie, ultraface, yolox`)
	_, err = New("yolox", Options{})
	require.ErrorContains(t, err, "input size must be positive")
	_, err = New("yolox", Options{InputW: 4, InputH: 4})
	require.ErrorContains(t, err, "smaller than one stride-32 cell")
	_, err = New("yolox", Options{InputW: 32, InputH: 32, NMSIoU: 2})
	require.ErrorContains(t, err, "out-of-range")
}

func TestYOLOXSynthetic(t *testing.T) {
	// 64x64 input: 8x8 + 4x4 + 2x2 = 84 anchors; batch of 2, the object in
	// item 1 at the stride-16 cell (1, 2).
	const anchors, cols = 84, 85
	data := make([]float32, 2*anchors*cols)
	p := data[(anchors+64+2*4+1)*cols:]
	copy(p, []float32{0.5, 0.25, float32(math.Log(2)), 0, 0.9})
	p[5+3] = 0.8
	p[5+4] = 0.1
	outs := []Tensor{{Name: "output", Shape: []int64{2, anchors, cols}, Data: data}}
	d := newDec(t, "yolox", Options{InputW: 64, InputH: 64})
	tf := prep.Transform{ScaleX: 0.5, ScaleY: 0.5, SrcW: 128, SrcH: 128}

	dets, err := d.Decode(nil, outs, 0, tf)
	require.NoError(t, err)
	require.Empty(t, dets)
	dets, err = d.Decode(dets, outs, 1, tf)
	require.NoError(t, err)
	require.Len(t, dets, 1)
	// centre ((0.5+1)*16, (0.25+2)*16) = (24, 36), size (32, 16) in input
	// pixels; halved scale doubles it in the source.
	require.InDelta(t, 0.72, dets[0].Score, 1e-6)
	require.Equal(t, 3, dets[0].Class)
	require.Equal(t, "class3", dets[0].Label)
	requireBox(t, frame.Box{X1: 16, Y1: 56, X2: 80, Y2: 88}, dets[0].Box)

	_, err = d.Decode(nil, outs, 2, tf)
	require.ErrorContains(t, err, "batch item 2 out of range")
	_, err = d.Decode(nil, []Tensor{{Name: "output", Shape: []int64{1, 85, 85}, Data: make([]float32, 85*85)}}, 0, tf)
	require.ErrorContains(t, err, `decoding output "output": shape [1 85 85]`)
	_, err = d.Decode(nil, outs, 0, prep.Transform{ScaleX: 0, ScaleY: 1, SrcW: 1, SrcH: 1})
	require.ErrorContains(t, err, "invalid transform")
	_, err = d.Decode(nil, []Tensor{{Shape: []int64{1, anchors, cols}, Data: data[:10]}}, 0, tf)
	require.ErrorContains(t, err, "data has 10")
}

func requireBox(t *testing.T, want, got frame.Box) {
	t.Helper()
	require.InDelta(t, want.X1, got.X1, 1e-3, "X1 of %+v", got)
	require.InDelta(t, want.Y1, got.Y1, 1e-3, "Y1 of %+v", got)
	require.InDelta(t, want.X2, got.X2, 1e-3, "X2 of %+v", got)
	require.InDelta(t, want.Y2, got.Y2, 1e-3, "Y2 of %+v", got)
}

func TestFastestDetSynthetic(t *testing.T) {
	// 2x2 grid, 3 classes; the object in cell (x=1, y=0).
	const gw, gh, ch = 2, 2, 8
	data := make([]float32, ch*gw*gh)
	at := func(c, y, x int) *float32 { return &data[c*gw*gh+y*gw+x] }
	*at(0, 0, 1) = 0.81 // obj; tx = ty = tw = th = 0
	*at(5+2, 0, 1) = 1  // class 2
	*at(0, 1, 1) = 0.1  // too weak
	*at(5, 1, 1) = 1
	d := newDec(t, "fastestdet", Options{InputW: 100, InputH: 100, Labels: []string{"a", "b", "c"}})
	dets, err := d.Decode(nil, []Tensor{{Shape: []int64{1, ch, gh, gw}, Data: data}}, 0, identity100)
	require.NoError(t, err)
	require.Len(t, dets, 1)
	// score 0.81^0.6 * 1^0.4; centre ((tanh 0 + 1)/2, (tanh 0 + 0)/2) of
	// the input, size sigmoid(0) = half the input; clipped at the top.
	require.InDelta(t, math.Pow(0.81, 0.6), dets[0].Score, 1e-6)
	require.Equal(t, "c", dets[0].Label)
	requireBox(t, frame.Box{X1: 25, Y1: 0, X2: 75, Y2: 25}, dets[0].Box)
}

func TestNanoDetSynthetic(t *testing.T) {
	// 32x32 input: grids 4x4, 2x2, 1x1; 6 classes, reg_max 7.
	cls := [3][]float32{make([]float32, 16*6), make([]float32, 4*6), make([]float32, 6)}
	dis := [3][]float32{make([]float32, 16*32), make([]float32, 4*32), make([]float32, 32)}
	i := 2*4 + 1 // stride 8, cell (1, 2)
	cls[0][i*6+5] = 0.9
	q := dis[0][i*32 : (i+1)*32]
	for k := range q {
		q[k] = -100
	}
	q[0*8+1] = 0 // left: bin 1
	q[1*8+2] = 0 // top: bin 2
	for k := range 8 {
		q[2*8+k] = 0 // right: uniform, mean 3.5
	}
	q[3*8+0] = 0 // bottom: bin 0
	var outs []Tensor
	for s := range 3 {
		outs = append(outs, Tensor{Name: "cls", Shape: []int64{1, int64(len(cls[s]) / 6), 6}, Data: cls[s]})
	}
	for s := range 3 {
		outs = append(outs, Tensor{Name: "dis", Shape: []int64{1, int64(len(dis[s]) / 32), 32}, Data: dis[s]})
	}
	d := newDec(t, "nanodet", Options{InputW: 32, InputH: 32})
	tf := prep.Transform{ScaleX: 0.5, ScaleY: 0.5, SrcW: 64, SrcH: 64}
	dets, err := d.Decode(nil, outs, 0, tf)
	require.NoError(t, err)
	require.Len(t, dets, 1)
	// centre (1.5*8, 2.5*8) = (12, 20); distances 8, 16, 28, 0 → input box
	// (4, 4, 40, 20), doubled and clipped to the 64x64 source.
	require.Equal(t, 5, dets[0].Class)
	requireBox(t, frame.Box{X1: 8, Y1: 8, X2: 64, Y2: 40}, dets[0].Box)
	_, err = d.Decode(nil, outs[:5], 0, tf)
	require.ErrorContains(t, err, "5 outputs, want 6")
}

func TestUltraFaceSynthetic(t *testing.T) {
	scores := []float32{
		0.1, 0.9, // face A
		0.2, 0.8, // A again, shifted: suppressed
		0.25, 0.75, // face B
		0.5, 0.5, // below 0.7
	}
	boxes := []float32{
		0.1, 0.1, 0.3, 0.3,
		0.12, 0.1, 0.32, 0.3,
		0.6, 0.6, 0.8, 0.9,
		0.0, 0.0, 1, 1,
	}
	d := newDec(t, "ultraface", Options{InputW: 320, InputH: 240})
	tf := prep.Transform{ScaleX: 0.5, ScaleY: 0.5, SrcW: 640, SrcH: 480}
	dets, err := d.Decode(nil, []Tensor{
		{Name: "scores", Shape: []int64{1, 4, 2}, Data: scores},
		{Name: "boxes", Shape: []int64{1, 4, 4}, Data: boxes},
	}, 0, tf)
	require.NoError(t, err)
	require.Len(t, dets, 2)
	require.Equal(t, "face", dets[0].Label)
	require.InDelta(t, 0.9, dets[0].Score, 1e-6)
	requireBox(t, frame.Box{X1: 64, Y1: 48, X2: 192, Y2: 144}, dets[0].Box)
	require.InDelta(t, 0.75, dets[1].Score, 1e-6)
	requireBox(t, frame.Box{X1: 384, Y1: 288, X2: 512, Y2: 432}, dets[1].Box)
}

// TestSelfieSynthetic puts a rectangle of probability 1 into the map of a
// letterboxed 768x576 frame: scale 0.25 and 32 columns of padding each
// side, so input columns 64..127 and rows 40..79 are source columns
// 128..383 and rows 160..319.
func TestSelfieSynthetic(t *testing.T) {
	const w, h = 256, 144
	p := make([]float32, w*h)
	for y := 40; y < 80; y++ {
		for x := 64; x < 128; x++ {
			p[y*w+x] = 1
		}
	}
	d := newDec(t, "selfie", Options{InputW: w, InputH: h})
	tf := prep.Transform{ScaleX: 0.25, ScaleY: 0.25, PadX: 32, SrcW: 768, SrcH: 576}
	outs := []Tensor{{Name: "segment_back", Shape: []int64{1, h, w, 1}, Data: p}}
	dets, err := d.Decode(nil, outs, 0, tf)
	require.NoError(t, err)
	require.Len(t, dets, 1)
	m := dets[0].Mask
	require.Equal(t, 768, m.Width)
	require.Equal(t, 576, m.Height)
	// Bilinear sampling rounds off one pixel at each corner: the corner
	// pixel's centre lies 0.375 map pixels outside the rectangle on both
	// axes, so it samples 0.625² = 0.39 < 0.5.
	require.Equal(t, 256*160-4, m.Area())
	requireBox(t, frame.Box{X1: 128, Y1: 160, X2: 384, Y2: 320}, dets[0].Box)
	px := m.Decode(nil)
	require.Equal(t, byte(1), px[200*768+128], "left edge")
	require.Equal(t, byte(0), px[200*768+127])
	require.Equal(t, byte(1), px[200*768+383], "right edge")
	require.Equal(t, byte(0), px[200*768+384])
	require.Equal(t, byte(1), px[160*768+200], "top edge")
	require.Equal(t, byte(0), px[159*768+200])
	require.Equal(t, byte(0), px[160*768+128], "corner")
	require.InDelta(t, 1, dets[0].Score, 0.02, "mean probability; edge pixels sample 0.5..1")

	clear(p)
	dets, err = d.Decode(nil, outs, 0, tf)
	require.NoError(t, err)
	require.Empty(t, dets, "empty mask, no detection")
}

func TestEncodeMatchesFrameEncode(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		w, h := 1+rng.IntN(20), 1+rng.IntN(20)
		r := raster{w: w, h: h, buf: make([]byte, w*h)}
		for i := range r.buf {
			if rng.IntN(3) == 0 {
				r.buf[i] = 1
			}
		}
		reg := rect{rng.IntN(w+2) - 1, rng.IntN(h+2) - 1, rng.IntN(w+2) - 1, rng.IntN(h+2) - 1}
		ref := slices.Clone(r.buf)
		for y := range h {
			for x := range w {
				if x < reg.x0 || x >= reg.x1 || y < reg.y0 || y >= reg.y1 {
					ref[y*w+x] = 0
				}
			}
		}
		require.Equal(t, frame.EncodeMask(ref, w, h), *r.encode(reg), "%dx%d region %+v", w, h, reg)
	}
}

func TestEmbeddingSynthetic(t *testing.T) {
	v := []float32{3, 0, 4, 0}
	d := newDec(t, "embedding", Options{InputW: 10, InputH: 20})
	// A crop at (10, 5) of size 5x10 scaled 2x into the input.
	tf := prep.Transform{ScaleX: 2, ScaleY: 2, PadX: -20, PadY: -10, SrcW: 100, SrcH: 100}
	dets, err := d.Decode(nil, []Tensor{{Name: "Identity:0", Shape: []int64{2, 4}, Data: append(make([]float32, 4), v...)}}, 1, tf)
	require.NoError(t, err)
	require.Len(t, dets, 1)
	require.Equal(t, []float32{0.6, 0, 0.8, 0}, dets[0].Embedding)
	requireBox(t, frame.Box{X1: 10, Y1: 5, X2: 15, Y2: 15}, dets[0].Box)
	v[0] = 7
	require.Equal(t, float32(0.6), dets[0].Embedding[0], "a copy")
	_, err = d.Decode(nil, []Tensor{{Name: "e", Shape: []int64{1, 4}, Data: make([]float32, 4)}}, 0, tf)
	require.ErrorContains(t, err, "norm")
	_, err = d.Decode(nil, []Tensor{{Name: "e", Shape: []int64{1, 4, 1, 1}, Data: v}}, 0, tf)
	require.NoError(t, err, "trailing ones")
}

// TestCenterNetSynthetic checks the output contract documented on
// centerNet: 3x3 peaks, offsets, sizes, keypoints and top-K.
func TestCenterNetSynthetic(t *testing.T) {
	const nc, h, w = 2, 8, 8
	plane := h * w
	heat := make([]float32, nc*plane)
	heat[0*plane+3*w+2] = 0.9 // class 0 at (2, 3)
	heat[0*plane+3*w+3] = 0.6 // its neighbour: not a peak
	heat[1*plane+6*w+6] = 0.5 // class 1 at (6, 6)
	heat[0*plane+1*w+6] = 0.2 // below the threshold
	size := make([]float32, 2*plane)
	off := make([]float32, 2*plane)
	kps := make([]float32, 3*plane)
	i := 3*w + 2
	size[i], size[plane+i] = 8, 12
	off[i], off[plane+i] = 0.5, 0.25
	kps[i], kps[plane+i], kps[2*plane+i] = 2, -3, 0
	j := 6*w + 6
	size[j], size[plane+j] = 4, 4
	outs := []Tensor{
		{Name: "keypoints", Shape: []int64{1, 3, h, w}, Data: kps},
		{Name: "offset", Shape: []int64{1, 2, h, w}, Data: off},
		{Name: "size", Shape: []int64{1, 2, h, w}, Data: size},
		{Name: "heatmap", Shape: []int64{1, nc, h, w}, Data: heat},
	}
	tf := prep.Transform{ScaleX: 0.5, ScaleY: 0.5, SrcW: 64, SrcH: 64}
	d := newDec(t, "centernet", Options{InputW: 32, InputH: 32, Labels: []string{"person", "car"}})
	dets, err := d.Decode(nil, outs, 0, tf)
	require.NoError(t, err)
	require.Len(t, dets, 2)
	// centre ((2+0.5)*4, (3+0.25)*4) = (10, 13), size 8x12: input box
	// (6, 7, 14, 19), doubled in the source.
	require.Equal(t, "person", dets[0].Label)
	require.InDelta(t, 0.9, dets[0].Score, 1e-6)
	requireBox(t, frame.Box{X1: 12, Y1: 14, X2: 28, Y2: 38}, dets[0].Box)
	require.Equal(t, frame.Keypoints{{X: 24, Y: 20, Score: 0.5}}, dets[0].Keypoints)
	require.Equal(t, "car", dets[1].Label)
	requireBox(t, frame.Box{X1: 44, Y1: 44, X2: 52, Y2: 52}, dets[1].Box)

	top1 := newDec(t, "centernet", Options{InputW: 32, InputH: 32, MaxDetections: 1})
	dets, err = top1.Decode(nil, outs[1:], 0, tf)
	require.NoError(t, err)
	require.Len(t, dets, 1)
	require.Nil(t, dets[0].Keypoints, "keypoints are optional")
	_, err = top1.Decode(nil, outs[2:], 0, tf)
	require.ErrorContains(t, err, `no output named "offset"`)
}

// TestBodyPixSynthetic: one nose peak with zero offsets and displacements
// grows a pose whose keypoints all sit on the nose's cell.
func TestBodyPixSynthetic(t *testing.T) {
	const gh, gw = 5, 6
	mk := func(name string, c int) Tensor {
		return Tensor{Name: name, Shape: []int64{1, gh, gw, int64(c)}, Data: make([]float32, gh*gw*c)}
	}
	heat, offs, fwd, bwd, seg := mk("heatmaps", 17), mk("short_offsets", 34), mk("displacement_fwd", 32), mk("displacement_bwd", 32), mk("segments", 1)
	for i := range heat.Data {
		heat.Data[i] = -10
	}
	for i := range seg.Data {
		seg.Data[i] = -10
	}
	cell := 2*gw + 3 // (x=3, y=2): input (48, 32)
	for k := range 17 {
		heat.Data[cell*17+k] = 2
	}
	offs.Data[cell*34+17] = 1 // nose x offset
	seg.Data[cell] = 10
	d := newDec(t, "bodypix", Options{InputW: (gw-1)*16 + 1, InputH: (gh-1)*16 + 1})
	tf := prep.Transform{ScaleX: 0.5, ScaleY: 0.5, SrcW: 162, SrcH: 130}
	dets, err := d.Decode(nil, []Tensor{seg, bwd, heat, fwd, offs}, 0, tf)
	require.NoError(t, err)
	require.Len(t, dets, 1, "one pose: the other peaks are the same keypoint of it")
	p := dets[0]
	require.InDelta(t, sigmoid(2), p.Score, 1e-6)
	require.Len(t, p.Keypoints, 17)
	require.Equal(t, frame.Keypoint{X: 98, Y: 64, Score: sigmoid(2)}, p.Keypoints[0])
	for _, k := range p.Keypoints[1:] {
		require.Equal(t, frame.Keypoint{X: 96, Y: 64, Score: sigmoid(2)}, k)
	}
	require.Positive(t, p.Mask.Area())
	px := p.Mask.Decode(nil)
	require.Equal(t, byte(1), px[64*162+96], "segmentation at the person")
	require.Equal(t, byte(0), px[0], "and not far away")
	require.True(t, p.Box.X1 <= 96 && p.Box.X2 >= 98 && p.Box.Y1 <= 64 && p.Box.Y2 >= 64, "box %+v", p.Box)

	_, err = d.Decode(nil, []Tensor{seg, bwd, heat, fwd}, 0, tf)
	require.ErrorContains(t, err, `no output named "short_offsets"`)
}
