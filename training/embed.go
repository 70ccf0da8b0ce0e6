package training

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference"
	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/internal/openblas"
	"github.com/vigil-video/vigil/training/dataset"
	"github.com/vigil-video/vigil/training/evaluate"
	"github.com/vigil-video/vigil/training/models"
)

// CropAugment is the random change each training crop gets; the zero value
// changes nothing. Validation crops are never augmented.
type CropAugment struct {
	// Flip mirrors half the crops left to right.
	Flip bool
	// Shift moves each edge of the box by up to this fraction of the
	// box's size (0.05: 5%), a detector's box jitter.
	Shift float32
	// Brightness and Contrast change them by up to this fraction; Color
	// scales each channel by up to this fraction (white balance).
	Brightness, Contrast, Color float32
}

// DefaultCropAugment is a mild augmentation for person crops.
var DefaultCropAugment = CropAugment{Flip: true, Shift: 0.05, Brightness: 0.2, Contrast: 0.2, Color: 0.1}

// EmbedOptions configure TrainEmbedder.
type EmbedOptions struct {
	Model models.ReIDConfig
	// Seed makes the run deterministic: weights, batches, augmentation.
	Seed uint64
	// P identities of K crops each make a batch (8 x 4, as Hermans et
	// al. use 18 x 4 and 32 x 4).
	P, K int
	// Steps is the number of steps.
	Steps int
	// Optimizer is adam (default), rmsprop or sgd (with Momentum 0.9).
	Optimizer string
	Momentum  float64
	// LR is the base learning rate (1e-3) and Schedule its course (cosine
	// with 5% warm-up by default).
	LR       float64
	Schedule Schedule
	// WeightDecay is the L2 penalty (1e-4); Clip bounds each gradient
	// value (0: none).
	WeightDecay, Clip float64
	// Margin is the triplet hinge margin; 0 (the default) is the soft
	// margin.
	Margin float64
	// MinHeight skips persons whose box is lower than this many pixels
	// (32). Ignore objects (mostly hidden or tiny: see
	// dataset.SynthOptions.MinVisible) and objects without a TrackID are
	// always skipped.
	MinHeight float32
	// EvalEvery is how many steps pass between validations (and
	// checkpoints); Patience how many validations without a better mAP
	// stop the run early (0: never).
	EvalEvery, Patience int
	// CheckpointDir, when set, receives checkpoint.bin, best.bin and
	// state.json at each validation; Resume continues from them.
	CheckpointDir string
	Resume        bool
	// Augment changes the training crops.
	Augment CropAugment
	// Progress, if set, is called after every step.
	Progress func(EmbedProgress)
}

// EmbedProgress is the state of a run after a step.
type EmbedProgress struct {
	Step, Steps int
	Loss        float64
	Triplets    models.TripletStats
	LR          float64
	CropsPerSec float64
	Elapsed     time.Duration
}

// EmbedValidation is one evaluation during training.
type EmbedValidation struct {
	Step  int     `json:"step"`
	Rank1 float64 `json:"rank1"`
	Rank5 float64 `json:"rank5"`
	MAP   float64 `json:"map"`
	Loss  float64 `json:"train_loss"`
}

// EmbedResult is a finished run.
type EmbedResult struct {
	Model *models.ReID
	// Steps run; Best is the validation whose weights the model keeps
	// (the highest mAP).
	Steps       int
	Best        EmbedValidation
	Validations []EmbedValidation
	// Baseline is the untrained (initial) network's score on the same
	// validation set.
	Baseline *evaluate.ReIDResult
	// Losses are the training loss of every step; LRs their rates.
	Losses, LRs []float64
	CropsPerSec float64
	Elapsed     time.Duration
	// TrainIdentities and TrainCrops count what training drew from;
	// ValIdentities, ValCrops and ValFrames what validation scored.
	TrainIdentities, TrainCrops        int
	ValIdentities, ValCrops, ValFrames int
}

func (o *EmbedOptions) defaults() error {
	if o.P == 0 {
		o.P = 8
	}
	if o.K == 0 {
		o.K = 4
	}
	if o.Optimizer == "" {
		o.Optimizer = "adam"
	}
	if o.Momentum == 0 {
		o.Momentum = 0.9
	}
	if o.LR == 0 {
		o.LR = 1e-3
	}
	if o.Schedule.Kind == "" {
		o.Schedule = Schedule{Kind: "cosine", Warmup: o.Steps / 20, Floor: 0.02}
	}
	if o.WeightDecay == 0 {
		o.WeightDecay = 1e-4
	}
	if o.MinHeight == 0 {
		o.MinHeight = 32
	}
	if o.EvalEvery == 0 {
		o.EvalEvery = max(o.Steps/10, 1)
	}
	a := o.Augment
	switch {
	case o.P < 2 || o.K < 2:
		return fmt.Errorf("training embedder: p %d and k %d must be >= 2", o.P, o.K)
	case o.Steps < 1:
		return fmt.Errorf("training embedder: steps %d must be >= 1", o.Steps)
	case o.LR <= 0 || o.WeightDecay < 0 || o.Clip < 0 || o.Margin < 0:
		return fmt.Errorf("training embedder: lr %g must be > 0, weight decay %g, clip %g and margin %g >= 0", o.LR, o.WeightDecay, o.Clip, o.Margin)
	case o.Optimizer != "adam" && o.Optimizer != "rmsprop" && o.Optimizer != "sgd":
		return fmt.Errorf("training embedder: optimizer must be adam, rmsprop or sgd, got %q", o.Optimizer)
	case o.MinHeight < 0:
		return fmt.Errorf("training embedder: min height %g is negative", o.MinHeight)
	case a.Shift < 0 || a.Shift > 0.5 || a.Brightness < 0 || a.Brightness > 1 || a.Contrast < 0 || a.Contrast > 1 || a.Color < 0 || a.Color > 1:
		return fmt.Errorf("training embedder: augment %+v: shift must be in [0, 0.5], the others in [0, 1]", a)
	}
	return o.Schedule.Validate()
}

// embedState is what state.json keeps for a resume.
type embedState struct {
	Step        int               `json:"step"`
	Best        EmbedValidation   `json:"best"`
	Validations []EmbedValidation `json:"validations"`
	Losses      []float64         `json:"losses"`
	LRs         []float64         `json:"lrs"`
}

// personCrop is one usable person box.
type personCrop struct {
	img   *image.RGBA
	box   frame.Box
	frame string // the sample's ID
}

// identityCrops are the crops of one identity, in sample order.
type identityCrops struct {
	key   string // sequence and track
	crops []personCrop
}

// collectCrops finds the persons of src worth a crop and groups them by
// identity (Sequence, TrackID), keeping identities with at least 2 crops,
// in order of first appearance.
func collectCrops(ctx context.Context, src dataset.Source, minHeight float32) ([]identityCrops, int, error) {
	index := map[string]int{}
	var ids []identityCrops
	frames := 0
	for i := range src.Len() {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		s, err := src.At(i)
		if err != nil {
			return nil, 0, fmt.Errorf("collecting crops: sample %d: %w", i, err)
		}
		if s.Image == nil {
			continue
		}
		used := false
		r := s.Image.Rect
		for _, o := range s.Objects {
			if o.Label != "person" || o.Ignore || o.TrackID == 0 {
				continue
			}
			b := frame.Box{
				X1: max(o.Box.X1, 0), Y1: max(o.Box.Y1, 0),
				X2: min(o.Box.X2, float32(r.Dx())), Y2: min(o.Box.Y2, float32(r.Dy())),
			}
			if b.H() < minHeight || b.W() < 2 {
				continue
			}
			key := fmt.Sprintf("%s#%d", s.Sequence, o.TrackID)
			k, ok := index[key]
			if !ok {
				k = len(ids)
				index[key] = k
				ids = append(ids, identityCrops{key: key})
			}
			ids[k].crops = append(ids[k].crops, personCrop{img: s.Image, box: b, frame: s.ID})
			used = true
		}
		if used {
			frames++
		}
	}
	ids = slices.DeleteFunc(ids, func(c identityCrops) bool { return len(c.crops) < 2 })
	return ids, frames, nil
}

// cropInput writes box of img into dst [3, h, w] (RGB / 255), stretched
// with bilinear sampling at pixel centres, as the server's stretch
// pre-processing does; flip mirrors it.
func cropInput(dst []float32, img *image.RGBA, box frame.Box, w, h int, flip bool) {
	sw, sh := img.Rect.Dx(), img.Rect.Dy()
	sx, sy := box.W()/float32(w), box.H()/float32(h)
	plane := w * h
	for y := range h {
		fy := box.Y1 + (float32(y)+0.5)*sy - 0.5
		y0 := min(max(int(math.Floor(float64(fy))), 0), sh-1)
		y1 := min(y0+1, sh-1)
		ty := min(max(fy-float32(y0), 0), 1)
		for x := range w {
			fx := box.X1 + (float32(x)+0.5)*sx - 0.5
			x0 := min(max(int(math.Floor(float64(fx))), 0), sw-1)
			x1 := min(x0+1, sw-1)
			tx := min(max(fx-float32(x0), 0), 1)
			o00, o01 := img.PixOffset(x0+img.Rect.Min.X, y0+img.Rect.Min.Y), img.PixOffset(x1+img.Rect.Min.X, y0+img.Rect.Min.Y)
			o10, o11 := img.PixOffset(x0+img.Rect.Min.X, y1+img.Rect.Min.Y), img.PixOffset(x1+img.Rect.Min.X, y1+img.Rect.Min.Y)
			ox := x
			if flip {
				ox = w - 1 - x
			}
			i := y*w + ox
			for c := range 3 {
				a := float32(img.Pix[o00+c])*(1-tx) + float32(img.Pix[o01+c])*tx
				b := float32(img.Pix[o10+c])*(1-tx) + float32(img.Pix[o11+c])*tx
				dst[c*plane+i] = (a*(1-ty) + b*ty) / 255
			}
		}
	}
}

// augmentCrop writes an augmented crop of c into dst.
func augmentCrop(dst []float32, c personCrop, a CropAugment, rng *rand.Rand, w, h int) {
	b := c.box
	if a.Shift > 0 {
		bw, bh := b.W(), b.H()
		j := func() float32 { return (2*rng.Float32() - 1) * a.Shift }
		b = frame.Box{X1: b.X1 + j()*bw, Y1: b.Y1 + j()*bh, X2: b.X2 + j()*bw, Y2: b.Y2 + j()*bh}
		if b.W() < 2 || b.H() < 2 {
			b = c.box
		}
	}
	flip := a.Flip && rng.IntN(2) == 1
	cropInput(dst, c.img, b, w, h, flip)
	if a.Brightness == 0 && a.Contrast == 0 && a.Color == 0 {
		return
	}
	u := func(r float32) float32 { return 1 + (2*rng.Float32()-1)*r }
	bright, contrast := u(a.Brightness), u(a.Contrast)
	plane := w * h
	for ch := range 3 {
		gain := bright * u(a.Color)
		for i, v := range dst[ch*plane : (ch+1)*plane] {
			dst[ch*plane+i] = min(max(((v*gain)-0.5)*contrast+0.5, 0), 1)
		}
	}
}

// TrainEmbedder trains a re-ID embedder on the persons of train with a
// batch-hard triplet loss on PK batches, validating by rank-1 and mAP (the
// highest mAP picks the weights kept) on the persons of val, whose
// identities should be disjoint from train's (other sequences): the first
// third of each validation identity's crops are the queries, the last third
// the gallery. An identity is a (Sequence, TrackID) pair seen in at least 2
// samples. The crops keep the samples' pictures in memory for the run.
func TrainEmbedder(ctx context.Context, opts EmbedOptions, train, val dataset.Source) (*EmbedResult, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	m, err := models.NewReID(opts.Model, opts.Seed)
	if err != nil {
		return nil, err
	}
	opts.Model = m.Cfg
	ids, _, err := collectCrops(ctx, train, opts.MinHeight)
	if err != nil {
		return nil, fmt.Errorf("training embedder: %w", err)
	}
	if len(ids) < opts.P {
		return nil, fmt.Errorf("training embedder: %d training identities with 2 or more crops; a batch needs p = %d", len(ids), opts.P)
	}
	valIDs, valFrames, err := collectCrops(ctx, val, opts.MinHeight)
	if err != nil {
		return nil, fmt.Errorf("training embedder: validation: %w", err)
	}
	if len(valIDs) < 2 {
		return nil, fmt.Errorf("training embedder: %d validation identities with 2 or more crops; need 2", len(valIDs))
	}
	openblas.SetThreads(1) // the layers parallelise over the batch
	res := &EmbedResult{Model: m, Best: EmbedValidation{MAP: -1}, TrainIdentities: len(ids), ValIdentities: len(valIDs), ValFrames: valFrames}
	for _, id := range ids {
		res.TrainCrops += len(id.crops)
	}
	for _, id := range valIDs {
		res.ValCrops += len(id.crops)
	}
	batch := opts.P * opts.K
	ev, err := newEmbedEval(m, batch)
	if err != nil {
		return nil, err
	}
	defer ev.close()
	if res.Baseline, err = ev.run(ctx, valIDs); err != nil {
		return nil, fmt.Errorf("validating the initial weights: %w", err)
	}
	best := snapshot(m.Params)
	start := 0
	if opts.Resume && opts.CheckpointDir != "" {
		var st embedState
		if err := loadJSON(opts.CheckpointDir, "state.json", &st); err != nil {
			return nil, fmt.Errorf("resuming: %w", err)
		}
		if err := loadParams(opts.CheckpointDir, "best.bin", m.Params); err != nil {
			return nil, fmt.Errorf("resuming: %w", err)
		}
		best = snapshot(m.Params)
		if err := loadParams(opts.CheckpointDir, "checkpoint.bin", m.Params); err != nil {
			return nil, fmt.Errorf("resuming: %w", err)
		}
		start = st.Step
		res.Steps = start
		res.Best, res.Validations, res.Losses, res.LRs = st.Best, st.Validations, st.Losses, st.LRs
	}

	gr, err := m.BuildTraining(batch)
	if err != nil {
		return nil, err
	}
	loss, cost, err := m.AddTripletLoss(gr, opts.Margin)
	if err != nil {
		return nil, err
	}
	if _, err := G.Grad(cost, gr.Params...); err != nil {
		return nil, fmt.Errorf("training embedder: gradients: %w", err)
	}
	vm := G.NewTapeMachine(gr.G, G.BindDualValues(gr.Params...))
	defer vm.Close()
	solver := (&DetectOptions{Optimizer: opts.Optimizer, Momentum: opts.Momentum, LR: opts.LR, WeightDecay: opts.WeightDecay, Clip: opts.Clip}).solver()
	w, h := m.Cfg.InputW, m.Cfg.InputH
	plane := 3 * w * h
	in := make([]float32, batch*plane)
	if err := G.Let(gr.Input, tensor.New(tensor.WithShape(batch, 3, h, w), tensor.WithBacking(in))); err != nil {
		return nil, err
	}
	targets := make([]int, batch)
	began := time.Now()
	stale := 0
	for step := start; step < opts.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// A step's batch depends only on the seed and the step, so a
		// resumed run sees the same batches as an uninterrupted one.
		rng := rand.New(rand.NewPCG(opts.Seed^0x7e1d, uint64(step)))
		pk(rng, ids, opts.P, opts.K, func(b, id int, c personCrop) {
			targets[b] = id
			augmentCrop(in[b*plane:(b+1)*plane], c, opts.Augment, rng, w, h)
		})
		loss.SetTargets(targets)
		lr := opts.Schedule.Rate(opts.LR, step, opts.Steps)
		v, err := trainStep(vm, cost, solver, gr.Params, lr)
		if err != nil {
			return nil, fmt.Errorf("training embedder step %d: %w", step, err)
		}
		res.Losses, res.LRs = append(res.Losses, v), append(res.LRs, lr)
		res.Steps = step + 1
		elapsed := time.Since(began)
		if opts.Progress != nil {
			opts.Progress(EmbedProgress{Step: step + 1, Steps: opts.Steps, Loss: v, Triplets: loss.Stats(), LR: lr,
				CropsPerSec: float64((step+1-start)*batch) / elapsed.Seconds(), Elapsed: elapsed})
		}
		if (step+1)%opts.EvalEvery != 0 && step+1 != opts.Steps {
			continue
		}
		r, err := ev.run(ctx, valIDs)
		if err != nil {
			return nil, fmt.Errorf("validating at step %d: %w", step+1, err)
		}
		vr := EmbedValidation{Step: step + 1, Rank1: r.Rank1, Rank5: r.Rank5, MAP: r.MAP, Loss: meanTail(res.Losses, opts.EvalEvery)}
		res.Validations = append(res.Validations, vr)
		if vr.MAP > res.Best.MAP {
			res.Best, stale = vr, 0
			best = snapshot(m.Params)
		} else {
			stale++
		}
		if opts.CheckpointDir != "" {
			if err := saveParams(opts.CheckpointDir, "checkpoint.bin", m.Params); err != nil {
				return nil, err
			}
			cur := snapshot(m.Params)
			restore(m.Params, best)
			err := saveParams(opts.CheckpointDir, "best.bin", m.Params)
			restore(m.Params, cur)
			if err != nil {
				return nil, err
			}
			if err := saveJSON(opts.CheckpointDir, "state.json", embedState{Step: step + 1, Best: res.Best, Validations: res.Validations, Losses: res.Losses, LRs: res.LRs}); err != nil {
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
		res.CropsPerSec = float64(n*batch) / res.Elapsed.Seconds()
	}
	return res, nil
}

// pk draws a batch of p distinct identities with k crops each (without
// replacement where an identity has k or more), calling fill for batch
// slot b with the identity's index and the crop.
func pk(rng *rand.Rand, ids []identityCrops, p, k int, fill func(b, id int, c personCrop)) {
	chosen := rng.Perm(len(ids))[:p]
	b := 0
	for _, id := range chosen {
		crops := ids[id].crops
		var pick []int
		if len(crops) >= k {
			pick = rng.Perm(len(crops))[:k]
		} else {
			pick = make([]int, k)
			for i := range pick {
				pick[i] = rng.IntN(len(crops))
			}
		}
		for _, j := range pick {
			fill(b, id, crops[j])
			b++
		}
	}
}

// embedEval embeds validation crops and scores them.
type embedEval struct {
	m     *models.ReID
	batch int
	gr    *models.ReIDGraph
	vm    G.VM
	in    []float32
}

func newEmbedEval(m *models.ReID, batch int) (*embedEval, error) {
	gr, err := m.Build(batch)
	if err != nil {
		return nil, err
	}
	e := &embedEval{m: m, batch: batch, gr: gr, in: make([]float32, batch*3*m.Cfg.InputH*m.Cfg.InputW)}
	if err := G.Let(gr.Input, tensor.New(tensor.WithShape(batch, 3, m.Cfg.InputH, m.Cfg.InputW), tensor.WithBacking(e.in))); err != nil {
		return nil, err
	}
	e.vm = G.NewTapeMachine(gr.G)
	return e, nil
}

func (e *embedEval) close() { e.vm.Close() }

// embed returns the features of crops (at most the batch size).
func (e *embedEval) embed(crops []personCrop) ([][]float32, error) {
	w, h := e.m.Cfg.InputW, e.m.Cfg.InputH
	plane := 3 * w * h
	clear(e.in)
	for i, c := range crops {
		cropInput(e.in[i*plane:(i+1)*plane], c.img, c.box, w, h, false)
	}
	if err := e.vm.RunAll(); err != nil {
		return nil, err
	}
	defer e.vm.Reset()
	f := e.gr.Features.Value().Data().([]float32)
	d := e.m.Cfg.Dim
	out := make([][]float32, len(crops))
	for i := range crops {
		out[i] = append([]float32(nil), f[i*d:(i+1)*d]...)
	}
	return out, nil
}

// run embeds the crops of ids with the model and scores them (scoreReID).
func (e *embedEval) run(ctx context.Context, ids []identityCrops) (*evaluate.ReIDResult, error) {
	return scoreReID(ctx, ids, e.batch, e.embed)
}

// scoreReID embeds the crops of ids, up to batch at a time, and scores
// re-ID across time: the first third of each identity's crops (in sample
// order) are queries, the last third the gallery; the middle third is left
// out, so a query's nearest correct match is a third of the track away,
// not the next frame.
func scoreReID(ctx context.Context, ids []identityCrops, batch int, embed func([]personCrop) ([][]float32, error)) (*evaluate.ReIDResult, error) {
	var all []personCrop
	var idOf []uint64
	var isQuery []bool
	for i, id := range ids {
		n := len(id.crops)
		third := max(n/3, 1)
		for j, c := range id.crops {
			if j >= third && j < n-third {
				continue
			}
			all = append(all, c)
			idOf = append(idOf, uint64(i+1))
			isQuery = append(isQuery, j < third)
		}
	}
	var q, g []evaluate.Embedding
	for i := 0; i < len(all); i += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		j := min(i+batch, len(all))
		vs, err := embed(all[i:j])
		if err != nil {
			return nil, err
		}
		if len(vs) != j-i {
			return nil, fmt.Errorf("scoring re-ID: %d embeddings for %d crops", len(vs), j-i)
		}
		for k, v := range vs {
			em := evaluate.Embedding{Vector: v, Identity: idOf[i+k], Frame: all[i+k].frame}
			if isQuery[i+k] {
				q = append(q, em)
			} else {
				g = append(g, em)
			}
		}
	}
	return evaluate.ReID(q, g)
}

// EmbedderBundleName is the name WriteEmbedderBundle gives the model.
const EmbedderBundleName = "vigil-reid"

// WriteEmbedderBundle writes a trained embedder as a model bundle in dir:
// fp32.onnx and model.yaml of the embedding family, with the network's
// input (RGB / 255, NCHW, stretched crops) and its best validation rank-1
// as the variant's accuracy.
func WriteEmbedderBundle(dir string, res *EmbedResult) error {
	if res == nil || res.Model == nil {
		return errors.New("writing embedder bundle: no model")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing embedder bundle: %w", err)
	}
	path := filepath.Join(dir, "fp32.onnx")
	if err := onnx.Write(path, res.Model.ONNX(EmbedderBundleName)); err != nil {
		return fmt.Errorf("writing embedder bundle: %w", err)
	}
	b, err := inference.FromONNX(path, "embedding")
	if err != nil {
		return fmt.Errorf("writing embedder bundle: %w", err)
	}
	cfg := res.Model.Cfg
	b.Name = EmbedderBundleName
	b.Input = inference.InputSpec{Width: cfg.InputW, Height: cfg.InputH, Layout: "nchw", Color: "rgb", Resize: "stretch", Std: [3]float32{255, 255, 255}}
	b.Labels = []string{"person"}
	b.Variants[0].Accuracy = inference.Accuracy{Metric: "rank1", Value: max(res.Best.Rank1, 0), Frames: res.ValFrames}
	b.Created = time.Now().UTC()
	b.Source = fmt.Sprintf("vigil training: re-ID embedder, %d steps, best at step %d (rank-1 %.3f, mAP %.3f)", res.Steps, res.Best.Step, res.Best.Rank1, res.Best.MAP)
	if err := b.Write(); err != nil {
		return fmt.Errorf("writing embedder bundle: %w", err)
	}
	return nil
}
