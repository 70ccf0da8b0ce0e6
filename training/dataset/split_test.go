package dataset

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// memSource holds samples without pictures; it is not a Sequencer, so the
// helpers fall back to At.
type memSource []Sample

func (m memSource) Len() int { return len(m) }
func (m memSource) At(i int) (Sample, error) {
	if i < 0 || i >= len(m) {
		return Sample{}, ErrRange
	}
	return m[i], nil
}

// randomSource has 1-12 sequences of 1-20 samples, interleaved.
func randomSource(r *rand.Rand) memSource {
	var m memSource
	for s := range 1 + r.IntN(12) {
		for f := range 1 + r.IntN(20) {
			m = append(m, Sample{ID: fmt.Sprintf("s%d/%d", s, f), Sequence: fmt.Sprintf("s%d", s)})
		}
	}
	r.Shuffle(len(m), func(a, b int) { m[a], m[b] = m[b], m[a] })
	return m
}

// sequences returns the sequences of a subset and checks it is sorted
// without repeats.
func sequences(t *testing.T, s *SubsetSource) (map[string]bool, []int) {
	t.Helper()
	idx := s.Indices()
	require.True(t, slices.IsSorted(idx))
	require.Len(t, slices.Compact(slices.Clone(idx)), len(idx))
	seqs := map[string]bool{}
	for i := range s.Len() {
		q, err := s.SequenceOf(i)
		require.NoError(t, err)
		seqs[q] = true
	}
	return seqs, idx
}

func TestSplitProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		src := randomSource(r)
		frac := []float64{0, 0.1, 0.2, 0.5, 0.9, 1}[trial%6]
		seed := r.Uint64()
		tr, va, err := Split(src, frac, seed)
		require.NoError(t, err)
		ts, ti := sequences(t, tr)
		vs, vi := sequences(t, va)
		for q := range ts {
			require.False(t, vs[q], "trial %d: sequence %s on both sides", trial, q)
		}
		all := append(slices.Clone(ti), vi...)
		slices.Sort(all)
		require.Equal(t, len(src), len(all))
		for i, v := range all {
			require.Equal(t, i, v)
		}
		nseq := len(ts) + len(vs)
		switch {
		case frac == 0:
			require.Zero(t, va.Len())
		case frac == 1:
			require.Zero(t, tr.Len())
		case nseq >= 2:
			require.Positive(t, tr.Len())
			require.Positive(t, va.Len())
		}
		// Val stops growing once it reaches its share, so it overshoots by
		// less than the largest sequence (20).
		if frac > 0 && frac < 1 && nseq >= 2 {
			require.Less(t, float64(va.Len()), frac*float64(len(src))+20)
		}
		tr2, va2, err := Split(src, frac, seed)
		require.NoError(t, err)
		require.Equal(t, tr.Indices(), tr2.Indices())
		require.Equal(t, va.Indices(), va2.Indices())
	}
	_, _, err := Split(memSource{}, 1.5, 0)
	require.ErrorContains(t, err, "val fraction")
}

func TestKFoldProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		src := randomSource(r)
		k := 2 + trial%4
		folds, err := KFold(src, k, r.Uint64())
		nseq := map[string]bool{}
		for _, s := range src {
			nseq[s.Sequence] = true
		}
		if len(nseq) < k {
			require.ErrorContains(t, err, "sequences")
			continue
		}
		require.NoError(t, err)
		require.Len(t, folds, k)
		inVal := make([]int, len(src))
		foldOfSeq := map[string]int{}
		for f, fold := range folds {
			ts, ti := sequences(t, fold.Train)
			vs, vi := sequences(t, fold.Val)
			require.Positive(t, fold.Val.Len())
			for q := range vs {
				require.False(t, ts[q])
				_, dup := foldOfSeq[q]
				require.False(t, dup, "sequence %s validated twice", q)
				foldOfSeq[q] = f
			}
			require.Equal(t, len(src), len(ti)+len(vi))
			for _, i := range vi {
				inVal[i]++
			}
		}
		for i, n := range inVal {
			require.Equal(t, 1, n, "sample %d validated %d times", i, n)
		}
	}
	_, err := KFold(memSource{}, 1, 0)
	require.ErrorContains(t, err, "k = 1")
}

func TestSubsetConcat(t *testing.T) {
	a := memSource{{ID: "a0", Sequence: "A"}, {ID: "a1", Sequence: "A"}}
	b := memSource{{ID: "b0", Sequence: "B"}}
	c := Concat(a, memSource{}, b)
	require.Equal(t, 3, c.Len())
	var ids []string
	for i := range c.Len() {
		s, err := c.At(i)
		require.NoError(t, err)
		ids = append(ids, s.ID)
	}
	require.Equal(t, []string{"a0", "a1", "b0"}, ids)
	q, err := c.SequenceOf(2)
	require.NoError(t, err)
	require.Equal(t, "B", q)
	_, err = c.At(3)
	require.ErrorIs(t, err, ErrRange)
	_, err = c.At(-1)
	require.ErrorIs(t, err, ErrRange)
	require.Zero(t, Concat().Len())

	s := Subset(c, []int{2, 0})
	s0, err := s.At(0)
	require.NoError(t, err)
	require.Equal(t, "b0", s0.ID)
	_, err = s.At(2)
	require.ErrorIs(t, err, ErrRange)
	_, err = Subset(c, []int{7}).At(0)
	require.ErrorIs(t, err, ErrRange)
}
