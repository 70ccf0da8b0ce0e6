package training

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	G "gorgonia.org/gorgonia"

	"github.com/vigil-video/vigil/training/models"
)

// writeAtomic writes dir/name through a synced temporary file, so a crash
// leaves the old file or the new one, never half of one.
func writeAtomic(dir, name string, fill func(f *os.File) error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("saving %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return fmt.Errorf("saving %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if err := fill(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("saving %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("saving %s: %w", name, err)
	}
	return nil
}

// saveParams writes any model's parameters to dir/name (models.Params.Save
// format), atomically.
func saveParams(dir, name string, ps models.Params) error {
	return writeAtomic(dir, name, func(f *os.File) error { return ps.Save(f) })
}

// loadParams reads dir/name, written by saveParams, into ps.
func loadParams(dir, name string, ps models.Params) error {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return fmt.Errorf("loading %s: %w", name, err)
	}
	defer f.Close()
	if err := ps.Load(f); err != nil {
		return fmt.Errorf("loading %s from %s: %w", name, dir, err)
	}
	return nil
}

// saveJSON writes v as JSON to dir/name, atomically.
func saveJSON(dir, name string, v any) error {
	return writeAtomic(dir, name, func(f *os.File) error { return json.NewEncoder(f).Encode(v) })
}

// loadJSON reads dir/name, written by saveJSON, into v.
func loadJSON(dir, name string, v any) error {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return fmt.Errorf("loading %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("loading %s from %s: %w", name, dir, err)
	}
	return nil
}

// trainStep runs one training step: the forward and backward pass at learning
// rate lr, a check that the loss is finite, and the solver's update. It
// returns the loss.
func trainStep(vm G.VM, cost *G.Node, solver G.Solver, params G.Nodes, lr float64) (float64, error) {
	G.WithLearnRate(lr)(solver)
	defer vm.Reset()
	if err := vm.RunAll(); err != nil {
		return 0, err
	}
	v := float64(cost.Value().Data().(float32))
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("loss is %v (lower the learning rate)", v)
	}
	return v, solver.Step(G.NodesToValueGrads(params))
}
