//go:build !cgo

package decode

import (
	"context"

	"github.com/vigil-video/vigil/frame"
)

// Decoder decodes one stream's packets. Builds without cgo cannot make one.
type Decoder struct{}

// NewDecoder returns ErrNeedsCgo in builds without cgo.
func NewDecoder(cfg Config) (*Decoder, error) { return nil, ErrNeedsCgo }

// Decode returns ErrNeedsCgo.
func (d *Decoder) Decode(p *frame.Packet, emit func(*frame.Frame)) error { return ErrNeedsCgo }

// Flush returns ErrNeedsCgo.
func (d *Decoder) Flush(emit func(*frame.Frame)) error { return ErrNeedsCgo }

// Stats returns zero counters.
func (d *Decoder) Stats() Stats { return Stats{} }

// Close does nothing.
func (d *Decoder) Close() error { return nil }

// Demuxer reads the video stream of a file. Builds without cgo cannot make one.
type Demuxer struct{}

// OpenFile returns ErrNeedsCgo in builds without cgo.
func OpenFile(path string) (*Demuxer, error) { return nil, ErrNeedsCgo }

// Params returns empty parameters.
func (d *Demuxer) Params() frame.CodecParams { return frame.CodecParams{} }

// Path returns "".
func (d *Demuxer) Path() string { return "" }

// ReadPacket returns ErrNeedsCgo.
func (d *Demuxer) ReadPacket(p *frame.Packet) error { return ErrNeedsCgo }

// SeekStart returns ErrNeedsCgo.
func (d *Demuxer) SeekStart() error { return ErrNeedsCgo }

// Close does nothing.
func (d *Demuxer) Close() error { return nil }

// DecodeFile returns ErrNeedsCgo in builds without cgo.
func DecodeFile(ctx context.Context, path string, threads int) (Result, error) {
	return Result{}, ErrNeedsCgo
}

// ReadFrames returns ErrNeedsCgo in builds without cgo.
func ReadFrames(path string, positions ...int) ([]*frame.Frame, error) {
	return nil, ErrNeedsCgo
}
