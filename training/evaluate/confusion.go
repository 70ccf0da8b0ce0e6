package evaluate

import (
	"errors"
	"fmt"
	"image"
	"math"

	"github.com/vigil-video/vigil/training/dataset"
)

// Confusion is a semantic segmentation confusion matrix: Counts[t*(N+1)+p]
// pixels of true class t were predicted as p, where column N gathers
// predictions outside 0..N-1. Class values follow dataset.Sample's
// Segmentation (0 background, c+1 for class c). It is not safe for
// concurrent use.
type Confusion struct {
	// N is the number of classes, background included.
	N int
	// Ignore is the truth value whose pixels are skipped; a value outside
	// 0..255 skips nothing.
	Ignore int
	// Counts has N rows of N+1 columns.
	Counts []uint64
}

// NewConfusion returns an empty matrix for classes values (0..classes-1)
// that skips truth pixels equal to ignore (e.g. 255; -1 for none).
func NewConfusion(classes, ignore int) (*Confusion, error) {
	if classes < 1 || classes > 256 {
		return nil, fmt.Errorf("confusion matrix: %d classes, want 1..256", classes)
	}
	return &Confusion{N: classes, Ignore: ignore, Counts: make([]uint64, classes*(classes+1))}, nil
}

// Add counts one image pair. Both must have the same size; a truth value
// that is neither a class nor Ignore is an error (nothing is counted then).
func (c *Confusion) Add(truth, pred *image.Gray) error {
	if truth == nil || pred == nil {
		return errors.New("adding to confusion matrix: nil image")
	}
	tb, pb := truth.Bounds(), pred.Bounds()
	if tb.Dx() != pb.Dx() || tb.Dy() != pb.Dy() {
		return fmt.Errorf("adding to confusion matrix: truth is %dx%d, prediction %dx%d", tb.Dx(), tb.Dy(), pb.Dx(), pb.Dy())
	}
	w, h := tb.Dx(), tb.Dy()
	for y := range h {
		tr := truth.Pix[y*truth.Stride : y*truth.Stride+w]
		for x, t := range tr {
			if int(t) != c.Ignore && int(t) >= c.N {
				return fmt.Errorf("adding to confusion matrix: truth value %d at (%d,%d) is not a class (0..%d) or the ignore value", t, x, y, c.N-1)
			}
		}
	}
	row := c.N + 1
	for y := range h {
		tr := truth.Pix[y*truth.Stride : y*truth.Stride+w]
		pr := pred.Pix[y*pred.Stride : y*pred.Stride+w]
		for x, t := range tr {
			if int(t) == c.Ignore {
				continue
			}
			p := int(pr[x])
			if p > c.N {
				p = c.N
			}
			c.Counts[int(t)*row+p]++
		}
	}
	return nil
}

// IoU returns each class's intersection over union, NaN for a class that
// appears in neither truth nor prediction.
func (c *Confusion) IoU() []float64 {
	row := c.N + 1
	out := make([]float64, c.N)
	for k := range c.N {
		var tp, truthN, predN uint64
		tp = c.Counts[k*row+k]
		for p := range row {
			truthN += c.Counts[k*row+p]
		}
		for t := range c.N {
			predN += c.Counts[t*row+k]
		}
		union := truthN + predN - tp
		if union == 0 {
			out[k] = math.NaN()
			continue
		}
		out[k] = float64(tp) / float64(union)
	}
	return out
}

// MeanIoU is the mean of IoU over the classes that appear, NaN if none.
func (c *Confusion) MeanIoU() float64 {
	var s float64
	n := 0
	for _, v := range c.IoU() {
		if !math.IsNaN(v) {
			s += v
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

// PixelAccuracy is the fraction of counted pixels predicted right, NaN if
// none were counted.
func (c *Confusion) PixelAccuracy() float64 {
	row := c.N + 1
	var right, all uint64
	for t := range c.N {
		right += c.Counts[t*row+t]
		for p := range row {
			all += c.Counts[t*row+p]
		}
	}
	if all == 0 {
		return math.NaN()
	}
	return float64(right) / float64(all)
}

// SegmentationResult is the outcome of Segmentation. Undefined values are
// -1 rather than NaN, which JSON cannot hold.
type SegmentationResult struct {
	// MeanIoU is the mean IoU over the classes present in truth or
	// prediction, PixelAccuracy the fraction of counted pixels right.
	MeanIoU       float64 `json:"miou"`
	PixelAccuracy float64 `json:"pixel_accuracy"`
	// IoU is by class value, -1 for a class absent from both truth and
	// prediction.
	IoU []float64 `json:"iou"`
}

// Segmentation scores per-sample class maps against the samples'
// Segmentation with classes values (background included) and the ignore
// value (-1 for none). Samples without a Segmentation are skipped; a
// missing prediction for a sample that has one is an error.
func Segmentation(truth []dataset.Sample, preds []*image.Gray, classes, ignore int) (*SegmentationResult, error) {
	if len(truth) != len(preds) {
		return nil, fmt.Errorf("evaluating segmentation: %w: %d samples, %d predictions", ErrLength, len(truth), len(preds))
	}
	c, err := NewConfusion(classes, ignore)
	if err != nil {
		return nil, fmt.Errorf("evaluating segmentation: %w", err)
	}
	for i := range truth {
		if truth[i].Segmentation == nil {
			continue
		}
		if preds[i] == nil {
			return nil, fmt.Errorf("evaluating segmentation: sample %q has no prediction", truth[i].ID)
		}
		if err := c.Add(truth[i].Segmentation, preds[i]); err != nil {
			return nil, fmt.Errorf("evaluating segmentation: sample %q: %w", truth[i].ID, err)
		}
	}
	r := &SegmentationResult{MeanIoU: c.MeanIoU(), PixelAccuracy: c.PixelAccuracy(), IoU: c.IoU()}
	for k, v := range r.IoU {
		if math.IsNaN(v) {
			r.IoU[k] = -1
		}
	}
	if math.IsNaN(r.MeanIoU) {
		r.MeanIoU = -1
	}
	if math.IsNaN(r.PixelAccuracy) {
		r.PixelAccuracy = -1
	}
	return r, nil
}
