// Package dataset holds labelled images for training and evaluation: the
// Sample and Object types every part of training shares, sources that yield
// them (generated synth scenes, COCO JSON with images, YOLO text files, the
// hard-frame store), exports to COCO and YOLO, and train/validation splits
// that never separate the frames of one sequence.
package dataset

import (
	"image"

	"github.com/vigil-video/vigil/frame"
)

// Sample is one labelled image.
type Sample struct {
	// ID names the sample uniquely within its data set (for reports and
	// exports), e.g. "synth-day-s7/000123".
	ID string
	// Sequence names the video the image comes from; splits keep all
	// samples of one sequence on the same side. A still image is its own
	// sequence.
	Sequence string
	// Image is the picture, 8-bit RGB(A).
	Image *image.RGBA
	// Objects are the labelled objects.
	Objects []Object
	// Segmentation, when not nil, gives each pixel's class: 0 background,
	// c+1 for class c (the same size as Image).
	Segmentation *image.Gray
}

// Object is one labelled object in a Sample.
type Object struct {
	// Box is in image pixels.
	Box frame.Box
	// Class is the COCO-style class index and Label its name.
	Class int
	Label string
	// TrackID identifies the object across a sequence's samples (0 when
	// unknown); re-ID training uses it.
	TrackID uint64
	// Keypoints are the 17 COCO keypoints of a person, nil if unlabelled;
	// a keypoint's Score is 0 when it is not visible.
	Keypoints frame.Keypoints
	// Mask is the object's instance mask over the whole image, nil if none.
	Mask *frame.Mask
	// Score is 1 for a human or generated label; a pseudo-label carries
	// the model's score.
	Score float32
	// Ignore marks a region that is neither positive nor negative (crowds,
	// heavy occlusion): evaluation ignores matches to it, training does not
	// penalise detections on it.
	Ignore bool
}

// Source gives random access to samples.
type Source interface {
	// Len is the number of samples.
	Len() int
	// At returns sample i, 0 <= i < Len(). The Sample may share memory
	// with the Source; callers that modify it must copy it first.
	At(i int) (Sample, error)
}
