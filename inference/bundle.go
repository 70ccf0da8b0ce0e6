package inference

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
	"github.com/vigil-video/vigil/inference/prep"
)

// Task is what a model does.
type Task string

// Tasks.
const (
	TaskDetect    Task = "detect"
	TaskKeypoints Task = "keypoints"
	TaskSegment   Task = "segment"
	TaskEmbed     Task = "embed"
)

// Precision is a variant's numeric type.
type Precision string

// Precisions.
const (
	FP32 Precision = "fp32"
	FP16 Precision = "fp16"
	INT8 Precision = "int8"
)

// BundleFile is the name of a bundle's description.
const BundleFile = "model.yaml"

// Bundle is a model: a folder holding model.yaml and one ONNX file per
// variant. It says what the model does, how its input is prepared and its
// output decoded, and what each variant is.
type Bundle struct {
	// Dir is the bundle folder; variant files are relative to it.
	Dir string `yaml:"-"`

	// Name and Version identify the model; versions count up from 1.
	Name    string `yaml:"name"`
	Version int    `yaml:"version"`
	// Task is detect, keypoints, segment or embed.
	Task Task `yaml:"task"`
	// Family names the output decoder (package inference/decoders).
	Family string `yaml:"family"`
	// Input says how frames become the input tensor.
	Input InputSpec `yaml:"input"`
	// Labels are the class names in class-index order.
	Labels []string `yaml:"labels,omitempty"`
	// Keypoints names the keypoints of a keypoint model, in output order;
	// Skeleton joins them in pairs of indices for drawing.
	Keypoints []string `yaml:"keypoints,omitempty"`
	Skeleton  [][2]int `yaml:"skeleton,omitempty"`
	// ScoreThreshold and NMSIoU are the decoder's defaults for the model
	// (0 keeps the decoder's own).
	ScoreThreshold float32 `yaml:"score_threshold,omitempty"`
	NMSIoU         float32 `yaml:"nms_iou,omitempty"`
	// Variants are the model's builds, fp32 first.
	Variants []Variant `yaml:"variants"`
	// Created is when the bundle was made.
	Created time.Time `yaml:"created,omitempty"`
	// Source says where the model came from (an imported file, a training run).
	Source string `yaml:"source,omitempty"`
}

// InputSpec is model.yaml's form of prep.Spec.
type InputSpec struct {
	Width  int        `yaml:"width"`
	Height int        `yaml:"height"`
	Layout string     `yaml:"layout"`
	Color  string     `yaml:"color"`
	Resize string     `yaml:"resize"`
	Interp string     `yaml:"interp,omitempty"`
	Align  string     `yaml:"align,omitempty"`
	Mean   [3]float32 `yaml:"mean,flow"`
	Std    [3]float32 `yaml:"std,flow"`
	Pad    float32    `yaml:"pad,omitempty"`
}

// Spec returns the pre-processing spec.
func (s InputSpec) Spec() prep.Spec {
	return prep.Spec{
		Width: s.Width, Height: s.Height,
		Layout: prep.Layout(s.Layout), Color: prep.Color(s.Color), Resize: prep.Resize(s.Resize),
		Interp: prep.Interp(s.Interp), Align: prep.Align(s.Align),
		Mean: s.Mean, Std: s.Std, Pad: s.Pad,
	}
}

// Variant is one build of a bundle's model.
type Variant struct {
	// Name is unique in the bundle; usually the precision.
	Name string `yaml:"name"`
	// File is the ONNX file, relative to the bundle folder.
	File      string    `yaml:"file"`
	Precision Precision `yaml:"precision"`
	// SHA256 is the file's checksum, verified when the variant loads.
	SHA256 string `yaml:"sha256"`
	// Accuracy is measured when the variant is made.
	Accuracy Accuracy `yaml:"accuracy"`
	// InputScale and InputZeroPoint say how a variant with a uint8
	// (quantized) input takes its values: q = round(x/scale) + zero point,
	// x being the normalised float input.
	InputScale     float32 `yaml:"input_scale,omitempty"`
	InputZeroPoint uint8   `yaml:"input_zero_point,omitempty"`
}

// Accuracy is a variant's quality relative to the bundle's fp32 variant.
type Accuracy struct {
	// Metric names how it was measured, e.g. "ap50_vs_fp32" for a
	// detector scored against the fp32 variant's detections.
	Metric string  `yaml:"metric,omitempty"`
	Value  float64 `yaml:"value,omitempty"`
	// Loss is the fraction of accuracy lost against fp32: 0 for fp32.
	Loss float64 `yaml:"loss"`
	// Frames is how many held-out frames it was measured on.
	Frames int `yaml:"frames,omitempty"`
}

// LoadBundle reads and validates dir/model.yaml. Variant checksums are
// verified when a variant is opened (VerifyVariant), not here.
func LoadBundle(dir string) (*Bundle, error) {
	b, err := os.ReadFile(filepath.Join(dir, BundleFile))
	if err != nil {
		return nil, fmt.Errorf("loading model bundle: %w", err)
	}
	var bu Bundle
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&bu); err != nil {
		return nil, fmt.Errorf("loading model bundle %s: %w", dir, err)
	}
	bu.Dir = dir
	if err := bu.Validate(); err != nil {
		return nil, fmt.Errorf("loading model bundle %s: %w", dir, err)
	}
	return &bu, nil
}

// Validate checks that the bundle is complete and consistent.
func (b *Bundle) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if b.Name == "" {
		bad("name: required")
	}
	if b.Version < 1 {
		bad("version: must be >= 1, got %d", b.Version)
	}
	if !slices.Contains([]Task{TaskDetect, TaskKeypoints, TaskSegment, TaskEmbed}, b.Task) {
		bad("task: must be detect, keypoints, segment or embed, got %q", b.Task)
	}
	if _, ok := families[b.Family]; !ok {
		bad("family: unknown %q (known: %s)", b.Family, strings.Join(FamilyNames(), ", "))
	}
	in := b.Input
	if in.Width <= 0 || in.Height <= 0 {
		bad("input: width and height must be > 0, got %dx%d", in.Width, in.Height)
	}
	if in.Layout != string(prep.NCHW) && in.Layout != string(prep.NHWC) {
		bad("input.layout: must be nchw or nhwc, got %q", in.Layout)
	}
	if in.Color != string(prep.RGB) && in.Color != string(prep.BGR) {
		bad("input.color: must be rgb or bgr, got %q", in.Color)
	}
	if in.Resize != string(prep.Letterbox) && in.Resize != string(prep.Stretch) {
		bad("input.resize: must be letterbox or stretch, got %q", in.Resize)
	}
	if !slices.Contains([]string{"", "bilinear", "nearest", "bicubic"}, in.Interp) {
		bad("input.interp: must be bilinear, nearest or bicubic, got %q", in.Interp)
	}
	if !slices.Contains([]string{"", "center", "topleft"}, in.Align) {
		bad("input.align: must be center or topleft, got %q", in.Align)
	}
	if len(b.Variants) == 0 {
		bad("variants: at least one is required")
	}
	for i, v := range b.Variants {
		if v.Name == "" || v.File == "" {
			bad("variants[%d]: name and file are required", i)
		}
		if filepath.IsAbs(v.File) || strings.Contains(filepath.ToSlash(v.File), "../") {
			bad("variants[%d].file: must be inside the bundle, got %q", i, v.File)
		}
		if !slices.Contains([]Precision{FP32, FP16, INT8}, v.Precision) {
			bad("variants[%d].precision: must be fp32, fp16 or int8, got %q", i, v.Precision)
		}
		if len(v.SHA256) != 64 {
			bad("variants[%d].sha256: must be 64 hex digits", i)
		}
		if v.Accuracy.Loss < 0 || v.Accuracy.Loss > 1 {
			bad("variants[%d].accuracy.loss: must be between 0 and 1, got %g", i, v.Accuracy.Loss)
		}
		for j := range i {
			if b.Variants[j].Name == v.Name {
				bad("variants[%d].name: duplicate of variants[%d] %q", i, j, v.Name)
			}
		}
	}
	return errors.Join(errs...)
}

// Variant returns the variant called name.
func (b *Bundle) Variant(name string) (Variant, bool) {
	i := slices.IndexFunc(b.Variants, func(v Variant) bool { return v.Name == name })
	if i < 0 {
		return Variant{}, false
	}
	return b.Variants[i], true
}

// Path returns the variant's file path.
func (b *Bundle) Path(v Variant) string { return filepath.Join(b.Dir, v.File) }

// VerifyVariant checks the variant's file against its checksum.
func (b *Bundle) VerifyVariant(v Variant) error {
	sum, err := fileSHA256(b.Path(v))
	if err != nil {
		return fmt.Errorf("verifying %s variant %s: %w", b.Name, v.Name, err)
	}
	if sum != v.SHA256 {
		return fmt.Errorf("verifying %s variant %s: %s has checksum %s, model.yaml says %s (file changed or corrupt)",
			b.Name, v.Name, b.Path(v), sum, v.SHA256)
	}
	return nil
}

// Write saves model.yaml into b.Dir.
func (b *Bundle) Write() error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("writing model bundle %s: %w", b.Dir, err)
	}
	out, err := yaml.Marshal(b)
	if err != nil {
		return fmt.Errorf("writing model bundle %s: %w", b.Dir, err)
	}
	path := filepath.Join(b.Dir, BundleFile)
	if err := os.WriteFile(path+".tmp", out, 0o644); err != nil {
		return fmt.Errorf("writing model bundle: %w", err)
	}
	return os.Rename(path+".tmp", path)
}

// AddVariant copies (or moves, if move is set) the ONNX file src into the
// bundle as variant v, filling in File and SHA256, and replaces any
// variant of the same name. The caller writes the bundle afterwards.
func (b *Bundle) AddVariant(v Variant, src string, move bool) error {
	v.File = v.Name + ".onnx"
	dst := filepath.Join(b.Dir, v.File)
	if move {
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("adding variant %s: %w", v.Name, err)
		}
	} else if err := copyFile(dst, src); err != nil {
		return fmt.Errorf("adding variant %s: %w", v.Name, err)
	}
	sum, err := fileSHA256(dst)
	if err != nil {
		return fmt.Errorf("adding variant %s: %w", v.Name, err)
	}
	v.SHA256 = sum
	if i := slices.IndexFunc(b.Variants, func(o Variant) bool { return o.Name == v.Name }); i >= 0 {
		b.Variants[i] = v
	} else {
		b.Variants = append(b.Variants, v)
	}
	return nil
}

// FromONNX describes the plain ONNX file at path as a bundle of one fp32
// variant of the given family, with the family's input conventions and
// the input size read from the file. The bundle lives where the file is;
// nothing is written.
func FromONNX(path, family string) (*Bundle, error) {
	fam, ok := families[family]
	if !ok {
		return nil, fmt.Errorf("describing %s: unknown family %q (known: %s)", path, family, strings.Join(FamilyNames(), ", "))
	}
	m, err := onnx.Read(path)
	if err != nil {
		return nil, err
	}
	in := fam.input
	w, h := inputSize(m, in.Layout)
	if w > 0 && h > 0 {
		in.Width, in.Height = w, h
	}
	if in.Width <= 0 || in.Height <= 0 {
		return nil, fmt.Errorf("describing %s: the input size is not fixed in the file and family %s has no default", path, family)
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return nil, fmt.Errorf("describing %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("describing %s: %w", path, err)
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	b := &Bundle{
		Dir:  filepath.Dir(abs),
		Name: name, Version: 1, Task: fam.task, Family: family, Input: in,
		Labels: fam.labels, Keypoints: fam.keypoints, Skeleton: fam.skeleton,
		Variants: []Variant{{Name: string(FP32), File: filepath.Base(abs), Precision: FP32, SHA256: sum}},
		Source:   abs,
	}
	return b, b.Validate()
}

// inputSize reads the first input's fixed width and height from the graph,
// 0 where they are symbolic.
func inputSize(m *onnxpb.ModelProto, layout string) (w, h int) {
	ins := m.GetGraph().GetInput()
	inits := map[string]bool{}
	for _, t := range m.GetGraph().GetInitializer() {
		inits[t.GetName()] = true
	}
	for _, in := range ins {
		if inits[in.GetName()] {
			continue // old exporters list initializers as inputs
		}
		dims := in.GetType().GetTensorType().GetShape().GetDim()
		if len(dims) != 4 {
			return 0, 0
		}
		hi, wi := 2, 3
		if layout == string(prep.NHWC) {
			hi, wi = 1, 2
		}
		return int(dims[wi].GetDimValue()), int(dims[hi].GetDimValue())
	}
	return 0, 0
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}
