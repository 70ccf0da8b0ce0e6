package whip_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/ingest/whip"
	"github.com/vigil-video/vigil/ingest/whip/whiptest"
)

// offer returns a real pion offer with one sendonly track of mime, or an
// audio-only offer for webrtc.MimeTypeOpus.
func offer(t testing.TB, mime string) string {
	t.Helper()
	if mime == webrtc.MimeTypeOpus {
		pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
		require.NoError(t, err)
		defer pc.Close()
		_, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		require.NoError(t, err)
		o, err := pc.CreateOffer(nil)
		require.NoError(t, err)
		return o.SDP
	}
	pc, _, _, err := whiptest.NewPeerConnection(mime)
	require.NoError(t, err)
	defer pc.Close()
	sdp, err := whiptest.Offer(pc)
	require.NoError(t, err)
	return sdp
}

func TestErrors(t *testing.T) {
	srv, url := newServer(t, whip.Config{})
	var got sink
	detach, err := srv.Attach("cam", whip.StreamOptions{Token: "s3cret"}, &got)
	require.NoError(t, err)
	defer detach()
	_, err = srv.Attach("cam", whip.StreamOptions{}, &got)
	require.ErrorIs(t, err, whip.ErrAttached)
	h264Offer := offer(t, webrtc.MimeTypeH264)

	for _, tc := range []struct {
		name        string
		method      string
		path        string
		contentType string
		token       string
		body        string
		code        int
		reason      string
	}{
		{"unknown stream", "POST", "/whip/nope", "application/sdp", "s3cret", h264Offer, 404, "not found"},
		{"missing token", "POST", "/whip/cam", "application/sdp", "", h264Offer, 401, "Bearer"},
		{"wrong token", "POST", "/whip/cam", "application/sdp", "guess", h264Offer, 401, "Bearer"},
		{"wrong content type", "POST", "/whip/cam", "text/plain", "s3cret", h264Offer, 415, "application/sdp"},
		{"offer too big", "POST", "/whip/cam", "application/sdp", "s3cret", h264Offer + strings.Repeat("a=x\r\n", 14000), 413, "larger than 65536"},
		{"malformed SDP", "POST", "/whip/cam", "application/sdp", "s3cret", "hello", 400, "malformed SDP"},
		{"audio-only offer", "POST", "/whip/cam", "application/sdp", "s3cret", offer(t, webrtc.MimeTypeOpus), 415, "offer has no H264 or VP8 video"},
		{"H.265 only", "POST", "/whip/cam", "application/sdp", "s3cret", strings.NewReplacer("H264/90000", "H265/90000", "VP8/90000", "VP9/90000").Replace(h264Offer), 415, "offer has no H264 or VP8 video"},
		{"delete unknown session", "DELETE", "/whip/cam/123", "", "s3cret", "", 404, "session not found"},
		{"bad path", "POST", "/whip/", "application/sdp", "s3cret", h264Offer, 404, "path"},
		{"PATCH not allowed", "PATCH", "/whip/cam/123", "application/trickle-ice-sdpfrag", "s3cret", "", 405, "not allowed"},
		{"OPTIONS", "OPTIONS", "/whip/cam", "", "", "", 204, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, url+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			require.Equal(t, tc.code, resp.StatusCode, b.String())
			require.Contains(t, b.String(), tc.reason)
			if tc.code == 401 {
				require.True(t, strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer"))
			}
			require.NotContains(t, b.String(), "s3cret")
			require.Zero(t, srv.Sessions(), "no session left behind")
		})
	}
}

// TestReplaceAndStall checks that a second publisher replaces the first and
// that a publisher that sends nothing is ended after the read timeout.
func TestReplaceAndStall(t *testing.T) {
	srv, url := newServer(t, whip.Config{})
	var got sink
	detach, err := srv.Attach("cam", whip.StreamOptions{ReadTimeout: 700 * time.Millisecond}, &got)
	require.NoError(t, err)
	defer detach()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	first, err := whiptest.Publish(ctx, url+"/whip/cam", "", webrtc.MimeTypeH264)
	require.NoError(t, err)
	defer first.Close()
	second, err := whiptest.Publish(ctx, url+"/whip/cam", "", webrtc.MimeTypeVP8)
	require.NoError(t, err)
	defer second.Close()
	require.NotEqual(t, first.Location, second.Location)
	require.Equal(t, 1, srv.Sessions(), "the second publisher replaced the first")
	code, err := first.Delete(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, code, "the first session is gone")

	// Neither sends media: the second is ended as stalled.
	require.Eventually(t, func() bool { return srv.Sessions() == 0 }, 5*time.Second, 20*time.Millisecond)
	_, _, stalls := got.snapshot()
	require.Equal(t, 1, stalls)
}
