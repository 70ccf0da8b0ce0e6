package inference

import (
	"fmt"

	"github.com/vigil-video/vigil/inference/onnx"
)

// graphInput is what Vigil needs to know of a model's image input before
// opening it in a runtime.
type graphInput struct {
	name string
	// dims are the input's dimensions, <= 0 where symbolic.
	dims []int64
	// freeSize is set when a dimension other than the batch is symbolic:
	// the model takes pictures of any size.
	freeSize bool
}

// readGraphInput reads the first real input (not an initializer) of the
// ONNX file at path.
func readGraphInput(path string) (graphInput, error) {
	m, err := onnx.Read(path)
	if err != nil {
		return graphInput{}, err
	}
	g := m.GetGraph()
	for _, in := range g.GetInput() {
		if onnx.Initializer(g, in.GetName()) != nil {
			continue
		}
		gi := graphInput{name: in.GetName()}
		for i, d := range in.GetType().GetTensorType().GetShape().GetDim() {
			v := d.GetDimValue()
			gi.dims = append(gi.dims, v)
			if v <= 0 && i > 0 {
				gi.freeSize = true
			}
		}
		if len(gi.dims) != 4 {
			return graphInput{}, fmt.Errorf("model %s: input %q has rank %d, want an image (rank 4)", path, gi.name, len(gi.dims))
		}
		return gi, nil
	}
	return graphInput{}, fmt.Errorf("model %s: no inputs", path)
}
