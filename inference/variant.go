package inference

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/vigil-video/vigil/frame"
)

// ErrNoOtherVariant is returned by RunVariant when the model's bundle has
// no variant besides the serving one.
var ErrNoOtherVariant = errors.New("the bundle has no other variant")

// variantSet holds the side models RunVariant loaded: for each served
// model name and variant, a second Model over the same bundle with that
// variant forced. It is the Engine's; its mutex guards only the map, never
// a load or a run.
type variantSet struct {
	mu sync.Mutex
	m  map[variantKey]*variantModel
}

type variantKey struct{ model, variant string }

// variantModel is one side model, loaded once: ready closes when the load
// ended, with m or err set.
type variantModel struct {
	base  *Model // the serving model it was made beside
	ready chan struct{}
	m     *Model
	err   error
}

// RunVariant runs variant of the loaded model on f and returns its
// detections, as Analyze would get them from that variant (same score
// threshold and NMS, no low-score detections). It is how a hard-frame miner
// compares fp32 with int8 on sampled frames without changing what streams
// are served.
//
// model is the name the model is served under or, when only one loaded
// model has it, its bundle name (what frame.Result.Model says). variant
// names one of the bundle's variants; "" takes the first variant other than
// the serving one (ErrNoOtherVariant if there is none). The variant is
// loaded on first use, next to the serving one on the same device, and kept
// until the model is reloaded or unloaded, or the Engine closes. Safe for
// concurrent use.
func (e *Engine) RunVariant(ctx context.Context, model, variant string, f *frame.Frame) ([]frame.Detection, error) {
	name, base, err := e.resolve(model)
	if err != nil {
		return nil, err
	}
	if variant == "" {
		serving := base.variant.Name
		i := slices.IndexFunc(base.bundle.Variants, func(v Variant) bool { return v.Name != serving })
		if i < 0 {
			return nil, fmt.Errorf("running the other variant of model %s (serving %s): %w", name, serving, ErrNoOtherVariant)
		}
		variant = base.bundle.Variants[i].Name
	}
	if !slices.ContainsFunc(base.bundle.Variants, func(v Variant) bool { return v.Name == variant }) {
		names := make([]string, len(base.bundle.Variants))
		for i, v := range base.bundle.Variants {
			names[i] = v.Name
		}
		return nil, fmt.Errorf("running variant %q of model %s: the bundle's variants are %s", variant, name, strings.Join(names, ", "))
	}
	vm := e.variants.get(name, variant, base)
	<-vm.ready
	if vm.err != nil {
		return nil, vm.err
	}
	dets, err := vm.m.Infer(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("running variant %s of model %s: %w", variant, name, err)
	}
	return dets, nil
}

// resolve finds a served model by its name or, failing that, by a bundle
// name only one served model has.
func (e *Engine) resolve(model string) (string, *Model, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if m, ok := e.models[model]; ok {
		return model, m, nil
	}
	var names []string
	for n, m := range e.models {
		if m.bundle.Name == model {
			names = append(names, n)
		}
	}
	switch len(names) {
	case 0:
		return "", nil, fmt.Errorf("running a variant of model %q: no model of that name or bundle is loaded", model)
	case 1:
		return names[0], e.models[names[0]], nil
	}
	slices.Sort(names)
	return "", nil, fmt.Errorf("running a variant of model %q: models %s all serve that bundle; name one", model, strings.Join(names, ", "))
}

// get returns the side model for (name, variant) made beside base, starting
// its load if there is none or the one there was made beside a model that
// has since been replaced (which it then closes).
func (s *variantSet) get(name, variant string, base *Model) *variantModel {
	k := variantKey{name, variant}
	s.mu.Lock()
	if s.m == nil {
		s.m = map[variantKey]*variantModel{}
	}
	vm := s.m[k]
	if vm != nil && vm.base == base {
		s.mu.Unlock()
		return vm
	}
	old := vm
	vm = &variantModel{base: base, ready: make(chan struct{})}
	s.m[k] = vm
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	opts := base.opts
	opts.Name, opts.Variant, opts.LowScoreFloor = name, variant, 0
	opts.MaxBatch, opts.WarmupRuns, opts.TimedRuns = 1, 1, 1
	// Unregistered metrics: the side model must not show up as the served one.
	opts.metrics = nil
	vm.m, vm.err = LoadModel(base.bundle, opts)
	if vm.err != nil {
		vm.err = fmt.Errorf("loading variant %s of model %s: %w", variant, name, vm.err)
	}
	close(vm.ready)
	return vm
}

// close closes the side models of model name, or all of them for "".
func (s *variantSet) close(name string) {
	s.mu.Lock()
	var todo []*variantModel
	for k, vm := range s.m {
		if name == "" || k.model == name {
			todo = append(todo, vm)
			delete(s.m, k)
		}
	}
	s.mu.Unlock()
	for _, vm := range todo {
		vm.close()
	}
}

// close waits for the load to end and closes the model it made.
func (vm *variantModel) close() {
	<-vm.ready
	if vm.m != nil {
		vm.m.Close()
	}
}
