package quant

import (
	"fmt"
	"math"

	"github.com/vigil-video/vigil/inference/ort"
)

// OutputAccuracy measures how far one output of a quantized model is from
// the fp32 model's, over all compared inputs and elements.
type OutputAccuracy struct {
	Name string
	// MaxAbs and MeanAbs are the largest and the mean |int8 - fp32|.
	MaxAbs, MeanAbs float64
	// Cosine is the cosine similarity of the two outputs, averaged over
	// inputs (1 is identical direction).
	Cosine float64
	// Relative is ||int8 - fp32|| / ||fp32|| (L2), averaged over inputs.
	Relative float64
}

// Accuracy is the result of Compare, one entry per model output.
type Accuracy struct {
	Inputs  int
	Outputs []OutputAccuracy
}

// Compare runs the fp32 and the quantized model files on the same inputs
// (held-out frames: each element fills the models' single input) with
// ONNX Runtime (ort.Init must have succeeded) and measures the drift of
// every output. Detection-level accuracy (boxes, mAP) is the caller's, who
// has the decoders.
func Compare(fp32Path, int8Path string, inputs [][]float32, opts ort.SessionOptions) (Accuracy, error) {
	if len(inputs) == 0 {
		return Accuracy{}, fmt.Errorf("comparing %s with %s: no inputs", int8Path, fp32Path)
	}
	ref, err := ort.Open(fp32Path, opts)
	if err != nil {
		return Accuracy{}, fmt.Errorf("comparing: %w", err)
	}
	defer ref.Close()
	q, err := ort.Open(int8Path, opts)
	if err != nil {
		return Accuracy{}, fmt.Errorf("comparing: %w", err)
	}
	defer q.Close()
	if len(ref.Inputs()) != 1 || len(q.Inputs()) != 1 {
		return Accuracy{}, fmt.Errorf("comparing %s with %s: only single-input models are supported", int8Path, fp32Path)
	}
	if len(ref.Outputs()) != len(q.Outputs()) {
		return Accuracy{}, fmt.Errorf("comparing %s with %s: %d outputs against %d", int8Path, fp32Path, len(q.Outputs()), len(ref.Outputs()))
	}
	acc := Accuracy{Inputs: len(inputs), Outputs: make([]OutputAccuracy, len(ref.Outputs()))}
	sumAbs := make([]float64, len(ref.Outputs()))
	count := make([]int, len(ref.Outputs()))
	for k, in := range inputs {
		if len(in) != len(ref.Input(0)) || len(in) != len(q.Input(0)) {
			return Accuracy{}, fmt.Errorf("comparing: input %d has %d values, the models take %d", k, len(in), len(ref.Input(0)))
		}
		copy(ref.Input(0), in)
		copy(q.Input(0), in)
		if err := ref.Run(); err != nil {
			return Accuracy{}, fmt.Errorf("comparing: %w", err)
		}
		if err := q.Run(); err != nil {
			return Accuracy{}, fmt.Errorf("comparing: %w", err)
		}
		for i := range ref.Outputs() {
			a, b := ref.Output(i), q.Output(i)
			if len(a) != len(b) {
				return Accuracy{}, fmt.Errorf("comparing output %q: %d values against %d", ref.Outputs()[i].Name, len(b), len(a))
			}
			o := &acc.Outputs[i]
			o.Name = ref.Outputs()[i].Name
			var ab, aa, bb, dd float64
			for j := range a {
				x, y := float64(a[j]), float64(b[j])
				d := math.Abs(y - x)
				o.MaxAbs = math.Max(o.MaxAbs, d)
				sumAbs[i] += d
				ab += x * y
				aa += x * x
				bb += y * y
				dd += d * d
			}
			count[i] += len(a)
			o.Cosine += cosine(ab, aa, bb) / float64(len(inputs))
			if aa > 0 {
				o.Relative += math.Sqrt(dd/aa) / float64(len(inputs))
			} else if dd > 0 {
				o.Relative += math.Inf(1)
			}
		}
	}
	for i := range acc.Outputs {
		acc.Outputs[i].MeanAbs = sumAbs[i] / float64(max(count[i], 1))
	}
	return acc, nil
}

func cosine(ab, aa, bb float64) float64 {
	if aa == 0 && bb == 0 {
		return 1
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}
