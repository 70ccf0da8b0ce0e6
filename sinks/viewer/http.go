package viewer

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/vigil-video/vigil/internal/wish"
)

// MaxOfferSize bounds the SDP offer a viewer may POST.
const MaxOfferSize = wish.MaxOfferSize

// ServeHTTP serves WHEP (draft-ietf-wish-whep):
//
//	POST    /whep/{stream}            SDP offer in, 201 with the SDP answer and Location
//	DELETE  /whep/{stream}/{session}  ends the session
//	OPTIONS                           CORS preflight
//
// The path prefix before "/whep/" is ignored. Authorisation is the
// caller's: the server wraps the handler with the API's token check.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	wish.Serve(w, r, "whep",
		func(stream string) { h.post(w, r, stream) },
		func(stream, session string) { h.delete(w, stream, session) })
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
	body, code, err := wish.ReadOffer(w, r)
	if err != nil {
		fail(code, "bad_request", err.Error())
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
