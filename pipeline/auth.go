package pipeline

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// protectedPrefixes are the paths Guard checks: the API and the viewer's
// WHEP endpoint. The page, /metrics and the health checks stay open; WHIP
// publishers have their per-stream tokens.
var protectedPrefixes = []string{"/api/", "/whep/"}

// Guard wraps h with the API's access rule. With a token, requests to the
// API and the viewer must carry "Authorization: Bearer <token>". Without
// one, only clients on the loopback interface are served, so that a server
// that listens on every interface without a token exposes nothing. Refused
// requests are counted in vigil_http_requests_refused_total{reason}.
func Guard(token string, reg prometheus.Registerer, h http.Handler) http.Handler {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_http_requests_refused_total",
		Help: "API and viewer requests refused: token (missing or wrong Bearer token) or remote (a non-loopback client while api.token is unset).",
	}, []string{"reason"})
	refused.WithLabelValues("token")
	refused.WithLabelValues("remote")
	if reg != nil {
		reg.MustRegister(refused)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions || !isProtected(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		if token == "" {
			if isLoopback(r.RemoteAddr) {
				h.ServeHTTP(w, r)
				return
			}
			refused.WithLabelValues("remote").Inc()
			writeError(w, http.StatusForbidden, "this server serves its API and viewer to loopback clients only: set api.token (or VIGIL_API_TOKEN) to serve others")
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
			refused.WithLabelValues("token").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong Bearer token (api.token)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func isProtected(path string) bool {
	for _, p := range protectedPrefixes {
		if strings.HasPrefix(path, p) || path+"/" == p {
			return true
		}
	}
	return false
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
