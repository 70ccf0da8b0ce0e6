package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"time"

	"github.com/vigil-video/vigil/frame"
)

// LabelFormat is the "format" of every labels/<id>.json.
const LabelFormat = "vigil-hardframe-label/1"

// Entry is one hard frame: the picture, the pre-labels a model gave it and
// why the miner kept it.
type Entry struct {
	// ID names the entry: 1-128 characters from [A-Za-z0-9._-], not
	// starting with a dot. Put makes one from the stream, capture time and
	// frame number when it is empty.
	ID string
	// StreamID is the stream the frame came from.
	StreamID string
	// CaptureTime is when the frame was captured; eviction removes the
	// oldest first.
	CaptureTime time.Time
	// FrameSeq is the frame's sequence number in its stream.
	FrameSeq uint64
	// Miner names the rule that kept the frame and Reason says why, in
	// words ("low confidence", "tracker lost 3 tracks").
	Miner, Reason string
	// Model is the model that made the pre-labels.
	Model Model
	// Image is the picture. Put accepts any image; Get returns an
	// *image.RGBA. List leaves it nil.
	Image image.Image
	// Segmentation, when not nil, is a per-pixel class map: 0 background,
	// c+1 for class c; the same size as Image.
	Segmentation *image.Gray
	// Objects are the pre-labels.
	Objects []Object
	// Width and Height are the picture's size; Put fills them from Image.
	Width, Height int
	// Corrected is set by Correct: a person has checked Objects (they are
	// no longer the model's pre-labels). Put ignores it.
	Corrected bool
	// PreObjects are the model's pre-labels of a corrected entry, as Put
	// stored them; nil for an entry that was never corrected, whose Objects
	// are the pre-labels. Put ignores it.
	PreObjects []Object
}

// PreLabels returns the model's pre-labels: PreObjects for a corrected
// entry, else Objects.
func (e *Entry) PreLabels() []Object {
	if e.Corrected {
		return e.PreObjects
	}
	return e.Objects
}

// Model names the model that labelled a frame.
type Model struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Object is one pre-labelled object.
type Object struct {
	// Box is in image pixels, inside the image.
	Box frame.Box
	// Class is the class index (>= 0) and Label its name.
	Class int
	Label string
	// Score is the model's confidence in [0,1].
	Score float32
	// TrackID is the tracker's identity for the object, 0 if none.
	TrackID uint64
	// Keypoints, when not nil, are the object's keypoints; a point with
	// Score > 0 lies inside the image.
	Keypoints frame.Keypoints
	// Mask, when not nil, is the instance mask over the whole image.
	Mask *frame.Mask
	// Ignore marks a region a trainer should neither reward nor punish.
	Ignore bool
}

// labelFile is the JSON form of labels/<id>.json.
type labelFile struct {
	Format       string        `json:"format"`
	ID           string        `json:"id"`
	Image        string        `json:"image"`
	Segmentation string        `json:"segmentation,omitempty"`
	Width        int           `json:"width"`
	Height       int           `json:"height"`
	StreamID     string        `json:"stream_id"`
	CaptureTime  time.Time     `json:"capture_time"`
	FrameSeq     uint64        `json:"frame_seq"`
	Miner        string        `json:"miner"`
	Reason       string        `json:"reason"`
	Model        Model         `json:"model"`
	Objects      []labelObject `json:"objects"`
	Corrected    bool          `json:"corrected,omitempty"`
	PreObjects   []labelObject `json:"pre_objects,omitempty"`
}

type labelObject struct {
	Box       [4]float32   `json:"box"` // x1 y1 x2 y2
	Class     int          `json:"class"`
	Label     string       `json:"label,omitempty"`
	Score     float32      `json:"score"`
	TrackID   uint64       `json:"track_id,omitempty"`
	Keypoints [][3]float32 `json:"keypoints,omitempty"` // x y score
	Mask      *rleJSON     `json:"mask,omitempty"`
	Ignore    bool         `json:"ignore,omitempty"`
}

// rleJSON is a compressed COCO RLE, as pycocotools writes it.
type rleJSON struct {
	Size   [2]int `json:"size"` // height, width
	Counts string `json:"counts"`
}

func imagePath(id string) string { return "images/" + id + ".png" }
func labelPath(id string) string { return "labels/" + id + ".json" }
func maskPath(id string) string  { return "masks/" + id + ".png" }

// toLabel returns the label file of e; hasSeg says whether the entry has a
// segmentation file (e.Segmentation is nil outside Put).
func (e *Entry) toLabel(hasSeg bool) labelFile {
	l := labelFile{
		Format: LabelFormat, ID: e.ID, Image: imagePath(e.ID),
		Width: e.Width, Height: e.Height, StreamID: e.StreamID,
		CaptureTime: e.CaptureTime.UTC(), FrameSeq: e.FrameSeq,
		Miner: e.Miner, Reason: e.Reason, Model: e.Model,
		Objects: make([]labelObject, len(e.Objects)),
	}
	if hasSeg {
		l.Segmentation = maskPath(e.ID)
	}
	for i, o := range e.Objects {
		l.Objects[i] = toLabelObject(o)
	}
	if e.Corrected {
		l.Corrected = true
		l.PreObjects = make([]labelObject, len(e.PreObjects))
		for i, o := range e.PreObjects {
			l.PreObjects[i] = toLabelObject(o)
		}
	}
	return l
}

func toLabelObject(o Object) labelObject {
	lo := labelObject{
		Box:   [4]float32{o.Box.X1, o.Box.Y1, o.Box.X2, o.Box.Y2},
		Class: o.Class, Label: o.Label, Score: o.Score,
		TrackID: o.TrackID, Ignore: o.Ignore,
	}
	if o.Keypoints != nil {
		lo.Keypoints = make([][3]float32, len(o.Keypoints))
		for k, p := range o.Keypoints {
			lo.Keypoints[k] = [3]float32{p.X, p.Y, p.Score}
		}
	}
	if o.Mask != nil {
		lo.Mask = &rleJSON{Size: [2]int{o.Mask.Height, o.Mask.Width}, Counts: o.Mask.COCOString()}
	}
	return lo
}

func fromLabelObject(lo labelObject) (Object, error) {
	o := Object{
		Box:   frame.Box{X1: lo.Box[0], Y1: lo.Box[1], X2: lo.Box[2], Y2: lo.Box[3]},
		Class: lo.Class, Label: lo.Label, Score: lo.Score, TrackID: lo.TrackID, Ignore: lo.Ignore,
	}
	if lo.Keypoints != nil {
		o.Keypoints = make(frame.Keypoints, len(lo.Keypoints))
		for k, p := range lo.Keypoints {
			o.Keypoints[k] = frame.Keypoint{X: p[0], Y: p[1], Score: p[2]}
		}
	}
	if lo.Mask != nil {
		m, err := frame.MaskFromCOCOString(lo.Mask.Counts, lo.Mask.Size[1], lo.Mask.Size[0])
		if err != nil {
			return Object{}, fmt.Errorf("mask: %w", err)
		}
		o.Mask = &m
	}
	return o, nil
}

// parseLabel decodes a label file into an Entry without its pictures.
func parseLabel(b []byte) (Entry, error) {
	var l labelFile
	if err := json.Unmarshal(b, &l); err != nil {
		return Entry{}, fmt.Errorf("decoding label: %w", err)
	}
	if l.Format != LabelFormat {
		return Entry{}, fmt.Errorf("format: got %q, want %q", l.Format, LabelFormat)
	}
	if err := checkID(l.ID); err != nil {
		return Entry{}, fmt.Errorf("id: %w", err)
	}
	if l.Image != imagePath(l.ID) {
		return Entry{}, fmt.Errorf("image: got %q, want %q", l.Image, imagePath(l.ID))
	}
	if l.Segmentation != "" && l.Segmentation != maskPath(l.ID) {
		return Entry{}, fmt.Errorf("segmentation: got %q, want %q", l.Segmentation, maskPath(l.ID))
	}
	e := Entry{
		ID: l.ID, StreamID: l.StreamID, CaptureTime: l.CaptureTime,
		FrameSeq: l.FrameSeq, Miner: l.Miner, Reason: l.Reason, Model: l.Model,
		Width: l.Width, Height: l.Height, Objects: make([]Object, len(l.Objects)),
	}
	if l.Width <= 0 || l.Height <= 0 {
		return Entry{}, fmt.Errorf("width, height: %dx%d is not a picture size", l.Width, l.Height)
	}
	for i, lo := range l.Objects {
		o, err := fromLabelObject(lo)
		if err != nil {
			return Entry{}, fmt.Errorf("objects[%d].%w", i, err)
		}
		e.Objects[i] = o
	}
	if l.Corrected {
		e.Corrected = true
		e.PreObjects = make([]Object, len(l.PreObjects))
		for i, lo := range l.PreObjects {
			o, err := fromLabelObject(lo)
			if err != nil {
				return Entry{}, fmt.Errorf("pre_objects[%d].%w", i, err)
			}
			e.PreObjects[i] = o
		}
	} else if l.PreObjects != nil {
		return Entry{}, errors.New("pre_objects: present but corrected is not true")
	}
	return e, nil
}

// checkID reports whether id is a valid entry ID.
func checkID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("%q: must be 1-128 characters", id)
	}
	if id[0] == '.' {
		return fmt.Errorf("%q: must not start with a dot", id)
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%q: character %q is not in [A-Za-z0-9._-]", id, c)
		}
	}
	return nil
}

// labelProblem is one thing wrong with an entry's labels.
type labelProblem struct {
	kind Kind
	msg  string
}

// checkLabels checks the entry's objects (and pre-labels) and
// segmentation against its size and the store's classes (nil: any class >=
// 0; segmentation values must then be 0 or one of the objects' classes + 1).
func checkLabels(e *Entry, seg *image.Gray, classes []string) []labelProblem {
	var ps []labelProblem
	add := func(k Kind, format string, a ...any) {
		ps = append(ps, labelProblem{k, fmt.Sprintf(format, a...)})
	}
	field := func(name string) func(int, Kind, string, ...any) {
		return func(i int, k Kind, format string, a ...any) {
			add(k, "%s[%d].%s", name, i, fmt.Sprintf(format, a...))
		}
	}
	used := checkObjects(e.Objects, e.Width, e.Height, classes, field("objects"))
	if e.Corrected {
		checkObjects(e.PreObjects, e.Width, e.Height, classes, field("pre_objects"))
	}
	if seg != nil {
		sb := seg.Bounds()
		if sb.Dx() != e.Width || sb.Dy() != e.Height {
			add(KindMask, "segmentation: %dx%d, image is %dx%d", sb.Dx(), sb.Dy(), e.Width, e.Height)
			return ps
		}
		var bad [256]bool
		for v := 1; v < 256; v++ {
			if classes != nil {
				bad[v] = v-1 >= len(classes)
			} else {
				bad[v] = !used[v-1]
			}
		}
		var seen [256]bool
		for y := range sb.Dy() {
			row := seg.Pix[y*seg.Stride : y*seg.Stride+sb.Dx()]
			for _, v := range row {
				if bad[v] && !seen[v] {
					seen[v] = true
					add(KindMask, "segmentation: value %d is not 0 or a class id + 1", v)
				}
			}
		}
	}
	return ps
}

// ObjectProblem is one thing wrong with one object.
type ObjectProblem struct {
	// Index is the object's position in its list.
	Index int
	Kind  Kind
	// Msg starts with the field ("box: [1 2 3 4] is inverted").
	Msg string
}

// CheckObjects checks objects against a width x height picture and the
// store's classes (nil: any class >= 0) as Put and Correct do: boxes finite,
// not inverted and inside the picture, classes, scores in [0,1], visible
// keypoints inside the picture, masks of the picture's size.
func CheckObjects(objs []Object, width, height int, classes []string) []ObjectProblem {
	var ps []ObjectProblem
	checkObjects(objs, width, height, classes, func(i int, k Kind, format string, a ...any) {
		ps = append(ps, ObjectProblem{Index: i, Kind: k, Msg: fmt.Sprintf(format, a...)})
	})
	return ps
}

// checkObjects checks objs, reporting each problem with the object's index,
// and returns the classes they use.
func checkObjects(objs []Object, width, height int, classes []string, add func(i int, k Kind, format string, a ...any)) map[int]bool {
	w, h := float32(width), float32(height)
	const eps = 1e-3
	finite := func(vs ...float32) bool {
		for _, v := range vs {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return false
			}
		}
		return true
	}
	used := map[int]bool{}
	for i, o := range objs {
		b := o.Box
		switch {
		case !finite(b.X1, b.Y1, b.X2, b.Y2):
			add(i, KindBox, "box: not finite")
		case b.X2 < b.X1 || b.Y2 < b.Y1:
			add(i, KindBox, "box: [%g %g %g %g] is inverted", b.X1, b.Y1, b.X2, b.Y2)
		case b.X1 < -eps || b.Y1 < -eps || b.X2 > w+eps || b.Y2 > h+eps:
			add(i, KindBox, "box: [%g %g %g %g] is outside the %dx%d image", b.X1, b.Y1, b.X2, b.Y2, width, height)
		}
		if o.Class < 0 || (classes != nil && o.Class >= len(classes)) {
			add(i, KindClass, "class: %d is not a class id", o.Class)
		}
		used[o.Class] = true
		if !finite(o.Score) || o.Score < 0 || o.Score > 1 {
			add(i, KindScore, "score: %g is outside [0,1]", o.Score)
		}
		for k, p := range o.Keypoints {
			switch {
			case !finite(p.X, p.Y):
				add(i, KindKeypoint, "keypoints[%d]: (%g, %g) is not finite", k, p.X, p.Y)
			case !finite(p.Score) || p.Score < 0 || p.Score > 1:
				add(i, KindKeypoint, "keypoints[%d]: score %g is outside [0,1]", k, p.Score)
			case p.Score > 0 && (p.X < -eps || p.Y < -eps || p.X > w+eps || p.Y > h+eps):
				add(i, KindKeypoint, "keypoints[%d]: (%g, %g) is outside the %dx%d image", k, p.X, p.Y, width, height)
			}
		}
		if o.Mask != nil {
			if o.Mask.Width != width || o.Mask.Height != height {
				add(i, KindMask, "mask: %dx%d, image is %dx%d", o.Mask.Width, o.Mask.Height, width, height)
			} else if err := o.Mask.Valid(); err != nil {
				add(i, KindMask, "mask: %v", err)
			}
		}
	}
	return used
}
