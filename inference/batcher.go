package inference

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/decoders"
	"github.com/vigil-video/vigil/inference/prep"
)

// ErrModelClosed is returned for requests to a model that was closed.
var ErrModelClosed = errors.New("model closed")

// ErrInvalidOutput is returned when a model's outputs hold NaN or
// infinite values: its weights are broken, and the engine rolls back to
// the version it replaced.
var ErrInvalidOutput = errors.New("invalid model output")

// nonFinite counts the NaN and infinite values of x.
func nonFinite(x []float32) int {
	n := 0
	for _, v := range x {
		// v-v is NaN for NaN and ±Inf, 0 otherwise.
		if v-v != 0 {
			n++
		}
	}
	return n
}

// Infer runs the model on frame f and returns its detections in source
// pixels. It blocks until the result is ready; ctx only bounds the wait
// for a place in the queue, since the batcher may be reading f.
func (m *Model) Infer(ctx context.Context, f *frame.Frame) ([]frame.Detection, error) {
	r := &request{f: f, done: make(chan struct{})}
	if err := m.submit(ctx, r); err != nil {
		return nil, err
	}
	<-r.done
	return r.dets, r.err
}

// InferCrops runs the model on each box of frame f (an embedder on the
// detections of a detector) and returns one result per box, in order.
func (m *Model) InferCrops(ctx context.Context, f *frame.Frame, boxes []frame.Box) ([][]frame.Detection, error) {
	rs := make([]*request, len(boxes))
	for i, b := range boxes {
		rs[i] = &request{f: f, crop: b, isCrop: true}
	}
	return m.inferAll(ctx, rs)
}

// InferFrames runs the model on several frames, which batch together, and
// returns one result per frame, in order.
func (m *Model) InferFrames(ctx context.Context, fs []*frame.Frame) ([][]frame.Detection, error) {
	rs := make([]*request, len(fs))
	for i, f := range fs {
		rs[i] = &request{f: f}
	}
	return m.inferAll(ctx, rs)
}

func (m *Model) inferAll(ctx context.Context, rs []*request) ([][]frame.Detection, error) {
	var err error
	n := 0
	for _, r := range rs {
		r.done = make(chan struct{})
		if err = m.submit(ctx, r); err != nil {
			break
		}
		n++
	}
	out := make([][]frame.Detection, len(rs))
	for i, r := range rs[:n] {
		<-r.done
		out[i] = r.dets
		if r.err != nil && err == nil {
			err = r.err
		}
	}
	return out, err
}

// RunBare runs the model's runtime session for a batch of n on whatever
// its input tensor holds, without pre-processing, batching or decoding:
// the runtime's own time on the very session Vigil uses, which is what
// benchmarks compare Vigil's end-to-end time with.
func (m *Model) RunBare(ctx context.Context, n int) error {
	r := &request{bare: max(n, 1), done: make(chan struct{})}
	if err := m.submit(ctx, r); err != nil {
		return err
	}
	<-r.done
	return r.err
}

func (m *Model) submit(ctx context.Context, r *request) error {
	r.enq = time.Now()
	// A request is either refused here or answered by the batcher, even
	// one sent while the model closes: the batcher drains until no submit
	// is in flight (see drain).
	m.submitting.Add(1)
	defer m.submitting.Add(-1)
	if m.closed.Load() {
		return fmt.Errorf("running %s: %w", m.opts.Name, ErrModelClosed)
	}
	select {
	case m.requests <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Status describes the model for the API.
func (m *Model) Status() ModelStatus { return m.status }

// Bundle returns the bundle the model was loaded from.
func (m *Model) Bundle() *Bundle { return m.bundle }

// Variant returns the variant being served.
func (m *Model) Variant() Variant { return m.variant }

// Close stops the batcher, answers queued requests with ErrModelClosed,
// and releases the runners. It waits for a batch in flight to finish.
func (m *Model) Close() error {
	m.closeOnce.Do(func() { m.stop() })
	<-m.done
	return nil
}

func (m *Model) closeRunners() {
	for k, r := range m.runners {
		r.Close()
		delete(m.runners, k)
	}
}

// run is the batcher goroutine.
func (m *Model) run(ctx context.Context) {
	// One OS thread calls the runtime, as a plain program's main thread
	// would: runtimes keep per-thread state (ONNX Runtime's thread pool
	// counts the caller as a worker).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(m.done)
	defer m.closeRunners()
	maxB := m.maxBatch()
	batch := make([]*request, 0, maxB)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var first *request
		select {
		case <-ctx.Done():
			m.drain()
			return
		case first = <-m.requests:
		}
		if first.bare > 0 { // runs alone, without waiting for a batch
			m.runBare(first)
			continue
		}
		batch = append(batch[:0], first)
		m.seen(first)
	queued:
		for len(batch) < maxB {
			select {
			case r := <-m.requests:
				batch = append(batch, r)
				m.seen(r)
			default:
				break queued
			}
		}
		if want := min(maxB, m.activeStreams()); len(batch) < want {
			timer.Reset(m.wait())
		collect:
			for len(batch) < want {
				select {
				case r := <-m.requests:
					batch = append(batch, r)
					m.seen(r)
				case <-timer.C:
					break collect
				case <-ctx.Done():
					break collect
				}
			}
			timer.Stop()
		}
		images := batch
		if slices.ContainsFunc(batch, func(r *request) bool { return r.bare > 0 }) {
			images = nil
			for _, r := range batch {
				if r.bare > 0 {
					m.runBare(r)
				} else {
					images = append(images, r)
				}
			}
		}
		switch {
		case len(images) == 0:
		case m.fixed:
			for _, r := range images {
				m.process([]*request{r})
			}
		default:
			m.process(images)
		}
	}
}

// drain refuses new requests and answers every queued one, and those of
// submits still in flight, with ErrModelClosed.
func (m *Model) drain() {
	m.closed.Store(true)
	for {
		select {
		case r := <-m.requests:
			r.err = fmt.Errorf("running %s: %w", m.opts.Name, ErrModelClosed)
			close(r.done)
			continue
		default:
		}
		if m.submitting.Load() == 0 && len(m.requests) == 0 {
			return
		}
		runtime.Gosched()
	}
}

// seen notes a whole-frame request's stream, to know how many streams
// feed the model and how often.
func (m *Model) seen(r *request) {
	if r.isCrop || r.bare > 0 {
		return
	}
	id := r.f.StreamID
	if last, ok := m.lastSeen[id]; ok {
		d := r.enq.Sub(last)
		if m.interval == 0 {
			m.interval = d
		} else {
			m.interval += (d - m.interval) / 8
		}
	}
	m.lastSeen[id] = r.enq
}

// activeStreams counts the streams that sent a frame in the last two
// seconds: a batch waits for at most one frame from each.
func (m *Model) activeStreams() int {
	n := 0
	now := time.Now()
	for id, t := range m.lastSeen {
		if now.Sub(t) > 2*time.Second {
			delete(m.lastSeen, id)
			continue
		}
		n++
	}
	return n
}

// wait is how long a batch waits to fill: MaxWait when configured, else a
// fifth of the typical time between frames (derived from the streams'
// rates), at most 20ms.
func (m *Model) wait() time.Duration {
	if m.opts.MaxWait > 0 {
		return m.opts.MaxWait
	}
	if m.interval <= 0 {
		return 5 * time.Millisecond
	}
	return min(m.interval/5, 20*time.Millisecond)
}

// runner returns a runner for batches of n requests: the smallest power
// of two at least n (capped at the model's largest batch), opened on
// first use.
func (m *Model) runner(n int) (Runner, int, error) {
	size := 1
	for size < n {
		size *= 2
	}
	size = min(size, m.maxBatch())
	if r, ok := m.runners[size]; ok {
		return r, size, nil
	}
	r, err := OpenRunner(m.bundle.Path(m.variant), RunnerOptions{Device: m.opts.Device, BatchSize: size, InputShapes: m.shapes(size)})
	if err != nil {
		return nil, 0, fmt.Errorf("opening batch-%d runner: %w", size, err)
	}
	m.runners[size] = r
	return r, size, nil
}

// runBare answers a RunBare request.
func (m *Model) runBare(r *request) {
	defer close(r.done)
	rn, _, err := m.runner(r.bare)
	if err == nil {
		err = rn.Run()
	}
	if err != nil {
		r.err = fmt.Errorf("running %s: %w", m.opts.Name, err)
	}
}

// process pre-processes, runs and decodes one batch and answers its
// requests.
func (m *Model) process(batch []*request) {
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	start := time.Now()
	for _, r := range batch {
		m.m.queueWait.Observe(start.Sub(r.enq).Seconds())
	}
	m.m.batchSize.Observe(float64(len(batch)))
	fail := func(err error) {
		m.m.errors.Add(float64(len(batch)))
		for _, r := range batch {
			if r.err == nil {
				r.err = fmt.Errorf("running %s: %w", m.opts.Name, err)
			}
		}
	}
	rn, _, err := m.runner(len(batch))
	if err != nil {
		fail(err)
		return
	}
	in, in8 := rn.Input(0), rn.InputBytes(0)
	per := (len(in) + len(in8)) / max(int(rn.Inputs()[0].Shape[0]), 1)
	scale, zp := m.variant.InputScale, m.variant.InputZeroPoint
	tfs := make([]prep.Transform, len(batch))
	// Each worker prepares whole images when the batch has enough of them
	// for all; otherwise the workers share each image, by bands of rows.
	type filler interface {
		Fill([]float32, *frame.Frame, prep.Spec) (prep.Transform, error)
		FillCrop([]float32, *frame.Frame, frame.Box, prep.Spec) (prep.Transform, error)
		FillQuantized([]uint8, *frame.Frame, prep.Spec, float32, uint8) (prep.Transform, error)
		FillCropQuantized([]uint8, *frame.Frame, frame.Box, prep.Spec, float32, uint8) (prep.Transform, error)
	}
	fill := func(pr filler, i int) {
		r := batch[i]
		switch {
		case in8 != nil && r.isCrop:
			tfs[i], r.err = pr.FillCropQuantized(in8[i*per:(i+1)*per], r.f, r.crop, m.spec, scale, zp)
		case in8 != nil:
			tfs[i], r.err = pr.FillQuantized(in8[i*per:(i+1)*per], r.f, m.spec, scale, zp)
		case r.isCrop:
			tfs[i], r.err = pr.FillCrop(in[i*per:(i+1)*per], r.f, r.crop, m.spec)
		default:
			tfs[i], r.err = pr.Fill(in[i*per:(i+1)*per], r.f, m.spec)
		}
		if r.err != nil {
			r.err = fmt.Errorf("preparing frame %d of %s for %s: %w", r.f.Seq, r.f.StreamID, m.opts.Name, r.err)
			m.m.errors.Inc()
		}
	}
	if workers := len(m.preps); len(batch) < workers {
		for i := range batch {
			fill(m.preps, i)
		}
	} else {
		var wg sync.WaitGroup
		for w := 1; w < workers; w++ {
			wg.Go(func() {
				for i := w; i < len(batch); i += workers {
					fill(m.preps[w], i)
				}
			})
		}
		for i := 0; i < len(batch); i += workers {
			fill(m.preps[0], i)
		}
		wg.Wait()
	}
	ran := time.Now()
	m.m.duration.WithLabelValues(stagePrep).Observe(ran.Sub(start).Seconds())
	if err := rn.Run(); err != nil {
		fail(err)
		return
	}
	decoded := time.Now()
	m.m.duration.WithLabelValues(stageRun).Observe(decoded.Sub(ran).Seconds())
	for j, o := range rn.Outputs() {
		m.outs[j] = decoders.Tensor{Name: o.Name, Shape: o.Shape, Data: rn.Output(j)}
		if bad := nonFinite(m.outs[j].Data); bad > 0 {
			fail(fmt.Errorf("%w: output %q has %d NaN or infinite values", ErrInvalidOutput, o.Name, bad))
			return
		}
	}
	for i, r := range batch {
		if r.err != nil {
			continue
		}
		r.dets, r.err = m.dec.Decode(nil, m.outs, i, tfs[i])
		if r.err != nil {
			r.err = fmt.Errorf("decoding frame %d of %s from %s: %w", r.f.Seq, r.f.StreamID, m.opts.Name, r.err)
			m.m.errors.Inc()
			continue
		}
		for k := range r.dets {
			r.dets[k].Low = r.dets[k].Score < m.lowBelow
		}
		m.m.frames.Inc()
	}
	m.m.duration.WithLabelValues(stageDecode).Observe(time.Since(decoded).Seconds())
}
