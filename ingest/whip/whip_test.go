package whip_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/decode"
	"github.com/vigil-video/vigil/ingest/whip"
	"github.com/vigil-video/vigil/ingest/whip/whiptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// sink records what a session delivers.
type sink struct {
	mu      sync.Mutex
	params  []frame.CodecParams
	packets []frame.Packet
	lost    uint64
	stalls  int
}

func (s *sink) Params(p frame.CodecParams) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.params = append(s.params, p)
}

func (s *sink) Packet(p *frame.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := *p
	cp.Data = bytes.Clone(p.Data)
	s.packets = append(s.packets, cp)
}

func (s *sink) Lost(n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lost += n
}

func (s *sink) Stalled() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stalls++
}

func (s *sink) snapshot() ([]frame.CodecParams, []frame.Packet, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]frame.CodecParams(nil), s.params...), append([]frame.Packet(nil), s.packets...), s.stalls
}

func loopbackOnly(name string) bool { return name == "lo" }

// newServer starts a WHIP server on 127.0.0.1 and cleans it up.
func newServer(t testing.TB, cfg whip.Config) (*whip.Server, string) {
	cfg.InterfaceFilter = loopbackOnly
	srv := whip.NewServer(cfg)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		hs.Close()
		http.DefaultClient.CloseIdleConnections()
	})
	return srv, hs.URL
}

// decodeFrames decodes packets and returns how many frames of w x h came out.
func decodeFrames(t testing.TB, params frame.CodecParams, pkts []frame.Packet, w, h int) int {
	t.Helper()
	dec, err := decode.NewDecoder(decode.Config{StreamID: "test", Params: params})
	if errors.Is(err, decode.ErrNeedsCgo) {
		t.Skipf("no decoder in this build: %v", err)
	}
	require.NoError(t, err)
	defer dec.Close()
	n := 0
	emit := func(f *frame.Frame) {
		if f.Width == w && f.Height == h {
			n++
		}
		f.Release()
	}
	for i := range pkts {
		require.NoError(t, dec.Decode(&pkts[i], emit))
	}
	require.NoError(t, dec.Flush(emit))
	return n
}

func TestPublish(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codec frame.Codec
		mime  string
	}{
		{"H264", frame.CodecH264, webrtc.MimeTypeH264},
		{"VP8", frame.CodecVP8, webrtc.MimeTypeVP8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := whiptest.Clip(t, tc.mime, 2)
			srv, url := newServer(t, whip.Config{})
			var got sink
			detach, err := srv.Attach("cam", whip.StreamOptions{Token: "s3cret"}, &got)
			require.NoError(t, err)
			defer detach()

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			pub, err := whiptest.Publish(ctx, url+"/whip/cam", "s3cret", tc.mime)
			require.NoError(t, err)
			defer pub.Close()
			require.True(t, strings.HasPrefix(pub.Location, "/whip/cam/"), pub.Location)
			require.NoError(t, pub.WaitConnected(ctx))
			var sent int
			if tc.codec == frame.CodecH264 {
				sent, err = pub.SendH264(ctx, data, 30)
			} else {
				sent, err = pub.SendIVF(ctx, data, 30)
			}
			require.NoError(t, err)
			require.Equal(t, 60, sent)
			require.Eventually(t, func() bool {
				_, pkts, _ := got.snapshot()
				return len(pkts) >= sent
			}, 3*time.Second, 20*time.Millisecond)

			params, pkts, _ := got.snapshot()
			require.Len(t, params, 1)
			require.Equal(t, tc.codec, params[0].Codec)
			require.True(t, pkts[0].KeyFrame, "delivery starts at a key frame")
			keys := 0
			for _, p := range pkts {
				require.Equal(t, "cam", p.StreamID)
				if p.KeyFrame {
					keys++
				}
			}
			// 30 fps on the 90 kHz RTP clock: PTS advances 33.3 ms a frame.
			span := pkts[len(pkts)-1].PTS - pkts[0].PTS
			require.InDelta(t, float64(len(pkts)-1)/30, span.Seconds(), 0.005)
			require.Equal(t, 2, keys, "a key frame every 30 frames")
			frames := decodeFrames(t, params[0], pkts, 320, 240)
			t.Logf("%s: sent %d frames, received %d access units, decoded %d frames of 320x240", tc.name, sent, len(pkts), frames)
			require.GreaterOrEqual(t, frames, sent*9/10)

			require.GreaterOrEqual(t, pub.KeyFrameRequests(), 1, "a PLI when the track starts")

			// A receiver whose decoder broke asks for a key frame: the PLI
			// goes out with the next packet (the start's PLI is > 1 s old).
			before := pub.KeyFrameRequests()
			srv.RequestKeyFrame("cam")
			if tc.codec == frame.CodecH264 {
				_, err = pub.SendH264(ctx, data, 60)
			} else {
				_, err = pub.SendIVF(ctx, data, 60)
			}
			require.NoError(t, err)
			require.Eventually(t, func() bool { return pub.KeyFrameRequests() > before }, 3*time.Second, 20*time.Millisecond)

			code, err := pub.Delete(ctx)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code)
			require.Zero(t, srv.Sessions())
			code, err = pub.Delete(ctx)
			require.NoError(t, err)
			require.Equal(t, http.StatusNotFound, code, "the session is gone")
		})
	}
}

// TestLoss drops every 25th RTP packet at the publisher: the loss is
// counted, the broken access units are dropped, key frames are requested at
// most once per KeyFrameInterval, and what is delivered still decodes.
func TestLoss(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codec frame.Codec
		mime  string
	}{
		{"H264", frame.CodecH264, webrtc.MimeTypeH264},
		{"VP8", frame.CodecVP8, webrtc.MimeTypeVP8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := whiptest.Clip(t, tc.mime, 2)
			srv, url := newServer(t, whip.Config{KeyFrameInterval: 300 * time.Millisecond})
			var got sink
			detach, err := srv.Attach("cam", whip.StreamOptions{}, &got)
			require.NoError(t, err)
			defer detach()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			pub, err := whiptest.Publish(ctx, url+"/whip/cam", "", tc.mime)
			require.NoError(t, err)
			defer pub.Close()
			pub.DropEvery = 25
			require.NoError(t, pub.WaitConnected(ctx))
			if tc.codec == frame.CodecH264 {
				_, err = pub.SendH264(ctx, data, 30)
			} else {
				_, err = pub.SendIVF(ctx, data, 30)
			}
			require.NoError(t, err)
			time.Sleep(200 * time.Millisecond)

			params, pkts, _ := got.snapshot()
			got.mu.Lock()
			lost := got.lost
			got.mu.Unlock()
			plis := pub.KeyFrameRequests()
			frames := decodeFrames(t, params[0], pkts, 320, 240)
			t.Logf("%s: lost %d packets, %d access units delivered, %d decoded, %d key frame requests", tc.name, lost, len(pkts), frames, plis)
			require.NotZero(t, lost)
			require.Less(t, len(pkts), 60, "broken access units are not delivered")
			require.NotEmpty(t, pkts)
			require.True(t, pkts[0].KeyFrame)
			require.Equal(t, len(pkts), frames, "every delivered access unit decodes")
			require.GreaterOrEqual(t, plis, 2, "a PLI at the start and after loss")
			require.LessOrEqual(t, plis, 1+int(2*time.Second/(300*time.Millisecond))+1, "PLIs are rate-limited")
		})
	}
}
