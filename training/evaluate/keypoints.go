package evaluate

import (
	"fmt"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/cocoeval"
	"github.com/vigil-video/vigil/training/dataset"
)

// NumKeypoints is the number of COCO person keypoints (nose, eyes, ears,
// shoulders, elbows, wrists, hips, knees, ankles) Keypoints expects.
const NumKeypoints = 17

// KeypointResult is the outcome of Keypoints: COCO's OKS-based numbers,
// -1 where nothing had ground truth.
type KeypointResult struct {
	// Stats are pycocotools' 10 keypoint summary numbers.
	Stats cocoeval.Stats `json:"stats"`
	// AP is OKS AP@[.5:.95], AP50 and AP75 at OKS .5 and .75, AR the
	// recall at 20 detections per image.
	AP   float64 `json:"ap"`
	AP50 float64 `json:"ap50"`
	AP75 float64 `json:"ap75"`
	AR   float64 `json:"ar"`
}

// Keypoints scores predicted poses with COCO's keypoint evaluation (object
// keypoint similarity with cocoeval.py's sigmas for the 17 COCO keypoints). Only objects and predictions with
// keypoints take part; an object with no visible keypoint is ignored, as in
// COCO.
func Keypoints(truth []dataset.Sample, preds [][]frame.Detection) (*KeypointResult, error) {
	for i := range truth {
		for j, o := range truth[i].Objects {
			if o.Keypoints != nil && len(o.Keypoints) != NumKeypoints {
				return nil, fmt.Errorf("evaluating keypoints: sample %q object %d has %d keypoints, want %d", truth[i].ID, j, len(o.Keypoints), NumKeypoints)
			}
		}
	}
	for i := range preds {
		for j, d := range preds[i] {
			if d.Keypoints != nil && len(d.Keypoints) != NumKeypoints {
				return nil, fmt.Errorf("evaluating keypoints: prediction %d of sample %d has %d keypoints, want %d", j, i, len(d.Keypoints), NumKeypoints)
			}
		}
	}
	gt, dets, err := COCO(truth, preds, cocoeval.Keypoints, nil)
	if err != nil {
		return nil, fmt.Errorf("evaluating keypoints: %w", err)
	}
	st, err := cocoeval.Evaluate(gt, dets, cocoeval.Keypoints)
	if err != nil {
		return nil, fmt.Errorf("evaluating keypoints: %w", err)
	}
	r := &KeypointResult{Stats: st}
	r.AP, _ = st.Get("ap")
	r.AP50, _ = st.Get("ap50")
	r.AP75, _ = st.Get("ap75")
	r.AR, _ = st.Get("ar")
	return r, nil
}
