// Package models defines Vigil's own trainable networks as gorgonia graphs
// built from training/nn ops, with their training targets, losses and ONNX
// export: a CenterNet-style detector with a keypoint head. Parameters live in
// Go tensors owned by the model, so graphs of several batch sizes (training,
// evaluation) share them, and checkpoints are plain float32 arrays.
package models

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Param is one named parameter tensor.
type Param struct {
	Name  string
	Shape []int
	T     *tensor.Dense
}

// Data is the parameter's values.
func (p *Param) Data() []float32 { return p.T.Float32s() }

// Params is a model's parameters in a fixed order.
type Params []*Param

func newParam(name string, shape ...int) *Param {
	return &Param{Name: name, Shape: shape, T: tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...))}
}

// heInit fills a convolution's weights from a He-normal distribution.
func heInit(p *Param, rng *rand.Rand) {
	fanIn := 1
	for _, d := range p.Shape[1:] {
		fanIn *= d
	}
	std := math.Sqrt(2 / float64(fanIn))
	for i := range p.Data() {
		p.Data()[i] = float32(rng.NormFloat64() * std)
	}
}

// node makes the parameter a graph variable that shares its tensor.
func (p *Param) node(g *G.ExprGraph) *G.Node {
	return G.NewTensor(g, tensor.Float32, len(p.Shape), G.WithShape(p.Shape...), G.WithName(p.Name), G.WithValue(p.T))
}

const checkpointMagic = "VIGILCK1"

// Save writes the parameters: a magic, then for each its name, shape and
// values (little endian), then a CRC-32 of everything before it.
func (ps Params) Save(w io.Writer) error {
	h := crc32.NewIEEE()
	mw := io.MultiWriter(w, h)
	put := func(v any) error { return binary.Write(mw, binary.LittleEndian, v) }
	if _, err := io.WriteString(mw, checkpointMagic); err != nil {
		return err
	}
	if err := put(uint32(len(ps))); err != nil {
		return err
	}
	for _, p := range ps {
		if err := put(uint32(len(p.Name))); err != nil {
			return err
		}
		if _, err := io.WriteString(mw, p.Name); err != nil {
			return err
		}
		if err := put(uint32(len(p.Shape))); err != nil {
			return err
		}
		for _, d := range p.Shape {
			if err := put(uint32(d)); err != nil {
				return err
			}
		}
		if err := put(p.Data()); err != nil {
			return err
		}
	}
	return binary.Write(w, binary.LittleEndian, h.Sum32())
}

// Load reads parameters written by Save into ps, which must have the same
// names and shapes in the same order.
func (ps Params) Load(r io.Reader) error {
	h := crc32.NewIEEE()
	tr := io.TeeReader(r, h)
	get := func(v any) error { return binary.Read(tr, binary.LittleEndian, v) }
	magic := make([]byte, len(checkpointMagic))
	if _, err := io.ReadFull(tr, magic); err != nil || string(magic) != checkpointMagic {
		return fmt.Errorf("loading checkpoint: not a Vigil checkpoint")
	}
	var n uint32
	if err := get(&n); err != nil {
		return fmt.Errorf("loading checkpoint: %w", err)
	}
	if int(n) != len(ps) {
		return fmt.Errorf("loading checkpoint: %d parameters, the model has %d", n, len(ps))
	}
	for _, p := range ps {
		var ln uint32
		if err := get(&ln); err != nil || ln > 1<<10 {
			return fmt.Errorf("loading checkpoint: bad parameter name")
		}
		name := make([]byte, ln)
		if _, err := io.ReadFull(tr, name); err != nil {
			return fmt.Errorf("loading checkpoint: %w", err)
		}
		var dims uint32
		if err := get(&dims); err != nil || dims > 8 {
			return fmt.Errorf("loading checkpoint: bad shape of %s", name)
		}
		shape := make([]uint32, dims)
		if err := get(shape); err != nil {
			return fmt.Errorf("loading checkpoint: %w", err)
		}
		if string(name) != p.Name || len(shape) != len(p.Shape) {
			return fmt.Errorf("loading checkpoint: parameter %q %v, the model has %q %v", name, shape, p.Name, p.Shape)
		}
		for i, d := range shape {
			if int(d) != p.Shape[i] {
				return fmt.Errorf("loading checkpoint: parameter %q %v, the model has %v", name, shape, p.Shape)
			}
		}
		if err := get(p.Data()); err != nil {
			return fmt.Errorf("loading checkpoint: values of %s: %w", name, err)
		}
	}
	sum := h.Sum32()
	var want uint32
	if err := binary.Read(r, binary.LittleEndian, &want); err != nil {
		return fmt.Errorf("loading checkpoint: %w", err)
	}
	if sum != want {
		return fmt.Errorf("loading checkpoint: checksum mismatch (damaged file)")
	}
	return nil
}
