package training

import (
	"context"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference"
	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/prep"
	"github.com/vigil-video/vigil/internal/openblas"
	"github.com/vigil-video/vigil/training/dataset"
	"github.com/vigil-video/vigil/training/evaluate"
	"github.com/vigil-video/vigil/training/models"
)

// Segmentation targets (SegmentOptions.Target).
const (
	// TargetInstance trains each crop on the mask of the person it is
	// centred on; other persons in the crop are background. The server
	// gives the crop's mask to that person, so this is what it needs.
	TargetInstance = "instance"
	// TargetUnion trains on the union of all persons' masks in the crop.
	TargetUnion = "union"
)

// SegmentOptions configure TrainSegmenter. The optimiser, schedule and
// checkpoint fields mean what they mean in DetectOptions.
type SegmentOptions struct {
	// Model shapes the UNet; a zero InputW and InputH take
	// models.DefaultUNetInput.
	Model models.UNetConfig
	// Seed makes the run deterministic: weights, crop order, jitter and
	// augmentation.
	Seed uint64
	// Batch is the crops per step (16) and Steps the number of steps.
	Batch, Steps int
	// Optimizer is adam (default), rmsprop or sgd (with Momentum 0.9).
	Optimizer string
	Momentum  float64
	// LR is the base learning rate (3e-3); Schedule its course (cosine
	// with 5% warm-up by default).
	LR       float64
	Schedule Schedule
	// WeightDecay is the L2 penalty (1e-4); Clip bounds each gradient
	// value (0: none).
	WeightDecay, Clip float64
	// EvalEvery is how many steps pass between validations (and
	// checkpoints); Patience how many validations without a better mIoU
	// stop the run early (0: never).
	EvalEvery, Patience int
	// CheckpointDir, when set, receives checkpoint.bin and state.json at
	// each validation; Resume continues from them.
	CheckpointDir string
	Resume        bool
	// Augment, if set, changes each training crop (its picture and
	// masks, cut out around the person at source resolution) into one of
	// the model's input size; nil stretches the crop as the server does.
	Augment Augmenter
	// Target is TargetInstance (the default) or TargetUnion.
	Target string
	// MinHeight skips persons whose box is lower than this many pixels
	// (24); persons marked Ignore (mostly hidden) or without a mask are
	// always skipped.
	MinHeight float32
	// Jitter moves and scales each training box by up to this fraction of
	// its size (0.1), as a detector's boxes wander; negative for none.
	// Validation crops use the true boxes.
	Jitter float64
	// Progress, if set, is called after every step (Parts stays zero).
	Progress func(Progress)
}

// SegValidation is one evaluation of a segmenter during training.
type SegValidation struct {
	Step int `json:"step"`
	// MeanIoU is over {background, person} at the model's input size,
	// the centred person's instance mask as truth; PersonIoU the person
	// class's IoU.
	MeanIoU   float64 `json:"miou"`
	PersonIoU float64 `json:"person_iou"`
	Loss      float64 `json:"train_loss"`
}

// SegmentResult is a finished segmenter run.
type SegmentResult struct {
	Model *models.UNet
	// Steps run; Best is the validation whose weights the model keeps.
	Steps       int
	Best        SegValidation
	Validations []SegValidation
	// Losses are the training loss of every step; LRs their rates.
	Losses, LRs []float64
	// ImagesPerSec counts training crops.
	ImagesPerSec float64
	Elapsed      time.Duration
	// TrainCrops and ValCrops are the numbers of persons cropped.
	TrainCrops, ValCrops int
}

// segState is what state.json keeps for a resume.
type segState struct {
	Step        int             `json:"step"`
	Best        SegValidation   `json:"best"`
	Validations []SegValidation `json:"validations"`
	Losses      []float64       `json:"losses"`
	LRs         []float64       `json:"lrs"`
}

// defaults fills o's defaults and checks it, returning the shared part in
// DetectOptions form (whose defaults and solver the segmenter reuses).
func (o *SegmentOptions) defaults() (DetectOptions, error) {
	if o.Model.InputW == 0 && o.Model.InputH == 0 {
		o.Model.InputW, o.Model.InputH = models.DefaultUNetInput[0], models.DefaultUNetInput[1]
	}
	if o.Batch == 0 {
		o.Batch = 16
	}
	if o.LR == 0 {
		o.LR = 3e-3
	}
	if o.Target == "" {
		o.Target = TargetInstance
	}
	if o.MinHeight == 0 {
		o.MinHeight = 24
	}
	if o.Jitter == 0 {
		o.Jitter = 0.1
	}
	d := DetectOptions{Batch: o.Batch, Steps: o.Steps, Optimizer: o.Optimizer, Momentum: o.Momentum, LR: o.LR,
		Schedule: o.Schedule, WeightDecay: o.WeightDecay, Clip: o.Clip, EvalEvery: o.EvalEvery}
	if err := d.defaults(); err != nil {
		return d, err
	}
	o.Optimizer, o.Momentum, o.Schedule, o.WeightDecay, o.EvalEvery = d.Optimizer, d.Momentum, d.Schedule, d.WeightDecay, d.EvalEvery
	if o.Target != TargetInstance && o.Target != TargetUnion {
		return d, fmt.Errorf("training: target must be %s or %s, got %q", TargetInstance, TargetUnion, o.Target)
	}
	if o.Jitter >= 0.5 {
		return d, fmt.Errorf("training: jitter %g must be below 0.5", o.Jitter)
	}
	return d, nil
}

// personRef is one person to crop: sample i, object j.
type personRef struct{ i, j int }

// persons lists the persons of src worth a crop.
func persons(src dataset.Source, minHeight float32) ([]personRef, error) {
	var out []personRef
	for i := range src.Len() {
		s, err := src.At(i)
		if err != nil {
			return nil, fmt.Errorf("sample %d: %w", i, err)
		}
		for j, o := range s.Objects {
			if o.Label == "person" && !o.Ignore && o.Mask != nil && o.Box.H() >= minHeight && o.Box.W() >= 2 {
				out = append(out, personRef{i, j})
			}
		}
	}
	return out, nil
}

// TrainSegmenter trains a UNet person segmenter on crops around the
// persons of train, as the server's engine cuts them (the person's box
// grown by 1.2, widened or heightened to the model's aspect and clipped to
// the picture), validating on val's crops by mIoU, which picks the weights
// kept. It reads every sample once at the start to find the persons.
func TrainSegmenter(ctx context.Context, opts SegmentOptions, train, val dataset.Source) (*SegmentResult, error) {
	d, err := opts.defaults()
	if err != nil {
		return nil, err
	}
	trainP, err := persons(train, opts.MinHeight)
	if err != nil {
		return nil, fmt.Errorf("training: %w", err)
	}
	valP, err := persons(val, opts.MinHeight)
	if err != nil {
		return nil, fmt.Errorf("validating: %w", err)
	}
	if len(trainP) == 0 || len(valP) == 0 {
		return nil, fmt.Errorf("training: %d training and %d validation persons of %g pixels or more; need both", len(trainP), len(valP), opts.MinHeight)
	}
	openblas.SetThreads(1)
	m, err := models.NewUNet(opts.Model, opts.Seed)
	if err != nil {
		return nil, err
	}
	res := &SegmentResult{Model: m, Best: SegValidation{MeanIoU: -1}, TrainCrops: len(trainP), ValCrops: len(valP)}
	start := 0
	if opts.Resume && opts.CheckpointDir != "" {
		var st segState
		if err := loadCheckpoint(opts.CheckpointDir, m.Params, &st); err != nil {
			return nil, err
		}
		start = st.Step
		res.Best, res.Validations, res.Losses, res.LRs = st.Best, st.Validations, st.Losses, st.LRs
	}
	gr, err := m.Build(opts.Batch)
	if err != nil {
		return nil, err
	}
	loss, cost, err := m.AddLoss(gr)
	if err != nil {
		return nil, err
	}
	if _, err := G.Grad(cost, gr.Params...); err != nil {
		return nil, fmt.Errorf("training: gradients: %w", err)
	}
	vm := G.NewTapeMachine(gr.G, G.BindDualValues(gr.Params...))
	defer vm.Close()
	solver := d.solver()
	W, H := opts.Model.InputW, opts.Model.InputH
	in := make([]float32, opts.Batch*3*W*H)
	if err := G.Let(gr.Input, tensor.New(tensor.WithShape(opts.Batch, 3, H, W), tensor.WithBacking(in))); err != nil {
		return nil, err
	}
	ev, err := newSegEval(m, opts.Batch, val, valP)
	if err != nil {
		return nil, err
	}
	defer ev.close()
	best := snapshot(m.Params)

	cr := &cropper{w: W, h: H, ow: m.OutW(), oh: m.OutH(), union: opts.Target == TargetUnion}
	plane, oplane := 3*W*H, m.OutW()*m.OutH()
	mask, care := make([]float32, opts.Batch*oplane), make([]float32, opts.Batch*oplane)
	order := func(pass int) []int {
		return rand.New(rand.NewPCG(opts.Seed, uint64(pass))).Perm(len(trainP))
	}
	per := len(trainP)
	began := time.Now()
	stale := 0
	for step := start; step < opts.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rng := rand.New(rand.NewPCG(opts.Seed^0x5e65, uint64(step)))
		perm := order(step * opts.Batch / per)
		for b := range opts.Batch {
			p := trainP[perm[(step*opts.Batch+b)%per]]
			s, err := train.At(p.i)
			if err != nil {
				return nil, fmt.Errorf("training step %d: sample %d: %w", step, p.i, err)
			}
			box := jitter(s.Objects[p.j].Box, opts.Jitter, rng)
			dst := cropDst{in: in[b*plane : (b+1)*plane], mask: mask[b*oplane : (b+1)*oplane], care: care[b*oplane : (b+1)*oplane]}
			if err := cr.crop(dst, s, p.j, box, opts.Augment, rng); err != nil {
				return nil, fmt.Errorf("training step %d: sample %s: %w", step, s.ID, err)
			}
		}
		if err := loss.SetTargets(mask, care); err != nil {
			return nil, err
		}
		lr := opts.Schedule.Rate(opts.LR, step, opts.Steps)
		v, err := trainStep(vm, cost, solver, gr.Params, lr)
		if err != nil {
			return nil, fmt.Errorf("training step %d: %w", step, err)
		}
		res.Losses, res.LRs = append(res.Losses, v), append(res.LRs, lr)
		res.Steps = step + 1
		elapsed := time.Since(began)
		if opts.Progress != nil {
			opts.Progress(Progress{Step: step + 1, Steps: opts.Steps, Loss: v, LR: lr,
				ImagesPerSec: float64((step+1-start)*opts.Batch) / elapsed.Seconds(), Elapsed: elapsed})
		}
		if (step+1)%opts.EvalEvery != 0 && step+1 != opts.Steps {
			continue
		}
		r, err := ev.run(ctx)
		if err != nil {
			return nil, fmt.Errorf("validating at step %d: %w", step+1, err)
		}
		vr := SegValidation{Step: step + 1, MeanIoU: r.MeanIoU, PersonIoU: r.IoU[1], Loss: meanTail(res.Losses, opts.EvalEvery)}
		res.Validations = append(res.Validations, vr)
		if vr.MeanIoU > res.Best.MeanIoU {
			res.Best, stale = vr, 0
			best = snapshot(m.Params)
		} else {
			stale++
		}
		if opts.CheckpointDir != "" {
			if err := saveCheckpoint(opts.CheckpointDir, m.Params, segState{Step: step + 1, Best: res.Best, Validations: res.Validations, Losses: res.Losses, LRs: res.LRs}); err != nil {
				return nil, err
			}
		}
		if opts.Patience > 0 && stale >= opts.Patience {
			break
		}
	}
	restore(m.Params, best)
	res.Elapsed = time.Since(began)
	if n := res.Steps - start; n > 0 {
		res.ImagesPerSec = float64(n*opts.Batch) / res.Elapsed.Seconds()
	}
	return res, nil
}

// jitter moves each side of b by up to f of the box's size.
func jitter(b frame.Box, f float64, rng *rand.Rand) frame.Box {
	if f <= 0 {
		return b
	}
	w, h := b.W(), b.H()
	d := func(s float32) float32 { return float32(rng.Float64()*2-1) * float32(f) * s }
	return frame.Box{X1: b.X1 + d(w), Y1: b.Y1 + d(h), X2: b.X2 + d(w), Y2: b.Y2 + d(h)}
}

// cropper cuts person crops and their targets.
type cropper struct {
	w, h, ow, oh int
	union        bool
	f            frame.Frame
	src          *image.RGBA // the image f holds
	masks        [][]byte
	full         []byte // w x h target at input resolution
	fullCare     []byte
}

// cropDst receives one crop: its input [3, h, w] and targets [oh, ow].
type cropDst struct{ in, mask, care []float32 }

// roles says which objects make a crop's target: the person j alone, or
// every person not Ignore (Ignore persons then have no loss).
func (c *cropper) roles(s dataset.Sample, j int) (pos, ign []int) {
	if !c.union {
		return []int{j}, nil
	}
	for k, o := range s.Objects {
		if o.Label != "person" || o.Mask == nil {
			continue
		}
		if o.Ignore && k != j {
			ign = append(ign, k)
		} else {
			pos = append(pos, k)
		}
	}
	return pos, ign
}

// crop fills dst with the crop around box of sample s's person j.
func (c *cropper) crop(dst cropDst, s dataset.Sample, j int, box frame.Box, aug Augmenter, rng *rand.Rand) error {
	if s.Image == nil {
		return fmt.Errorf("no image")
	}
	sw, sh := s.Image.Rect.Dx(), s.Image.Rect.Dy()
	region := inference.CropAround(box, float32(c.w)/float32(c.h), sw, sh)
	if region.W() < 1 || region.H() < 1 {
		region = frame.Box{X1: 0, Y1: 0, X2: float32(sw), Y2: float32(sh)}
	}
	pos, ign := c.roles(s, j)
	c.full = grow(c.full, c.w*c.h)
	c.fullCare = grow(c.fullCare, c.w*c.h)
	clear(c.full)
	for i := range c.fullCare {
		c.fullCare[i] = 1
	}
	if aug == nil {
		if err := c.setFrame(s.Image); err != nil {
			return err
		}
		tf, err := prep.FillCrop(dst.in, &c.f, region, c.spec())
		if err != nil {
			return err
		}
		paint := func(k int, into []byte, v byte) {
			m := s.Objects[k].Mask
			c.masks = growMasks(c.masks, 1)
			c.masks[0] = m.Decode(c.masks[0])
			for y := range c.h {
				for x := range c.w {
					fx, fy := tf.ToSource(float32(x)+0.5, float32(y)+0.5)
					ix, iy := min(max(int(fx), 0), m.Width-1), min(max(int(fy), 0), m.Height-1)
					if c.masks[0][iy*m.Width+ix] != 0 {
						into[y*c.w+x] = v
					}
				}
			}
		}
		for _, k := range ign {
			paint(k, c.fullCare, 0)
		}
		for _, k := range pos {
			paint(k, c.full, 1)
		}
		c.reduce(dst)
		return nil
	}
	// Augmented: cut the region out at source resolution with its masks,
	// mark the target objects, and let aug make it input-sized.
	x0, y0 := int(region.X1), int(region.Y1)
	x1, y1 := min(int(math.Ceil(float64(region.X2))), sw), min(int(math.Ceil(float64(region.Y2))), sh)
	cw, ch := x1-x0, y1-y0
	sub := image.NewRGBA(image.Rect(0, 0, cw, ch))
	for y := range ch {
		so := s.Image.PixOffset(s.Image.Rect.Min.X+x0, s.Image.Rect.Min.Y+y0+y)
		copy(sub.Pix[y*sub.Stride:y*sub.Stride+4*cw], s.Image.Pix[so:so+4*cw])
	}
	cs := dataset.Sample{ID: s.ID, Sequence: s.Sequence, Image: sub}
	const posMark, ignMark = 1, 2
	for role, ks := range [][]int{pos, ign} {
		for _, k := range ks {
			o := s.Objects[k]
			c.masks = growMasks(c.masks, 1)
			c.masks[0] = o.Mask.Decode(c.masks[0])
			cut := make([]byte, cw*ch)
			for y := range ch {
				copy(cut[y*cw:(y+1)*cw], c.masks[0][(y0+y)*o.Mask.Width+x0:(y0+y)*o.Mask.Width+x1])
			}
			mk := frame.EncodeMask(cut, cw, ch)
			o.Mask = &mk
			o.Box = frame.Box{X1: o.Box.X1 - float32(x0), Y1: o.Box.Y1 - float32(y0), X2: o.Box.X2 - float32(x0), Y2: o.Box.Y2 - float32(y0)}
			o.Keypoints, o.Ignore = nil, false
			o.TrackID = posMark + uint64(role)
			cs.Objects = append(cs.Objects, o)
		}
	}
	a, err := aug(cs, rng, c.w, c.h)
	if err != nil {
		return err
	}
	if a.Image == nil || a.Image.Rect.Dx() != c.w || a.Image.Rect.Dy() != c.h {
		return fmt.Errorf("augmenter made a picture of %v, want %dx%d", a.Image.Bounds(), c.w, c.h)
	}
	plane := c.w * c.h
	for y := range c.h {
		for x := range c.w {
			o := a.Image.PixOffset(a.Image.Rect.Min.X+x, a.Image.Rect.Min.Y+y)
			for k := range 3 {
				dst.in[k*plane+y*c.w+x] = float32(a.Image.Pix[o+k]) / 255
			}
		}
	}
	for _, o := range a.Objects {
		if o.Mask == nil || o.Mask.Width != c.w || o.Mask.Height != c.h {
			continue
		}
		into, v := c.full, byte(1)
		if o.TrackID == ignMark {
			into, v = c.fullCare, 0
		}
		c.masks[0] = o.Mask.Decode(c.masks[0])
		for i, m := range c.masks[0] {
			if m != 0 {
				into[i] = v
			}
		}
	}
	c.reduce(dst)
	return nil
}

// reduce averages the input-resolution target over each output cell.
func (c *cropper) reduce(dst cropDst) {
	s := models.UNetStride
	inv := 1 / float32(s*s)
	for y := range c.oh {
		for x := range c.ow {
			var m, k float32
			for dy := range s {
				for dx := range s {
					i := (y*s+dy)*c.w + x*s + dx
					m += float32(c.full[i])
					k += float32(c.fullCare[i])
				}
			}
			dst.mask[y*c.ow+x] = m * inv
			dst.care[y*c.ow+x] = k * inv
		}
	}
}

// spec is the model's input as the bundle describes it.
func (c *cropper) spec() prep.Spec {
	return prep.Spec{Width: c.w, Height: c.h, Layout: prep.NCHW, Color: prep.RGB, Resize: prep.Stretch,
		Std: [3]float32{255, 255, 255}}
}

// setFrame makes c.f an rgb24 frame of img (kept while img stays the same).
func (c *cropper) setFrame(img *image.RGBA) error {
	if c.src == img {
		return nil
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	if w < 1 || h < 1 {
		return fmt.Errorf("empty image")
	}
	buf := grow(c.f.Planes[0], 3*w*h)
	for y := range h {
		row := img.Pix[img.PixOffset(img.Rect.Min.X, img.Rect.Min.Y+y):]
		for x := range w {
			copy(buf[(y*w+x)*3:(y*w+x)*3+3], row[4*x:4*x+3])
		}
	}
	c.f = frame.Frame{Width: w, Height: h, Format: frame.PixelFormatRGB24, Planes: [3][]byte{buf}, Strides: [3]int{3 * w}}
	c.src = img
	return nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

func growMasks(m [][]byte, n int) [][]byte {
	for len(m) < n {
		m = append(m, nil)
	}
	return m
}

// segEval scores the model on fixed validation crops.
type segEval struct {
	m        *models.UNet
	batch, n int
	gr       *models.UNetGraph
	vm       G.VM
	in       []float32
	inputs   []float32 // every crop's input
	samples  []dataset.Sample
	predBuf  []*image.Gray
}

// newSegEval cuts val's crops (true boxes, the centred person's instance
// mask as truth, at input resolution) once.
func newSegEval(m *models.UNet, batch int, val dataset.Source, ps []personRef) (*segEval, error) {
	gr, err := m.Build(batch)
	if err != nil {
		return nil, err
	}
	W, H := m.Cfg.InputW, m.Cfg.InputH
	e := &segEval{m: m, batch: batch, n: len(ps), gr: gr, in: make([]float32, batch*3*W*H)}
	if err := G.Let(gr.Input, tensor.New(tensor.WithShape(batch, 3, H, W), tensor.WithBacking(e.in))); err != nil {
		return nil, err
	}
	e.vm = G.NewTapeMachine(gr.G)
	cr := &cropper{w: W, h: H, ow: m.OutW(), oh: m.OutH()}
	plane, oplane := 3*W*H, m.OutW()*m.OutH()
	e.inputs = make([]float32, len(ps)*plane)
	mask, care := make([]float32, oplane), make([]float32, oplane)
	for k, p := range ps {
		s, err := val.At(p.i)
		if err != nil {
			e.close()
			return nil, fmt.Errorf("validation sample %d: %w", p.i, err)
		}
		if err := cr.crop(cropDst{in: e.inputs[k*plane : (k+1)*plane], mask: mask, care: care}, s, p.j, s.Objects[p.j].Box, nil, nil); err != nil {
			e.close()
			return nil, fmt.Errorf("validation sample %s: %w", s.ID, err)
		}
		g := image.NewGray(image.Rect(0, 0, W, H))
		copy(g.Pix, cr.full)
		e.samples = append(e.samples, dataset.Sample{ID: fmt.Sprintf("%s/%d", s.ID, p.j), Segmentation: g})
		e.predBuf = append(e.predBuf, image.NewGray(image.Rect(0, 0, W, H)))
	}
	return e, nil
}

func (e *segEval) close() { e.vm.Close() }

// run predicts every crop and scores the masks, each sampled from the
// probability map at the input's pixel centres as the selfie decoder does
// and thresholded at 0.5.
func (e *segEval) run(ctx context.Context) (*evaluate.SegmentationResult, error) {
	W, H := e.m.Cfg.InputW, e.m.Cfg.InputH
	ow, oh := e.m.OutW(), e.m.OutH()
	plane := 3 * W * H
	for i := 0; i < e.n; i += e.batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k := min(e.batch, e.n-i)
		clear(e.in)
		copy(e.in, e.inputs[i*plane:(i+k)*plane])
		if err := e.vm.RunAll(); err != nil {
			return nil, err
		}
		logits := e.gr.Logits.Value().Data().([]float32)
		for b := range k {
			maskFromLogits(e.predBuf[i+b], logits[b*ow*oh:(b+1)*ow*oh], ow, oh)
		}
		e.vm.Reset()
	}
	return evaluate.Segmentation(e.samples, e.predBuf, 2, -1)
}

// maskFromLogits thresholds the bilinearly sampled map of logits (ow x oh)
// at each pixel centre of dst at probability 0.5 (logit 0).
func maskFromLogits(dst *image.Gray, logits []float32, ow, oh int) {
	W, H := dst.Rect.Dx(), dst.Rect.Dy()
	ax, ay := float32(ow)/float32(W), float32(oh)/float32(H)
	for y := range H {
		fy := min(max((float32(y)+0.5)*ay-0.5, 0), float32(oh-1))
		y0 := int(fy)
		y1 := min(y0+1, oh-1)
		ty := fy - float32(y0)
		for x := range W {
			fx := min(max((float32(x)+0.5)*ax-0.5, 0), float32(ow-1))
			x0 := int(fx)
			x1 := min(x0+1, ow-1)
			tx := fx - float32(x0)
			p := func(i int) float32 { return 1 / (1 + float32(math.Exp(float64(-logits[i])))) }
			v := (p(y0*ow+x0)*(1-tx)+p(y0*ow+x1)*tx)*(1-ty) + (p(y1*ow+x0)*(1-tx)+p(y1*ow+x1)*tx)*ty
			dst.Pix[y*dst.Stride+x] = 0
			if v > 0.5 {
				dst.Pix[y*dst.Stride+x] = 1
			}
		}
	}
}

// WriteSegmenterBundle writes res's model into dir as an inference
// bundle of the selfie family: fp32.onnx and model.yaml (input 96x160 or
// the model's size, NCHW RGB / 255, stretched crops; label person; the
// best validation mIoU as the fp32 variant's accuracy). The bundle is
// named after dir.
func WriteSegmenterBundle(dir string, res *SegmentResult) error {
	if res == nil || res.Model == nil {
		return fmt.Errorf("writing segmenter bundle: no model")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing segmenter bundle: %w", err)
	}
	path := filepath.Join(dir, "fp32.onnx")
	name := filepath.Base(dir)
	if err := onnx.Write(path, res.Model.ONNX(name)); err != nil {
		return fmt.Errorf("writing segmenter bundle: %w", err)
	}
	b, err := inference.FromONNX(path, "selfie")
	if err != nil {
		return fmt.Errorf("writing segmenter bundle: %w", err)
	}
	b.Name, b.Source = name, "vigil train --task segment"
	b.Input = inference.InputSpec{Width: res.Model.Cfg.InputW, Height: res.Model.Cfg.InputH, Layout: "nchw", Color: "rgb",
		Resize: "stretch", Std: [3]float32{255, 255, 255}}
	b.Labels = []string{"person"}
	b.Variants[0].Accuracy = inference.Accuracy{Metric: "miou", Value: res.Best.MeanIoU}
	b.Created = time.Now().UTC()
	if err := b.Write(); err != nil {
		return fmt.Errorf("writing segmenter bundle: %w", err)
	}
	return nil
}
