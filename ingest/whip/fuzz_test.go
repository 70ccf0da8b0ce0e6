package whip_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vigil-video/vigil/ingest/whip"
)

// FuzzWHIPOffer posts arbitrary offers to a stream: the answer must be 201
// or a 4xx, nothing may panic, and every session made must go away.
func FuzzWHIPOffer(f *testing.F) {
	f.Add(offer(f, webrtc.MimeTypeH264))
	f.Add(offer(f, webrtc.MimeTypeVP8))
	f.Add(offer(f, webrtc.MimeTypeOpus))
	f.Add("v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n")
	f.Add("")
	srv := whip.NewServer(whip.Config{InterfaceFilter: loopbackOnly, GatherTimeout: time.Second})
	f.Cleanup(func() { srv.Close() })
	detach, err := srv.Attach("cam", whip.StreamOptions{}, &sink{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(detach)
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/whip/cam", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/sdp")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusCreated:
			loc := rec.Header().Get("Location")
			if !strings.HasPrefix(loc, "/whip/cam/") || rec.Header().Get("Content-Type") != "application/sdp" {
				t.Fatalf("201 with Location %q and Content-Type %q", loc, rec.Header().Get("Content-Type"))
			}
			del := httptest.NewRecorder()
			srv.ServeHTTP(del, httptest.NewRequest(http.MethodDelete, loc, nil))
			if del.Code != http.StatusOK {
				t.Fatalf("DELETE %s: %d", loc, del.Code)
			}
		case rec.Code >= 400 && rec.Code < 500:
			if strings.TrimSpace(rec.Body.String()) == "" {
				t.Fatalf("%d without a reason", rec.Code)
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if n := srv.Sessions(); n != 0 {
			t.Fatalf("%d sessions left", n)
		}
	})
}
