package models

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
)

// CenterNetFromONNX rebuilds the detector whose ONNX method wrote m, so
// that training can continue from an exported bundle (fine-tuning). The
// configuration comes from the file: the input size from the input
// "input", the widths, class count and keypoint count from the
// convolutions' weight shapes; classes names the heatmap channels and must
// have as many names as it has channels. The regression scale the export
// folds into the size and keypoint heads is divided back out (a power of
// two, so export → import → export reproduces every value exactly).
//
// Only files of this exporter's layout are accepted: one convolution per
// layer, its weights named and shaped as NewCenterNet makes them, no other
// convolutions, and each one's stride, kernel and padding as the
// architecture has them.
func CenterNetFromONNX(m *onnxpb.ModelProto, classes []string) (*CenterNet, error) {
	g := m.GetGraph()
	if g == nil {
		return nil, fmt.Errorf("importing centernet: no graph")
	}
	var inH, inW int
	for _, in := range g.GetInput() {
		if in.GetName() != "input" {
			continue
		}
		dims := in.GetType().GetTensorType().GetShape().GetDim()
		if len(dims) != 4 || dims[1].GetDimValue() != 3 {
			return nil, fmt.Errorf("importing centernet: input %q must be [N, 3, H, W]", in.GetName())
		}
		inH, inW = int(dims[2].GetDimValue()), int(dims[3].GetDimValue())
	}
	if inH == 0 || inW == 0 {
		return nil, fmt.Errorf("importing centernet: no input \"input\" of fixed height and width")
	}
	// Each layer is one Conv node; the export's builder numbers every
	// name ("stem_w_1", "stem_b_2", ...).
	byName := map[string]*onnxpb.TensorProto{}
	for _, t := range g.GetInitializer() {
		byName[t.GetName()] = t
	}
	inits := map[string]*onnxpb.TensorProto{}
	convs := map[string]*onnxpb.NodeProto{}
	for _, n := range g.GetNode() {
		if n.GetOpType() != "Conv" {
			continue
		}
		if len(n.GetInput()) != 3 {
			return nil, fmt.Errorf("importing centernet: Conv %q has %d inputs, want data, weight and bias", n.GetName(), len(n.GetInput()))
		}
		layer, ok := strings.CutSuffix(baseName(n.GetInput()[1]), "_w")
		if !ok {
			return nil, fmt.Errorf("importing centernet: Conv %q weight %q is not named <layer>_w_N (not a file of Vigil's CenterNet export)", n.GetName(), n.GetInput()[1])
		}
		if convs[layer] != nil {
			return nil, fmt.Errorf("importing centernet: two Conv nodes of layer %s", layer)
		}
		convs[layer] = n
		for i, suffix := range []string{"_w", "_b"} {
			t := byName[n.GetInput()[1+i]]
			if t == nil {
				return nil, fmt.Errorf("importing centernet: Conv of layer %s: input %q is not an initializer", layer, n.GetInput()[1+i])
			}
			inits[layer+suffix] = t
		}
	}
	outCh := func(layer string) (int, error) {
		t, ok := inits[layer+"_w"]
		if !ok {
			return 0, fmt.Errorf("importing centernet: no convolution of layer %s (not a file of Vigil's CenterNet export)", layer)
		}
		if len(t.GetDims()) != 4 || t.GetDims()[0] <= 0 {
			return 0, fmt.Errorf("importing centernet: initializer %s_w has shape %v, want [out, in, k, k]", layer, t.GetDims())
		}
		return int(t.GetDims()[0]), nil
	}
	cfg := CenterNetConfig{InputW: inW, InputH: inH, Classes: slices.Clone(classes)}
	for i, l := range []string{"stem", "down1", "down2", "down3", "up2", "up1", "trunk"} {
		c, err := outCh(l)
		if err != nil {
			return nil, err
		}
		cfg.Widths[i] = c
	}
	nc, err := outCh("heatmap")
	if err != nil {
		return nil, err
	}
	if nc != len(classes) {
		return nil, fmt.Errorf("importing centernet: the heatmap has %d classes, %d names given (%v)", nc, len(classes), classes)
	}
	if _, ok := inits["keypoints_w"]; ok {
		k, err := outCh("keypoints")
		if err != nil {
			return nil, err
		}
		if k%3 != 0 {
			return nil, fmt.Errorf("importing centernet: keypoint head has %d channels, not 3 per keypoint", k)
		}
		cfg.Keypoints = k / 3
	}
	cn, err := NewCenterNet(cfg, 0)
	if err != nil {
		return nil, fmt.Errorf("importing centernet: %w", err)
	}
	if len(convs) != len(cn.layers) {
		return nil, fmt.Errorf("importing centernet: %d convolutions, the architecture has %d", len(convs), len(cn.layers))
	}
	for _, l := range cn.layers {
		if err := l.load(inits, convs); err != nil {
			return nil, fmt.Errorf("importing centernet: %w", err)
		}
	}
	return cn, nil
}

// load copies the layer's weights from the initializers, undoing the
// export's head scaling, after checking shapes and convolution attributes.
func (l convLayer) load(inits map[string]*onnxpb.TensorProto, convs map[string]*onnxpb.NodeProto) error {
	for _, p := range []struct {
		name  string
		param *Param
	}{{l.name + "_w", l.w}, {l.name + "_b", l.b}} {
		t := inits[p.name]
		if t == nil {
			return fmt.Errorf("no initializer %s", p.name)
		}
		if !slices.Equal(t.GetDims(), int64s(p.param.Shape)) {
			return fmt.Errorf("initializer %s has shape %v, want %v", p.name, t.GetDims(), p.param.Shape)
		}
		v, err := onnx.Floats(t)
		if err != nil {
			return err
		}
		copy(p.param.Data(), v)
	}
	n := convs[l.name]
	if n == nil {
		return fmt.Errorf("no Conv node of layer %s", l.name)
	}
	k, s := int64(l.k), int64(l.s)
	for _, a := range n.GetAttribute() {
		var want []int64
		switch a.GetName() {
		case "kernel_shape":
			want = []int64{k, k}
		case "strides":
			want = []int64{s, s}
		case "pads":
			p := k / 2
			want = []int64{p, p, p, p}
		default:
			continue
		}
		if !slices.Equal(a.GetInts(), want) {
			return fmt.Errorf("Conv of layer %s has %s %v, want %v", l.name, a.GetName(), a.GetInts(), want)
		}
	}
	if sc := headScale(l.name); sc != nil {
		per := l.cin * l.k * l.k
		w, b := l.w.Data(), l.b.Data()
		for c := range l.cout {
			inv := 1 / sc(c)
			for j := range per {
				w[c*per+j] *= inv
			}
			b[c] *= inv
		}
	}
	return nil
}

// headScale is the factor export multiplies a head's output channel c by,
// nil for layers it leaves alone.
func headScale(layer string) func(c int) float32 {
	switch layer {
	case "size":
		return func(int) float32 { return RegScale }
	case "keypoints":
		return func(c int) float32 {
			if c%3 == 2 {
				return 1 // visibility logit
			}
			return RegScale
		}
	}
	return nil
}

// baseName strips the builder's "_N" suffix from an initializer name.
func baseName(name string) string {
	i := strings.LastIndexByte(name, '_')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

func int64s(v []int) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}
