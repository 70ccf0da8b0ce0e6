// Package mot writes tracks in the MOTChallenge text format, one line per
// tracked detection: frame,id,x,y,w,h,conf,-1,-1,-1 with 1-based frame
// numbers and top-left boxes, so that any run can be scored with
// `vigil eval mot`, py-motmetrics or TrackEval.
package mot

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/vigil-video/vigil/frame"
)

// Writer is a sink that writes the tracked detections of one stream to a
// file. Detections without a track ID are skipped. Frame numbers are the
// frames' sequence numbers plus one.
type Writer struct {
	f   *os.File
	w   *bufio.Writer
	buf []byte
}

// Create truncates or creates the file at path.
func Create(path string) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("opening MOT output: %w", err)
	}
	return &Writer{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// Write appends r's tracked detections.
func (w *Writer) Write(_ context.Context, r *frame.Result) error {
	for _, d := range r.Detections {
		if d.TrackID == 0 {
			continue
		}
		b := w.buf[:0]
		b = strconv.AppendUint(b, r.Seq+1, 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, d.TrackID, 10)
		for _, v := range [5]float32{d.Box.X1, d.Box.Y1, d.Box.W(), d.Box.H(), d.Score} {
			b = append(b, ',')
			b = strconv.AppendFloat(b, float64(v), 'f', 2, 32)
		}
		b = append(b, ",-1,-1,-1\n"...)
		w.buf = b
		if _, err := w.w.Write(b); err != nil {
			return fmt.Errorf("writing MOT output: %w", err)
		}
	}
	return nil
}

// Close flushes and closes the file.
func (w *Writer) Close(context.Context) error {
	err := w.w.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("closing MOT output: %w", err)
	}
	return nil
}
