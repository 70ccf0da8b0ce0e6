package cocoeval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/vigil-video/vigil/frame"
)

// Dataset is a COCO ground truth: the "images", "annotations" and
// "categories" of a COCO JSON file. Other keys (info, licenses) are
// dropped.
type Dataset struct {
	Images      []Image      `json:"images"`
	Annotations []Annotation `json:"annotations"`
	Categories  []Category   `json:"categories"`
}

// Image is one entry of "images". Width and Height matter for
// segmentation: polygons are rasterised at that size.
type Image struct {
	ID       int64  `json:"id"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	FileName string `json:"file_name,omitempty"`
}

// Category is one entry of "categories".
type Category struct {
	ID            int64    `json:"id"`
	Name          string   `json:"name"`
	Supercategory string   `json:"supercategory,omitempty"`
	Keypoints     []string `json:"keypoints,omitempty"`
	Skeleton      [][2]int `json:"skeleton,omitempty"`
}

// Annotation is one ground-truth object.
type Annotation struct {
	ID         int64 `json:"id"`
	ImageID    int64 `json:"image_id"`
	CategoryID int64 `json:"category_id"`
	// BBox is [x, y, width, height] in pixels.
	BBox         []float64     `json:"bbox,omitempty"`
	Segmentation *Segmentation `json:"segmentation,omitempty"`
	// Keypoints is [x1 y1 v1 x2 y2 v2 ...], v > 0 for labelled points.
	Keypoints    []float64 `json:"keypoints,omitempty"`
	NumKeypoints int       `json:"num_keypoints,omitempty"`
	// Area decides the small/medium/large range the object counts in; it
	// is read from the file, never recomputed, as pycocotools does.
	Area    float64 `json:"area"`
	IsCrowd int     `json:"iscrowd"`
	// Ignore is kept for round trips only: pycocotools overwrites it with
	// iscrowd before evaluating, so it has no effect here either.
	Ignore int `json:"ignore,omitempty"`
}

// Segmentation is a COCO "segmentation": polygons, or a run-length mask
// (compressed string or uncompressed counts in JSON).
type Segmentation struct {
	// Polygons are [x0 y0 x1 y1 ...] outlines of the object's parts.
	Polygons [][]float64
	// Mask is set instead for an RLE segmentation, at its own "size".
	Mask *frame.Mask
}

// Result is one detection in a COCO results file. Which of BBox,
// Segmentation and Keypoints the first result has decides how all are
// read, as in pycocotools' loadRes: a non-empty bbox first (area w*h; a
// box polygon stands in for a missing segmentation), else segmentation
// (area and box from the mask), else keypoints (area and box from the
// points' extent).
type Result struct {
	ImageID      int64         `json:"image_id"`
	CategoryID   int64         `json:"category_id"`
	BBox         []float64     `json:"bbox,omitempty"`
	Segmentation *Segmentation `json:"segmentation,omitempty"`
	Keypoints    []float64     `json:"keypoints,omitempty"`
	Score        float64       `json:"score"`
}

// Load reads a COCO ground-truth JSON file.
func Load(path string) (*Dataset, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading COCO ground truth: %w", err)
	}
	d, err := ParseDataset(b)
	if err != nil {
		return nil, fmt.Errorf("parsing COCO ground truth %s: %w", path, err)
	}
	return d, nil
}

// LoadResults reads a COCO results JSON file (an array of detections).
func LoadResults(path string) ([]Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading COCO results: %w", err)
	}
	r, err := ParseResults(b)
	if err != nil {
		return nil, fmt.Errorf("parsing COCO results %s: %w", path, err)
	}
	return r, nil
}

// ParseDataset decodes a COCO ground-truth JSON document.
func ParseDataset(b []byte) (*Dataset, error) {
	var raw struct {
		Images      []json.RawMessage `json:"images"`
		Annotations []json.RawMessage `json:"annotations"`
		Categories  []json.RawMessage `json:"categories"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	d := &Dataset{
		Images:      make([]Image, len(raw.Images)),
		Annotations: make([]Annotation, len(raw.Annotations)),
		Categories:  make([]Category, len(raw.Categories)),
	}
	for i, m := range raw.Images {
		if err := d.Images[i].UnmarshalJSON(m); err != nil {
			return nil, fmt.Errorf("images[%d]: %w", i, err)
		}
	}
	for i, m := range raw.Categories {
		if err := d.Categories[i].UnmarshalJSON(m); err != nil {
			return nil, fmt.Errorf("categories[%d]: %w", i, err)
		}
	}
	for i, m := range raw.Annotations {
		if err := d.Annotations[i].UnmarshalJSON(m); err != nil {
			return nil, fmt.Errorf("annotations[%d]: %w", i, err)
		}
	}
	return d, nil
}

// ParseResults decodes a COCO results JSON document: an array of
// {image_id, category_id, bbox | segmentation | keypoints, score}.
func ParseResults(b []byte) ([]Result, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("results must be a JSON array of objects: %w", err)
	}
	rs := make([]Result, len(raw))
	for i, m := range raw {
		if err := rs[i].UnmarshalJSON(m); err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
	}
	return rs, nil
}

// UnmarshalJSON decodes an image, accepting ids written as integral
// floats (42.0) as Python does.
func (im *Image) UnmarshalJSON(b []byte) error {
	var a struct {
		ID       json.Number `json:"id"`
		Width    json.Number `json:"width"`
		Height   json.Number `json:"height"`
		FileName string      `json:"file_name"`
	}
	if err := strictObject(b, &a); err != nil {
		return err
	}
	var err error
	*im = Image{FileName: a.FileName}
	if im.ID, err = parseInt(a.ID, "id", true); err != nil {
		return err
	}
	w, err := parseInt(a.Width, "width", false)
	if err != nil {
		return err
	}
	h, err := parseInt(a.Height, "height", false)
	if err != nil {
		return err
	}
	if w < 0 || h < 0 || w > math.MaxInt32 || h > math.MaxInt32 || w*h > math.MaxUint32 {
		return fmt.Errorf("size %dx%d is out of range", w, h)
	}
	im.Width, im.Height = int(w), int(h)
	return nil
}

// UnmarshalJSON decodes a category.
func (c *Category) UnmarshalJSON(b []byte) error {
	var a struct {
		ID            json.Number `json:"id"`
		Name          string      `json:"name"`
		Supercategory string      `json:"supercategory"`
		Keypoints     []string    `json:"keypoints"`
		Skeleton      [][2]int    `json:"skeleton"`
	}
	if err := strictObject(b, &a); err != nil {
		return err
	}
	id, err := parseInt(a.ID, "id", true)
	if err != nil {
		return err
	}
	*c = Category{ID: id, Name: a.Name, Supercategory: a.Supercategory, Keypoints: a.Keypoints, Skeleton: a.Skeleton}
	return nil
}

// UnmarshalJSON decodes a ground-truth annotation.
func (an *Annotation) UnmarshalJSON(b []byte) error {
	var a struct {
		ID           json.Number     `json:"id"`
		ImageID      json.Number     `json:"image_id"`
		CategoryID   json.Number     `json:"category_id"`
		BBox         []float64       `json:"bbox"`
		Segmentation json.RawMessage `json:"segmentation"`
		Keypoints    []float64       `json:"keypoints"`
		NumKeypoints json.Number     `json:"num_keypoints"`
		Area         float64         `json:"area"`
		IsCrowd      json.RawMessage `json:"iscrowd"`
		Ignore       json.RawMessage `json:"ignore"`
	}
	if err := strictObject(b, &a); err != nil {
		return err
	}
	*an = Annotation{BBox: a.BBox, Keypoints: a.Keypoints, Area: a.Area}
	var err error
	if an.ID, err = parseInt(a.ID, "id", true); err != nil {
		return err
	}
	if an.ImageID, err = parseInt(a.ImageID, "image_id", true); err != nil {
		return err
	}
	if an.CategoryID, err = parseInt(a.CategoryID, "category_id", true); err != nil {
		return err
	}
	nk, err := parseInt(a.NumKeypoints, "num_keypoints", false)
	if err != nil {
		return err
	}
	an.NumKeypoints = int(nk)
	if an.IsCrowd, err = parseFlag(a.IsCrowd, "iscrowd"); err != nil {
		return err
	}
	if an.Ignore, err = parseFlag(a.Ignore, "ignore"); err != nil {
		return err
	}
	if a.BBox != nil && len(a.BBox) != 4 {
		return fmt.Errorf("bbox has %d numbers, want 4", len(a.BBox))
	}
	if len(a.Segmentation) > 0 && !bytes.Equal(a.Segmentation, []byte("null")) {
		an.Segmentation = new(Segmentation)
		if err := an.Segmentation.UnmarshalJSON(a.Segmentation); err != nil {
			return fmt.Errorf("segmentation: %w", err)
		}
	}
	return nil
}

// UnmarshalJSON decodes one detection.
func (r *Result) UnmarshalJSON(b []byte) error {
	var a struct {
		ImageID      json.Number     `json:"image_id"`
		CategoryID   json.Number     `json:"category_id"`
		BBox         []float64       `json:"bbox"`
		Segmentation json.RawMessage `json:"segmentation"`
		Keypoints    []float64       `json:"keypoints"`
		Score        *float64        `json:"score"`
	}
	if err := strictObject(b, &a); err != nil {
		return err
	}
	*r = Result{BBox: a.BBox, Keypoints: a.Keypoints}
	var err error
	if r.ImageID, err = parseInt(a.ImageID, "image_id", true); err != nil {
		return err
	}
	if r.CategoryID, err = parseInt(a.CategoryID, "category_id", true); err != nil {
		return err
	}
	if a.Score == nil {
		return errors.New("score is missing")
	}
	r.Score = *a.Score
	if len(a.Segmentation) > 0 && !bytes.Equal(a.Segmentation, []byte("null")) {
		r.Segmentation = new(Segmentation)
		if err := r.Segmentation.UnmarshalJSON(a.Segmentation); err != nil {
			return fmt.Errorf("segmentation: %w", err)
		}
	}
	return nil
}

// UnmarshalJSON decodes polygons ([[x y ...], ...]) or an RLE
// ({"size": [h, w], "counts": "string" or [runs...]}).
func (s *Segmentation) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*s = Segmentation{}
	if len(b) > 0 && b[0] == '[' {
		if err := json.Unmarshal(b, &s.Polygons); err != nil {
			return fmt.Errorf("polygons must be arrays of numbers: %w", err)
		}
		return nil
	}
	var a struct {
		Size   []int64         `json:"size"`
		Counts json.RawMessage `json:"counts"`
	}
	if err := strictObject(b, &a); err != nil {
		return fmt.Errorf("want polygons or an RLE object: %w", err)
	}
	if len(a.Size) != 2 {
		return fmt.Errorf("RLE size has %d numbers, want 2 ([height, width])", len(a.Size))
	}
	h, w := a.Size[0], a.Size[1]
	if h < 0 || w < 0 || h > math.MaxInt32 || w > math.MaxInt32 || h*w > math.MaxUint32 {
		return fmt.Errorf("RLE size %dx%d is out of range", h, w)
	}
	if len(a.Counts) == 0 {
		return errors.New("RLE counts are missing")
	}
	var m frame.Mask
	switch a.Counts[0] {
	case '"':
		var str string
		if err := json.Unmarshal(a.Counts, &str); err != nil {
			return fmt.Errorf("RLE counts: %w", err)
		}
		var err error
		if m, err = frame.MaskFromCOCOString(str, int(w), int(h)); err != nil {
			return fmt.Errorf("RLE counts: %w", err)
		}
	case '[':
		// pycocotools casts each run to uint32 (np.array(..., uint32)).
		var cs []uint32
		if err := json.Unmarshal(a.Counts, &cs); err != nil {
			return fmt.Errorf("RLE counts must be a string or runs of 0..2^32-1: %w", err)
		}
		m = frame.Mask{Width: int(w), Height: int(h), Counts: cs}
	default:
		return errors.New("RLE counts must be a string or an array")
	}
	if err := m.Valid(); err != nil {
		return fmt.Errorf("RLE counts: %w", err)
	}
	s.Mask = &m
	return nil
}

// MarshalJSON writes polygons as arrays and masks as compressed RLE.
func (s Segmentation) MarshalJSON() ([]byte, error) {
	if s.Mask != nil {
		return json.Marshal(struct {
			Size   [2]int `json:"size"`
			Counts string `json:"counts"`
		}{[2]int{s.Mask.Height, s.Mask.Width}, s.Mask.COCOString()})
	}
	if s.Polygons == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(s.Polygons)
}

// strictObject decodes a JSON object into v; null and non-objects are
// errors.
func strictObject(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return errors.New("want a JSON object")
	}
	return json.Unmarshal(b, v)
}

// parseInt reads an integer written as 42 or 42.0 (Python compares them
// equal). A missing value is an error when required, else 0.
func parseInt(n json.Number, field string, required bool) (int64, error) {
	if n == "" {
		if required {
			return 0, fmt.Errorf("%s is missing", field)
		}
		return 0, nil
	}
	if v, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return v, nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%s is %s, want an integer", field, n)
	}
	return int64(f), nil
}

// parseFlag reads iscrowd/ignore: 0, 1 (any integer) or a JSON boolean.
func parseFlag(b json.RawMessage, field string) (int, error) {
	b = bytes.TrimSpace(b)
	switch string(b) {
	case "", "null", "false":
		return 0, nil
	case "true":
		return 1, nil
	}
	v, err := parseInt(json.Number(b), field, false)
	if err != nil {
		return 0, err
	}
	if v != 0 {
		return 1, nil
	}
	return 0, nil
}
