package evaluate

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/training/dataset"
)

// Embedding is one re-ID vector with its identity.
type Embedding struct {
	Vector []float32
	// Identity is the object's identity (a track id).
	Identity uint64
	// Camera names the camera or sequence; when both sides set it, a
	// gallery entry with the query's identity and camera is left out
	// (Market-1501's "junk": the same view is too easy).
	Camera string
	// Frame names the image the object was cut from; when both sides set
	// it, gallery entries from the query's frame are left out.
	Frame string
}

// ReIDResult is the outcome of ReID.
type ReIDResult struct {
	// Rank1 and Rank5 are the fractions of queries whose first correct
	// match ranks within 1 and 5 (the CMC curve), MAP the mean over
	// queries of the average precision of the whole ranking.
	Rank1 float64 `json:"rank1"`
	Rank5 float64 `json:"rank5"`
	MAP   float64 `json:"map"`
	// Queries counts the evaluated queries; Skipped those left out for
	// having no correct match in the gallery.
	Queries int `json:"queries"`
	Skipped int `json:"skipped"`
}

// ReID ranks the gallery by cosine similarity to each query and scores the
// rankings as Market-1501 evaluations do (torchreid's eval_market1501):
// entries excluded by Camera or Frame are dropped from the ranking, queries
// without any correct gallery entry are skipped, and a query's AP is the
// mean of the precision at each correct entry. Ties keep gallery order.
func ReID(query, gallery []Embedding) (*ReIDResult, error) {
	if len(query) == 0 || len(gallery) == 0 {
		return nil, errors.New("evaluating re-ID: empty query or gallery")
	}
	dim := len(query[0].Vector)
	if dim == 0 {
		return nil, errors.New("evaluating re-ID: empty embedding")
	}
	norm := func(side string, es []Embedding) ([][]float64, error) {
		out := make([][]float64, len(es))
		for i, e := range es {
			if len(e.Vector) != dim {
				return nil, fmt.Errorf("evaluating re-ID: %s %d has %d dimensions, want %d", side, i, len(e.Vector), dim)
			}
			v := make([]float64, dim)
			var n float64
			for j, x := range e.Vector {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					return nil, fmt.Errorf("evaluating re-ID: %s %d has a non-finite value", side, i)
				}
				v[j] = float64(x)
				n += v[j] * v[j]
			}
			if n > 0 {
				n = 1 / math.Sqrt(n)
				for j := range v {
					v[j] *= n
				}
			}
			out[i] = v
		}
		return out, nil
	}
	qv, err := norm("query", query)
	if err != nil {
		return nil, err
	}
	gv, err := norm("gallery", gallery)
	if err != nil {
		return nil, err
	}
	r := &ReIDResult{}
	type ranked struct {
		sim  float64
		idx  int
		good bool
	}
	list := make([]ranked, 0, len(gallery))
	var ap, r1, r5 float64
	for qi, q := range query {
		list = list[:0]
		for gi, g := range gallery {
			if q.Frame != "" && q.Frame == g.Frame {
				continue
			}
			if q.Camera != "" && q.Camera == g.Camera && q.Identity == g.Identity {
				continue
			}
			qx := qv[qi]
			gx := gv[gi][:len(qx)]
			var s float64
			for j, x := range qx {
				s += x * gx[j]
			}
			list = append(list, ranked{s, gi, g.Identity == q.Identity})
		}
		// Ties keep gallery order (unstable sort with the index as tie-break
		// is much faster than a stable one).
		slices.SortFunc(list, func(a, b ranked) int { return cmp.Or(cmp.Compare(b.sim, a.sim), cmp.Compare(a.idx, b.idx)) })
		first, hits := -1, 0
		var sum float64
		for rank, e := range list {
			if !e.good {
				continue
			}
			if first < 0 {
				first = rank
			}
			hits++
			sum += float64(hits) / float64(rank+1)
		}
		if hits == 0 {
			r.Skipped++
			continue
		}
		r.Queries++
		ap += sum / float64(hits)
		if first < 1 {
			r1++
		}
		if first < 5 {
			r5++
		}
	}
	if r.Queries == 0 {
		return nil, errors.New("evaluating re-ID: no query has a correct match in the gallery")
	}
	n := float64(r.Queries)
	r.Rank1, r.Rank5, r.MAP = r1/n, r5/n, ap/n
	return r, nil
}

// SplitEvery splits embeddings into queries and gallery: within each
// identity, in input order, every k-th entry (the 1st, the k+1-th, ...)
// is a query and the rest gallery. k < 2 is treated as 2.
func SplitEvery(es []Embedding, k int) (query, gallery []Embedding) {
	k = max(k, 2)
	seen := map[uint64]int{}
	for _, e := range es {
		n := seen[e.Identity]
		seen[e.Identity] = n + 1
		if n%k == 0 {
			query = append(query, e)
		} else {
			gallery = append(gallery, e)
		}
	}
	return query, gallery
}

// SplitBy puts the embeddings for which isQuery is true in the queries and
// the rest in the gallery, e.g. by camera or sequence.
func SplitBy(es []Embedding, isQuery func(Embedding) bool) (query, gallery []Embedding) {
	for _, e := range es {
		if isQuery(e) {
			query = append(query, e)
		} else {
			gallery = append(gallery, e)
		}
	}
	return query, gallery
}

// Embeddings labels the re-ID vectors of predictions with identities: each
// prediction that carries an Embedding, taken by falling score, claims the
// unclaimed object of its class with a TrackID that it overlaps most, at
// IoU >= minIoU (0 means 0.5); ignored objects take no part. The result's
// Camera is the sample's Sequence and Frame its ID, so ReID leaves out
// same-frame matches. Predictions that claim nothing are dropped.
func Embeddings(truth []dataset.Sample, preds [][]frame.Detection, minIoU float64) ([]Embedding, error) {
	if len(truth) != len(preds) {
		return nil, fmt.Errorf("labelling embeddings: %w: %d samples, %d prediction lists", ErrLength, len(truth), len(preds))
	}
	if minIoU <= 0 {
		minIoU = 0.5
	}
	var out []Embedding
	for i := range truth {
		s := &truth[i]
		ds := preds[i]
		order := make([]int, 0, len(ds))
		for j := range ds {
			if len(ds[j].Embedding) > 0 {
				order = append(order, j)
			}
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(ds[b].Score, ds[a].Score) })
		used := make([]bool, len(s.Objects))
		for _, j := range order {
			d := &ds[j]
			best, bestIoU := -1, minIoU
			for k := range s.Objects {
				o := &s.Objects[k]
				if used[k] || o.Ignore || o.TrackID == 0 || o.Class != d.Class {
					continue
				}
				if iou := float64(d.Box.IoU(o.Box)); iou >= bestIoU {
					best, bestIoU = k, iou
				}
			}
			if best < 0 {
				continue
			}
			used[best] = true
			out = append(out, Embedding{Vector: d.Embedding, Identity: s.Objects[best].TrackID, Camera: s.Sequence, Frame: s.ID})
		}
	}
	return out, nil
}
