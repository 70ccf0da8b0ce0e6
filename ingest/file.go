package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/decode"
)

func init() { Register("file", openFile) }

// FileSource replays a video file (MP4, MKV, anything libavformat reads) as
// compressed packets.
//
// URL form: file:///abs/clip.mp4 or file://relative/clip.mp4, with optional
// query parameters realtime=0|1 (pace at the file's timestamps) and loop=0|1
// (start over at the end) that override Options.Realtime and Options.Loop.
type FileSource struct {
	streamID string
	path     string
	realtime bool
	loop     bool
}

func openFile(streamID string, u *url.URL, opts Options) (Source, error) {
	path := u.Path
	if u.Host != "" {
		// file://relative/dir/clip.mp4 and file://../clip.mp4 name paths
		// relative to the working directory.
		path = filepath.Join(u.Host, u.Path)
	}
	if u.Opaque != "" {
		path = u.Opaque
	}
	if path == "" {
		return nil, errors.New("file URL has no path")
	}
	q := u.Query()
	realtime, err := boolParam(q, "realtime", opts.Realtime)
	if err != nil {
		return nil, err
	}
	loop, err := boolParam(q, "loop", opts.Loop)
	if err != nil {
		return nil, err
	}
	return &FileSource{streamID: streamID, path: path, realtime: realtime, loop: loop}, nil
}

func boolParam(q url.Values, key string, def bool) (bool, error) {
	v := q.Get(key)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("query parameter %s: %q is not a boolean", key, v)
	}
	return b, nil
}

// Path returns the file the source reads.
func (s *FileSource) Path() string { return s.path }

// Live reports whether the file is paced in real time.
func (s *FileSource) Live() bool { return s.realtime }

// Run reads the file and hands its video packets to out. It returns io.EOF at
// the end of a file that does not loop.
func (s *FileSource) Run(ctx context.Context, out Output) error {
	dmx, err := decode.OpenFile(s.path)
	if err != nil {
		return err
	}
	defer dmx.Close()
	params := dmx.Params()
	if err := out.Params(params); err != nil {
		return err
	}

	var (
		pkt      frame.Packet
		pace     = newPacer()
		offset   time.Duration // PTS shift so that looped passes keep increasing
		lastPTS  time.Duration
		pktCount uint64
	)
	defer pace.stop()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := dmx.ReadPacket(&pkt)
		if errors.Is(err, io.EOF) {
			if !s.loop || pktCount == 0 {
				return io.EOF
			}
			if err := dmx.SeekStart(); err != nil {
				return fmt.Errorf("rewinding %s: %w", s.path, err)
			}
			offset = lastPTS + frameInterval(params)
			pktCount = 0
			continue
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", s.path, err)
		}
		pktCount++
		pkt.StreamID = s.streamID
		pkt.PTS += offset
		pkt.DTS += offset
		lastPTS = max(lastPTS, pkt.PTS)
		if s.realtime {
			if err := pace.wait(ctx, pkt.PTS); err != nil {
				return err
			}
		}
		pkt.Arrival = time.Now()
		if err := out.Packet(&pkt); err != nil {
			return err
		}
	}
}

func frameInterval(p frame.CodecParams) time.Duration {
	if p.FrameRate > 0 {
		return time.Duration(float64(time.Second) / p.FrameRate)
	}
	return 40 * time.Millisecond
}
