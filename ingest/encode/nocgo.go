//go:build !cgo

package encode

import "github.com/vigil-video/vigil/frame"

// Encoder encodes H.264. Builds without cgo cannot make one.
type Encoder struct{}

// NewH264 returns ErrUnavailable in builds without cgo.
func NewH264(cfg Config) (*Encoder, error) { return nil, ErrUnavailable }

// Config returns the zero Config.
func (e *Encoder) Config() Config { return Config{} }

// Encode returns ErrUnavailable.
func (e *Encoder) Encode(f *frame.Frame, emit func(p *frame.Packet)) error { return ErrUnavailable }

// ForceKeyFrame does nothing.
func (e *Encoder) ForceKeyFrame() {}

// Close does nothing.
func (e *Encoder) Close() {}
