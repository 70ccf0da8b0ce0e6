package training

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/decoders"
	"github.com/vigil-video/vigil/inference/prep"
	"github.com/vigil-video/vigil/internal/openblas"
	"github.com/vigil-video/vigil/training/dataset"
	"github.com/vigil-video/vigil/training/evaluate"
	"github.com/vigil-video/vigil/training/models"
)

// Augmenter turns a training sample into one of the network's input size
// w x h (geometric and photometric augmentation with letterboxing).
type Augmenter func(s dataset.Sample, rng *rand.Rand, w, h int) (dataset.Sample, error)

// DetectOptions configure TrainDetector.
type DetectOptions struct {
	Model models.CenterNetConfig
	// Init, when set, is the model training starts from (fine-tuning):
	// its weights are trained in place and its configuration replaces
	// Model.
	Init *models.CenterNet
	// Seed makes the run deterministic: weights, shuffling, augmentation.
	Seed uint64
	// Batch is the images per step (8) and Steps the number of steps.
	Batch, Steps int
	// Optimizer is adam (default), rmsprop or sgd (with Momentum 0.9).
	Optimizer string
	Momentum  float64
	// LR is the base learning rate (2e-3) and Schedule its course (cosine
	// with 5% warm-up by default).
	LR       float64
	Schedule Schedule
	// WeightDecay is the L2 penalty (1e-4); Clip bounds each gradient
	// value (0: none).
	WeightDecay, Clip float64
	// EvalEvery is how many steps pass between validations (and
	// checkpoints); Patience how many validations without a better mAP@0.5
	// stop the run early (0: never).
	EvalEvery, Patience int
	// CheckpointDir, when set, receives checkpoint.bin and state.json at
	// each validation; Resume continues from them.
	CheckpointDir string
	Resume        bool
	// Augment prepares training samples; nil only letterboxes them.
	Augment Augmenter
	// Progress, if set, is called after every step.
	Progress func(Progress)
}

// Progress is the state of a run after a step.
type Progress struct {
	Step, Steps  int
	Loss         float64
	Parts        models.LossParts
	LR           float64
	ImagesPerSec float64
	Elapsed      time.Duration
}

// Validation is one evaluation during training.
type Validation struct {
	Step  int     `json:"step"`
	MAP50 float64 `json:"map50"`
	MAP   float64 `json:"map"`
	Loss  float64 `json:"train_loss"`
}

// DetectResult is a finished run.
type DetectResult struct {
	Model *models.CenterNet
	// Steps run; Best is the validation whose weights the model keeps.
	Steps       int
	Best        Validation
	Validations []Validation
	// Losses are the training loss of every step; LRs their rates.
	Losses, LRs  []float64
	ImagesPerSec float64
	Elapsed      time.Duration
	// Final is the kept model's evaluation on the validation set, with the
	// samples and predictions it scored (for reports of the worst images).
	Final       *evaluate.DetectionResult
	Samples     []dataset.Sample
	Predictions [][]frame.Detection
}

func (o *DetectOptions) defaults() error {
	if o.Batch == 0 {
		o.Batch = 8
	}
	if o.Optimizer == "" {
		o.Optimizer = "adam"
	}
	if o.Momentum == 0 {
		o.Momentum = 0.9
	}
	if o.LR == 0 {
		o.LR = 2e-3
	}
	if o.Schedule.Kind == "" {
		o.Schedule = Schedule{Kind: "cosine", Warmup: o.Steps / 20, Floor: 0.02}
	}
	if o.WeightDecay == 0 {
		o.WeightDecay = 1e-4
	}
	if o.EvalEvery == 0 {
		o.EvalEvery = max(o.Steps/10, 1)
	}
	switch {
	case o.Batch < 1 || o.Steps < 1:
		return fmt.Errorf("training: batch %d and steps %d must be >= 1", o.Batch, o.Steps)
	case o.LR <= 0 || o.WeightDecay < 0 || o.Clip < 0:
		return fmt.Errorf("training: lr %g must be > 0, weight decay %g and clip %g >= 0", o.LR, o.WeightDecay, o.Clip)
	case o.Optimizer != "adam" && o.Optimizer != "rmsprop" && o.Optimizer != "sgd":
		return fmt.Errorf("training: optimizer must be adam, rmsprop or sgd, got %q", o.Optimizer)
	}
	return o.Schedule.Validate()
}

func (o *DetectOptions) solver() G.Solver {
	opts := []G.SolverOpt{G.WithLearnRate(o.LR)}
	if o.WeightDecay > 0 {
		opts = append(opts, G.WithL2Reg(o.WeightDecay))
	}
	if o.Clip > 0 {
		opts = append(opts, G.WithClip(o.Clip))
	}
	switch o.Optimizer {
	case "rmsprop":
		return G.NewRMSPropSolver(opts...)
	case "sgd":
		return G.NewMomentum(append(opts, G.WithMomentum(o.Momentum))...)
	}
	return G.NewAdamSolver(opts...)
}

// trainState is what state.json keeps for a resume.
type trainState struct {
	Step        int          `json:"step"`
	Best        Validation   `json:"best"`
	Validations []Validation `json:"validations"`
	Losses      []float64    `json:"losses"`
	LRs         []float64    `json:"lrs"`
}

// TrainDetector trains a CenterNet detector on train, validating on val
// (mAP@0.5 picks the weights kept), and returns the model with its history.
// Steps run on one goroutine's graph; the convolutions use every core.
func TrainDetector(ctx context.Context, opts DetectOptions, train, val dataset.Source) (*DetectResult, error) {
	err := opts.defaults()
	if err != nil {
		return nil, err
	}
	if train.Len() == 0 || val.Len() == 0 {
		return nil, fmt.Errorf("training: %d training and %d validation samples; need both", train.Len(), val.Len())
	}
	// The layers parallelise over the batch; OpenBLAS threads would fight
	// them for the same cores (and make sums depend on timing).
	openblas.SetThreads(1)
	m := opts.Init
	if m != nil {
		opts.Model = m.Cfg
	} else if m, err = models.NewCenterNet(opts.Model, opts.Seed); err != nil {
		return nil, err
	}
	res := &DetectResult{Model: m, Best: Validation{MAP50: -1}}
	start := 0
	if opts.Resume && opts.CheckpointDir != "" {
		var st trainState
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
	solver := opts.solver()
	in := make([]float32, opts.Batch*3*opts.Model.InputH*opts.Model.InputW)
	input := tensor.New(tensor.WithShape(opts.Batch, 3, opts.Model.InputH, opts.Model.InputW), tensor.WithBacking(in))
	if err := G.Let(gr.Input, input); err != nil {
		return nil, err
	}
	ev, err := newDetectEval(m, opts.Batch)
	if err != nil {
		return nil, err
	}
	defer ev.close()
	best := snapshot(m.Params)

	// Each step's samples: a seeded shuffle per pass over the data, the
	// rng of a step derived from the seed and the step, so a resumed run
	// sees the same batches as an uninterrupted one.
	order := func(pass int) []int {
		return rand.New(rand.NewPCG(opts.Seed, uint64(pass))).Perm(train.Len())
	}
	per := train.Len()
	began := time.Now()
	stale := 0
	objs := make([][]dataset.Object, opts.Batch)
	for step := start; step < opts.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rng := rand.New(rand.NewPCG(opts.Seed^0xa5a5, uint64(step)))
		perm := order(step * opts.Batch / per)
		plane := 3 * opts.Model.InputH * opts.Model.InputW
		for b := range opts.Batch {
			i := perm[(step*opts.Batch+b)%per]
			s, err := train.At(i)
			if err != nil {
				return nil, fmt.Errorf("training step %d: sample %d: %w", step, i, err)
			}
			if objs[b], err = prepare(in[b*plane:(b+1)*plane], s, opts, rng); err != nil {
				return nil, fmt.Errorf("training step %d: sample %s: %w", step, s.ID, err)
			}
		}
		loss.SetTargets(m.MakeTargets(objs))
		lr := opts.Schedule.Rate(opts.LR, step, opts.Steps)
		v, err := trainStep(vm, cost, solver, gr.Params, lr)
		if err != nil {
			return nil, fmt.Errorf("training step %d: %w", step, err)
		}
		res.Losses, res.LRs = append(res.Losses, v), append(res.LRs, lr)
		res.Steps = step + 1
		elapsed := time.Since(began)
		if opts.Progress != nil {
			opts.Progress(Progress{Step: step + 1, Steps: opts.Steps, Loss: v, Parts: loss.Parts(), LR: lr,
				ImagesPerSec: float64((step+1-start)*opts.Batch) / elapsed.Seconds(), Elapsed: elapsed})
		}
		if (step+1)%opts.EvalEvery != 0 && step+1 != opts.Steps {
			continue
		}
		st, _, _, err := ev.run(ctx, val)
		if err != nil {
			return nil, fmt.Errorf("validating at step %d: %w", step+1, err)
		}
		vr := Validation{Step: step + 1, MAP50: st.AP50, MAP: st.AP, Loss: meanTail(res.Losses, opts.EvalEvery)}
		res.Validations = append(res.Validations, vr)
		if vr.MAP50 > res.Best.MAP50 {
			res.Best, stale = vr, 0
			best = snapshot(m.Params)
		} else {
			stale++
		}
		if opts.CheckpointDir != "" {
			if err := saveCheckpoint(opts.CheckpointDir, m.Params, trainState{Step: step + 1, Best: res.Best, Validations: res.Validations, Losses: res.Losses, LRs: res.LRs}); err != nil {
				return nil, err
			}
		}
		if opts.Patience > 0 && stale >= opts.Patience {
			break
		}
	}
	restore(m.Params, best)
	if res.Final, res.Samples, res.Predictions, err = ev.run(ctx, val); err != nil {
		return nil, fmt.Errorf("validating the kept model: %w", err)
	}
	res.Elapsed = time.Since(began)
	if n := res.Steps - start; n > 0 {
		res.ImagesPerSec = float64(n*opts.Batch) / res.Elapsed.Seconds()
	}
	return res, nil
}

// prepare fills one image's input and returns its objects in input pixels.
func prepare(dst []float32, s dataset.Sample, opts DetectOptions, rng *rand.Rand) ([]dataset.Object, error) {
	if opts.Augment != nil {
		a, err := opts.Augment(s, rng, opts.Model.InputW, opts.Model.InputH)
		if err != nil {
			return nil, err
		}
		s = a
	}
	if s.Image == nil {
		return nil, errors.New("no image")
	}
	tf := letterbox(dst, s.Image, opts.Model.InputW, opts.Model.InputH)
	return toInput(s.Objects, tf), nil
}

func meanTail(v []float64, n int) float64 {
	n = min(n, len(v))
	if n == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v[len(v)-n:] {
		s += x
	}
	return s / float64(n)
}

func snapshot(ps models.Params) [][]float32 {
	out := make([][]float32, len(ps))
	for i, p := range ps {
		out[i] = append([]float32(nil), p.Data()...)
	}
	return out
}

func restore(ps models.Params, s [][]float32) {
	for i, p := range ps {
		copy(p.Data(), s[i])
	}
}

// saveCheckpoint writes a model's parameters to dir/checkpoint.bin and the
// run's state st to dir/state.json, each atomically.
func saveCheckpoint(dir string, ps models.Params, st any) error {
	if err := saveParams(dir, "checkpoint.bin", ps); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	if err := saveJSON(dir, "state.json", st); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	return nil
}

// loadCheckpoint reads what saveCheckpoint wrote into ps and st (a
// pointer).
func loadCheckpoint(dir string, ps models.Params, st any) error {
	if err := loadJSON(dir, "state.json", st); err != nil {
		return fmt.Errorf("resuming: %w", err)
	}
	if err := loadParams(dir, "checkpoint.bin", ps); err != nil {
		return fmt.Errorf("resuming: %w", err)
	}
	return nil
}

// detectEval runs the model over a validation source and scores it.
type detectEval struct {
	m     *models.CenterNet
	batch int
	gr    *models.Graph
	vm    G.VM
	in    []float32
	dec   decoders.Decoder
}

func newDetectEval(m *models.CenterNet, batch int) (*detectEval, error) {
	gr, err := m.Build(batch)
	if err != nil {
		return nil, err
	}
	e := &detectEval{m: m, batch: batch, gr: gr, in: make([]float32, batch*3*m.Cfg.InputH*m.Cfg.InputW)}
	if err := G.Let(gr.Input, tensor.New(tensor.WithShape(batch, 3, m.Cfg.InputH, m.Cfg.InputW), tensor.WithBacking(e.in))); err != nil {
		return nil, err
	}
	e.vm = G.NewTapeMachine(gr.G)
	e.dec, err = decoders.New("centernet", decoders.Options{InputW: m.Cfg.InputW, InputH: m.Cfg.InputH, Labels: m.Cfg.Classes, ScoreThreshold: 0.05})
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (e *detectEval) close() { e.vm.Close() }

// Predict runs the model on samples (at most the batch size) and returns
// each one's detections in its own pixels.
func (e *detectEval) predict(samples []dataset.Sample) ([][]frame.Detection, error) {
	plane := 3 * e.m.Cfg.InputH * e.m.Cfg.InputW
	tfs := make([]prep.Transform, len(samples))
	clear(e.in)
	for i, s := range samples {
		tfs[i] = letterbox(e.in[i*plane:(i+1)*plane], s.Image, e.m.Cfg.InputW, e.m.Cfg.InputH)
	}
	if err := e.vm.RunAll(); err != nil {
		return nil, err
	}
	defer e.vm.Reset()
	outs := headTensors(e.gr, e.m)
	preds := make([][]frame.Detection, len(samples))
	for i := range samples {
		d, err := e.dec.Decode(nil, outs, i, tfs[i])
		if err != nil {
			return nil, err
		}
		preds[i] = d
	}
	return preds, nil
}

// headTensors converts the graph's raw heads to the decoder's contract (as
// the ONNX export does): sigmoided heatmap, sizes and keypoint offsets in
// pixels.
func headTensors(gr *models.Graph, m *models.CenterNet) []decoders.Tensor {
	conv := func(name string, n *G.Node, f func(i int, v float32) float32) decoders.Tensor {
		src := n.Value().Data().([]float32)
		dst := make([]float32, len(src))
		for i, v := range src {
			dst[i] = f(i, v)
		}
		s := n.Shape()
		return decoders.Tensor{Name: name, Shape: []int64{int64(s[0]), int64(s[1]), int64(s[2]), int64(s[3])}, Data: dst}
	}
	const scale = models.RegScale
	outs := []decoders.Tensor{
		conv("heatmap", gr.Heatmap, func(_ int, v float32) float32 { return 1 / (1 + float32(math.Exp(float64(-v)))) }),
		conv("size", gr.Size, func(_ int, v float32) float32 { return v * scale }),
		conv("offset", gr.Offset, func(_ int, v float32) float32 { return v }),
	}
	if gr.Keypoints != nil {
		plane := m.OutH() * m.OutW()
		outs = append(outs, conv("keypoints", gr.Keypoints, func(i int, v float32) float32 {
			if (i/plane)%3 == 2 {
				return v
			}
			return v * scale
		}))
	}
	return outs
}

func (e *detectEval) run(ctx context.Context, val dataset.Source) (*evaluate.DetectionResult, []dataset.Sample, [][]frame.Detection, error) {
	var samples []dataset.Sample
	var preds [][]frame.Detection
	for i := 0; i < val.Len(); i += e.batch {
		if err := ctx.Err(); err != nil {
			return nil, nil, nil, err
		}
		var batch []dataset.Sample
		for j := i; j < min(i+e.batch, val.Len()); j++ {
			s, err := val.At(j)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("validation sample %d: %w", j, err)
			}
			batch = append(batch, s)
		}
		p, err := e.predict(batch)
		if err != nil {
			return nil, nil, nil, err
		}
		samples, preds = append(samples, batch...), append(preds, p...)
	}
	r, err := ScoreDetections(samples, preds, e.m.Cfg.Classes)
	return r, samples, preds, err
}

// ScoreDetections scores preds against the samples' objects with COCO box
// mAP over the given classes, matching classes by label (a data set's class
// indices, e.g. COCO's car = 2, need not be the model's); objects and
// predictions of other labels are left out.
func ScoreDetections(samples []dataset.Sample, preds [][]frame.Detection, classes []string) (*evaluate.DetectionResult, error) {
	index := func(label string) int {
		for i, c := range classes {
			if c == label {
				return i
			}
		}
		return -1
	}
	truth := make([]dataset.Sample, len(samples))
	mapped := make([][]frame.Detection, len(preds))
	for i, s := range samples {
		s.Objects = nil
		for _, o := range samples[i].Objects {
			if o.Class = index(o.Label); o.Class >= 0 {
				s.Objects = append(s.Objects, o)
			}
		}
		truth[i] = s
		for _, d := range preds[i] {
			if d.Class = index(d.Label); d.Class >= 0 {
				mapped[i] = append(mapped[i], d)
			}
		}
	}
	return evaluate.Detection(truth, mapped, evaluate.DetectionOptions{Labels: classes})
}
