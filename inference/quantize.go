package inference

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/decoders"
	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/inference/prep"
	"github.com/vigil-video/vigil/inference/quant"
)

// QuantizeOptions configure a Quantizer.
type QuantizeOptions struct {
	// Method and Percentile choose activation ranges (quant.MinMax or
	// quant.Percentile, the default, at 99.99).
	Method     quant.Method
	Percentile float64
	// CalibFrames calibrate; the HoldoutFrames after them measure the
	// int8 variant against fp32. They default to 100 and 30.
	CalibFrames, HoldoutFrames int
	// Quant is passed to quant.Quantize (excluded nodes, heads).
	Quant quant.Options
	// Threads is ONNX Runtime's intra-op thread count (0: its choice).
	Threads int
}

// Quantizer makes a bundle's int8 variant: Add feeds it frames (the first
// CalibFrames calibrate the activation ranges, the next HoldoutFrames are
// kept to measure accuracy), and Finish quantizes, measures, and adds the
// variant to the bundle. ort.Init must have succeeded.
type Quantizer struct {
	b       *Bundle
	o       QuantizeOptions
	fp32    Variant
	spec    prep.Spec
	pr      prep.Preparer
	cal     *quant.Calibrator
	buf     []float32
	calib   int
	holdout [][]float32
	// progress mirrors calib and len(holdout) for Progress, which another
	// goroutine may call while Add runs.
	nCalib, nHoldout atomic.Int64
	holdTfs          []prep.Transform
	inputLen         int
}

// NewQuantizer prepares to quantize bundle b's fp32 variant.
func NewQuantizer(b *Bundle, o QuantizeOptions) (*Quantizer, error) {
	o.CalibFrames = cmp.Or(o.CalibFrames, 100)
	o.HoldoutFrames = cmp.Or(o.HoldoutFrames, 30)
	o.Method = cmp.Or(o.Method, quant.Percentile)
	fp32, ok := b.Variant(string(FP32))
	if !ok {
		return nil, fmt.Errorf("quantizing %s: the bundle has no fp32 variant", b.Dir)
	}
	if err := b.VerifyVariant(fp32); err != nil {
		return nil, fmt.Errorf("quantizing: %w", err)
	}
	gi, err := readGraphInput(b.Path(fp32))
	if err != nil {
		return nil, fmt.Errorf("quantizing: %w", err)
	}
	if gi.freeSize {
		return nil, fmt.Errorf("quantizing %s: its input size is not fixed in the model", b.Dir)
	}
	m, err := onnx.Read(b.Path(fp32))
	if err != nil {
		return nil, fmt.Errorf("quantizing: %w", err)
	}
	cal, err := quant.NewCalibrator(m, quant.CalibratorOptions{SessionOptions: ort.SessionOptions{IntraOpThreads: o.Threads}})
	if err != nil {
		return nil, fmt.Errorf("quantizing %s: %w", b.Dir, err)
	}
	q := &Quantizer{b: b, o: o, fp32: fp32, spec: b.Input.Spec(), cal: cal, inputLen: 3 * b.Input.Width * b.Input.Height}
	q.buf = make([]float32, q.inputLen)
	return q, nil
}

// Add prepares frame f and calibrates on it or keeps it for the accuracy
// measurement. It reports whether the Quantizer has all the frames it needs.
func (q *Quantizer) Add(f *frame.Frame) (bool, error) {
	if q.Done() {
		return true, nil
	}
	if q.calib < q.o.CalibFrames {
		if _, err := q.pr.Fill(q.buf, f, q.spec); err != nil {
			return false, fmt.Errorf("preparing frame %d: %w", f.Seq, err)
		}
		if err := q.cal.Add(q.buf); err != nil {
			return false, err
		}
		q.calib++
		q.nCalib.Store(int64(q.calib))
		return q.Done(), nil
	}
	t := make([]float32, q.inputLen)
	tf, err := q.pr.Fill(t, f, q.spec)
	if err != nil {
		return false, fmt.Errorf("preparing frame %d: %w", f.Seq, err)
	}
	q.holdout = append(q.holdout, t)
	q.holdTfs = append(q.holdTfs, tf)
	q.nHoldout.Store(int64(len(q.holdout)))
	return q.Done(), nil
}

// Done reports whether every frame needed has been added.
func (q *Quantizer) Done() bool {
	return q.calib >= q.o.CalibFrames && len(q.holdout) >= q.o.HoldoutFrames
}

// Progress returns how many calibration and held-out frames were added.
// It is safe to call while another goroutine calls Add.
func (q *Quantizer) Progress() (calib, holdout int) {
	return int(q.nCalib.Load()), int(q.nHoldout.Load())
}

// Close releases the calibration session.
func (q *Quantizer) Close() error { return q.cal.Close() }

// QuantizeResult is what Finish made.
type QuantizeResult struct {
	Variant Variant
	Report  *quant.Report
	// Outputs compares the raw outputs on the held-out frames.
	Outputs quant.Accuracy
}

// Finish quantizes with the calibrated ranges, measures the int8 variant
// against fp32 on the held-out frames, and adds it to the bundle as
// variant "int8" (replacing an older one), rewriting model.yaml.
func (q *Quantizer) Finish() (*QuantizeResult, error) {
	if q.calib == 0 {
		return nil, fmt.Errorf("quantizing %s: no calibration frames", q.b.Dir)
	}
	if len(q.holdout) == 0 {
		return nil, fmt.Errorf("quantizing %s: no held-out frames to measure accuracy on (the source ended after %d calibration frames)", q.b.Dir, q.calib)
	}
	ranges, err := q.cal.Ranges(q.o.Method, q.o.Percentile)
	if err != nil {
		return nil, fmt.Errorf("quantizing %s: %w", q.b.Dir, err)
	}
	m, err := onnx.Read(q.b.Path(q.fp32))
	if err != nil {
		return nil, err
	}
	// The variant takes uint8 input straight from the pre-processor; its
	// twin with a float input (the same graph plus one QuantizeLinear) is
	// what the raw-output comparison feeds.
	qo := q.o.Quant
	qo.Uint8Input = false
	qf, _, err := quant.Quantize(m, ranges, qo)
	if err != nil {
		return nil, fmt.Errorf("quantizing %s: %w", q.b.Dir, err)
	}
	qo.Uint8Input = true
	qm, rep, err := quant.Quantize(m, ranges, qo)
	if err != nil {
		return nil, fmt.Errorf("quantizing %s: %w", q.b.Dir, err)
	}
	v := Variant{Name: string(INT8), Precision: INT8}
	for _, p := range rep.Inputs {
		v.InputScale, v.InputZeroPoint = p.Scale, uint8(p.ZeroPoint)
	}
	tmp := filepath.Join(q.b.Dir, ".int8.onnx.tmp")
	tmpFloat := filepath.Join(q.b.Dir, ".int8-float-input.onnx.tmp")
	defer os.Remove(tmp)
	defer os.Remove(tmpFloat)
	if err := onnx.Write(tmp, qm); err != nil {
		return nil, err
	}
	if err := onnx.Write(tmpFloat, qf); err != nil {
		return nil, err
	}
	res := &QuantizeResult{Report: rep}
	opts := ort.SessionOptions{IntraOpThreads: q.o.Threads}
	if res.Outputs, err = quant.Compare(q.b.Path(q.fp32), tmpFloat, q.holdout, opts); err != nil {
		return nil, fmt.Errorf("quantizing %s: %w", q.b.Dir, err)
	}
	if v.Accuracy, err = q.agreement(tmp, v, opts, res.Outputs); err != nil {
		return nil, fmt.Errorf("quantizing %s: measuring accuracy: %w", q.b.Dir, err)
	}
	if err := q.b.AddVariant(v, tmp, true); err != nil {
		return nil, err
	}
	if err := q.b.Write(); err != nil {
		return nil, err
	}
	res.Variant, _ = q.b.Variant(string(INT8))
	return res, nil
}

// agreement runs both variants on the held-out frames through the
// bundle's decoder and scores int8 against fp32: detectors by F1 of
// matched detections (same class, IoU >= 0.5), embedders by mean cosine
// similarity; keypoint models and segmenters by the raw outputs' cosine
// (outs).
func (q *Quantizer) agreement(int8Path string, v Variant, opts ort.SessionOptions, outs quant.Accuracy) (Accuracy, error) {
	if q.b.Task != TaskDetect && q.b.Task != TaskEmbed {
		// Keypoint models and segmenters: the mean cosine of the raw outputs.
		var sum float64
		for _, o := range outs.Outputs {
			sum += o.Cosine
		}
		c := sum / float64(max(len(outs.Outputs), 1))
		return Accuracy{Metric: "output_cosine_vs_fp32", Value: c, Loss: max(0, 1-c), Frames: outs.Inputs}, nil
	}
	dec, err := decoders.New(q.b.Family, decoders.Options{InputW: q.spec.Width, InputH: q.spec.Height, Labels: q.b.Labels,
		ScoreThreshold: q.b.ScoreThreshold, NMSIoU: q.b.NMSIoU})
	if err != nil {
		return Accuracy{}, err
	}
	run := func(path string) ([][]frame.Detection, error) {
		s, err := ort.Open(path, opts)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		outs := make([]decoders.Tensor, len(s.Outputs()))
		res := make([][]frame.Detection, len(q.holdout))
		for i, in := range q.holdout {
			if in8 := s.InputBytes(0); in8 != nil {
				for k, x := range in {
					in8[k] = uint8(quant.QuantizeValue(x, v.InputScale, int32(v.InputZeroPoint), 0, 255))
				}
			} else {
				copy(s.Input(0), in)
			}
			if err := s.Run(); err != nil {
				return nil, err
			}
			for j, o := range s.Outputs() {
				outs[j] = decoders.Tensor{Name: o.Name, Shape: o.Shape, Data: s.Output(j)}
			}
			if res[i], err = dec.Decode(nil, outs, 0, q.holdTfs[i]); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	ref, err := run(q.b.Path(q.fp32))
	if err != nil {
		return Accuracy{}, err
	}
	got, err := run(int8Path)
	if err != nil {
		return Accuracy{}, err
	}
	if q.b.Task == TaskDetect {
		f1 := detectionF1(ref, got)
		return Accuracy{Metric: "f1_vs_fp32", Value: f1, Loss: 1 - f1, Frames: len(ref)}, nil
	}
	var sum float64 // embedders: one embedding per frame
	for i := range ref {
		sum += cosine(ref[i][0].Embedding, got[i][0].Embedding)
	}
	c := sum / float64(len(ref))
	return Accuracy{Metric: "cosine_vs_fp32", Value: c, Loss: max(0, 1-c), Frames: len(ref)}, nil
}

// detectionF1 matches each frame's detections greedily by score to the
// reference's of the same class at IoU >= 0.5 and returns the F1 score
// over all frames (1 when both found nothing).
func detectionF1(ref, got [][]frame.Detection) float64 {
	var tp, nRef, nGot int
	for i := range ref {
		nRef += len(ref[i])
		nGot += len(got[i])
		used := make([]bool, len(ref[i]))
		for _, g := range got[i] {
			best, bi := float32(0.5), -1
			for k, r := range ref[i] {
				if !used[k] && r.Class == g.Class {
					if iou := r.Box.IoU(g.Box); iou >= best {
						best, bi = iou, k
					}
				}
			}
			if bi >= 0 {
				used[bi] = true
				tp++
			}
		}
	}
	if nRef+nGot == 0 {
		return 1
	}
	return 2 * float64(tp) / float64(nRef+nGot)
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}
