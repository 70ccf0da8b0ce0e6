package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference"
	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/training"
	"github.com/vigil-video/vigil/training/augment"
	"github.com/vigil-video/vigil/training/dataset"
	"github.com/vigil-video/vigil/training/evaluate"
	"github.com/vigil-video/vigil/training/models"
	"github.com/vigil-video/vigil/training/report"
	"github.com/vigil-video/vigil/training/store"
)

const retrainUsage = `usage: vigil retrain --base BUNDLE --data DIR... --eval SOURCE --out BUNDLE [flags]

Fine-tunes a detector (family centernet: builtin:detector or a bundle made
by vigil train or vigil retrain) on hard frames a server mined
(--data: store folders; synth:// URLs and COCO .json files too), writes the
candidate as a bundle (fp32 and int8 variants, report/, summary.json),
evaluates the base and the candidate on the same held-out --eval set (and
--keep-eval) through the serving engine, prints the comparison, and, with
--registry and --name, publishes the candidate as the model's next version
and promotes it, only if it gains at least --margin mAP@0.5 on --eval and
loses at most --max-drop on --keep-eval.

Training validates (and keeps its best weights) on 15% of the training data,
never on --eval or --keep-eval.

synth:// sources take frames=N (frames kept, every 7th of the scene; default
100 for --eval/--keep-eval/--replay, 40 for --data) and sequences=N (scenes
with seeds seed, seed+1, ...; default 1) besides the scene parameters.

Exit status: 0 when published (or, without --registry, when the gate
passed), 3 when the gate refused the candidate ("not published: ..."), 1 on
errors, 2 on bad flags.
`

// exitError carries a command's exit status; errors.As finds it.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// ExitCode is the process's exit status.
func (e *exitError) ExitCode() int { return e.code }

// notPublishedCode is the exit status of a candidate the gate refused.
const notPublishedCode = 3

func runRetrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("retrain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), retrainUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	base := fs.String("base", "", "the detector to start from: a bundle folder, a registry model folder or builtin:detector (default: the active version of --name in --registry)")
	var data, replay stringList
	fs.Var(&data, "data", "training `source`: a hard-frame store folder, a synth:// URL or a COCO .json file; repeatable (required)")
	labels := fs.String("labels", "both", "labels of store entries to train on: pre (the model's pre-labels, self-training), corrected (only entries corrected by vigil dataset import) or both")
	weightMiner := fs.String("weight-miner", "", "sampling weights of store entries by miner, e.g. band=1,track_gap=2,random=0 (others 1; 0 leaves a miner out)")
	minScore := fs.Float64("min-score", 0.3, "pre-labels scoring below this are neither rewarded nor punished (ignored regions)")
	evalSrc := fs.String("eval", "", "held-out `source` with ground truth the gate compares on, never training data (required)")
	keepEval := fs.String("keep-eval", "", "second held-out `source` that must not get worse by more than --max-drop (e.g. the base domain)")
	margin := fs.Float64("margin", 0.02, "mAP@0.5 the candidate must gain on --eval to be published")
	maxDrop := fs.Float64("max-drop", 0.02, "mAP@0.5 the candidate may lose on --keep-eval")
	gateVariant := fs.String("gate-variant", "fp32", "variant the gate compares: fp32 or int8")
	steps := fs.Int("steps", 300, "training steps")
	lr := fs.Float64("lr", 5e-4, "base learning rate (cosine schedule, 10% warm-up)")
	batch := fs.Int("batch", 8, "images per step")
	seed := fs.Uint64("seed", 1, "seed of the split, the sampling and the augmentation")
	evalEvery := fs.Int("eval-every", 50, "steps between validations on the training data's validation split")
	patience := fs.Int("patience", 0, "validations without a better mAP@0.5 before stopping early (0: never)")
	fs.Var(&replay, "replay", "`source` of the base model's domain mixed into training so it does not forget it (synth:// URL, COCO .json or store); repeatable")
	augmentFlag := fs.String("augment", "off", "augment training images (flip, scale, crop, rotation, colour, noise, blur, JPEG): on or off. Off by default: the one measured run with it on (300 steps, night synth + day replay) kept day mAP@0.5 within 6 points but halved day mAP@[.5:.95] (0.63 to 0.31), and vigil train measured 0.91 without and 0.79 with on generated scenes")
	out := fs.String("out", "", "candidate bundle `folder` to write (required)")
	registry := fs.String("registry", "", "model registry `folder` to publish to (with --name)")
	name := fs.String("name", "", "model name in --registry")
	int8Frames := fs.Int("int8-frames", 60, "calibrate the int8 variant on this many training frames, measured on half as many more (0: none; needs ONNX Runtime)")
	device := fs.String("device", "cpu", "device profile of the evaluation: cpu, purego, cuda:N or tensorrt:N")
	ortLib := fs.String("ort-library", "", "path of libonnxruntime.so")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *base == "" && *registry != "" && *name != "" {
		*base = filepath.Join(*registry, *name)
	}
	if err := requireFlags(fs, "base", *base, "data", strings.Join(data, ","), "eval", *evalSrc, "out", *out); err != nil {
		return err
	}
	labelSet, err := training.ParseLabelSet(*labels)
	if err != nil {
		return fmt.Errorf("--labels: %w", err)
	}
	weights, err := parseMinerWeights(*weightMiner)
	if err != nil {
		return fmt.Errorf("--weight-miner %s: %w", *weightMiner, err)
	}
	switch {
	case (*registry == "") != (*name == ""):
		return fmt.Errorf("--registry and --name go together")
	case *steps < 1:
		return fmt.Errorf("--steps %d: must be >= 1", *steps)
	case *batch < 1:
		return fmt.Errorf("--batch %d: must be >= 1", *batch)
	case !(*lr > 0):
		return fmt.Errorf("--lr %g: must be > 0", *lr)
	case !(*margin >= -1 && *margin <= 1):
		return fmt.Errorf("--margin %g: must be in [-1, 1]", *margin)
	case !(*maxDrop >= 0 && *maxDrop <= 1):
		return fmt.Errorf("--max-drop %g: must be in [0, 1]", *maxDrop)
	case *minScore < 0 || *minScore > 1:
		return fmt.Errorf("--min-score %g: must be in [0, 1]", *minScore)
	case *gateVariant != "fp32" && *gateVariant != "int8":
		return fmt.Errorf("--gate-variant %s: must be fp32 or int8", *gateVariant)
	case *gateVariant == "int8" && *int8Frames == 0:
		return fmt.Errorf("--gate-variant int8 needs --int8-frames > 0")
	case *int8Frames < 0:
		return fmt.Errorf("--int8-frames %d: must be >= 0", *int8Frames)
	case *evalEvery < 1:
		return fmt.Errorf("--eval-every %d: must be >= 1", *evalEvery)
	case *augmentFlag != "on" && *augmentFlag != "off":
		return fmt.Errorf("--augment %s: must be on or off", *augmentFlag)
	}
	if *name != "" && !validModelName(*name) {
		return fmt.Errorf("--name %q: must be 1-64 of [A-Za-z0-9_.-]", *name)
	}
	if err := checkHeldOut(*evalSrc, *keepEval, data, replay); err != nil {
		return err
	}
	began := time.Now()

	// The base model, in Go for training and as a bundle for serving.
	baseBundle, err := inference.OpenBundle(*base, "")
	if err != nil {
		return fmt.Errorf("--base %s: %w", *base, err)
	}
	if baseBundle.Family != "centernet" {
		return fmt.Errorf("--base %s: family %s; retrain fine-tunes Vigil's own detectors (family centernet)", *base, baseBundle.Family)
	}
	fp32, ok := baseBundle.Variant("fp32")
	if !ok {
		return fmt.Errorf("--base %s: no fp32 variant", *base)
	}
	proto, err := onnx.Read(baseBundle.Path(fp32))
	if err != nil {
		return fmt.Errorf("--base %s: %w", *base, err)
	}
	baseModel, err := models.CenterNetFromONNX(proto, baseBundle.Labels)
	if err != nil {
		return fmt.Errorf("--base %s: %w", *base, err)
	}
	classes := baseModel.Cfg.Classes

	// Data: stores and other sources, the replay, the held-out sets.
	fd := training.FinetuneData{Labels: labelSet, MinerWeights: weights, MinScore: float32(*minScore)}
	for _, d := range data {
		src, st, err := openRetrainSource("data", d, 40)
		if err != nil {
			return err
		}
		if st != nil {
			fd.Stores = append(fd.Stores, st)
		} else {
			fd.Labelled = append(fd.Labelled, src)
		}
	}
	var replays []dataset.Source
	for _, r := range replay {
		src, _, err := openRetrainSource("replay", r, 100)
		if err != nil {
			return err
		}
		replays = append(replays, src)
	}
	if len(replays) > 0 {
		fd.Replay = dataset.Concat(replays...)
	}
	set, err := fd.Build(classes, *seed)
	if err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	fmt.Fprintf(stderr, "data: %d training and %d validation samples (store %d+%d, labelled %d+%d, replay %d+%d); store entries by miner %v, %d corrected, labels %s\n",
		set.Train.Len(), set.Val.Len(), set.StoreTrain, set.StoreVal, set.LabelledTrain, set.LabelledVal, set.ReplayTrain, set.ReplayVal,
		set.Miners, set.Corrected, labelSet)
	evalData, _, err := openRetrainSource("eval", *evalSrc, 100)
	if err != nil {
		return err
	}
	var keepData dataset.Source
	if *keepEval != "" {
		if keepData, _, err = openRetrainSource("keep-eval", *keepEval, 100); err != nil {
			return err
		}
	}

	// Fine-tune.
	opts := training.DetectOptions{
		Seed: *seed, Batch: *batch, Steps: *steps, LR: *lr,
		EvalEvery: min(*evalEvery, *steps), Patience: *patience,
		CheckpointDir: filepath.Join(*out, "checkpoint"),
	}
	if *augmentFlag == "on" {
		cfg := augment.DefaultConfig()
		cfg.Pad = 0 // the centernet family letterboxes with black
		aug, err := augment.New(cfg)
		if err != nil {
			return err
		}
		opts.Augment = func(s dataset.Sample, rng *rand.Rand, w, h int) (dataset.Sample, error) {
			a, _, err := aug.Apply(s, rng, w, h)
			return a, err
		}
	}
	prog := report.NewProgress(stderr, *steps, report.WithLabel("retrain"), report.WithUnit("images"))
	opts.Progress = func(p training.Progress) { prog.Step(*batch, p.Loss, p.LR) }
	res, err := training.Finetune(ctx, baseModel, opts, set)
	if err != nil {
		return err
	}
	prog.Done()
	if err := os.RemoveAll(filepath.Join(*out, "checkpoint")); err != nil {
		return err
	}

	// The candidate bundle.
	cand, err := writeRetrainBundle(*out, res.Model, baseBundle, *base)
	if err != nil {
		return err
	}
	if err := writeTrainReport(*out, res); err != nil {
		return err
	}
	if *int8Frames > 0 {
		if err := quantizeRetrained(cand, set.Train, *int8Frames, *seed, *ortLib, stderr); err != nil {
			return err
		}
		if cand, err = inference.LoadBundle(*out); err != nil {
			return err
		}
	}
	if _, ok := cand.Variant(*gateVariant); !ok {
		return fmt.Errorf("--gate-variant %s: the candidate has no %s variant (ONNX Runtime missing?)", *gateVariant, *gateVariant)
	}

	// Evaluate both on the same held-out sets through the serving engine.
	ev := &bundleEvaluator{ctx: ctx, device: *device, ortLib: *ortLib, stderr: stderr}
	sets := []heldOut{{"eval", *evalSrc, evalData}}
	if keepData != nil {
		sets = append(sets, heldOut{"keep-eval", *keepEval, keepData})
	}
	cmp := comparison{Classes: classes}
	for _, h := range sets {
		for _, who := range []struct {
			label string
			b     *inference.Bundle
		}{{"base", baseBundle}, {"candidate", cand}} {
			for _, v := range who.b.Variants {
				if v.Name != "fp32" && v.Name != "int8" {
					continue
				}
				r, samples, preds, err := ev.run(who.label, who.b.Dir, v.Name, h, classes)
				if err != nil && v.Name != *gateVariant {
					// The device may not run int8 (no ONNX Runtime): the
					// table leaves it out; the gate does not need it.
					fmt.Fprintf(stderr, "vigil retrain: skipping %s %s: %v\n", who.label, v.Name, err)
					continue
				}
				if err != nil {
					return fmt.Errorf("evaluating %s %s on --%s: %w", who.label, v.Name, h.flag, err)
				}
				cmp.add(h.flag, who.label, v.Name, r)
				if who.label == "candidate" && v.Name == "fp32" && h.flag == "eval" {
					if err := writeEvalWorst(*out, r, samples, preds); err != nil {
						return err
					}
				}
			}
		}
	}
	cmp.print(stdout, sets)

	// The gate.
	g := cmp.gate(*gateVariant, *margin, *maxDrop, keepData != nil)
	if a, ok := cmp.get("eval", "candidate", "fp32"); ok {
		cand.Variants[0].Accuracy = inference.Accuracy{Metric: "map50", Value: a.AP50, Frames: evalData.Len()}
		if err := cand.Write(); err != nil {
			return err
		}
	}
	summary := map[string]any{
		"base": *base, "out": *out, "eval": *evalSrc, "keep_eval": *keepEval, "labels": labelSet,
		"miner_weights": weights, "seed": *seed, "steps": res.Steps, "best": res.Best, "validations": res.Validations,
		"train_samples": set.Train.Len(), "val_samples": set.Val.Len(), "store_train": set.StoreTrain, "store_val": set.StoreVal,
		"labelled_train": set.LabelledTrain, "replay_train": set.ReplayTrain, "miners": set.Miners, "corrected": set.Corrected,
		"images_per_second": res.ImagesPerSec, "train_seconds": res.Elapsed.Seconds(),
		"results": cmp.summary(), "gate": g,
	}
	var published *inference.Bundle
	if g.Passed && *registry != "" {
		if published, err = publish(*registry, *name, cand); err != nil {
			return err
		}
		summary["published"] = map[string]any{"name": published.Name, "version": published.Version}
	}
	summary["elapsed_seconds"] = time.Since(began).Seconds()
	if err := report.WriteJSON(filepath.Join(*out, "summary.json"), summary); err != nil {
		return err
	}
	switch {
	case !g.Passed:
		msg := "not published: " + g.Reason
		fmt.Fprintln(stdout, msg)
		return &exitError{code: notPublishedCode, msg: msg}
	case published != nil:
		fmt.Fprintf(stdout, "published %s v%d (%s)\n", published.Name, published.Version, g.Reason)
	default:
		fmt.Fprintf(stdout, "gate passed (%s); not published: no --registry\n", g.Reason)
	}
	return nil
}

// validModelName mirrors the registry's rule for model names.
func validModelName(n string) bool {
	if len(n) < 1 || len(n) > 64 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

// parseMinerWeights parses "band=1,track_gap=2".
func parseMinerWeights(s string) (map[string]float64, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]float64{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want miner=weight", kv)
		}
		w, err := strconv.ParseFloat(v, 64)
		if err != nil || !(w >= 0) || w > 100 {
			return nil, fmt.Errorf("%q: weight must be a number in [0, 100]", kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("miner %s given twice", k)
		}
		out[k] = w
	}
	return out, nil
}

// openRetrainSource opens a labelled source named by flag: a synth:// URL
// (with frames= and sequences=), a COCO .json file or a store folder (also
// returned as a StoreSource).
func openRetrainSource(flagName, s string, defFrames int) (dataset.Source, *dataset.StoreSource, error) {
	if strings.HasPrefix(s, "synth://") {
		p, frames, seqs, err := parseSynthSource(s, defFrames)
		if err != nil {
			return nil, nil, fmt.Errorf("--%s %s: %w", flagName, s, err)
		}
		src, err := dataset.NewSynthSource(dataset.SynthOptions{Params: p, Sequences: seqs, Frames: frames, Stride: 7, Skip: 30})
		if err != nil {
			return nil, nil, fmt.Errorf("--%s %s: %w", flagName, s, err)
		}
		return src, nil, nil
	}
	if strings.HasSuffix(strings.ToLower(s), ".json") {
		src, err := dataset.LoadCOCO(s, filepath.Dir(s), dataset.COCOOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("--%s %s: %w", flagName, s, err)
		}
		return src, nil, nil
	}
	if _, err := os.Stat(filepath.Join(s, "manifest.json")); err != nil {
		return nil, nil, fmt.Errorf("--%s %s: not a synth:// URL, a COCO .json file or a hard-frame store folder", flagName, s)
	}
	// Read-only: a server may be mining into the store right now, and a
	// writable open would clean up its write in progress.
	st, err := store.Open(s, store.Options{ReadOnly: true})
	if err != nil {
		return nil, nil, fmt.Errorf("--%s %s: %w", flagName, s, err)
	}
	ss := dataset.NewStoreSource(st)
	return ss, ss, nil
}

// parseSynthSource reads a synth:// URL's scene parameters and the
// data-set keys frames (frames kept) and sequences (scenes).
func parseSynthSource(s string, defFrames int) (p synth.Params, frames, seqs int, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return p, 0, 0, err
	}
	q := u.Query()
	frames, seqs = defFrames, 1
	for _, k := range []struct {
		key string
		dst *int
	}{{"frames", &frames}, {"sequences", &seqs}} {
		if v := q.Get(k.key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 100000 {
				return p, 0, 0, fmt.Errorf("%s=%q: must be a whole number from 1 to 100000", k.key, v)
			}
			*k.dst = n
			q.Del(k.key)
		}
	}
	p, err = synth.ParseParams(q)
	if err != nil {
		return p, 0, 0, err
	}
	p.Realtime = false
	return p, frames, seqs, nil
}

// checkHeldOut refuses held-out sets that are also training data: the
// same source, or generated scenes of the same domain and seeds.
func checkHeldOut(evalSrc, keepEval string, data, replay []string) error {
	for _, h := range []struct{ flag, src string }{{"eval", evalSrc}, {"keep-eval", keepEval}} {
		if h.src == "" {
			continue
		}
		for _, t := range []struct {
			flag string
			srcs []string
		}{{"data", data}, {"replay", replay}} {
			for _, d := range t.srcs {
				if overlaps(h.src, d) {
					return fmt.Errorf("--%s %s overlaps --%s %s: held-out data must never be trained on", h.flag, h.src, t.flag, d)
				}
			}
		}
	}
	return nil
}

func overlaps(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	if !strings.HasPrefix(a, "synth://") || !strings.HasPrefix(b, "synth://") {
		return false
	}
	pa, _, na, err1 := parseSynthSource(a, 1)
	pb, _, nb, err2 := parseSynthSource(b, 1)
	if err1 != nil || err2 != nil {
		return false
	}
	return pa.Domain == pb.Domain && pa.Seed < pb.Seed+uint64(nb) && pb.Seed < pa.Seed+uint64(na)
}

// writeRetrainBundle exports the fine-tuned model into dir as a bundle
// with the base's labels, keypoints and thresholds.
func writeRetrainBundle(dir string, m *models.CenterNet, base *inference.Bundle, baseName string) (*inference.Bundle, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "fp32.onnx")
	if err := os.Remove(filepath.Join(dir, "int8.onnx")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := onnx.Write(path, m.ONNX(filepath.Base(dir))); err != nil {
		return nil, err
	}
	b, err := inference.FromONNX(path, "centernet")
	if err != nil {
		return nil, err
	}
	b.Name, b.Source = filepath.Base(dir), "vigil retrain --base "+baseName
	b.Labels, b.Keypoints, b.Skeleton = base.Labels, base.Keypoints, base.Skeleton
	b.ScoreThreshold, b.NMSIoU = base.ScoreThreshold, base.NMSIoU
	b.Created = time.Now().UTC()
	if err := b.Write(); err != nil {
		return nil, err
	}
	return b, nil
}

// quantizeRetrained adds the int8 variant, calibrated on training frames
// (the cameras' own pictures), as vigil train does on generated ones.
// Without ONNX Runtime it warns and skips.
func quantizeRetrained(b *inference.Bundle, train dataset.Source, frames int, seed uint64, ortLib string, stderr io.Writer) error {
	lib, err := ort.FindLibrary(ortLib)
	if err == nil {
		err = ort.Init(lib)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil retrain: no int8 variant: %v\n", err)
		return nil
	}
	// Distinct frames where there are enough: the training side repeats
	// weighted entries.
	calib := min(frames, max(train.Len()*2/3, 1))
	hold := max(min(frames/2, train.Len()-calib), 1)
	q, err := inference.NewQuantizer(b, inference.QuantizeOptions{CalibFrames: calib, HoldoutFrames: hold})
	if err != nil {
		return err
	}
	defer q.Close()
	order := rand.New(rand.NewPCG(seed, 0x18)).Perm(train.Len())
	for i, done := 0, false; !done; i++ {
		s, err := train.At(order[i%len(order)])
		if err != nil {
			return fmt.Errorf("calibrating int8: %w", err)
		}
		if done, err = q.Add(rgbFrame(s.Image)); err != nil {
			return fmt.Errorf("calibrating int8: %w", err)
		}
	}
	res, err := q.Finish()
	if err != nil {
		return fmt.Errorf("quantizing: %w", err)
	}
	a := res.Variant.Accuracy
	fmt.Fprintf(stderr, "int8 variant: %s %.4f against fp32 on %d held-out frames (loss %.4f)\n", a.Metric, a.Value, a.Frames, a.Loss)
	return nil
}

// heldOut is one evaluation set.
type heldOut struct {
	flag, src string
	data      dataset.Source
}

// bundleEvaluator scores bundles the way `vigil eval detect` does: through
// an inference.Engine, one frame at a time.
type bundleEvaluator struct {
	ctx            context.Context
	device, ortLib string
	stderr         io.Writer
}

func (e *bundleEvaluator) run(who, dir, variant string, h heldOut, classes []string) (*evaluate.DetectionResult, []dataset.Sample, [][]frame.Detection, error) {
	start := time.Now()
	eng := inference.NewEngine(inference.EngineOptions{
		Runtime: config.Runtime{Device: e.device, ORTLibrary: e.ortLib}, Batching: config.Batching{MaxBatch: 1},
		Logger: newLogger(config.Log{Level: "error"}, e.stderr),
	})
	defer eng.Close()
	if err := eng.Load(config.Model{Name: "m", Bundle: dir, Variant: variant, MaxAccuracyLoss: 1}); err != nil {
		return nil, nil, nil, err
	}
	samples := make([]dataset.Sample, 0, h.data.Len())
	preds := make([][]frame.Detection, 0, h.data.Len())
	for i := range h.data.Len() {
		s, err := h.data.At(i)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("sample %d: %w", i, err)
		}
		r := &frame.Result{}
		if err := eng.Analyze(e.ctx, []string{"m"}, rgbFrame(s.Image), r); err != nil {
			return nil, nil, nil, err
		}
		samples, preds = append(samples, s), append(preds, r.Detections)
	}
	r, err := training.ScoreDetections(samples, preds, classes)
	if err != nil {
		return nil, nil, nil, err
	}
	fmt.Fprintf(e.stderr, "eval %s %s on --%s: mAP@0.5 %.4f, mAP %.4f (%d frames, %s)\n", who, variant, h.flag, r.AP50, r.AP, len(samples), time.Since(start).Round(100*time.Millisecond))
	return r, samples, preds, nil
}

// comparison holds every evaluation: set → model → variant.
type comparison struct {
	Classes []string
	results map[string]map[string]map[string]*evaluate.DetectionResult
}

func (c *comparison) add(set, who, variant string, r *evaluate.DetectionResult) {
	if c.results == nil {
		c.results = map[string]map[string]map[string]*evaluate.DetectionResult{}
	}
	if c.results[set] == nil {
		c.results[set] = map[string]map[string]*evaluate.DetectionResult{}
	}
	if c.results[set][who] == nil {
		c.results[set][who] = map[string]*evaluate.DetectionResult{}
	}
	c.results[set][who][variant] = r
}

func (c *comparison) get(set, who, variant string) (*evaluate.DetectionResult, bool) {
	r, ok := c.results[set][who][variant]
	return r, ok
}

// summary is the results without their per-image scores, for
// summary.json: set → model → variant → scores.
func (c *comparison) summary() map[string]map[string]map[string]any {
	out := map[string]map[string]map[string]any{}
	for set, whos := range c.results {
		out[set] = map[string]map[string]any{}
		for who, vs := range whos {
			m := map[string]any{}
			for v, r := range vs {
				m[v] = map[string]any{"ap50": r.AP50, "ap": r.AP, "ap75": r.AP75, "per_class": r.PerClass}
			}
			out[set][who] = m
		}
	}
	return out
}

// print writes one table per held-out set: rows mAP@0.5, mAP@[.5:.95]
// and AP@0.5 per class; columns base, candidate and their difference per
// variant.
func (c *comparison) print(w io.Writer, sets []heldOut) {
	for _, h := range sets {
		fmt.Fprintf(w, "--%s %s (%d frames)\n", h.flag, h.src, h.data.Len())
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		var variants []string
		for _, v := range []string{"fp32", "int8"} {
			if _, ok := c.get(h.flag, "candidate", v); ok {
				if _, ok := c.get(h.flag, "base", v); ok {
					variants = append(variants, v)
				}
			}
		}
		fmt.Fprint(tw, "\t")
		for _, v := range variants {
			fmt.Fprintf(tw, "base %s\tcandidate %s\tdelta\t", v, v)
		}
		fmt.Fprintln(tw)
		row := func(name string, f func(*evaluate.DetectionResult) float64) {
			fmt.Fprintf(tw, "%s\t", name)
			for _, v := range variants {
				b, _ := c.get(h.flag, "base", v)
				a, _ := c.get(h.flag, "candidate", v)
				fmt.Fprintf(tw, "%.4f\t%.4f\t%+.4f\t", f(b), f(a), f(a)-f(b))
			}
			fmt.Fprintln(tw)
		}
		row("mAP@0.5", func(r *evaluate.DetectionResult) float64 { return r.AP50 })
		row("mAP@[.5:.95]", func(r *evaluate.DetectionResult) float64 { return r.AP })
		for k, cl := range c.Classes {
			row("AP@0.5 "+cl, func(r *evaluate.DetectionResult) float64 {
				for _, p := range r.PerClass {
					if p.Class == k {
						return p.AP50
					}
				}
				return -1
			})
		}
		tw.Flush()
	}
}

// gateResult is the publishing decision.
type gateResult struct {
	Passed  bool    `json:"passed"`
	Variant string  `json:"variant"`
	Gain    float64 `json:"gain"`
	Margin  float64 `json:"margin"`
	// Drop is the mAP@0.5 lost on --keep-eval (negative: gained).
	Drop    float64 `json:"keep_drop,omitempty"`
	MaxDrop float64 `json:"max_drop"`
	Reason  string  `json:"reason"`
}

func (c *comparison) gate(variant string, margin, maxDrop float64, keep bool) gateResult {
	g := gateResult{Variant: variant, Margin: margin, MaxDrop: maxDrop}
	b, _ := c.get("eval", "base", variant)
	a, _ := c.get("eval", "candidate", variant)
	if b == nil || a == nil {
		g.Reason = "no " + variant + " evaluation of both models"
		return g
	}
	g.Gain = a.AP50 - b.AP50
	if g.Gain < margin {
		g.Reason = fmt.Sprintf("candidate %+.3f mAP@0.5 < margin %g", g.Gain, margin)
		return g
	}
	if keep {
		kb, _ := c.get("keep-eval", "base", variant)
		ka, _ := c.get("keep-eval", "candidate", variant)
		if kb == nil || ka == nil {
			g.Reason = "no " + variant + " evaluation of both models on --keep-eval"
			return g
		}
		g.Drop = kb.AP50 - ka.AP50
		if g.Drop > maxDrop {
			g.Reason = fmt.Sprintf("candidate %+.3f mAP@0.5 on --eval but loses %.3f on --keep-eval > max drop %g", g.Gain, g.Drop, maxDrop)
			return g
		}
		g.Passed = true
		g.Reason = fmt.Sprintf("candidate %+.3f mAP@0.5 >= margin %g, %+.3f on --keep-eval", g.Gain, margin, -g.Drop)
		return g
	}
	g.Passed = true
	g.Reason = fmt.Sprintf("candidate %+.3f mAP@0.5 >= margin %g", g.Gain, margin)
	return g
}

// writeEvalWorst draws the candidate's 20 worst --eval images.
func writeEvalWorst(out string, r *evaluate.DetectionResult, samples []dataset.Sample, preds [][]frame.Detection) error {
	dir := filepath.Join(out, "report")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var items []report.Item
	for _, w := range evaluate.Worst(r.PerImage, 20) {
		s := samples[w.Index]
		var ps []frame.Detection
		for _, d := range preds[w.Index] {
			if d.Score >= 0.3 {
				ps = append(ps, d)
			}
		}
		items = append(items, report.Item{ID: s.ID, Image: s.Image, Truth: s.Objects, Preds: ps, Score: w.F1,
			Caption: fmt.Sprintf("tp %d fp %d fn %d", w.TP, w.FP, w.FN)})
	}
	if err := report.ContactSheet(filepath.Join(dir, "eval_worst.png"), items); err != nil {
		return err
	}
	return report.WorstHTML(filepath.Join(dir, "eval_worst"), items)
}

// publish imports the candidate into the registry as the model's next
// version, with its int8 variant and metadata, and promotes it.
func publish(root, name string, cand *inference.Bundle) (*inference.Bundle, error) {
	reg := inference.Registry{Root: root}
	fp32, _ := cand.Variant("fp32")
	b, err := reg.Import(cand.Path(fp32), cand.Family, name)
	if err != nil {
		return nil, fmt.Errorf("--registry %s: %w", root, err)
	}
	b.Labels, b.Keypoints, b.Skeleton = cand.Labels, cand.Keypoints, cand.Skeleton
	b.ScoreThreshold, b.NMSIoU, b.Source = cand.ScoreThreshold, cand.NMSIoU, cand.Source
	b.Variants[0].Accuracy = fp32.Accuracy
	for _, v := range cand.Variants[1:] {
		if err := b.AddVariant(v, cand.Path(v), false); err != nil {
			return nil, fmt.Errorf("--registry %s: %w", root, err)
		}
	}
	if err := b.Write(); err != nil {
		return nil, fmt.Errorf("--registry %s: %w", root, err)
	}
	if err := reg.Promote(name, b.Version); err != nil {
		return nil, fmt.Errorf("--registry %s: %w", root, err)
	}
	return b, nil
}
