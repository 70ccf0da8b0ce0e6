package inference

import "github.com/vigil-video/vigil/inference/purego"

func init() {
	openPureGo = func(path string, o RunnerOptions) (Runner, error) {
		m, err := purego.Load(path, purego.Options{BatchSize: o.BatchSize, InputShapes: o.InputShapes})
		if err != nil {
			return nil, err
		}
		return pureGoRunner{m, pureGoInfos(m.Inputs()), pureGoInfos(m.Outputs())}, nil
	}
}

// pureGoRunner adapts a purego.Model to Runner.
type pureGoRunner struct {
	*purego.Model
	in, out []TensorInfo
}

func (r pureGoRunner) Inputs() []TensorInfo   { return r.in }
func (r pureGoRunner) InputBytes(int) []uint8 { return nil }
func (r pureGoRunner) Outputs() []TensorInfo  { return r.out }

func pureGoInfos(ts []purego.TensorInfo) []TensorInfo {
	out := make([]TensorInfo, len(ts))
	for i, t := range ts {
		out[i] = TensorInfo{Name: t.Name, Shape: t.Shape}
	}
	return out
}
