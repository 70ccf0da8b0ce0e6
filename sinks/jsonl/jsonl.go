// Package jsonl writes one JSON line per analysed frame to standard output or
// to a file that rotates by size (clip.jsonl, clip.jsonl.1, … oldest last).
package jsonl

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/sinks"
)

// Writer is a JSONL sink. It is not safe for concurrent use; the pipeline
// calls it from one goroutine.
type Writer struct {
	// Path is the output file; "-" or "" means standard output.
	Path string
	// MaxBytes rotates the file when a write would take it past this size;
	// 0 disables rotation. Ignored for standard output.
	MaxBytes int64
	// MaxBackups is how many rotated files to keep. It defaults to 5.
	MaxBackups int
	// Stdout is where "-" writes; it defaults to os.Stdout.
	Stdout io.Writer
	// Truncate empties an existing file at Open instead of appending to it.
	Truncate bool

	f    *os.File
	w    *bufio.Writer
	size int64
	buf  []byte
}

// Open opens the output. Call it before the first Write.
func (w *Writer) Open() error {
	if w.MaxBackups == 0 {
		w.MaxBackups = 5
	}
	if w.Path == "" || w.Path == "-" {
		out := w.Stdout
		if out == nil {
			out = os.Stdout
		}
		w.w = bufio.NewWriterSize(out, 64<<10)
		return nil
	}
	return w.openFile(w.Truncate)
}

func (w *Writer) openFile(truncate bool) error {
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if truncate {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(w.Path, flags, 0o644)
	if err != nil {
		return fmt.Errorf("opening jsonl output: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening jsonl output: %w", err)
	}
	w.f, w.size = f, st.Size()
	if w.w == nil {
		w.w = bufio.NewWriterSize(f, 64<<10)
	} else {
		w.w.Reset(f)
	}
	return nil
}

// Write appends one line for r.
func (w *Writer) Write(_ context.Context, r *frame.Result) error {
	var err error
	w.buf, err = sinks.AppendJSON(w.buf[:0], r)
	if err != nil {
		return fmt.Errorf("encoding frame %d of %s: %w", r.Seq, r.StreamID, err)
	}
	if w.f != nil && w.MaxBytes > 0 && w.size > 0 && w.size+int64(len(w.buf)) > w.MaxBytes {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.w.Write(w.buf)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("writing %s: %w", w.name(), err)
	}
	// Flush at each line when nothing else is queued would cost a syscall per
	// frame; the bufio buffer is flushed on rotation and Close, and callers
	// that need lines promptly call Flush.
	return nil
}

// Flush writes buffered lines to the output.
func (w *Writer) Flush() error {
	if w.w == nil {
		return nil
	}
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("flushing %s: %w", w.name(), err)
	}
	return nil
}

func (w *Writer) rotate() error {
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("flushing %s: %w", w.name(), err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", w.name(), err)
	}
	os.Remove(w.Path + "." + strconv.Itoa(w.MaxBackups))
	for i := w.MaxBackups - 1; i >= 1; i-- {
		from := w.Path + "." + strconv.Itoa(i)
		if _, err := os.Stat(from); err == nil {
			if err := os.Rename(from, w.Path+"."+strconv.Itoa(i+1)); err != nil {
				return fmt.Errorf("rotating %s: %w", from, err)
			}
		}
	}
	if err := os.Rename(w.Path, w.Path+".1"); err != nil {
		return fmt.Errorf("rotating %s: %w", w.Path, err)
	}
	return w.openFile(false)
}

// Close flushes and closes the output.
func (w *Writer) Close(context.Context) error {
	err := w.Flush()
	if w.f != nil {
		if cerr := w.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("closing %s: %w", w.name(), cerr)
		}
		w.f = nil
	}
	return err
}

func (w *Writer) name() string {
	if w.f == nil {
		return "standard output"
	}
	return w.Path
}

var _ sinks.Sink = (*Writer)(nil)
