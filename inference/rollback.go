package inference

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
)

// retiredModel is a model a reload replaced, kept loaded for the
// engine's probation period so that it can serve again at once if its
// successor's outputs turn out invalid.
type retiredModel struct {
	m     *Model
	cfg   config.Model
	timer *time.Timer
}

// probe runs m once on a mid-grey picture of its input size through the
// whole path (pre-processing, the runtime, the output decoder) and returns
// its error: a model whose outputs are NaN or infinite (broken weights) or
// whose decoder fails never serves.
func probe(m *Model) error {
	probeW, probeH := max(m.spec.Width&^1, 2), max(m.spec.Height&^1, 2)
	f := &frame.Frame{StreamID: "probe", Width: probeW, Height: probeH, Format: frame.PixelFormatYUV420P}
	f.Planes[0] = make([]byte, probeW*probeH)
	f.Planes[1] = make([]byte, probeW*probeH/4)
	f.Planes[2] = make([]byte, probeW*probeH/4)
	for i := range f.Planes {
		for j := range f.Planes[i] {
			f.Planes[i][j] = 128
		}
	}
	f.Strides = [3]int{probeW, probeW / 2, probeW / 2}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.Infer(ctx, f); err != nil {
		return fmt.Errorf("probe run: %w", err)
	}
	return nil
}

// retire keeps old, replaced under name, for the probation period, then
// closes it.
func (e *Engine) retire(name string, old *Model, cfg config.Model) {
	d := e.opts.Probation
	if d <= 0 {
		d = 30 * time.Second
	}
	r := &retiredModel{m: old, cfg: cfg}
	e.mu.Lock()
	prev := e.retired[name]
	e.retired[name] = r
	r.timer = time.AfterFunc(d, func() {
		e.mu.Lock()
		mine := e.retired[name] == r
		if mine {
			delete(e.retired, name)
		}
		e.mu.Unlock()
		if mine {
			r.m.Close()
		}
	})
	e.mu.Unlock()
	if prev != nil && prev.timer.Stop() {
		prev.m.Close()
	}
}

// endProbation closes the model retired under name, if any.
func (e *Engine) endProbation(name string) {
	e.mu.Lock()
	r := e.retired[name]
	delete(e.retired, name)
	e.mu.Unlock()
	if r != nil && r.timer.Stop() {
		r.m.Close()
	}
}

// rollback puts back the model that bad replaced under name, when bad
// produced invalid outputs during its probation, and reports whether it
// did. The bad version is not loaded again until the registry's active
// version changes.
func (e *Engine) rollback(name string, bad *Model, cause error) bool {
	e.mu.Lock()
	r := e.retired[name]
	if r == nil || e.models[name] != bad || !r.timer.Stop() {
		e.mu.Unlock()
		return false
	}
	delete(e.retired, name)
	e.models[name] = r.m
	e.cfgs[name] = r.cfg
	e.tried[name] = bad.bundle.Version
	e.metrics.setModelInfo(r.m.Status())
	e.mu.Unlock()
	e.metrics.rollbacks.WithLabelValues(name).Inc()
	e.log.Error("model rolled back: the new version's outputs are invalid", "model", name,
		"bad_version", bad.bundle.Version, "serving_version", r.m.bundle.Version, "err", cause)
	// Requests already queued to it get ErrModelClosed and are retried on
	// the restored model.
	go bad.Close()
	return true
}

// invalid reports whether err says that a model's outputs were invalid.
func invalid(err error) bool { return errors.Is(err, ErrInvalidOutput) }
