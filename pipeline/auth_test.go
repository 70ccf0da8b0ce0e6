package pipeline

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	do := func(h http.Handler, method, path, remote, auth string) int {
		r := httptest.NewRequest(method, path, nil)
		r.RemoteAddr = remote
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	const token = "0123456789abcdef"
	reg := prometheus.NewRegistry()
	open := Guard("", reg, ok)
	for _, tc := range []struct {
		h              http.Handler
		method, path   string
		remote, header string
		want           int
	}{
		{open, "GET", "/api/streams", "127.0.0.1:5000", "", 200},
		{open, "GET", "/api/streams", "[::1]:5000", "", 200},
		{open, "POST", "/whep/cam", "10.0.0.7:5000", "", 403},
		{open, "GET", "/api/streams", "192.168.1.9:5000", "Bearer " + token, 403},
		{open, "GET", "/", "10.0.0.7:5000", "", 200},
		{open, "GET", "/metrics", "10.0.0.7:5000", "", 200},
		{open, "OPTIONS", "/whep/cam", "10.0.0.7:5000", "", 200},
	} {
		require.Equal(t, tc.want, do(tc.h, tc.method, tc.path, tc.remote, tc.header), "%s %s from %s", tc.method, tc.path, tc.remote)
	}
	reg2 := prometheus.NewRegistry()
	guarded := Guard(token, reg2, ok)
	for _, tc := range []struct {
		method, path, remote, header string
		want                         int
	}{
		{"GET", "/api/streams", "10.0.0.7:5000", "Bearer " + token, 200},
		{"GET", "/api/streams", "127.0.0.1:5000", "", 401},
		{"GET", "/api/streams", "127.0.0.1:5000", "Bearer wrong", 401},
		{"POST", "/whep/cam", "10.0.0.7:5000", "Basic " + token, 401},
		{"DELETE", "/whep/cam/abc", "10.0.0.7:5000", "Bearer " + token, 200},
		{"GET", "/", "10.0.0.7:5000", "", 200},
	} {
		require.Equal(t, tc.want, do(guarded, tc.method, tc.path, tc.remote, tc.header), "%s %s %q", tc.method, tc.path, tc.header)
	}
	const help = "# HELP vigil_http_requests_refused_total API and viewer requests refused: token (missing or wrong Bearer token) or remote (a non-loopback client while api.token is unset).\n# TYPE vigil_http_requests_refused_total counter\n"
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(help+
		"vigil_http_requests_refused_total{reason=\"remote\"} 2\nvigil_http_requests_refused_total{reason=\"token\"} 0\n")))
	require.NoError(t, testutil.GatherAndCompare(reg2, strings.NewReader(help+
		"vigil_http_requests_refused_total{reason=\"remote\"} 0\nvigil_http_requests_refused_total{reason=\"token\"} 3\n")))
}
