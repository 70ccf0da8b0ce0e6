package dataset

import (
	"fmt"

	"github.com/vigil-video/vigil/training/store"
)

// StoreLabels chooses which labels a StoreSource gives.
type StoreLabels int

// Label choices for StoreOptions.
const (
	// StoreLabelsCurrent gives every entry with its current labels: the
	// corrected ones where a person corrected the entry, else the model's
	// pre-labels. It is the default.
	StoreLabelsCurrent StoreLabels = iota
	// StoreLabelsPre gives every entry with the model's pre-labels, also
	// for corrected entries (self-training: no human label reaches the
	// trainer). A corrected entry's Segmentation is then painted from the
	// pre-labels' masks (nil without masks): its stored map follows the
	// correction.
	StoreLabelsPre
	// StoreLabelsCorrected gives only the corrected entries, with their
	// corrected labels.
	StoreLabelsCorrected
)

func (l StoreLabels) String() string {
	switch l {
	case StoreLabelsCurrent:
		return "current"
	case StoreLabelsPre:
		return "pre"
	case StoreLabelsCorrected:
		return "corrected"
	}
	return fmt.Sprintf("StoreLabels(%d)", int(l))
}

// StoreOptions configure NewStoreSourceWith.
type StoreOptions struct {
	// Labels chooses the entries and labels; the default is
	// StoreLabelsCurrent.
	Labels StoreLabels
}

// StoreSource reads the entries of a hard-frame store as samples: the
// labels become Objects (pre-labels carry the model's scores; corrected
// labels normally score 1), the stream is the Sequence (frames of one
// camera are alike, so a split keeps a camera on one side), the entry ID is
// the sample ID. It lists the entries when made and reads each picture when
// its sample is read, checking its hash; entries evicted since fail with
// store.ErrNotFound. Entry and Corrected tell a trainer where each sample's
// labels came from. It is safe for concurrent use.
type StoreSource struct {
	st      *store.Store
	labels  StoreLabels
	entries []store.Entry
}

// NewStoreSource returns the store's current entries with their current
// labels, oldest first.
func NewStoreSource(st *store.Store) *StoreSource {
	return NewStoreSourceWith(st, StoreOptions{})
}

// NewStoreSourceWith returns the store's entries that opts chooses, oldest
// first.
func NewStoreSourceWith(st *store.Store, opts StoreOptions) *StoreSource {
	s := &StoreSource{st: st, labels: opts.Labels}
	for _, e := range st.List() {
		if opts.Labels == StoreLabelsCorrected && !e.Corrected {
			continue
		}
		s.entries = append(s.entries, e)
	}
	return s
}

// Len returns the number of entries.
func (s *StoreSource) Len() int { return len(s.entries) }

// At reads entry i.
func (s *StoreSource) At(i int) (Sample, error) {
	if i < 0 || i >= len(s.entries) {
		return Sample{}, fmt.Errorf("store source: sample %d: %w", i, ErrRange)
	}
	e, err := s.st.Get(s.entries[i].ID)
	if err != nil {
		return Sample{}, fmt.Errorf("store source: sample %d: %w", i, err)
	}
	src := e.Objects
	seg := e.Segmentation
	if s.labels == StoreLabelsPre && e.Corrected {
		src = e.PreObjects
	}
	objs := make([]Object, len(src))
	hasMask := false
	for k, o := range src {
		objs[k] = Object{
			Box: o.Box, Class: o.Class, Label: o.Label, TrackID: o.TrackID,
			Keypoints: o.Keypoints, Mask: o.Mask, Score: o.Score, Ignore: o.Ignore,
		}
		hasMask = hasMask || o.Mask != nil
	}
	if s.labels == StoreLabelsPre && e.Corrected {
		seg = nil
		if hasMask {
			seg = Segment(objs, e.Width, e.Height)
		}
	}
	return Sample{
		ID: e.ID, Sequence: e.StreamID, Image: toRGBA(e.Image),
		Objects: objs, Segmentation: seg,
	}, nil
}

// SequenceOf returns entry i's stream.
func (s *StoreSource) SequenceOf(i int) (string, error) {
	if i < 0 || i >= len(s.entries) {
		return "", fmt.Errorf("store source: sample %d: %w", i, ErrRange)
	}
	return s.entries[i].StreamID, nil
}

// Entry returns entry i's metadata (miner, reason, model, capture time,
// Corrected, both sets of labels) without its picture.
func (s *StoreSource) Entry(i int) (store.Entry, error) {
	if i < 0 || i >= len(s.entries) {
		return store.Entry{}, fmt.Errorf("store source: sample %d: %w", i, ErrRange)
	}
	return s.entries[i], nil
}

// Corrected reports whether a person corrected entry i's labels. With
// StoreLabelsPre the sample holds the pre-labels all the same.
func (s *StoreSource) Corrected(i int) (bool, error) {
	if i < 0 || i >= len(s.entries) {
		return false, fmt.Errorf("store source: sample %d: %w", i, ErrRange)
	}
	return s.entries[i].Corrected, nil
}
