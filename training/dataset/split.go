package dataset

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
)

// ErrRange is returned by At for an index outside 0 to Len()-1.
var ErrRange = errors.New("index out of range")

// Sequencer is implemented by sources that can name a sample's Sequence
// without loading its image; Split and KFold use it when they can.
type Sequencer interface {
	SequenceOf(i int) (string, error)
}

// SequenceOf returns sample i's Sequence, cheaply when src is a Sequencer.
func SequenceOf(src Source, i int) (string, error) {
	if sq, ok := src.(Sequencer); ok {
		return sq.SequenceOf(i)
	}
	s, err := src.At(i)
	if err != nil {
		return "", err
	}
	return s.Sequence, nil
}

// SubsetSource is a view of some samples of another source.
type SubsetSource struct {
	src Source
	idx []int
}

// Subset returns the samples of src at the given indices, in that order.
// Indices are checked when a sample is read.
func Subset(src Source, indices []int) *SubsetSource {
	return &SubsetSource{src: src, idx: slices.Clone(indices)}
}

// Len returns the number of samples.
func (s *SubsetSource) Len() int { return len(s.idx) }

// At returns sample i.
func (s *SubsetSource) At(i int) (Sample, error) {
	if i < 0 || i >= len(s.idx) {
		return Sample{}, fmt.Errorf("subset: sample %d: %w", i, ErrRange)
	}
	return s.src.At(s.idx[i])
}

// SequenceOf returns sample i's Sequence.
func (s *SubsetSource) SequenceOf(i int) (string, error) {
	if i < 0 || i >= len(s.idx) {
		return "", fmt.Errorf("subset: sample %d: %w", i, ErrRange)
	}
	return SequenceOf(s.src, s.idx[i])
}

// Indices returns the indices into the underlying source.
func (s *SubsetSource) Indices() []int { return slices.Clone(s.idx) }

// ConcatSource joins sources end to end.
type ConcatSource struct {
	srcs []Source
	ends []int // ends[k] = total Len of srcs[:k+1]
}

// Concat returns the samples of srcs one after the other. The sources must
// not change length afterwards.
func Concat(srcs ...Source) *ConcatSource {
	c := &ConcatSource{srcs: slices.Clone(srcs), ends: make([]int, len(srcs))}
	n := 0
	for k, s := range srcs {
		n += s.Len()
		c.ends[k] = n
	}
	return c
}

// Len returns the number of samples.
func (c *ConcatSource) Len() int {
	if len(c.ends) == 0 {
		return 0
	}
	return c.ends[len(c.ends)-1]
}

func (c *ConcatSource) locate(i int) (int, int, error) {
	if i < 0 || i >= c.Len() {
		return 0, 0, fmt.Errorf("concat: sample %d: %w", i, ErrRange)
	}
	k, _ := slices.BinarySearch(c.ends, i+1)
	start := 0
	if k > 0 {
		start = c.ends[k-1]
	}
	return k, i - start, nil
}

// At returns sample i.
func (c *ConcatSource) At(i int) (Sample, error) {
	k, j, err := c.locate(i)
	if err != nil {
		return Sample{}, err
	}
	return c.srcs[k].At(j)
}

// SequenceOf returns sample i's Sequence.
func (c *ConcatSource) SequenceOf(i int) (string, error) {
	k, j, err := c.locate(i)
	if err != nil {
		return "", err
	}
	return SequenceOf(c.srcs[k], j)
}

// groups returns src's indices grouped by Sequence, the groups in a
// seeded random order.
func groups(src Source, seed uint64) ([][]int, error) {
	byName := map[string]int{}
	var gs [][]int
	for i := range src.Len() {
		name, err := SequenceOf(src, i)
		if err != nil {
			return nil, fmt.Errorf("reading sequence of sample %d: %w", i, err)
		}
		g, ok := byName[name]
		if !ok {
			g = len(gs)
			byName[name] = g
			gs = append(gs, nil)
		}
		gs[g] = append(gs[g], i)
	}
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	r.Shuffle(len(gs), func(a, b int) { gs[a], gs[b] = gs[b], gs[a] })
	return gs, nil
}

// Split divides src into training and validation samples, about
// valFraction of the samples in val, without ever putting two samples of
// one Sequence on different sides. Whole sequences are drawn at random
// (seeded) until val holds at least valFraction of the samples; with two or
// more sequences and 0 < valFraction < 1 both sides get at least one.
func Split(src Source, valFraction float64, seed uint64) (train, val *SubsetSource, err error) {
	if !(valFraction >= 0 && valFraction <= 1) {
		return nil, nil, fmt.Errorf("splitting: val fraction %g is outside [0,1]", valFraction)
	}
	gs, err := groups(src, seed)
	if err != nil {
		return nil, nil, fmt.Errorf("splitting: %w", err)
	}
	want := valFraction * float64(src.Len())
	var tr, va []int
	for k, g := range gs {
		take := float64(len(va)) < want
		if valFraction > 0 && valFraction < 1 && len(gs) >= 2 {
			if k == 0 {
				take = true // val gets at least one sequence
			} else if k == len(gs)-1 && len(tr) == 0 {
				take = false // and train too
			}
		}
		if take {
			va = append(va, g...)
		} else {
			tr = append(tr, g...)
		}
	}
	slices.Sort(tr)
	slices.Sort(va)
	return Subset(src, tr), Subset(src, va), nil
}

// Fold is one training/validation pair of KFold.
type Fold struct {
	Train, Val *SubsetSource
}

// KFold divides src's sequences into k folds of about equal sample counts
// and returns k pairs, each validating on one fold and training on the
// rest; a sequence's samples always stay in one fold. It needs at least k
// sequences.
func KFold(src Source, k int, seed uint64) ([]Fold, error) {
	if k < 2 {
		return nil, fmt.Errorf("k-fold: k = %d, need at least 2", k)
	}
	gs, err := groups(src, seed)
	if err != nil {
		return nil, fmt.Errorf("k-fold: %w", err)
	}
	if len(gs) < k {
		return nil, fmt.Errorf("k-fold: %d sequences for %d folds", len(gs), k)
	}
	// Largest sequences first, each into the smallest fold so far
	// (stable, so the seeded order breaks ties).
	slices.SortStableFunc(gs, func(a, b []int) int { return len(b) - len(a) })
	folds := make([][]int, k)
	for _, g := range gs {
		small := 0
		for f := range folds {
			if len(folds[f]) < len(folds[small]) {
				small = f
			}
		}
		folds[small] = append(folds[small], g...)
	}
	out := make([]Fold, k)
	for f := range folds {
		var tr []int
		for o := range folds {
			if o != f {
				tr = append(tr, folds[o]...)
			}
		}
		slices.Sort(tr)
		va := slices.Clone(folds[f])
		slices.Sort(va)
		out[f] = Fold{Train: Subset(src, tr), Val: Subset(src, va)}
	}
	return out, nil
}
