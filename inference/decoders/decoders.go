// Package decoders turns raw model outputs into detections in source pixels.
//
// Data enters as the float32 output tensors of one model run for a whole
// batch (in the model's output order, with their graph names), a batch
// index and the prep.Transform that placed that item's frame into the model
// input. It leaves as frame.Detection values appended to a caller's slice:
// boxes in source pixels clipped to the frame, keypoints in source pixels,
// masks as whole-frame COCO RLE, embeddings L2-normalised.
//
// Each model family (yolox, fastestdet, nanodet, ultraface, bodypix, selfie,
// embedding, centernet) has its own decoder; New picks one by name. The
// code is pure: no goroutines, no I/O. A Decoder keeps scratch buffers
// between calls, so it is not safe for concurrent use: use one per
// goroutine.
package decoders

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
)

// Tensor is one model output for the whole batch, row-major.
type Tensor struct {
	// Name is the output's name in the ONNX graph.
	Name  string
	Shape []int64
	Data  []float32
}

// Options configure a decoder. Zero fields take the family's default.
type Options struct {
	// InputW and InputH are the model input size in pixels (prep.Spec's
	// Width and Height). Required.
	InputW, InputH int
	// Labels are the class names; a class without one is "class<N>" (or
	// the family's own name: "face" for ultraface, "person" for bodypix,
	// selfie and embedding).
	Labels []string
	// ScoreThreshold drops weaker detections. It defaults to 0.3 (0.7 for
	// ultraface, as its reference demo uses). For bodypix it is the
	// keypoint score a pose's root needs (and poses need half of it); for
	// centernet the peak height. Selfie and embedding ignore it.
	ScoreThreshold float32
	// NMSIoU is the IoU above which non-maximum suppression drops the
	// weaker of two boxes. It defaults to 0.45. Used by yolox, fastestdet,
	// nanodet and ultraface (bodypix suppresses by keypoint distance,
	// centernet by its 3x3 peak test).
	NMSIoU float32
	// MaxDetections caps the detections of one image. It defaults to 100.
	MaxDetections int
	// ClassAgnostic makes NMS suppress across classes; by default it only
	// suppresses boxes of the same class.
	ClassAgnostic bool
	// MaskThreshold is the probability above which a segmenter's pixel is
	// foreground. It defaults to 0.5.
	MaskThreshold float32
}

// Decoder decodes one model family's outputs.
type Decoder interface {
	// Decode decodes batch item b of outs (in the model's output order)
	// into detections appended to dst, in source pixels via tf, and
	// returns the extended slice (dst unchanged with an error). The
	// detections do not alias outs or the decoder's scratch space.
	Decode(dst []frame.Detection, outs []Tensor, b int, tf prep.Transform) ([]frame.Detection, error)
}

// maxCandidates bounds the boxes that enter NMS, keeping its quadratic
// cost small when a model (or a fuzzer) scores everything high.
const maxCandidates = 1000

// maxMaskSide and maxMaskPixels bound the source frame of mask decoders.
const (
	maxMaskSide   = 1 << 16
	maxMaskPixels = 1 << 28
)

var families = map[string]func(Options) (Decoder, error){
	"yolox":      newYOLOX,
	"fastestdet": newFastestDet,
	"nanodet":    newNanoDet,
	"ultraface":  newUltraFace,
	"bodypix":    newBodyPix,
	"selfie":     newSelfie,
	"embedding":  newEmbedding,
	"centernet":  newCenterNet,
}

// Families returns the names New accepts, sorted.
func Families() []string {
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// New returns the decoder of family configured by o.
func New(family string, o Options) (Decoder, error) {
	mk, ok := families[family]
	if !ok {
		return nil, fmt.Errorf("unknown decoder family %q: known are %s", family, strings.Join(Families(), ", "))
	}
	if o.InputW <= 0 || o.InputH <= 0 {
		return nil, fmt.Errorf("creating %s decoder: input size must be positive, got %dx%d", family, o.InputW, o.InputH)
	}
	if o.ScoreThreshold < 0 || o.NMSIoU < 0 || o.NMSIoU > 1 || o.MaskThreshold < 0 || o.MaskThreshold > 1 || o.MaxDetections < 0 {
		return nil, fmt.Errorf("creating %s decoder: out-of-range option in %+v", family, o)
	}
	if o.NMSIoU == 0 {
		o.NMSIoU = 0.45
	}
	if o.MaxDetections == 0 {
		o.MaxDetections = 100
	}
	if o.MaskThreshold == 0 {
		o.MaskThreshold = 0.5
	}
	d, err := mk(o)
	if err != nil {
		return nil, fmt.Errorf("creating %s decoder: %w", family, err)
	}
	return d, nil
}

// DefaultScoreThreshold is the score threshold a family's decoder uses
// when Options.ScoreThreshold is 0.
func DefaultScoreThreshold(family string) float32 {
	if family == "ultraface" {
		return 0.7
	}
	return 0.3
}

// withScore sets the default score threshold.
func withScore(o Options, def float32) Options {
	if o.ScoreThreshold == 0 {
		o.ScoreThreshold = def
	}
	return o
}

// labeler names classes.
type labeler struct {
	labels []string
	def    string   // name of every class without a label; "" means class<N>
	names  []string // cached class<N> names, so decoding does not allocate
}

func (l *labeler) label(c int) string {
	if c >= 0 && c < len(l.labels) {
		return l.labels[c]
	}
	if l.def != "" {
		return l.def
	}
	if c < 0 || c >= 1<<16 {
		return "class" + strconv.Itoa(c)
	}
	for len(l.names) <= c {
		l.names = append(l.names, "class"+strconv.Itoa(len(l.names)))
	}
	return l.names[c]
}

// item returns batch item b of t after checking its shape: want gives
// the dimensions after the batch one, -1 for any.
func item(t Tensor, b int, want ...int64) ([]float32, error) {
	if len(t.Shape) != len(want)+1 {
		return nil, fmt.Errorf("decoding output %q: shape %v, want rank %d", t.Name, t.Shape, len(want)+1)
	}
	n := 1
	for i, d := range t.Shape {
		if d < 0 || (i > 0 && want[i-1] >= 0 && d != want[i-1]) {
			// A copy keeps want from escaping (and allocating) on success.
			return nil, fmt.Errorf("decoding output %q: shape %v, want [N %v]", t.Name, t.Shape, slices.Clone(want))
		}
		n *= int(d)
	}
	if n != len(t.Data) {
		return nil, fmt.Errorf("decoding output %q: shape %v holds %d values, data has %d", t.Name, t.Shape, n, len(t.Data))
	}
	if b < 0 || int64(b) >= t.Shape[0] {
		return nil, fmt.Errorf("decoding output %q: batch item %d out of range [0,%d)", t.Name, b, t.Shape[0])
	}
	per := n / int(t.Shape[0])
	return t.Data[b*per : (b+1)*per], nil
}

// checkTransform rejects transforms that cannot map back to source pixels.
func checkTransform(tf prep.Transform) error {
	if !(tf.ScaleX > 0) || !(tf.ScaleY > 0) || !finite(tf.ScaleX) || !finite(tf.ScaleY) ||
		!finite(tf.PadX) || !finite(tf.PadY) || tf.SrcW <= 0 || tf.SrcH <= 0 {
		return fmt.Errorf("decoding: invalid transform %+v", tf)
	}
	return nil
}

func finite(v float32) bool {
	return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0)
}

// sourceBox maps an input-space box to source pixels; ok is false when the
// result is not finite or empty (the box lies outside the frame).
func sourceBox(tf prep.Transform, x1, y1, x2, y2 float32) (frame.Box, bool) {
	b := tf.Box(frame.Box{X1: x1, Y1: y1, X2: x2, Y2: y2})
	if !finite(b.X1) || !finite(b.Y1) || !finite(b.X2) || !finite(b.Y2) || b.Area() <= 0 {
		return b, false
	}
	return b, true
}

func sigmoid(x float32) float32 {
	return 1 / (1 + float32(math.Exp(float64(-x))))
}

func exp32(x float32) float32 { return float32(math.Exp(float64(x))) }

// finishDetections sorts cands by score, keeps at most maxCandidates, runs
// NMS, labels the survivors and appends them to dst.
func finishDetections(dst, cands []frame.Detection, o Options, lab *labeler) []frame.Detection {
	sortByScore(cands)
	if len(cands) > maxCandidates {
		cands = cands[:maxCandidates]
	}
	kept := NMS(cands, o.NMSIoU, !o.ClassAgnostic, o.MaxDetections)
	for i := range kept {
		kept[i].Label = lab.label(kept[i].Class)
	}
	return append(dst, kept...)
}
