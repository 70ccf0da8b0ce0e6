package motmetrics

import (
	"math"
	"sort"
)

// clearResult holds the py-motmetrics counts and metrics.
type clearResult struct {
	numObjects, numPredictions    int
	gt, mt, pt, ml                int
	fp, fn, idsw, frag, matches   int
	distSum                       float64
	idtp, idfp, idfn              float64
	idf1, idp, idr                float64
	recall, precision, mota, motp float64
}

// motIoUDistance is 1-IoU as py-motmetrics' iou_matrix computes it (after
// loadtxt's X,Y -= 1), NaN where the distance exceeds maxDist or the IoU is
// undefined.
func motIoUDistance(a, b Box, maxDist float64) float64 {
	ax, ay := a.X-1, a.Y-1
	bx, by := b.X-1, b.Y-1
	iw := math.Max(math.Min(ax+a.W, bx+b.W)-math.Max(ax, bx), 0)
	ih := math.Max(math.Min(ay+a.H, by+b.H)-math.Max(ay, by), 0)
	inter := iw * ih
	union := a.W*a.H + b.W*b.H - inter
	d := 1 - inter/union
	if d > maxDist {
		return math.NaN()
	}
	return d
}

type pair struct{ o, h int }

// evalCLEAR runs py-motmetrics' MOTAccumulator over every frame holding an
// object in either sequence (utils.compare_to_groundtruth) and computes its
// CLEAR and identity metrics.
func evalCLEAR(gt, res *Sequence, maxDist float64) clearResult {
	frames := unionFrames(gt, res)

	// MOTAccumulator's state. Its res_m and hypHistory only feed the
	// TRANSFER, ASCEND and MIGRATE events, which no metric here uses.
	m := map[int]int{}         // object -> last hypothesis matched
	lastOcc := map[int]int{}   // object -> last frame seen
	lastMatch := map[int]int{} // object -> last frame matched
	lastUpdate, haveUpdate := 0, false

	ocs := map[int]int{}       // object -> frames present
	hcs := map[int]int{}       // hypothesis -> frames present
	tps := map[pair]int{}      // (object, hypothesis) -> frames within threshold
	missed := map[int][]bool{} // object -> per occurrence: missed?
	var r clearResult

	var dists []float64
	for _, f := range frames {
		objs, hyps := gt.frames[f], res.frames[f]
		no, nh := len(objs), len(hyps)
		dists = dists[:0]
		for _, o := range objs {
			for _, h := range hyps {
				dists = append(dists, motIoUDistance(o.Box, h.Box, maxDist))
			}
		}
		for i, o := range objs {
			ocs[o.ID]++
			for j, h := range hyps {
				if !math.IsNaN(dists[i*nh+j]) {
					tps[pair{o.ID, h.ID}]++
				}
			}
		}
		for _, h := range hyps {
			hcs[h.ID]++
		}
		oMasked := make([]bool, no)
		hMasked := make([]bool, nh)
		if no > 0 && nh > 0 {
			// 1. Keep matches made in the previous update.
			for i, o := range objs {
				hprev, ok := m[o.ID]
				if !ok || !haveUpdate || lastMatch[o.ID] != lastUpdate {
					continue
				}
				j := -1
				for jj, h := range hyps {
					if !hMasked[jj] && h.ID == hprev {
						j = jj
						break
					}
				}
				if j < 0 || math.IsNaN(dists[i*nh+j]) {
					continue
				}
				oMasked[i], hMasked[j] = true, true
				r.matches++
				r.distSum += dists[i*nh+j]
				lastMatch[o.ID] = f
			}
			// 2. Minimum-cost assignment of the rest.
			cost := make([]float64, no*nh)
			for i := range objs {
				for j := range hyps {
					d := dists[i*nh+j]
					if oMasked[i] || hMasked[j] {
						d = math.NaN()
					}
					cost[i*nh+j] = d
				}
			}
			ri, ci := solveWithMissing(cost, no, nh)
			for k := range ri {
				i, j := ri[k], ci[k]
				o, h := objs[i].ID, hyps[j].ID
				prev, had := m[o]
				_, occ := lastOcc[o]
				if had && prev != h && occ {
					r.idsw++
				} else {
					r.matches++
				}
				r.distSum += cost[i*nh+j]
				lastMatch[o] = f
				oMasked[i], hMasked[j] = true, true
				m[o] = h
			}
		}
		for i, o := range objs {
			missed[o.ID] = append(missed[o.ID], !oMasked[i])
			if !oMasked[i] {
				r.fn++
			}
		}
		for j := range hyps {
			if !hMasked[j] {
				r.fp++
			}
		}
		for _, o := range objs {
			lastOcc[o.ID] = f
		}
		lastUpdate, haveUpdate = f, true
	}

	detections := r.matches + r.idsw
	for _, n := range ocs {
		r.numObjects += n
	}
	for _, n := range hcs {
		r.numPredictions += n
	}
	r.gt = len(ocs)
	for _, ms := range missed {
		tracked := 0
		first, last := -1, -1
		for k, miss := range ms {
			if !miss {
				tracked++
				if first < 0 {
					first = k
				}
				last = k
			}
		}
		ratio := float64(tracked) / float64(len(ms))
		switch {
		case ratio >= 0.8:
			r.mt++
		case ratio >= 0.2:
			r.pt++
		default:
			r.ml++
		}
		for k := first + 1; first >= 0 && k <= last; k++ {
			if ms[k] && !ms[k-1] {
				r.frag++
			}
		}
	}
	r.recall = qdiv(float64(detections), float64(r.numObjects))
	r.precision = qdiv(float64(detections), float64(r.fp+detections))
	if r.numObjects > 0 {
		r.mota = 1 - float64(r.fn+r.idsw+r.fp)/float64(r.numObjects)
	}
	r.motp = qdiv(r.distSum, float64(detections))

	r.idfp, r.idfn = idGlobalAssignment(ocs, hcs, tps)
	r.idtp = float64(r.numObjects) - r.idfn
	r.idp = qdiv(r.idtp, r.idtp+r.idfp)
	r.idr = qdiv(r.idtp, r.idtp+r.idfn)
	r.idf1 = qdiv(2*r.idtp, float64(r.numObjects+r.numPredictions))
	return r
}

// idGlobalAssignment is py-motmetrics' id_global_assignment: a min-cost
// bipartite matching between object and hypothesis identities, each side
// padded with one dummy per identity of the other side, where a pair costs
// the frames it gets wrong. It returns the summed IDFP and IDFN.
func idGlobalAssignment(ocs, hcs map[int]int, tps map[pair]int) (idfp, idfn float64) {
	oids := sortedKeys(ocs)
	hids := sortedKeys(hcs)
	no, nh := len(oids), len(hids)
	n := no + nh
	if n == 0 {
		return 0, 0
	}
	oidx := make(map[int]int, no)
	for i, o := range oids {
		oidx[o] = i
	}
	hidx := make(map[int]int, nh)
	for j, h := range hids {
		hidx[h] = j
	}
	fp := make([]float64, n*n)
	fn := make([]float64, n*n)
	nan := math.NaN()
	for r := no; r < n; r++ {
		for c := 0; c < nh; c++ {
			fp[r*n+c] = nan
		}
	}
	for r := 0; r < no; r++ {
		for c := nh; c < n; c++ {
			fn[r*n+c] = nan
		}
	}
	for r, o := range oids {
		oc := float64(ocs[o])
		for c := 0; c < nh; c++ {
			fn[r*n+c] = oc
		}
		fn[r*n+nh+r] = oc
	}
	for c, h := range hids {
		hc := float64(hcs[h])
		for r := 0; r < no; r++ {
			fp[r*n+c] = hc
		}
		fp[(c+no)*n+c] = hc
	}
	for p, ex := range tps {
		r, c := oidx[p.o], hidx[p.h]
		fp[r*n+c] -= float64(ex)
		fn[r*n+c] -= float64(ex)
	}
	cost := make([]float64, n*n)
	for k := range cost {
		cost[k] = fp[k] + fn[k]
	}
	ri, ci := solveWithMissing(cost, n, n)
	for k := range ri {
		idfp += fp[ri[k]*n+ci[k]]
		idfn += fn[ri[k]*n+ci[k]]
	}
	return idfp, idfn
}

// qdiv divides, giving 0 where py-motmetrics would give NaN or Inf.
func qdiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func sortedKeys(m map[int]int) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}

func unionFrames(a, b *Sequence) []int {
	fa, fb := a.Frames(), b.Frames()
	out := make([]int, 0, len(fa)+len(fb))
	i, j := 0, 0
	for i < len(fa) || j < len(fb) {
		switch {
		case j >= len(fb) || (i < len(fa) && fa[i] < fb[j]):
			out = append(out, fa[i])
			i++
		case i >= len(fa) || fb[j] < fa[i]:
			out = append(out, fb[j])
			j++
		default:
			out = append(out, fa[i])
			i++
			j++
		}
	}
	return out
}
