package viewer

import (
	"log/slog"
	"testing"
	"time"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/h264"
)

// BenchmarkPacketFanout forwards a 20 KB H.264 access unit to 16 viewers'
// queues (the tap's work on the source goroutine for a camera stream).
func BenchmarkPacketFanout(b *testing.B) {
	h := New(Options{Logger: slog.New(slog.DiscardHandler)})
	defer h.Close(b.Context())
	f := h.feed("cam")
	f.params(frame.CodecParams{Codec: frame.CodecH264})
	var list []*session
	for range 16 {
		s := &session{f: f, video: make(chan accessUnit, videoQueue), done: make(chan struct{})}
		list = append(list, s)
		go func() {
			for {
				select {
				case <-s.video:
				case <-s.done:
					return
				}
			}
		}()
	}
	f.viewers.Store(&list)
	defer func() {
		for _, s := range list {
			close(s.done)
		}
	}()
	slice := make([]byte, 20<<10)
	slice[0] = 0x41 // non-IDR slice
	p := &frame.Packet{Codec: frame.CodecH264, Data: h264.AppendAnnexB(nil, slice)}
	b.ReportAllocs()
	b.SetBytes(int64(len(p.Data)))
	for i := 0; b.Loop(); i++ {
		p.PTS = time.Duration(i) * time.Second / 30
		f.packet(p)
	}
}

// BenchmarkOverlayMessage encodes one analysed frame's overlay message
// (10 people with keypoints, masks and tracks), done once per result for
// all of a stream's viewers.
func BenchmarkOverlayMessage(b *testing.B) {
	r := &frame.Result{StreamID: "cam", Seq: 7, PTS: time.Second, Captured: time.Now(), Width: 1280, Height: 720}
	mask := make([]byte, 1280*720)
	for y := 200; y < 400; y++ {
		for x := 100; x < 160; x++ {
			mask[y*1280+x] = 1
		}
	}
	m := frame.EncodeMask(mask, 1280, 720)
	for i := range 10 {
		d := frame.Detection{Box: frame.Box{X1: 100, Y1: 200, X2: 160, Y2: 400}, Label: "person", Score: 0.9, TrackID: uint64(i + 1), Mask: &m}
		d.Keypoints = make(frame.Keypoints, 17)
		r.Detections = append(r.Detections, d)
		r.Tracks = append(r.Tracks, frame.Track{ID: uint64(i + 1), State: frame.TrackConfirmed, Box: d.Box})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeResult(r, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
