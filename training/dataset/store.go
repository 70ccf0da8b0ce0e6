package dataset

import (
	"fmt"

	"github.com/vigil-video/vigil/training/store"
)

// StoreSource reads the entries of a hard-frame store as samples: the
// pre-labels become Objects with the model's scores (pseudo-labels), the
// stream is the Sequence (frames of one camera are alike, so a split keeps
// a camera on one side), the entry ID is the sample ID. It lists the entries
// when made and reads each picture when its sample is read, checking its
// hash; entries evicted since fail with store.ErrNotFound. It is safe for
// concurrent use.
type StoreSource struct {
	st      *store.Store
	entries []store.Entry
}

// NewStoreSource returns the store's current entries, oldest first.
func NewStoreSource(st *store.Store) *StoreSource {
	return &StoreSource{st: st, entries: st.List()}
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
	objs := make([]Object, len(e.Objects))
	for k, o := range e.Objects {
		objs[k] = Object{
			Box: o.Box, Class: o.Class, Label: o.Label, TrackID: o.TrackID,
			Keypoints: o.Keypoints, Mask: o.Mask, Score: o.Score, Ignore: o.Ignore,
		}
	}
	return Sample{
		ID: e.ID, Sequence: e.StreamID, Image: toRGBA(e.Image),
		Objects: objs, Segmentation: e.Segmentation,
	}, nil
}

// SequenceOf returns entry i's stream.
func (s *StoreSource) SequenceOf(i int) (string, error) {
	if i < 0 || i >= len(s.entries) {
		return "", fmt.Errorf("store source: sample %d: %w", i, ErrRange)
	}
	return s.entries[i].StreamID, nil
}

// Entry returns entry i's metadata (miner, reason, model, capture time)
// without its picture.
func (s *StoreSource) Entry(i int) (store.Entry, error) {
	if i < 0 || i >= len(s.entries) {
		return store.Entry{}, fmt.Errorf("store source: sample %d: %w", i, ErrRange)
	}
	return s.entries[i], nil
}
