//go:build cgo

package decode

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/vigil-video/vigil/frame"
)

// ReadFrames decodes the file at path and returns the frames at the given
// 0-based positions (in decoding output order), for tests, benchmarks and
// calibration. The caller owns them and calls Release on each.
func ReadFrames(path string, positions ...int) ([]*frame.Frame, error) {
	dmx, err := OpenFile(path)
	if err != nil {
		return nil, err
	}
	defer dmx.Close()
	dec, err := NewDecoder(Config{StreamID: path, Params: dmx.Params(), Threads: 1})
	if err != nil {
		return nil, fmt.Errorf("opening decoder for %s: %w", path, err)
	}
	defer dec.Close()
	last := slices.Max(positions)
	out := make([]*frame.Frame, len(positions))
	n := 0
	emit := func(f *frame.Frame) {
		kept := false
		for i, p := range positions {
			if p == n && out[i] == nil {
				if kept {
					f.Retain()
				}
				out[i], kept = f, true
			}
		}
		if !kept {
			f.Release()
		}
		n++
	}
	var pkt frame.Packet
	for n <= last {
		err := dmx.ReadPacket(&pkt)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := dec.Decode(&pkt, emit); err != nil && !errors.Is(err, ErrCorruptPacket) {
			return nil, err
		}
	}
	if n <= last {
		if err := dec.Flush(emit); err != nil && !errors.Is(err, ErrCorruptPacket) {
			return nil, err
		}
	}
	for i, f := range out {
		if f == nil {
			for _, g := range out {
				g.Release()
			}
			return nil, fmt.Errorf("reading frames of %s: it has %d frames, no frame %d", path, n, positions[i])
		}
	}
	return out, nil
}
