package motmetrics

import "math"

// eps is NumPy's np.finfo('float').eps, which TrackEval uses in its
// comparisons.
const eps = 2.220446049250313e-16

// numAlphas is len(np.arange(0.05, 0.99, 0.05)).
const numAlphas = 19

// hotaAlpha returns TrackEval's i-th localisation threshold, computed as
// np.arange computes it (start + i*step).
func hotaAlpha(i int) float64 { return 0.05 + float64(i)*0.05 }

// hotaResult holds HOTA, DetA, AssA and LocA per alpha and averaged.
type hotaResult struct {
	hota, detA, assA, locA       [numAlphas]float64
	meanHOTA, meanDetA, meanAssA float64
	meanLocA                     float64
}

// trackEvalIoU is TrackEval's _calculate_box_ious for xywh boxes.
func trackEvalIoU(a, b Box) float64 {
	ax1, ay1 := a.X+a.W, a.Y+a.H
	bx1, by1 := b.X+b.W, b.Y+b.H
	inter := math.Max(math.Min(ax1, bx1)-math.Max(a.X, b.X), 0) *
		math.Max(math.Min(ay1, by1)-math.Max(a.Y, b.Y), 0)
	area1 := (ax1 - a.X) * (ay1 - a.Y)
	area2 := (bx1 - b.X) * (by1 - b.Y)
	union := area1 + area2 - inter
	if area1 <= 0+eps || area2 <= 0+eps || union <= 0+eps {
		inter = 0
	}
	if union <= 0+eps {
		union = 1
	}
	return inter / union
}

// evalHOTA is TrackEval's HOTA.eval_sequence on one sequence. Ground truth
// marked Ignored is dropped first, as TrackEval's MOTChallenge loader does
// for MOT15-style data with no class column (zero_marked); no tracker
// output is removed, since there are no distractor classes to match.
func evalHOTA(gt, res *Sequence) hotaResult {
	frames := unionFrames(gt, res)
	// Map ids to dense indices, as TrackEval does.
	gIdx, tIdx := map[int]int{}, map[int]int{}
	type frameData struct {
		g, t []int // dense ids
		sim  []float64
	}
	data := make([]frameData, 0, len(frames))
	numGTDets, numTrDets := 0, 0
	for _, f := range frames {
		var fd frameData
		var gBoxes []Box
		for _, o := range gt.frames[f] {
			if o.Ignored {
				continue
			}
			k, ok := gIdx[o.ID]
			if !ok {
				k = len(gIdx)
				gIdx[o.ID] = k
			}
			fd.g = append(fd.g, k)
			gBoxes = append(gBoxes, o.Box)
		}
		for _, h := range res.frames[f] {
			k, ok := tIdx[h.ID]
			if !ok {
				k = len(tIdx)
				tIdx[h.ID] = k
			}
			fd.t = append(fd.t, k)
		}
		fd.sim = make([]float64, len(fd.g)*len(fd.t))
		for i, gb := range gBoxes {
			for j, h := range res.frames[f] {
				fd.sim[i*len(fd.t)+j] = trackEvalIoU(gb, h.Box)
			}
		}
		numGTDets += len(fd.g)
		numTrDets += len(fd.t)
		data = append(data, fd)
	}

	var r hotaResult
	var tp, fn, fp [numAlphas]float64
	if numTrDets == 0 || numGTDets == 0 {
		for a := range numAlphas {
			fn[a] = float64(numGTDets)
			fp[a] = float64(numTrDets)
			r.locA[a] = 1
		}
		r.finish(&tp, &fn, &fp)
		return r
	}

	ng, nt := len(gIdx), len(tIdx)
	potential := make([]float64, ng*nt)
	gtCount := make([]float64, ng)
	trCount := make([]float64, nt)
	for _, fd := range data {
		n, m := len(fd.g), len(fd.t)
		rowSum := make([]float64, n)
		colSum := make([]float64, m)
		for i := range n {
			for j := range m {
				s := fd.sim[i*m+j]
				rowSum[i] += s
				colSum[j] += s
			}
		}
		for i := range n {
			for j := range m {
				s := fd.sim[i*m+j]
				denom := colSum[j] + rowSum[i] - s
				if denom > 0+eps {
					potential[fd.g[i]*nt+fd.t[j]] += s / denom
				}
			}
		}
		for _, g := range fd.g {
			gtCount[g]++
		}
		for _, t := range fd.t {
			trCount[t]++
		}
	}
	global := make([]float64, ng*nt)
	for g := range ng {
		for t := range nt {
			p := potential[g*nt+t]
			global[g*nt+t] = p / (gtCount[g] + trCount[t] - p)
		}
	}

	matches := make([][]float64, numAlphas)
	for a := range matches {
		matches[a] = make([]float64, ng*nt)
	}
	var score []float64
	for _, fd := range data {
		n, m := len(fd.g), len(fd.t)
		if n == 0 {
			for a := range numAlphas {
				fp[a] += float64(m)
			}
			continue
		}
		if m == 0 {
			for a := range numAlphas {
				fn[a] += float64(n)
			}
			continue
		}
		score = score[:0]
		for i := range n {
			for j := range m {
				score = append(score, -global[fd.g[i]*nt+fd.t[j]]*fd.sim[i*m+j])
			}
		}
		ri, ci := solveLSAP(score, n, m)
		for a := range numAlphas {
			alpha := hotaAlpha(a)
			k := 0
			for q := range ri {
				s := fd.sim[ri[q]*m+ci[q]]
				if s >= alpha-eps {
					k++
					r.locA[a] += s
					matches[a][fd.g[ri[q]]*nt+fd.t[ci[q]]]++
				}
			}
			tp[a] += float64(k)
			fn[a] += float64(n - k)
			fp[a] += float64(m - k)
		}
	}
	for a := range numAlphas {
		sum := 0.0
		for g := range ng {
			for t := range nt {
				mc := matches[a][g*nt+t]
				if mc == 0 {
					continue
				}
				sum += mc * mc / math.Max(1, gtCount[g]+trCount[t]-mc)
			}
		}
		r.assA[a] = sum / math.Max(1, tp[a])
		r.locA[a] = math.Max(1e-10, r.locA[a]) / math.Max(1e-10, tp[a])
	}
	r.finish(&tp, &fn, &fp)
	return r
}

// finish is TrackEval's _compute_final_fields plus the mean over alphas
// that its summaries report.
func (r *hotaResult) finish(tp, fn, fp *[numAlphas]float64) {
	for a := range numAlphas {
		r.detA[a] = tp[a] / math.Max(1, tp[a]+fn[a]+fp[a])
		r.hota[a] = math.Sqrt(r.detA[a] * r.assA[a])
	}
	r.meanHOTA = mean(r.hota[:])
	r.meanDetA = mean(r.detA[:])
	r.meanAssA = mean(r.assA[:])
	r.meanLocA = mean(r.locA[:])
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
