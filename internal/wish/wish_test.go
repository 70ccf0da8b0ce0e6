package wish

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestServe(t *testing.T) {
	var got []string
	do := func(method, path, body, ctype string) *httptest.ResponseRecorder {
		got = got[:0]
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		w := httptest.NewRecorder()
		Serve(w, r, "whep",
			func(stream string) {
				offer, code, err := ReadOffer(w, r)
				if err != nil {
					http.Error(w, err.Error(), code)
					return
				}
				got = append(got, "post", stream, string(offer))
			},
			func(stream, session string) { got = append(got, "delete", stream, session) })
		return w
	}
	do("POST", "/x/whep/cam", "v=0", "application/sdp; charset=utf-8")
	require.Equal(t, []string{"post", "cam", "v=0"}, got)
	do("DELETE", "/whep/cam/abc", "", "")
	require.Equal(t, []string{"delete", "cam", "abc"}, got)
	w := do("OPTIONS", "/whep/cam", "", "")
	require.Equal(t, http.StatusNoContent, w.Code)
	require.Equal(t, "application/sdp", w.Header().Get("Accept-Post"))
	require.Equal(t, "*", w.Header().Get("Access-Control-Allow-Origin"))
	for _, tc := range []struct {
		method, path, body, ctype string
		code                      int
		msg                       string
	}{
		{"POST", "/whep/", "v=0", "application/sdp", 404, "path must be /whep/{stream} or /whep/{stream}/{session}"},
		{"POST", "/whep/a/b/c", "v=0", "application/sdp", 404, "path must be"},
		{"POST", "/whip/cam", "v=0", "application/sdp", 404, "path must be"},
		{"GET", "/whep/cam", "", "", 405, "method not allowed"},
		{"DELETE", "/whep/cam", "", "", 405, "method not allowed"},
		{"POST", "/whep/cam", "v=0", "text/plain", 415, `content type must be application/sdp, not "text/plain"`},
		{"POST", "/whep/cam", strings.Repeat("a", MaxOfferSize+1), "application/sdp", 413, "offer larger than 65536 bytes"},
	} {
		w := do(tc.method, tc.path, tc.body, tc.ctype)
		require.Equal(t, tc.code, w.Code, "%s %s", tc.method, tc.path)
		require.Contains(t, w.Body.String(), tc.msg)
		require.Empty(t, got)
	}
}

func FuzzParsePath(f *testing.F) {
	for _, p := range []string{"/whep/cam", "/whep/cam/s", "/a/whep//x", "/whep/"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		stream, session, ok := parsePath(p, "/whep/")
		if !ok {
			return
		}
		if stream == "" || strings.Contains(stream, "/") || strings.Contains(session, "/") {
			t.Fatalf("%q gave stream %q session %q", p, stream, session)
		}
	})
}
