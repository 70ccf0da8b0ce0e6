package dataset

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/cocoeval"
	"github.com/vigil-video/vigil/ingest/synth"
)

// COCOOptions configure LoadCOCO.
type COCOOptions struct {
	// ClassFromID sets Object.Class to the category id; false (the
	// default) uses the category's position in the "categories" list, which
	// maps the 80 COCO categories (ids 1-90) to the 0-79 indices detectors
	// emit.
	ClassFromID bool
	// Segmentation fills Sample.Segmentation from the instance masks.
	Segmentation bool
}

// COCOSource reads a COCO instances JSON file and its image folder. The
// labels are read at load time, each image when its sample is read. It is
// safe for concurrent use.
//
// Besides the standard keys it reads "sequence" and "sample_id" of an image
// and "track_id" and "score" of an annotation, which WriteCOCO writes; a
// "video_id" also names the sequence. Keypoints with visibility 2 get Score
// 1; 1 (labelled but hidden) and 0 get Score 0. iscrowd sets Ignore.
type COCOSource struct {
	imageDir string
	opts     COCOOptions
	images   []cocoImage
}

type cocoImage struct {
	id, sequence string
	file         string
	w, h         int
	objects      []Object
	from         []string
}

// cocoExtra holds the keys cocoeval does not read.
type cocoExtra struct {
	Images []struct {
		Sequence string `json:"sequence"`
		SampleID string `json:"sample_id"`
		VideoID  *int64 `json:"video_id"`
	} `json:"images"`
	Annotations []struct {
		TrackID uint64   `json:"track_id"`
		Score   *float32 `json:"score"`
	} `json:"annotations"`
}

// LoadCOCO reads the annotations file; image file names are relative to
// imageDir.
func LoadCOCO(annotations, imageDir string, opts COCOOptions) (*COCOSource, error) {
	b, err := os.ReadFile(annotations)
	if err != nil {
		return nil, fmt.Errorf("loading COCO: %w", err)
	}
	ds, err := cocoeval.ParseDataset(b)
	if err != nil {
		return nil, fmt.Errorf("loading COCO %s: %w", annotations, err)
	}
	var ex cocoExtra
	if err := json.Unmarshal(b, &ex); err != nil {
		return nil, fmt.Errorf("loading COCO %s: %w", annotations, err)
	}
	if len(ex.Images) != len(ds.Images) || len(ex.Annotations) != len(ds.Annotations) {
		return nil, fmt.Errorf("loading COCO %s: images or annotations read twice differ", annotations)
	}
	type cat struct {
		class int
		name  string
	}
	cats := map[int64]cat{}
	for i, c := range ds.Categories {
		if _, dup := cats[c.ID]; dup {
			return nil, fmt.Errorf("loading COCO %s: categories[%d].id: %d listed twice", annotations, i, c.ID)
		}
		cl := i
		if opts.ClassFromID {
			cl = int(c.ID)
		}
		cats[c.ID] = cat{cl, c.Name}
	}
	src := &COCOSource{imageDir: imageDir, opts: opts, images: make([]cocoImage, len(ds.Images))}
	byID := map[int64]int{}
	for i, im := range ds.Images {
		if _, dup := byID[im.ID]; dup {
			return nil, fmt.Errorf("loading COCO %s: images[%d].id: %d listed twice", annotations, i, im.ID)
		}
		if im.FileName == "" {
			return nil, fmt.Errorf("loading COCO %s: images[%d].file_name: missing", annotations, i)
		}
		if im.Width <= 0 || im.Height <= 0 {
			return nil, fmt.Errorf("loading COCO %s: images[%d].width, height: %dx%d is not a picture size", annotations, i, im.Width, im.Height)
		}
		byID[im.ID] = i
		ci := cocoImage{id: ex.Images[i].SampleID, sequence: ex.Images[i].Sequence, file: im.FileName, w: im.Width, h: im.Height}
		if ci.id == "" {
			ci.id = im.FileName
		}
		if ci.sequence == "" {
			if v := ex.Images[i].VideoID; v != nil {
				ci.sequence = fmt.Sprintf("video-%d", *v)
			} else {
				ci.sequence = im.FileName
			}
		}
		src.images[i] = ci
	}
	for i, an := range ds.Annotations {
		field := func(f string) string { return fmt.Sprintf("loading COCO %s: annotations[%d].%s", annotations, i, f) }
		k, ok := byID[an.ImageID]
		if !ok {
			return nil, fmt.Errorf("%s: image %d not in images", field("image_id"), an.ImageID)
		}
		c, ok := cats[an.CategoryID]
		if !ok {
			return nil, fmt.Errorf("%s: category %d not in categories", field("category_id"), an.CategoryID)
		}
		im := &src.images[k]
		o := Object{Class: c.class, Label: c.name, TrackID: ex.Annotations[i].TrackID, Score: 1, Ignore: an.IsCrowd != 0}
		if s := ex.Annotations[i].Score; s != nil {
			o.Score = *s
		}
		if seg := an.Segmentation; seg != nil {
			m, err := cocoMask(seg, im.w, im.h)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", field("segmentation"), err)
			}
			o.Mask = m
		}
		switch {
		case len(an.BBox) == 4:
			for _, v := range an.BBox {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return nil, fmt.Errorf("%s: %v is not finite", field("bbox"), an.BBox)
				}
			}
			if an.BBox[2] < 0 || an.BBox[3] < 0 {
				return nil, fmt.Errorf("%s: %v has a negative size", field("bbox"), an.BBox)
			}
			o.Box = frame.Box{X1: float32(an.BBox[0]), Y1: float32(an.BBox[1]),
				X2: float32(an.BBox[0] + an.BBox[2]), Y2: float32(an.BBox[1] + an.BBox[3])}
		case len(an.BBox) == 0 && o.Mask != nil:
			bb := o.Mask.BBox()
			o.Box = frame.Box{X1: float32(bb[0]), Y1: float32(bb[1]), X2: float32(bb[0] + bb[2]), Y2: float32(bb[1] + bb[3])}
		default:
			return nil, fmt.Errorf("%s: %d numbers, want 4", field("bbox"), len(an.BBox))
		}
		if len(an.Keypoints) > 0 {
			if len(an.Keypoints)%3 != 0 {
				return nil, fmt.Errorf("%s: %d numbers, not x y v triples", field("keypoints"), len(an.Keypoints))
			}
			o.Keypoints = make(frame.Keypoints, len(an.Keypoints)/3)
			for j := range o.Keypoints {
				x, y, v := an.Keypoints[3*j], an.Keypoints[3*j+1], an.Keypoints[3*j+2]
				o.Keypoints[j] = frame.Keypoint{X: float32(x), Y: float32(y), Score: visibilityScore(v)}
			}
		}
		im.objects = append(im.objects, o)
		im.from = append(im.from, fmt.Sprintf("annotations[%d]", i))
	}
	return src, nil
}

// visibilityScore maps a COCO or YOLO keypoint visibility to a Score:
// only visible (2) points count as seen.
func visibilityScore(v float64) float32 {
	if v >= 2 {
		return 1
	}
	return 0
}

// cocoMask turns a segmentation into one mask at the image size.
func cocoMask(seg *cocoeval.Segmentation, w, h int) (*frame.Mask, error) {
	if seg.Mask != nil {
		if seg.Mask.Width != w || seg.Mask.Height != h {
			return nil, fmt.Errorf("RLE size %dx%d, image is %dx%d", seg.Mask.Width, seg.Mask.Height, w, h)
		}
		if err := seg.Mask.Valid(); err != nil {
			return nil, err
		}
		return seg.Mask, nil
	}
	if len(seg.Polygons) == 0 {
		return nil, nil
	}
	ms := make([]frame.Mask, len(seg.Polygons))
	for i, p := range seg.Polygons {
		m, err := frame.MaskFromPolygon(p, w, h)
		if err != nil {
			return nil, fmt.Errorf("polygon %d: %w", i, err)
		}
		ms[i] = m
	}
	m := frame.MergeMasks(ms...)
	return &m, nil
}

// Len returns the number of images.
func (s *COCOSource) Len() int { return len(s.images) }

// At reads image i.
func (s *COCOSource) At(i int) (Sample, error) {
	if i < 0 || i >= len(s.images) {
		return Sample{}, fmt.Errorf("COCO source: sample %d: %w", i, ErrRange)
	}
	im := &s.images[i]
	img, err := loadImage(filepath.Join(s.imageDir, filepath.FromSlash(im.file)))
	if err != nil {
		return Sample{}, fmt.Errorf("COCO source: sample %d: %w", i, err)
	}
	if b := img.Bounds(); b.Dx() != im.w || b.Dy() != im.h {
		return Sample{}, fmt.Errorf("COCO source: sample %d: %s is %dx%d, annotations say %dx%d", i, im.file, b.Dx(), b.Dy(), im.w, im.h)
	}
	smp := Sample{ID: im.id, Sequence: im.sequence, Image: img, Objects: im.objects}
	if s.opts.Segmentation {
		smp.Segmentation = Segment(im.objects, im.w, im.h)
	}
	return smp, nil
}

// SampleInfo is a sample's labels without its picture.
type SampleInfo struct {
	// ID and Sequence are the Sample's.
	ID, Sequence string
	// File is the image file as the source names it (COCO: file_name;
	// YOLO: the path).
	File string
	// Width and Height are the picture's size.
	Width, Height int
	// Objects are the Sample's objects, and From names where each was read
	// ("annotations[7]", "labels/x.txt:3"), for messages.
	Objects []Object
	From    []string
}

// Info returns sample i's labels without reading its image; each object's
// From is "annotations[k]".
func (s *COCOSource) Info(i int) (SampleInfo, error) {
	if i < 0 || i >= len(s.images) {
		return SampleInfo{}, fmt.Errorf("COCO source: sample %d: %w", i, ErrRange)
	}
	im := &s.images[i]
	return SampleInfo{ID: im.id, Sequence: im.sequence, File: im.file, Width: im.w, Height: im.h,
		Objects: im.objects, From: im.from}, nil
}

// SequenceOf returns sample i's Sequence without reading its image.
func (s *COCOSource) SequenceOf(i int) (string, error) {
	if i < 0 || i >= len(s.images) {
		return "", fmt.Errorf("COCO source: sample %d: %w", i, ErrRange)
	}
	return s.images[i].sequence, nil
}

// ExportOptions configure WriteCOCO and WriteYOLO.
type ExportOptions struct {
	// Classes names the classes 0..len-1. nil takes the names from the
	// objects' Labels ("class7" where a class has no object).
	Classes []string
	// Keypoints is the number of keypoints per object in YOLO pose lines;
	// 0 (the default) writes plain boxes. Objects with fewer keypoints get
	// zeros. WriteCOCO ignores it.
	Keypoints int
	// Name, when not nil, gives sample i's file name without extension
	// (images/<name>.png, and labels/<name>.txt for YOLO); it must be unique
	// and a plain file name. The default is the index ("000007") for COCO
	// and the index and sanitised ID for YOLO.
	Name func(i int, s Sample) string
	// WriteImage, when not nil, puts sample i's picture at path (under the
	// output folder) instead of encoding s.Image as PNG there: it may copy
	// the original file, link it, or do nothing when the images stay where
	// they are.
	WriteImage func(i int, s Sample, path string) error
	// ImageExtra, when not nil, adds a "vigil" key with its value to sample
	// i's COCO image (where the image came from, for labelling tools).
	// WriteYOLO ignores it.
	ImageExtra func(i int, s Sample) any
}

// fileName returns sample i's file name stem, checked.
func (o *ExportOptions) fileName(i int, s Sample, def string) (string, error) {
	if o.Name == nil {
		return def, nil
	}
	n := o.Name(i, s)
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, `/\`) {
		return "", fmt.Errorf("sample %d (%s): name %q is not a plain file name", i, s.ID, n)
	}
	return n, nil
}

// putImage writes sample i's picture to path.
func (o *ExportOptions) putImage(i int, s Sample, path string) error {
	if o.WriteImage != nil {
		return o.WriteImage(i, s, path)
	}
	return writePNG(path, s.Image)
}

// cocoOut is the JSON WriteCOCO writes.
type cocoOut struct {
	Images      []cocoOutImage      `json:"images"`
	Annotations []cocoOutAnnotation `json:"annotations"`
	Categories  []cocoeval.Category `json:"categories"`
}

type cocoOutImage struct {
	ID       int64  `json:"id"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	FileName string `json:"file_name"`
	Sequence string `json:"sequence"`
	SampleID string `json:"sample_id"`
	Vigil    any    `json:"vigil,omitempty"`
}

type cocoOutAnnotation struct {
	cocoeval.Annotation
	TrackID uint64  `json:"track_id,omitempty"`
	Score   float32 `json:"score"`
}

// WriteCOCO writes src as dir/annotations.json and dir/images/NNNNNN.png
// (see ExportOptions for other names and for leaving the images in place).
// Category ids are class+1, listed in class order so that LoadCOCO's
// default mapping restores the classes. Keypoints get visibility 2 when
// their Score is above 0, else 1 inside the image and 0 outside it or at
// (0, 0), with their coordinates kept; Ignore becomes iscrowd; masks are compressed RLE.
func WriteCOCO(src Source, dir string, opts ExportOptions) error {
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		return fmt.Errorf("writing COCO: %w", err)
	}
	out := cocoOut{Images: []cocoOutImage{}, Annotations: []cocoOutAnnotation{}}
	names := opts.Classes
	learn := names == nil
	kpClasses := map[int]int{}
	for i := range src.Len() {
		s, err := src.At(i)
		if err != nil {
			return fmt.Errorf("writing COCO: sample %d: %w", i, err)
		}
		if s.Image == nil {
			return fmt.Errorf("writing COCO: sample %d (%s): no image", i, s.ID)
		}
		w, h := s.Image.Bounds().Dx(), s.Image.Bounds().Dy()
		name, err := opts.fileName(i, s, fmt.Sprintf("%06d", i))
		if err != nil {
			return fmt.Errorf("writing COCO: %w", err)
		}
		file := "images/" + name + ".png"
		if err := opts.putImage(i, s, filepath.Join(dir, filepath.FromSlash(file))); err != nil {
			return fmt.Errorf("writing COCO: sample %d: %w", i, err)
		}
		imgID := int64(i + 1)
		oi := cocoOutImage{ID: imgID, Width: w, Height: h, FileName: file, Sequence: s.Sequence, SampleID: s.ID}
		if opts.ImageExtra != nil {
			oi.Vigil = opts.ImageExtra(i, s)
		}
		out.Images = append(out.Images, oi)
		for j, o := range s.Objects {
			if o.Class < 0 || (!learn && o.Class >= len(names)) {
				return fmt.Errorf("writing COCO: sample %d (%s): objects[%d].class: %d is not a class", i, s.ID, j, o.Class)
			}
			if learn {
				for len(names) <= o.Class {
					names = append(names, "")
				}
				if names[o.Class] == "" {
					names[o.Class] = o.Label
				}
			}
			an := cocoOutAnnotation{TrackID: o.TrackID, Score: o.Score}
			an.ID = int64(len(out.Annotations) + 1)
			an.ImageID = imgID
			an.CategoryID = int64(o.Class + 1)
			an.BBox = []float64{float64(o.Box.X1), float64(o.Box.Y1), float64(o.Box.W()), float64(o.Box.H())}
			an.Area = float64(o.Box.Area())
			if o.Ignore {
				an.IsCrowd = 1
			}
			if o.Mask != nil {
				if o.Mask.Width != w || o.Mask.Height != h {
					return fmt.Errorf("writing COCO: sample %d (%s): objects[%d].mask: %dx%d, image is %dx%d", i, s.ID, j, o.Mask.Width, o.Mask.Height, w, h)
				}
				an.Segmentation = &cocoeval.Segmentation{Mask: o.Mask}
				an.Area = float64(o.Mask.Area())
			}
			if o.Keypoints != nil {
				kpClasses[o.Class] = max(kpClasses[o.Class], len(o.Keypoints))
				an.Keypoints = make([]float64, 0, 3*len(o.Keypoints))
				for _, kp := range o.Keypoints {
					v := 0
					switch {
					case kp.Score > 0:
						v = 2
					case kp.X == 0 && kp.Y == 0:
						// (0, 0) with no score: unlabelled, as in COCO.
					case kp.X >= 0 && kp.Y >= 0 && kp.X < float32(w) && kp.Y < float32(h):
						v = 1
					}
					if v > 0 {
						an.NumKeypoints++
					}
					an.Keypoints = append(an.Keypoints, float64(kp.X), float64(kp.Y), float64(v))
				}
			}
			out.Annotations = append(out.Annotations, an)
		}
	}
	for c, name := range names {
		if name == "" {
			name = fmt.Sprintf("class%d", c)
		}
		cat := cocoeval.Category{ID: int64(c + 1), Name: name}
		if kpClasses[c] == len(synth.KeypointNames) {
			cat.Keypoints = synth.KeypointNames
			for _, l := range synth.Skeleton {
				cat.Skeleton = append(cat.Skeleton, [2]int{l[0] + 1, l[1] + 1}) // COCO counts from 1
			}
		}
		out.Categories = append(out.Categories, cat)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("writing COCO: encoding: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "annotations.json"), b, 0o644); err != nil {
		return fmt.Errorf("writing COCO: %w", err)
	}
	return nil
}
