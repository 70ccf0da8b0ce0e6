package motmetrics

import "fmt"

// Options tune Evaluate. The zero value gives the settings of the
// reference numbers: IoU matching at 0.5.
type Options struct {
	// MaxDistance is the largest 1-IoU distance at which a ground-truth
	// object and a hypothesis may be matched for the CLEAR and identity
	// metrics (py-motmetrics' distth / iou_matrix max_iou). It defaults to
	// 0.5. HOTA does not use it: it sweeps its own thresholds.
	MaxDistance float64
}

// Result holds the metrics of one sequence. It marshals to JSON with the
// keys idf1 idp idr recall precision gt mt pt ml fp fn idsw frag mota motp
// hota deta assa. Ratios that py-motmetrics would report as NaN (nothing to
// divide by) are 0.
type Result struct {
	// IDF1, IDP and IDR are the identity F1 score, precision and recall.
	IDF1 float64 `json:"idf1"`
	IDP  float64 `json:"idp"`
	IDR  float64 `json:"idr"`
	// Recall is matched ground truth over all ground truth; Precision is
	// matches over all hypotheses.
	Recall    float64 `json:"recall"`
	Precision float64 `json:"precision"`
	// GT is the number of ground-truth identities; MT, PT and ML count
	// those tracked for at least 80%, between 20% and 80%, and under 20%
	// of their frames.
	GT int `json:"gt"`
	MT int `json:"mt"`
	PT int `json:"pt"`
	ML int `json:"ml"`
	// FP, FN, IDSW and Frag count false positives, misses, identity
	// switches and fragmentations (tracked-to-missed transitions within an
	// object's tracked span).
	FP   int `json:"fp"`
	FN   int `json:"fn"`
	IDSW int `json:"idsw"`
	Frag int `json:"frag"`
	// MOTA is 1-(FN+IDSW+FP)/ground truth; MOTP is the mean 1-IoU of the
	// matches (lower is better, as py-motmetrics reports it).
	MOTA float64 `json:"mota"`
	MOTP float64 `json:"motp"`
	// HOTA, DetA and AssA are TrackEval's values averaged over the 19
	// thresholds alpha = 0.05, 0.10, ..., 0.95.
	HOTA float64 `json:"hota"`
	DetA float64 `json:"deta"`
	AssA float64 `json:"assa"`
	// LocA is TrackEval's localisation accuracy averaged the same way. It
	// is not part of the JSON form.
	LocA float64 `json:"-"`
}

// Evaluate scores the tracker output res against the ground truth gt.
//
// The CLEAR and identity metrics follow py-motmetrics'
// utils.compare_to_groundtruth(gt, res, 'iou', distth) with MOTAccumulator
// and metrics.py: every frame holding an object in either sequence is one
// update; an object keeps the hypothesis it was matched to in the previous
// update while their distance stays within the threshold; the rest are
// matched by minimum total distance. HOTA follows TrackEval's hota.py with
// IoU similarity; ground truth marked Ignored is left out of HOTA only.
//
// It returns an error when an id occurs twice in one frame.
func Evaluate(gt, res Sequence, opts Options) (Result, error) {
	if err := gt.validate(); err != nil {
		return Result{}, fmt.Errorf("ground truth: %w", err)
	}
	if err := res.validate(); err != nil {
		return Result{}, fmt.Errorf("tracker output: %w", err)
	}
	maxDist := opts.MaxDistance
	if maxDist == 0 {
		maxDist = 0.5
	}
	if !(maxDist > 0 && maxDist <= 1) {
		return Result{}, fmt.Errorf("max distance %v: must be in (0, 1]", maxDist)
	}
	c := evalCLEAR(&gt, &res, maxDist)
	h := evalHOTA(&gt, &res)
	return Result{
		IDF1: c.idf1, IDP: c.idp, IDR: c.idr,
		Recall: c.recall, Precision: c.precision,
		GT: c.gt, MT: c.mt, PT: c.pt, ML: c.ml,
		FP: c.fp, FN: c.fn, IDSW: c.idsw, Frag: c.frag,
		MOTA: c.mota, MOTP: c.motp,
		HOTA: h.meanHOTA, DetA: h.meanDetA, AssA: h.meanAssA, LocA: h.meanLocA,
	}, nil
}
