// Package wish is the HTTP side that WHIP (RFC 9725, publishing) and WHEP
// (playback) share: the routes POST /{kind}/{stream} and DELETE
// /{kind}/{stream}/{session}, the CORS preflight, and reading the SDP
// offer. Requests go in; the handlers the caller gives, or an HTTP error
// naming what was wrong, come out.
package wish

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxOfferSize bounds the SDP offer a peer may POST.
const MaxOfferSize = 64 << 10

// Serve routes r for the endpoint kind ("whip" or "whep"): a POST of an
// offer to post, a DELETE of a session to del, the CORS preflight here.
// The path prefix before "/kind/" is ignored, so the endpoint can be
// mounted anywhere.
func Serve(w http.ResponseWriter, r *http.Request, kind string, post func(stream string), del func(stream, session string)) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Location")
	stream, session, ok := parsePath(r.URL.Path, "/"+kind+"/")
	if !ok {
		http.Error(w, fmt.Sprintf("path must be /%s/{stream} or /%[1]s/{stream}/{session}", kind), http.StatusNotFound)
		return
	}
	switch {
	case r.Method == http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "POST, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		h.Set("Accept-Post", "application/sdp")
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && session == "":
		post(stream)
	case r.Method == http.MethodDelete && session != "":
		del(stream, session)
	default:
		h.Set("Allow", "POST, DELETE, OPTIONS")
		http.Error(w, "method not allowed (POST an offer with all its candidates, or DELETE a session)", http.StatusMethodNotAllowed)
	}
}

// parsePath splits ".../{kind}/{stream}[/{session}]".
func parsePath(p, prefix string) (stream, session string, ok bool) {
	i := strings.Index(p, prefix)
	if i < 0 {
		return "", "", false
	}
	parts := strings.Split(p[i+len(prefix):], "/")
	switch {
	case len(parts) == 1 && parts[0] != "":
		return parts[0], "", true
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return parts[0], parts[1], true
	}
	return "", "", false
}

// ReadOffer reads the SDP offer of a POST. On failure it returns the HTTP
// status to answer with and an error that says what was wrong: a content
// type other than application/sdp (415), an offer over MaxOfferSize (413),
// a body that could not be read (400).
func ReadOffer(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	if ct := r.Header.Get("Content-Type"); !strings.EqualFold(strings.TrimSpace(strings.Split(ct, ";")[0]), "application/sdp") {
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content type must be application/sdp, not %q", ct)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxOfferSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("offer larger than %d bytes", MaxOfferSize)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading offer: %w", err)
	}
	return body, 0, nil
}
