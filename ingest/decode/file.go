//go:build cgo

package decode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vigil-video/vigil/frame"
)

// DecodeFile demuxes and decodes the best video stream of path as fast as
// possible, releasing every frame at once, and reports how many frames it
// decoded and how long that took. threads is as in Config.Threads. Corrupt
// packets are counted, not fatal. Packets go from libavformat to libavcodec
// without a copy, as in the ffmpeg command.
func DecodeFile(ctx context.Context, path string, threads int) (Result, error) {
	start := time.Now()
	dmx, err := OpenFile(path)
	if err != nil {
		return Result{}, err
	}
	defer dmx.Close()
	dec, err := NewDecoder(Config{StreamID: path, Params: dmx.Params(), Threads: threads})
	if err != nil {
		return Result{}, fmt.Errorf("opening decoder for %s: %w", path, err)
	}
	defer dec.Close()

	var frames uint64
	emit := func(f *frame.Frame) {
		frames++
		f.Release()
	}
	result := func(err error) (Result, error) {
		return Result{Frames: frames, Elapsed: time.Since(start), Stats: dec.Stats()}, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return result(err)
		}
		pts, dts, err := dmx.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return result(err)
		}
		err = dec.decode(dmx.pkt, nil, int(dmx.pkt.size), pts, dts, dmx.keyFrame(), time.Time{}, emit)
		dmx.unref()
		if err != nil && !errors.Is(err, ErrCorruptPacket) {
			return result(err)
		}
	}
	if err := dec.Flush(emit); err != nil && !errors.Is(err, ErrCorruptPacket) {
		return result(err)
	}
	return result(nil)
}
