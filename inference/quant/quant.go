// Package quant makes int8 variants of ONNX models by post-training static
// quantization, in the QDQ form that ONNX Runtime fuses into integer
// kernels (QLinearConv, QLinearMul, QLinearSigmoid, QLinearConcat…).
//
// Data flows in three steps. A Calibrator runs the fp32 model on ONNX
// Runtime over many frames with every activation exposed as an output and
// keeps each tensor's min/max and a histogram; Ranges turns them into
// clipping ranges (min-max or percentile). Quantize, which is pure (no
// ONNX Runtime), rewrites the model: QuantizeLinear/DequantizeLinear pairs
// on the inputs and outputs of every quantized op, uint8 asymmetric
// activations, int8 symmetric per-output-channel weights and int32 biases.
// Compare runs the fp32 and int8 files on held-out frames and measures how
// far their outputs drift.
//
// A quantize command strings them together:
//
//	c, _ := quant.NewCalibrator(model, quant.CalibratorOptions{})
//	for _, in := range calibrationFrames { c.Add(in) }   // pre-processed, one per input
//	ranges, _ := c.Ranges(quant.Percentile, 0)           // or quant.MinMax
//	int8, report, _ := quant.Quantize(model, ranges, quant.Options{})
//	onnx.Write(int8Path, int8)
//	acc, _ := quant.Compare(fp32Path, int8Path, heldOutFrames, ort.SessionOptions{})
//
// report.Inputs holds each input's scale and zero point: a pre-processor
// that writes uint8 (skipping the model's input QuantizeLinear) uses them.
//
// Choices measured with ONNX Runtime 1.30 on the target CPUs: activations
// are uint8 (int8 activations run 3-4x slower there); a ReLU after a
// quantized op is not given its own Q/DQ pair: the pair goes after the
// ReLU, whose range starts at 0 so its zero point is 0, and ONNX Runtime
// folds the ReLU into the Q ("Relu->QuantizeLinear" fusion), leaving
// Conv->Q, which becomes QLinearConv.
//
// See https://onnx.ai/onnx/operators/onnx__QuantizeLinear.html and
// https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html.
package quant

import (
	"fmt"
	"math"
)

// Range is a tensor's calibrated clipping range.
type Range struct {
	Min, Max float32
}

// Params are the scale and zero point of a quantized tensor: real =
// (q - ZeroPoint) * Scale.
type Params struct {
	Scale     float32
	ZeroPoint int32
}

// uint8 activations, int8 symmetric weights (ONNX Runtime's quantizer uses
// [-127, 127] for symmetric int8 so that -x is representable).
const (
	actQMin, actQMax = 0, 255
	wQMax            = 127
)

// ActivationParams returns uint8 asymmetric parameters for r, computed as
// ONNX Runtime's quantizer does (compute_scale_zp): the range is widened to
// include 0 so that 0 is exact (padding, ReLU), scale = (max-min)/255 and
// zero point = round(-min/scale), rounding half to even. An empty range
// gets scale 1, zero point 0.
func ActivationParams(r Range) (Params, error) {
	lo, hi := float64(min(r.Min, 0)), float64(max(r.Max, 0))
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return Params{}, fmt.Errorf("range [%g, %g] is not finite", r.Min, r.Max)
	}
	if r.Min > r.Max {
		return Params{}, fmt.Errorf("range [%g, %g] is inverted", r.Min, r.Max)
	}
	scale := float32((hi - lo) / (actQMax - actQMin))
	if scale == 0 || hi-lo < 1e-30 {
		return Params{Scale: 1}, nil
	}
	zp := math.RoundToEven(actQMin - lo/float64(scale))
	return Params{Scale: scale, ZeroPoint: int32(max(actQMin, min(actQMax, zp)))}, nil
}

// WeightScale returns the symmetric int8 scale of weights w: max|w|/127,
// or 1 when all are 0 (zero point is 0).
func WeightScale(w []float32) float32 {
	var m float32
	for _, v := range w {
		m = max(m, float32(math.Abs(float64(v))))
	}
	if m == 0 {
		return 1
	}
	return m / wQMax
}

// QuantizeValue returns clamp(round(x/scale) + zp, qmin, qmax) with ties
// rounded to even, as ONNX QuantizeLinear defines it.
func QuantizeValue(x, scale float32, zp, qmin, qmax int32) int32 {
	q := math.RoundToEven(float64(x/scale)) + float64(zp)
	return int32(max(float64(qmin), min(float64(qmax), q)))
}

// QuantizeWeights quantizes w (laid out with channels as the outermost
// axis, as Conv weights [M, C/g, kH, kW] are) per channel to int8 with
// symmetric scales. channels must divide len(w).
func QuantizeWeights(w []float32, channels int) ([]int8, []float32, error) {
	if channels <= 0 || len(w)%channels != 0 {
		return nil, nil, fmt.Errorf("quantizing %d weights over %d channels: not a multiple", len(w), channels)
	}
	per := len(w) / channels
	q := make([]int8, len(w))
	scales := make([]float32, channels)
	for c := range channels {
		ws := w[c*per : (c+1)*per]
		s := WeightScale(ws)
		scales[c] = s
		for i, v := range ws {
			q[c*per+i] = int8(QuantizeValue(v, s, 0, -wQMax, wQMax))
		}
	}
	return q, scales, nil
}

// QuantizeBias quantizes a bias to int32 with scale inScale*wScales[c] and
// zero point 0 per channel (wScales has one entry per channel, or one for
// a per-tensor weight scale). It returns the values and their scales.
func QuantizeBias(b []float32, inScale float32, wScales []float32) ([]int32, []float32, error) {
	if len(wScales) != len(b) && len(wScales) != 1 {
		return nil, nil, fmt.Errorf("quantizing a bias of %d values with %d weight scales", len(b), len(wScales))
	}
	q := make([]int32, len(b))
	scales := make([]float32, len(b))
	for i, v := range b {
		ws := wScales[0]
		if len(wScales) > 1 {
			ws = wScales[i]
		}
		s := inScale * ws
		if s == 0 {
			s = 1
		}
		scales[i] = s
		q[i] = QuantizeValue(v, s, 0, math.MinInt32+1, math.MaxInt32)
	}
	return q, scales, nil
}
