package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/training/dataset"
	"github.com/vigil-video/vigil/training/store"
)

const datasetUsage = `usage: vigil dataset validate DIR [--json]
       vigil dataset export DIR --format coco|yolo --out OUT [--copy-images] [--labels current|pre|corrected]
       vigil dataset import DIR --from FILE [--format coco|yolo] [--dry-run]

DIR is a hard-frame store (see 'go doc ./training/store').

validate: checks every file against the manifest (missing, extra, hash and
          size), the version, the labels (JSON, boxes, keypoints, scores,
          classes, masks and their values), that pictures are PNG and that no
          two entries hold the same picture. Prints each problem with its
          file and exits 1 when there are any; prints a summary otherwise.
export:   writes the entries for labelling tools: COCO (OUT/annotations.json
          with bbox, keypoints, RLE segmentation, the manifest's classes and
          a "vigil" key per image with the entry's id, miner, reason, stream,
          capture time, model and data-set version) or YOLO (OUT/images,
          OUT/labels/<id>.txt, OUT/classes.txt, OUT/data.yaml). Images are
          named images/<id>.png and copied, or linked to the store's files
          (--copy-images=false); COCO links by default, YOLO copies.
import:   takes corrected labels back from a COCO file or a YOLO export
          folder. Each image is matched to an entry by its sample_id or file
          name (<id>.png); the entry's objects are replaced (score 1), it is
          marked "corrected" with the model's pre-labels kept, and the
          manifest and data-set version are rewritten. Entries not in FILE
          stay as they were; images not in the store are reported and
          skipped; a malformed FILE changes nothing. COCO categories and YOLO
          classes are matched to the store's classes by name. YOLO cannot
          carry masks or ignore regions: COCO round trips keep them.
          Do not import while a server writes into DIR.
`

// runDataset dispatches `vigil dataset …`.
func runDataset(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, datasetUsage)
		return errUsage
	}
	switch args[0] {
	case "validate":
		return runDatasetValidate(args[1:], stdout, stderr)
	case "export":
		return runDatasetExport(ctx, args[1:], stdout, stderr)
	case "import":
		return runDatasetImport(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, datasetUsage)
		return flag.ErrHelp
	}
	fmt.Fprintf(stderr, "vigil dataset: unknown subcommand %q\n\n%s", args[0], datasetUsage)
	return errUsage
}

// validateJSON is the output of `vigil dataset validate --json`.
type validateJSON struct {
	Dir       string         `json:"dir"`
	OK        bool           `json:"ok"`
	Version   string         `json:"version"`
	Entries   int            `json:"entries"`
	Corrected int            `json:"corrected"`
	Bytes     int64          `json:"bytes"`
	Miners    map[string]int `json:"miners"`
	Classes   []string       `json:"classes,omitempty"`
	Problems  []problemJSON  `json:"problems"`
	// Uncommitted are files of a write in flight or cut short: not part
	// of the data set.
	Uncommitted []string `json:"uncommitted,omitempty"`
}

type problemJSON struct {
	Kind store.Kind `json:"kind"`
	Path string     `json:"path"`
	Msg  string     `json:"msg"`
}

func runDatasetValidate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil dataset validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the summary and problems as one JSON object")
	dir, rest := splitFirstArg(args)
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if dir == "" {
		fmt.Fprintln(stderr, "vigil dataset validate: DIR is required")
		fs.Usage()
		return errUsage
	}
	r, err := store.Check(dir)
	if err != nil {
		return err
	}
	if *asJSON {
		out := validateJSON{Dir: dir, OK: len(r.Problems) == 0, Version: r.Version, Entries: r.Entries,
			Corrected: r.Corrected, Bytes: r.Bytes, Miners: r.Miners, Classes: r.Classes, Problems: []problemJSON{}, Uncommitted: r.Uncommitted}
		for _, p := range r.Problems {
			out.Problems = append(out.Problems, problemJSON{p.Kind, p.Path, p.Msg})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", " ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		for _, p := range r.Problems {
			fmt.Fprintf(stdout, "%s\n", filepath.Join(dir, filepath.FromSlash(p.Path))+": "+string(p.Kind)+": "+p.Msg)
		}
		if len(r.Problems) == 0 {
			fmt.Fprintf(stdout, "%s: ok: %s\n", dir, storeSummary(r))
		}
		if n := len(r.Uncommitted); n > 0 {
			fmt.Fprintf(stdout, "%s: %d file%s of a write in flight or cut short, not part of the data set (opening the store for writing removes them)\n",
				dir, n, datasetPlural(n))
		}
	}
	if n := len(r.Problems); n > 0 {
		return fmt.Errorf("%d problem%s in %s", n, datasetPlural(n), dir)
	}
	return nil
}

// storeSummary is the one-line description of a sound store.
func storeSummary(r store.Report) string {
	miners := make([]string, 0, len(r.Miners))
	for m, n := range r.Miners {
		if m == "" {
			m = "(none)"
		}
		miners = append(miners, fmt.Sprintf("%s %d", m, n))
	}
	slices.Sort(miners)
	m := "none"
	if len(miners) > 0 {
		m = strings.Join(miners, ", ")
	}
	return fmt.Sprintf("%d entries (%d corrected), %d bytes, version %s, miners: %s", r.Entries, r.Corrected, r.Bytes, r.Version, m)
}

func datasetPlural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// exportInfo is the "vigil" key of each exported COCO image.
type exportInfo struct {
	ID          string      `json:"id"`
	Miner       string      `json:"miner"`
	Reason      string      `json:"reason"`
	StreamID    string      `json:"stream_id"`
	CaptureTime time.Time   `json:"capture_time"`
	FrameSeq    uint64      `json:"frame_seq"`
	Model       store.Model `json:"model"`
	Corrected   bool        `json:"corrected"`
	Version     string      `json:"dataset_version"`
}

func runDatasetExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil dataset export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "", "coco or yolo")
	out := fs.String("out", "", "output `folder` (must not exist or be empty)")
	labels := fs.String("labels", "current", "labels to export: current (corrected where corrected, else pre-labels), pre (the model's), corrected (corrected entries only)")
	var copyImages datasetBoolFlag
	fs.Var(&copyImages, "copy-images", "copy the pictures into OUT/images instead of linking to the store's (default: false for coco, true for yolo)")
	dir, rest := splitFirstArg(args)
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if dir == "" {
		fmt.Fprintln(stderr, "vigil dataset export: DIR is required")
		fs.Usage()
		return errUsage
	}
	if err := requireFlags(fs, "format", *format, "out", *out); err != nil {
		return err
	}
	if *format != "coco" && *format != "yolo" {
		return fmt.Errorf("--format: %q is not coco or yolo", *format)
	}
	var which dataset.StoreLabels
	switch *labels {
	case "current":
		which = dataset.StoreLabelsCurrent
	case "pre":
		which = dataset.StoreLabelsPre
	case "corrected":
		which = dataset.StoreLabelsCorrected
	default:
		return fmt.Errorf("--labels: %q is not current, pre or corrected", *labels)
	}
	cp := *format == "yolo"
	if copyImages.set {
		cp = copyImages.v
	}
	if des, err := os.ReadDir(*out); err == nil && len(des) > 0 {
		return fmt.Errorf("--out: %s is not empty", *out)
	}

	st, err := store.Open(dir, store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	src := dataset.NewStoreSourceWith(st, dataset.StoreOptions{Labels: which})
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("exporting %s: %w", dir, err)
	}
	version := st.Version()
	keypoints, objects := 0, 0
	for i := range src.Len() {
		e, _ := src.Entry(i)
		objs := e.Objects
		if which == dataset.StoreLabelsPre {
			objs = e.PreLabels()
		}
		objects += len(objs)
		for _, o := range objs {
			keypoints = max(keypoints, len(o.Keypoints))
		}
	}
	opts := dataset.ExportOptions{
		Classes:   st.Classes(),
		Keypoints: keypoints,
		Name:      func(i int, s dataset.Sample) string { return s.ID },
		WriteImage: func(i int, s dataset.Sample, dst string) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			from := filepath.Join(absDir, "images", s.ID+".png")
			if !cp {
				return os.Symlink(from, dst)
			}
			return copyImageFile(from, dst)
		},
		ImageExtra: func(i int, s dataset.Sample) any {
			e, _ := src.Entry(i)
			return exportInfo{ID: e.ID, Miner: e.Miner, Reason: e.Reason, StreamID: e.StreamID,
				CaptureTime: e.CaptureTime, FrameSeq: e.FrameSeq, Model: e.Model, Corrected: e.Corrected, Version: version}
		},
	}
	how := "linked"
	if cp {
		how = "copied"
	}
	var dest string
	switch *format {
	case "coco":
		err = dataset.WriteCOCO(src, *out, opts)
		dest = filepath.Join(*out, "annotations.json")
	case "yolo":
		err = dataset.WriteYOLO(src, *out, opts)
		dest = *out
	}
	if err != nil {
		return fmt.Errorf("exporting %s: %w", dir, err)
	}
	fmt.Fprintf(stdout, "exported %d images, %d objects (%s labels) of %s version %s to %s (%s, images %s)\n",
		src.Len(), objects, which, dir, version, dest, *format, how)
	return nil
}

// datasetBoolFlag is a boolean flag that knows whether it was given.
type datasetBoolFlag struct{ v, set bool }

func (b *datasetBoolFlag) String() string   { return fmt.Sprint(b.v) }
func (b *datasetBoolFlag) IsBoolFlag() bool { return true }
func (b *datasetBoolFlag) Set(s string) error {
	switch s {
	case "true", "1":
		b.v = true
	case "false", "0":
		b.v = false
	default:
		return fmt.Errorf("%q is not true or false", s)
	}
	b.set = true
	return nil
}

func copyImageFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("copying image: %w", err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		return fmt.Errorf("copying image: %w", err)
	}
	return nil
}

func runDatasetImport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil dataset import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "corrected labels: a COCO JSON `file` or a YOLO export folder")
	format := fs.String("format", "", "coco or yolo (default: coco for a .json file, yolo for a folder)")
	dryRun := fs.Bool("dry-run", false, "check FILE and print what would change without writing")
	dir, rest := splitFirstArg(args)
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if dir == "" {
		fmt.Fprintln(stderr, "vigil dataset import: DIR is required")
		fs.Usage()
		return errUsage
	}
	if err := requireFlags(fs, "from", *from); err != nil {
		return err
	}
	if *format == "" {
		*format = "coco"
		if fi, err := os.Stat(*from); err == nil && fi.IsDir() {
			*format = "yolo"
		}
	}

	// Read and check FILE before the store is opened for writing.
	var labels labelSource
	var err error
	switch *format {
	case "coco":
		labels, err = dataset.LoadCOCO(*from, filepath.Dir(*from), dataset.COCOOptions{ClassFromID: true})
	case "yolo":
		labels, err = dataset.LoadYOLO(filepath.Join(*from, "images"), filepath.Join(*from, "labels"),
			filepath.Join(*from, "classes.txt"), dataset.YOLOOptions{})
	default:
		return fmt.Errorf("--format: %q is not coco or yolo", *format)
	}
	if err != nil {
		return fmt.Errorf("reading --from: %w", err)
	}
	// Plan on a read-only store: a dry run or a bad FILE changes nothing,
	// not even crash leftovers.
	st, err := store.Open(dir, store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	plan, err := planImport(st, labels, *format, *from)
	if err != nil {
		return err
	}
	for _, s := range plan.skipped {
		fmt.Fprintf(stderr, "vigil dataset import: %s: not in %s, skipped\n", s, dir)
	}
	if len(plan.corrections) == 0 {
		return fmt.Errorf("%s: no image matches an entry of %s", *from, dir)
	}
	if *dryRun {
		before, after := 0, 0
		for _, c := range plan.corrections {
			before += plan.before[c.ID]
			after += len(c.Objects)
		}
		fmt.Fprintf(stdout, "would update %d entries (objects %d -> %d); %d images skipped; nothing written\n",
			len(plan.corrections), before, after, len(plan.skipped))
		return nil
	}
	if st, err = store.Open(dir, store.Options{}); err != nil {
		return err
	}
	defer st.Close()
	if plan, err = planImport(st, labels, *format, *from); err != nil {
		return err
	}
	cs, err := st.Correct(plan.corrections)
	if err != nil {
		return fmt.Errorf("importing %s into %s: %w", *from, dir, err)
	}
	fmt.Fprintf(stdout, "updated %d entries (%d changed, %d left as they were), objects %d -> %d, %d images skipped, version %s -> %s\n",
		cs.Entries, cs.Changed, st.Stats().Entries-cs.Entries, cs.ObjectsBefore, cs.ObjectsAfter, len(plan.skipped), cs.PrevVersion, cs.Version)
	return nil
}

// labelSource is a COCO or YOLO source read without its pictures.
type labelSource interface {
	Len() int
	Info(i int) (dataset.SampleInfo, error)
}

type importPlan struct {
	corrections []store.Correction
	before      map[string]int // objects per entry before
	skipped     []string
}

// planImport matches every image of labels to a store entry and checks its
// objects, naming the image and field of the first problem.
func planImport(st *store.Store, labels labelSource, format, from string) (importPlan, error) {
	plan := importPlan{before: map[string]int{}}
	entries := map[string]store.Entry{}
	for _, e := range st.List() {
		entries[e.ID] = e
	}
	classes := st.Classes()
	matched := map[string]string{}
	for i := range labels.Len() {
		info, err := labels.Info(i)
		if err != nil {
			return plan, err
		}
		where := fmt.Sprintf("%s: images[%d] (%s)", from, i, info.File)
		// field names an object's field: "annotations[3].bbox: …" in
		// COCO, "labels/x.txt:2: class: …" in YOLO.
		field := func(k int, msg string) string { return where + ": " + info.From[k] + "." + msg }
		if format == "yolo" {
			where = info.File
			field = func(k int, msg string) string { return info.From[k] + ": " + msg }
		}
		id := info.ID
		e, ok := entries[id]
		if !ok {
			id = strings.TrimSuffix(path.Base(filepath.ToSlash(info.File)), path.Ext(info.File))
			e, ok = entries[id]
		}
		if !ok {
			plan.skipped = append(plan.skipped, where)
			continue
		}
		if prev, dup := matched[id]; dup {
			return plan, fmt.Errorf("%s: entry %s is also %s", where, id, prev)
		}
		matched[id] = where
		if info.Width != e.Width || info.Height != e.Height {
			return plan, fmt.Errorf("%s: width, height: %dx%d, entry %s is %dx%d", where, info.Width, info.Height, id, e.Width, e.Height)
		}
		objs := make([]store.Object, len(info.Objects))
		hasMask := false
		for k, o := range info.Objects {
			class, label, err := mapClass(o, format, classes)
			if err != nil {
				return plan, errors.New(field(k, err.Error()))
			}
			objs[k] = store.Object{Box: clampBox(o.Box, e.Width, e.Height), Class: class, Label: label, Score: 1,
				TrackID: o.TrackID, Keypoints: o.Keypoints, Mask: o.Mask, Ignore: o.Ignore}
			hasMask = hasMask || o.Mask != nil
		}
		if ps := store.CheckObjects(objs, e.Width, e.Height, classes); len(ps) > 0 {
			msg := ps[0].Msg
			if rest, ok := strings.CutPrefix(msg, "box: "); ok && format == "coco" {
				msg = "bbox: corners " + strings.Replace(rest, " is ", " are ", 1)
			}
			return plan, errors.New(field(ps[0].Index, msg))
		}
		c := store.Correction{ID: id, Objects: objs}
		curMasks := slices.ContainsFunc(e.Objects, func(o store.Object) bool { return o.Mask != nil })
		if hasMask {
			// The class map follows the corrected instance masks.
			dobjs := make([]dataset.Object, len(objs))
			for k, o := range objs {
				dobjs[k] = dataset.Object{Class: o.Class, Mask: o.Mask}
			}
			c.Segmentation = dataset.Segment(dobjs, e.Width, e.Height)
		} else if !curMasks {
			// A class map with no instance masks behind it came from
			// elsewhere (a segmenter): keep it.
			c.KeepSegmentation = true
		}
		plan.corrections = append(plan.corrections, c)
		plan.before[id] = len(e.Objects)
	}
	return plan, nil
}

// mapClass maps an imported object's class to the store's by name when the
// store names its classes; COCO objects carry their category id (the export
// writes class+1), YOLO objects their line's class index.
func mapClass(o dataset.Object, format string, classes []string) (int, string, error) {
	if classes != nil {
		if c := slices.Index(classes, o.Label); c >= 0 {
			return c, o.Label, nil
		}
		if format == "coco" {
			return 0, "", fmt.Errorf("category_id: category %d (%q) is not a class of the store (%s)", o.Class, o.Label, strings.Join(classes, ", "))
		}
		return 0, "", fmt.Errorf("class: %d (%q) is not a class of the store (%s)", o.Class, o.Label, strings.Join(classes, ", "))
	}
	if format == "coco" {
		if o.Class < 1 {
			return 0, "", fmt.Errorf("category_id: %d, want class+1 >= 1", o.Class)
		}
		return o.Class - 1, o.Label, nil
	}
	return o.Class, o.Label, nil
}

// clampBox pulls a box edge that a labelling tool rounded up to half a
// pixel past the picture back inside it; boxes further out stay and fail
// the check.
func clampBox(b frame.Box, w, h int) frame.Box {
	const slack = 0.5
	fw, fh := float32(w), float32(h)
	if b.X1 < 0 && b.X1 >= -slack {
		b.X1 = 0
	}
	if b.Y1 < 0 && b.Y1 >= -slack {
		b.Y1 = 0
	}
	if b.X2 > fw && b.X2 <= fw+slack {
		b.X2 = fw
	}
	if b.Y2 > fh && b.Y2 <= fh+slack {
		b.Y2 = fh
	}
	return b
}
