package training

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/vigil-video/vigil/training/dataset"
	"github.com/vigil-video/vigil/training/models"
	"github.com/vigil-video/vigil/training/store"
)

// LabelSet says which labels of hard-frame store entries train a model.
type LabelSet string

// Label sets.
const (
	// LabelsPre trains on every entry with the model's own pre-labels,
	// corrections ignored: self-training.
	LabelsPre LabelSet = "pre"
	// LabelsCorrected trains only on entries a person corrected (`vigil
	// dataset import`), with the corrected labels.
	LabelsCorrected LabelSet = "corrected"
	// LabelsBoth trains on every entry: the corrected labels where there
	// are some, the pre-labels elsewhere.
	LabelsBoth LabelSet = "both"
)

// ParseLabelSet parses pre, corrected or both.
func ParseLabelSet(s string) (LabelSet, error) {
	switch l := LabelSet(s); l {
	case LabelsPre, LabelsCorrected, LabelsBoth:
		return l, nil
	}
	return "", fmt.Errorf("label set %q: must be pre, corrected or both", s)
}

// FinetuneData is what Finetune trains on: hard-frame stores, other
// labelled sources, and replay frames of the base model's own domain so
// that it does not forget it.
type FinetuneData struct {
	// Stores are hard-frame stores; Labels picks their entries and labels.
	Stores []*dataset.StoreSource
	Labels LabelSet
	// MinerWeights scale how often a store entry is drawn, by its miner:
	// an entry of weight 2 is seen twice per pass over the data, one of
	// weight 0.5 every other pass on average. Miners not listed weigh 1;
	// weight 0 leaves a miner's entries out. Validation samples are never
	// weighted.
	MinerWeights map[string]float64
	// MinScore marks pre-labels scoring below it Ignore (neither reward
	// nor punish the model there); corrected labels are kept whatever
	// their score. 0 keeps every pre-label.
	MinScore float32
	// Labelled are other labelled sources (generated scenes, COCO files),
	// used as they are.
	Labelled []dataset.Source
	// Replay are frames of the base model's domain mixed into training.
	Replay dataset.Source
	// ValFraction of every part's samples validate; 0.15 when zero. A
	// store gives the newest entries of each of its streams (the model
	// goes on serving those cameras, so none is left out of training);
	// other parts whole sequences where they have two or more, else their
	// last samples.
	ValFraction float64
}

// FinetuneSet is FinetuneData made ready: training samples (weighted,
// shuffled by TrainDetector) and validation samples, with the model's
// class indices.
type FinetuneSet struct {
	Train, Val dataset.Source
	// Miners counts the store entries used (training and validation) by
	// miner; Corrected how many of them had corrected labels.
	Miners    map[string]int
	Corrected int
	// The sample counts of each part: store entries (training counts
	// weighted repeats), other labelled sources, replay frames.
	StoreTrain, StoreVal, LabelledTrain, LabelledVal, ReplayTrain, ReplayVal int
}

// Build picks and splits the data for a model of the given classes:
// objects are matched to them by label and other objects dropped.
func (d FinetuneData) Build(classes []string, seed uint64) (*FinetuneSet, error) {
	if d.Labels == "" {
		d.Labels = LabelsBoth
	}
	if _, err := ParseLabelSet(string(d.Labels)); err != nil {
		return nil, err
	}
	frac := d.ValFraction
	if frac == 0 {
		frac = 0.15
	}
	if frac <= 0 || frac >= 1 {
		return nil, fmt.Errorf("fine-tuning: validation fraction %g must be in (0, 1)", frac)
	}
	for m, w := range d.MinerWeights {
		if !(w >= 0) || w > 100 {
			return nil, fmt.Errorf("fine-tuning: weight %g of miner %s must be in [0, 100]", w, m)
		}
	}
	set := &FinetuneSet{Miners: map[string]int{}}
	var trains, vals []dataset.Source
	for k, st := range d.Stores {
		hf := &hardFrames{src: st, labels: d.Labels, minScore: d.MinScore}
		var weights []float64
		for i := range st.Len() {
			e, err := st.Entry(i)
			if err != nil {
				return nil, err
			}
			w := 1.0
			if v, ok := d.MinerWeights[e.Miner]; ok {
				w = v
			}
			if w == 0 || (d.Labels == LabelsCorrected && !e.Corrected) {
				continue
			}
			hf.idx = append(hf.idx, i)
			weights = append(weights, w)
			set.Miners[e.Miner]++
			if e.Corrected && d.Labels != LabelsPre {
				set.Corrected++
			}
		}
		if len(hf.idx) == 0 {
			continue
		}
		tr, va, err := holdoutNewest(hf, frac)
		if err != nil {
			return nil, fmt.Errorf("fine-tuning: store %d: %w", k+1, err)
		}
		// Weights repeat training entries: an entry of weight w appears
		// floor(w) times and once more with probability frac(w).
		rng := rand.New(rand.NewPCG(seed+uint64(k), 0x77e1))
		var rep []int
		for _, i := range tr.Indices() {
			w := weights[i]
			n := int(w)
			if rng.Float64() < w-float64(n) {
				n++
			}
			for range n {
				rep = append(rep, i)
			}
		}
		set.StoreTrain += len(rep)
		set.StoreVal += va.Len()
		trains, vals = append(trains, dataset.Subset(hf, rep)), append(vals, va)
	}
	for k, src := range d.Labelled {
		tr, va, err := holdout(src, frac, seed+100+uint64(k))
		if err != nil {
			return nil, fmt.Errorf("fine-tuning: labelled source %d: %w", k+1, err)
		}
		set.LabelledTrain += tr.Len()
		set.LabelledVal += va.Len()
		trains, vals = append(trains, tr), append(vals, va)
	}
	if d.Replay != nil && d.Replay.Len() > 0 {
		tr, va, err := holdout(d.Replay, frac, seed+200)
		if err != nil {
			return nil, fmt.Errorf("fine-tuning: replay: %w", err)
		}
		set.ReplayTrain, set.ReplayVal = tr.Len(), va.Len()
		trains, vals = append(trains, tr), append(vals, va)
	}
	set.Train = byLabel{dataset.Concat(trains...), classes}
	set.Val = byLabel{dataset.Concat(vals...), classes}
	if set.Train.Len() == 0 || set.Val.Len() == 0 {
		return nil, fmt.Errorf("fine-tuning: %d training and %d validation samples (labels %s): need both", set.Train.Len(), set.Val.Len(), d.Labels)
	}
	return set, nil
}

// holdout splits src by sequence when it has two or more, else keeps its
// last samples (a store lists the oldest first) for validation, so that
// neighbouring, near-identical frames rarely straddle the split.
func holdout(src dataset.Source, frac float64, seed uint64) (train, val *dataset.SubsetSource, err error) {
	if src.Len() < 2 {
		return nil, nil, fmt.Errorf("%d samples: need at least 2 to hold some out for validation", src.Len())
	}
	tr, va, err := dataset.Split(src, frac, seed)
	if err != nil {
		return nil, nil, err
	}
	if tr.Len() > 0 && va.Len() > 0 {
		return tr, va, nil
	}
	n := src.Len()
	k := min(max(int(float64(n)*frac+0.5), 1), n-1)
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	return dataset.Subset(src, all[:n-k]), dataset.Subset(src, all[n-k:]), nil
}

// holdoutNewest keeps the newest frac of each sequence's samples (at least
// one, where a sequence has two or more) for validation; src lists each
// sequence's samples oldest first, as a store does.
func holdoutNewest(src dataset.Source, frac float64) (train, val *dataset.SubsetSource, err error) {
	var order []string
	bySeq := map[string][]int{}
	for i := range src.Len() {
		seq, err := dataset.SequenceOf(src, i)
		if err != nil {
			return nil, nil, err
		}
		if _, ok := bySeq[seq]; !ok {
			order = append(order, seq)
		}
		bySeq[seq] = append(bySeq[seq], i)
	}
	var tr, va []int
	for _, seq := range order {
		idx := bySeq[seq]
		k := 0
		if len(idx) >= 2 {
			k = min(max(int(float64(len(idx))*frac+0.5), 1), len(idx)-1)
		}
		tr, va = append(tr, idx[:len(idx)-k]...), append(va, idx[len(idx)-k:]...)
	}
	if len(tr) == 0 || len(va) == 0 {
		return nil, nil, fmt.Errorf("%d samples in %d streams: need a stream with at least 2 to hold some out for validation", src.Len(), len(order))
	}
	slices.Sort(tr)
	slices.Sort(va)
	return dataset.Subset(src, tr), dataset.Subset(src, va), nil
}

// hardFrames is a store's chosen entries as samples, with the labels its
// LabelSet asks for.
type hardFrames struct {
	src      *dataset.StoreSource
	idx      []int
	labels   LabelSet
	minScore float32
}

func (h *hardFrames) Len() int { return len(h.idx) }

func (h *hardFrames) SequenceOf(i int) (string, error) {
	if i < 0 || i >= len(h.idx) {
		return "", fmt.Errorf("hard frames: sample %d: %w", i, dataset.ErrRange)
	}
	return h.src.SequenceOf(h.idx[i])
}

func (h *hardFrames) At(i int) (dataset.Sample, error) {
	if i < 0 || i >= len(h.idx) {
		return dataset.Sample{}, fmt.Errorf("hard frames: sample %d: %w", i, dataset.ErrRange)
	}
	s, err := h.src.At(h.idx[i])
	if err != nil {
		return s, err
	}
	e, err := h.src.Entry(h.idx[i])
	if err != nil {
		return s, err
	}
	if e.Corrected && h.labels != LabelsPre {
		return s, nil
	}
	// Pre-labels: the model's own, thresholded.
	pre := e.PreLabels()
	objs := make([]dataset.Object, len(pre))
	for k, o := range pre {
		objs[k] = fromStore(o)
		if o.Score < h.minScore {
			objs[k].Ignore = true
		}
	}
	s.Objects = objs
	return s, nil
}

func fromStore(o store.Object) dataset.Object {
	return dataset.Object{
		Box: o.Box, Class: o.Class, Label: o.Label, TrackID: o.TrackID,
		Keypoints: o.Keypoints, Mask: o.Mask, Score: o.Score, Ignore: o.Ignore,
	}
}

// byLabel gives objects the model's class index of their label and drops
// the others (a COCO file's car is class 2, the detector's 1).
type byLabel struct {
	dataset.Source
	classes []string
}

func (b byLabel) SequenceOf(i int) (string, error) { return dataset.SequenceOf(b.Source, i) }

func (b byLabel) At(i int) (dataset.Sample, error) {
	s, err := b.Source.At(i)
	if err != nil {
		return s, err
	}
	objs := make([]dataset.Object, 0, len(s.Objects))
	for _, o := range s.Objects {
		if o.Class = slices.Index(b.classes, o.Label); o.Class >= 0 {
			objs = append(objs, o)
		}
	}
	s.Objects = objs
	return s, nil
}

// Finetune trains a copy of base on set (see TrainDetector; opts.Model
// and opts.Init are taken from base, which is left unchanged). Fine-tuning
// wants a smaller rate than training from scratch: opts.LR defaults to
// 5e-4 here, and the warm-up to 10% of the steps so that the first
// batches of a new domain do not wreck the weights.
func Finetune(ctx context.Context, base *models.CenterNet, opts DetectOptions, set *FinetuneSet) (*DetectResult, error) {
	if base == nil {
		return nil, errors.New("fine-tuning: no base model")
	}
	if set == nil {
		return nil, errors.New("fine-tuning: no data")
	}
	m, err := models.NewCenterNet(base.Cfg, 0)
	if err != nil {
		return nil, fmt.Errorf("fine-tuning: %w", err)
	}
	for i, p := range base.Params {
		copy(m.Params[i].Data(), p.Data())
	}
	opts.Init, opts.Model = m, m.Cfg
	if opts.LR == 0 {
		opts.LR = 5e-4
	}
	if opts.Schedule.Kind == "" {
		opts.Schedule = Schedule{Kind: "cosine", Warmup: opts.Steps / 10, Floor: 0.02}
	}
	return TrainDetector(ctx, opts, set.Train, set.Val)
}
