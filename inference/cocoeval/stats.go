package cocoeval

import (
	"slices"
	"strconv"
)

// Stats are COCOeval.summarize()'s numbers in its order: 12 for bbox and
// segm (Names: ap, ap50, ap75, ap_small, ap_medium, ap_large, ar1, ar10,
// ar100, ar_small, ar_medium, ar_large), 10 for keypoints (ap, ap50, ap75,
// ap_medium, ap_large, ar, ar50, ar75, ar_medium, ar_large). A value is -1
// where no setting had ground truth, as in pycocotools.
type Stats struct {
	IoUType string
	Values  []float64
}

var (
	detNames = []string{"ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"}
	kpNames  = []string{"ap", "ap50", "ap75", "ap_medium", "ap_large", "ar", "ar50", "ar75", "ar_medium", "ar_large"}
)

// Names returns the JSON names of Values, in order.
func (s Stats) Names() []string {
	if s.IoUType == Keypoints {
		return slices.Clone(kpNames)
	}
	return slices.Clone(detNames)
}

// Get returns the value with the given name (see Names).
func (s Stats) Get(name string) (float64, bool) {
	i := slices.Index(s.Names(), name)
	if i < 0 || i >= len(s.Values) {
		return 0, false
	}
	return s.Values[i], true
}

// MarshalJSON writes {"iou_type": ..., "ap": ..., ...} in summarize()'s
// order, each number with the shortest digits that read back exactly.
func (s Stats) MarshalJSON() ([]byte, error) {
	b := []byte(`{"iou_type":`)
	b = strconv.AppendQuote(b, s.IoUType)
	for i, n := range s.Names() {
		if i >= len(s.Values) {
			break
		}
		b = append(b, ',')
		b = strconv.AppendQuote(b, n)
		b = append(b, ':')
		b = strconv.AppendFloat(b, s.Values[i], 'g', -1, 64)
	}
	return append(b, '}'), nil
}

// Stats is COCOeval.summarize(): means over the accumulated precision and
// recall of the settings each number names.
func (e *Eval) Stats() Stats {
	p := e.Params
	md := func(i int) int {
		if i < len(p.MaxDets) {
			return p.MaxDets[i]
		}
		return -1 // pycocotools would fail; no setting matches
	}
	half, threeQ := .5, .75
	type q struct {
		ap      bool
		iou     *float64
		area    string
		maxDets int
	}
	var qs []q
	if p.IoUType == Keypoints {
		qs = []q{
			{true, nil, "all", 20}, {true, &half, "all", 20}, {true, &threeQ, "all", 20},
			{true, nil, "medium", 20}, {true, nil, "large", 20},
			{false, nil, "all", 20}, {false, &half, "all", 20}, {false, &threeQ, "all", 20},
			{false, nil, "medium", 20}, {false, nil, "large", 20},
		}
	} else {
		qs = []q{
			{true, nil, "all", 100}, {true, &half, "all", md(2)}, {true, &threeQ, "all", md(2)},
			{true, nil, "small", md(2)}, {true, nil, "medium", md(2)}, {true, nil, "large", md(2)},
			{false, nil, "all", md(0)}, {false, nil, "all", md(1)}, {false, nil, "all", md(2)},
			{false, nil, "small", md(2)}, {false, nil, "medium", md(2)}, {false, nil, "large", md(2)},
		}
	}
	s := Stats{IoUType: p.IoUType, Values: make([]float64, len(qs))}
	for i, x := range qs {
		s.Values[i] = e.summarize(x.ap, x.iou, x.area, x.maxDets)
	}
	return s
}

// summarize is _summarize: the mean of the values above -1, in NumPy's
// order and summation, or -1 when there are none.
func (e *Eval) summarize(ap bool, iou *float64, area string, maxDets int) float64 {
	p := e.Params
	R, K := len(p.RecallThresholds), len(e.CategoryIDs)
	A, M := len(p.AreaRanges), len(p.MaxDets)
	var ts, as, ms []int
	for t, v := range p.IoUThresholds {
		if iou == nil || v == *iou {
			ts = append(ts, t)
		}
	}
	for a, l := range p.AreaLabels {
		if l == area {
			as = append(as, a)
		}
	}
	for m, v := range p.MaxDets {
		if v == maxDets {
			ms = append(ms, m)
		}
	}
	// s[:, :, :, aind, mind]: NumPy pairs the two index lists.
	type am struct{ a, m int }
	var pairs []am
	switch {
	case len(as) == len(ms):
		for i := range as {
			pairs = append(pairs, am{as[i], ms[i]})
		}
	case len(as) == 1:
		for _, m := range ms {
			pairs = append(pairs, am{as[0], m})
		}
	case len(ms) == 1:
		for _, a := range as {
			pairs = append(pairs, am{a, ms[0]})
		}
	}
	var vals []float64
	add := func(v float64) {
		if v > -1 {
			vals = append(vals, v)
		}
	}
	for _, t := range ts {
		if ap {
			for r := range R {
				for k := range K {
					for _, x := range pairs {
						add(e.Precision[(((t*R+r)*K+k)*A+x.a)*M+x.m])
					}
				}
			}
		} else {
			for k := range K {
				for _, x := range pairs {
					add(e.Recall[((t*K+k)*A+x.a)*M+x.m])
				}
			}
		}
	}
	if len(vals) == 0 {
		return -1
	}
	return pairwiseSum(vals) / float64(len(vals))
}
