package dataset

import (
	"bufio"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-video/vigil/frame"
)

// YOLOOptions configure LoadYOLO.
type YOLOOptions struct {
	// SequenceOf names the sequence of an image from its file name without
	// extension. nil (the default) makes every image its own sequence.
	SequenceOf func(stem string) string
}

// YOLOSource reads a YOLO (Ultralytics) data set: images in one folder,
// one labels/<stem>.txt per image with a line "class cx cy w h" per object
// (normalised to 0-1), optionally followed by keypoint triples "px py v"
// (YOLOv8-pose; all zeros, as written for objects without keypoints, read
// as none), and a classes file with one name per line. An image
// without a label file has no objects. Labels are read at load time, each
// image when its sample is read. It is safe for concurrent use.
type YOLOSource struct {
	images []yoloImage
}

type yoloImage struct {
	path, stem, sequence string
	w, h                 int
	objects              []Object
	lines                []string
}

var imageExts = []string{".png", ".jpg", ".jpeg"}

// LoadYOLO reads the label files in labelDir for the images in imageDir
// (.png, .jpg, .jpeg, sorted by name) and the class names in classesFile.
func LoadYOLO(imageDir, labelDir, classesFile string, opts YOLOOptions) (*YOLOSource, error) {
	classes, err := readLines(classesFile)
	if err != nil {
		return nil, fmt.Errorf("loading YOLO: %w", err)
	}
	des, err := os.ReadDir(imageDir)
	if err != nil {
		return nil, fmt.Errorf("loading YOLO: %w", err)
	}
	src := &YOLOSource{}
	for _, de := range des {
		ext := strings.ToLower(filepath.Ext(de.Name()))
		if de.IsDir() || !slices.Contains(imageExts, ext) {
			continue
		}
		stem := strings.TrimSuffix(de.Name(), filepath.Ext(de.Name()))
		path := filepath.Join(imageDir, de.Name())
		im := yoloImage{path: path, stem: stem, sequence: stem}
		if opts.SequenceOf != nil {
			im.sequence = opts.SequenceOf(stem)
		}
		im.w, im.h, err = imageSize(path)
		if err != nil {
			return nil, fmt.Errorf("loading YOLO: %w", err)
		}
		lp := filepath.Join(labelDir, stem+".txt")
		f, err := os.Open(lp)
		switch {
		case os.IsNotExist(err):
		case err != nil:
			return nil, fmt.Errorf("loading YOLO: %w", err)
		default:
			im.objects, im.lines, err = parseYOLO(f, lp, im.w, im.h, classes)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("loading YOLO: %w", err)
			}
		}
		src.images = append(src.images, im)
	}
	return src, nil
}

func imageSize(path string) (int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("reading image size: %w", err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(bufio.NewReader(f))
	if err != nil {
		return 0, 0, fmt.Errorf("reading image size of %s: %w", path, err)
	}
	return cfg.Width, cfg.Height, nil
}

// readLines returns the non-empty lines of a file, trimmed.
func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading classes: %w", err)
	}
	var out []string
	for l := range strings.Lines(string(b)) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

var yoloFields = []string{"class", "cx", "cy", "w", "h"}

// parseYOLO reads one label file for a w x h image and names the line of
// each object ("file:line").
func parseYOLO(f io.Reader, name string, w, h int, classes []string) ([]Object, []string, error) {
	var objs []Object
	var from []string
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if len(fs) < 5 || (len(fs)-5)%3 != 0 {
			return nil, nil, fmt.Errorf("%s:%d: %d fields, want class cx cy w h and px py v triples", name, line, len(fs))
		}
		v := make([]float64, len(fs))
		for i, s := range fs {
			x, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				field := fmt.Sprintf("field %d", i+1)
				if i < 5 {
					field += " (" + yoloFields[i] + ")"
				}
				return nil, nil, fmt.Errorf("%s:%d: %s: %q is not a finite number", name, line, field, s)
			}
			v[i] = x
		}
		c := int(v[0])
		if float64(c) != v[0] || c < 0 || c >= len(classes) {
			return nil, nil, fmt.Errorf("%s:%d: field 1 (class): %s is not a class index below %d", name, line, fs[0], len(classes))
		}
		// As Ultralytics checks: coordinates normalised to 0-1.
		for i, x := range v[1:] {
			isVis := i >= 4 && (i-4)%3 == 2
			if (!isVis && (x < 0 || x > 1)) || (isVis && x < 0) {
				field := fmt.Sprintf("field %d", i+2)
				if i < 4 {
					field += " (" + yoloFields[i+1] + ")"
				}
				return nil, nil, fmt.Errorf("%s:%d: %s: %s is outside 0-1", name, line, field, fs[i+1])
			}
		}
		fw, fh := float64(w), float64(h)
		o := Object{
			Class: c, Label: classes[c], Score: 1,
			Box: frame.Box{
				X1: float32((v[1] - v[3]/2) * fw), Y1: float32((v[2] - v[4]/2) * fh),
				X2: float32((v[1] + v[3]/2) * fw), Y2: float32((v[2] + v[4]/2) * fh),
			},
		}
		if n := (len(v) - 5) / 3; n > 0 && slices.ContainsFunc(v[5:], func(x float64) bool { return x != 0 }) {
			o.Keypoints = make(frame.Keypoints, n)
			for k := range n {
				p := v[5+3*k:]
				o.Keypoints[k] = frame.Keypoint{X: float32(p[0] * fw), Y: float32(p[1] * fh), Score: visibilityScore(p[2])}
			}
		}
		objs = append(objs, o)
		from = append(from, fmt.Sprintf("%s:%d", name, line))
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return objs, from, nil
}

// Len returns the number of images.
func (s *YOLOSource) Len() int { return len(s.images) }

// At reads image i; its ID is the file name without extension.
func (s *YOLOSource) At(i int) (Sample, error) {
	if i < 0 || i >= len(s.images) {
		return Sample{}, fmt.Errorf("YOLO source: sample %d: %w", i, ErrRange)
	}
	im := &s.images[i]
	img, err := loadImage(im.path)
	if err != nil {
		return Sample{}, fmt.Errorf("YOLO source: sample %d: %w", i, err)
	}
	return Sample{ID: im.stem, Sequence: im.sequence, Image: img, Objects: im.objects}, nil
}

// Info returns sample i's labels without reading its image; each object's
// From is "labelfile:line".
func (s *YOLOSource) Info(i int) (SampleInfo, error) {
	if i < 0 || i >= len(s.images) {
		return SampleInfo{}, fmt.Errorf("YOLO source: sample %d: %w", i, ErrRange)
	}
	im := &s.images[i]
	return SampleInfo{ID: im.stem, Sequence: im.sequence, File: im.path, Width: im.w, Height: im.h,
		Objects: im.objects, From: im.lines}, nil
}

// SequenceOf returns sample i's Sequence without reading its image.
func (s *YOLOSource) SequenceOf(i int) (string, error) {
	if i < 0 || i >= len(s.images) {
		return "", fmt.Errorf("YOLO source: sample %d: %w", i, ErrRange)
	}
	return s.images[i].sequence, nil
}

// WriteYOLO writes src as dir/images/<name>.png, dir/labels/<name>.txt,
// dir/classes.txt and an Ultralytics dir/data.yaml (names, and kpt_shape
// for pose), where <name> is the sample ID with characters other than
// [A-Za-z0-9._-] replaced by '_' and prefixed by its index (IDs may repeat
// after that). Objects marked Ignore are left out: YOLO has no way to say
// "ignore". Keypoints get visibility 2 when their Score is above 0, else 1
// inside the picture and "0 0 0" outside it or at (0, 0).
// Coordinates are written with 6 decimals, as Ultralytics does.
func WriteYOLO(src Source, dir string, opts ExportOptions) error {
	for _, sub := range []string{"images", "labels"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("writing YOLO: %w", err)
		}
	}
	names := slices.Clone(opts.Classes)
	learn := names == nil
	var sb strings.Builder
	for i := range src.Len() {
		s, err := src.At(i)
		if err != nil {
			return fmt.Errorf("writing YOLO: sample %d: %w", i, err)
		}
		if s.Image == nil {
			return fmt.Errorf("writing YOLO: sample %d (%s): no image", i, s.ID)
		}
		w, h := float64(s.Image.Bounds().Dx()), float64(s.Image.Bounds().Dy())
		name, err := opts.fileName(i, s, fmt.Sprintf("%06d_%s", i, safeName(s.ID)))
		if err != nil {
			return fmt.Errorf("writing YOLO: %w", err)
		}
		sb.Reset()
		for j, o := range s.Objects {
			if o.Ignore {
				continue
			}
			if o.Class < 0 || (!learn && o.Class >= len(names)) {
				return fmt.Errorf("writing YOLO: sample %d (%s): objects[%d].class: %d is not a class", i, s.ID, j, o.Class)
			}
			if learn {
				for len(names) <= o.Class {
					names = append(names, "")
				}
				if names[o.Class] == "" {
					names[o.Class] = o.Label
				}
			}
			b := o.Box
			fmt.Fprintf(&sb, "%d %.6f %.6f %.6f %.6f", o.Class,
				float64(b.X1+b.X2)/2/w, float64(b.Y1+b.Y2)/2/h, float64(b.W())/w, float64(b.H())/h)
			for k := range opts.Keypoints {
				var kp frame.Keypoint
				if k < len(o.Keypoints) {
					kp = o.Keypoints[k]
				}
				v := 0
				switch {
				case k >= len(o.Keypoints), kp.X == 0 && kp.Y == 0:
					// Padding, or (0, 0) with no score: unlabelled.
				case kp.Score > 0:
					v = 2
				case kp.X >= 0 && kp.Y >= 0 && float64(kp.X) < w && float64(kp.Y) < h:
					v = 1
				default:
					kp = frame.Keypoint{} // unlabelled: outside the picture
				}
				fmt.Fprintf(&sb, " %.6f %.6f %d", float64(kp.X)/w, float64(kp.Y)/h, v)
			}
			sb.WriteByte('\n')
		}
		if err := opts.putImage(i, s, filepath.Join(dir, "images", name+".png")); err != nil {
			return fmt.Errorf("writing YOLO: sample %d: %w", i, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "labels", name+".txt"), []byte(sb.String()), 0o644); err != nil {
			return fmt.Errorf("writing YOLO: sample %d: %w", i, err)
		}
	}
	sb.Reset()
	for c, n := range names {
		if n == "" {
			names[c] = fmt.Sprintf("class%d", c)
		}
		sb.WriteString(names[c] + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "classes.txt"), []byte(sb.String()), 0o644); err != nil {
		return fmt.Errorf("writing YOLO: %w", err)
	}
	// data.yaml as Ultralytics reads it; the same images serve as train and
	// val, since this is an export for labelling, not a split.
	data := map[string]any{"path": ".", "train": "images", "val": "images", "names": names}
	if opts.Keypoints > 0 {
		data["kpt_shape"] = []int{opts.Keypoints, 3}
	}
	b, err := yaml.Marshal(data)
	if err != nil {
		return fmt.Errorf("writing YOLO: encoding data.yaml: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data.yaml"), b, 0o644); err != nil {
		return fmt.Errorf("writing YOLO: %w", err)
	}
	return nil
}

// safeName keeps [A-Za-z0-9._-] of s and replaces the rest with '_'.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}
