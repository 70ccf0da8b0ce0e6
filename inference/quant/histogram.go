package quant

import (
	"fmt"
	"math"
)

// Bins is the number of bins of a Histogram.
const Bins = 2048

// Histogram counts values in Bins equal bins over [-Bound, Bound), a range
// centred on 0 that doubles (merging bins pairwise) whenever a value falls
// outside it, so it can take any number of frames in bounded memory. It
// also keeps the exact min and max. The zero value is empty and ready.
// A value exactly at -Bound falls in the first bin.
type Histogram struct {
	Bound    float64
	Counts   []uint64
	Min, Max float32
	N        uint64
}

// Add counts the finite values of xs (NaN and ±Inf are skipped).
func (h *Histogram) Add(xs []float32) {
	if h.Counts == nil {
		h.Counts = make([]uint64, Bins)
		h.Min, h.Max = float32(math.Inf(1)), float32(math.Inf(-1))
	}
	// Locals keep the loop in registers (and cheap under -race).
	counts, bound, lo, hi := h.Counts, h.Bound, h.Min, h.Max
	inv := 0.0 // no value fits until the first sets Bound
	if bound > 0 {
		inv = Bins / (2 * bound)
	}
	n := uint64(0)
	for _, v := range xs {
		f := (float64(v) + bound) * inv
		if !(f >= 0 && f < Bins) || bound == 0 {
			// Outside the bins, not a number, or the first value.
			if v != v || math.IsInf(float64(v), 0) {
				continue
			}
			h.N += n
			n = 0
			h.fit(v)
			counts, bound = h.Counts, h.Bound
			inv = Bins / (2 * bound)
			f = min(max((float64(v)+bound)*inv, 0), Bins-1)
		}
		counts[int(f)]++
		n++
		lo, hi = min(lo, v), max(hi, v)
	}
	h.N += n
	h.Min, h.Max = lo, hi
}

// fit grows Bound until it holds v: to the power of two above |v| when the
// histogram is empty, else by doubling.
func (h *Histogram) fit(v float32) {
	a := math.Abs(float64(v))
	if h.N == 0 {
		h.Bound = math.Exp2(math.Ceil(math.Log2(math.Max(a, 1e-6))))
		if h.Bound <= a {
			h.Bound *= 2
		}
		return
	}
	for a >= h.Bound {
		h.grow()
	}
}

// grow doubles Bound: old bin i (of Bins over [-B, B)) lies in new bin
// Bins/4 + i/2 of Bins over [-2B, 2B).
func (h *Histogram) grow() {
	c := make([]uint64, Bins)
	for i, n := range h.Counts {
		c[Bins/4+i/2] += n
	}
	h.Counts = c
	h.Bound *= 2
}

// Percentile returns the range that keeps the central p percent of the
// values: (100-p)/2 percent is cut from each tail, as ONNX Runtime's
// percentile calibrator does for asymmetric activations. Bin edges are
// returned, clamped to the exact min and max. p must be in (0, 100].
func (h *Histogram) Percentile(p float64) (Range, error) {
	if !(p > 0 && p <= 100) {
		return Range{}, fmt.Errorf("percentile %g is not in (0, 100]", p)
	}
	if h.N == 0 {
		return Range{}, fmt.Errorf("percentile of an empty histogram")
	}
	cut := (100 - p) / 200 * float64(h.N)
	w := 2 * h.Bound / Bins
	lo, hi := h.Min, h.Max
	var acc float64
	for i, n := range h.Counts {
		acc += float64(n)
		if acc > cut {
			lo = max(lo, float32(-h.Bound+float64(i)*w))
			break
		}
	}
	acc = 0
	for i := Bins - 1; i >= 0; i-- {
		acc += float64(h.Counts[i])
		if acc > cut {
			hi = min(hi, float32(-h.Bound+float64(i+1)*w))
			break
		}
	}
	return Range{Min: lo, Max: hi}, nil
}
