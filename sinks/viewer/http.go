package viewer

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxOfferSize bounds the SDP offer a viewer may POST.
const MaxOfferSize = 64 << 10

// ServeHTTP serves WHEP (draft-ietf-wish-whep):
//
//	POST    /whep/{stream}            SDP offer in, 201 with the SDP answer and Location
//	DELETE  /whep/{stream}/{session}  ends the session
//	OPTIONS                           CORS preflight
//
// The path prefix before "/whep/" is ignored. Authorisation is the
// caller's: the server wraps the handler with the API's token check.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Access-Control-Allow-Origin", "*")
	hdr.Set("Access-Control-Expose-Headers", "Location")
	stream, session, ok := parsePath(r.URL.Path)
	if !ok {
		http.Error(w, "path must be /whep/{stream} or /whep/{stream}/{session}", http.StatusNotFound)
		return
	}
	switch {
	case r.Method == http.MethodOptions:
		hdr.Set("Access-Control-Allow-Methods", "POST, DELETE, OPTIONS")
		hdr.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		hdr.Set("Accept-Post", "application/sdp")
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && session == "":
		h.post(w, r, stream)
	case r.Method == http.MethodDelete && session != "":
		h.delete(w, stream, session)
	default:
		hdr.Set("Allow", "POST, DELETE, OPTIONS")
		http.Error(w, "method not allowed (WHEP here takes POST of an offer with all candidates, and DELETE)", http.StatusMethodNotAllowed)
	}
}

func parsePath(p string) (stream, session string, ok bool) {
	i := strings.Index(p, "/whep/")
	if i < 0 {
		return "", "", false
	}
	parts := strings.Split(p[i+len("/whep/"):], "/")
	switch {
	case len(parts) == 1 && parts[0] != "":
		return parts[0], "", true
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return parts[0], parts[1], true
	}
	return "", "", false
}

func (h *Hub) post(w http.ResponseWriter, r *http.Request, stream string) {
	fail := func(code int, reason, msg string) {
		h.metrics.errors.WithLabelValues(reason).Inc()
		http.Error(w, msg, code)
	}
	var info StreamInfo
	if d := h.opts.Describe; d != nil {
		var ok bool
		if info, ok = d(stream); !ok {
			fail(http.StatusNotFound, "bad_request", fmt.Sprintf("stream %q not found", stream))
			return
		}
	}
	if ct := r.Header.Get("Content-Type"); !strings.EqualFold(strings.TrimSpace(strings.Split(ct, ";")[0]), "application/sdp") {
		fail(http.StatusUnsupportedMediaType, "bad_request", fmt.Sprintf("content type must be application/sdp, not %q", ct))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxOfferSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(http.StatusRequestEntityTooLarge, "bad_request", fmt.Sprintf("offer larger than %d bytes", MaxOfferSize))
			return
		}
		fail(http.StatusBadRequest, "bad_request", "reading offer: "+err.Error())
		return
	}
	s, answer, err := h.newSession(r.Context(), stream, info, string(body))
	switch {
	case errors.Is(err, errFull), errors.Is(err, errClosed):
		fail(http.StatusServiceUnavailable, "rejected", err.Error())
		return
	case errors.Is(err, errNoVideo):
		fail(http.StatusUnsupportedMediaType, "bad_request", err.Error())
		return
	case err != nil:
		fail(http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/whep/"+stream+"/"+s.id)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, answer)
}

func (h *Hub) delete(w http.ResponseWriter, stream, id string) {
	h.mu.RLock()
	s, ok := h.sessions[id]
	h.mu.RUnlock()
	if !ok || s.f.id != stream {
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	s.close("viewer ended the session")
	w.WriteHeader(http.StatusOK)
}
