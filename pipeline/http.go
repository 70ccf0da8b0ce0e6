package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-video/vigil/config"
)

// maxRequestBody bounds API request bodies.
const maxRequestBody = 64 << 10

// Handler serves the HTTP API:
//
//	GET    /healthz            200 while the process is up
//	GET    /readyz             200 once the pipeline is running, 503 otherwise
//	GET    /metrics            Prometheus text format from gatherer
//	GET    /api/streams        JSON array of StreamStatus
//	GET    /api/streams/{id}   one StreamStatus
//	POST   /api/streams        add a stream (JSON object with config.Stream's fields)
//	DELETE /api/streams/{id}   remove a stream
//
// Everything else is passed to fallback (the web page), which may be nil.
func Handler(p *Pipeline, gatherer prometheus.Gatherer, fallback http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !p.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	if gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /api/streams", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, p.Streams())
	})
	mux.HandleFunc("GET /api/streams/{id}", func(w http.ResponseWriter, r *http.Request) {
		st, ok := p.Stream(r.PathValue("id"))
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("stream %q not found", r.PathValue("id")))
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /api/streams", func(w http.ResponseWriter, r *http.Request) {
		var cfg config.Stream
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			writeError(w, http.StatusBadRequest, "decoding stream: "+jsonError(err))
			return
		}
		if dec.More() {
			writeError(w, http.StatusBadRequest, "decoding stream: trailing data after the JSON object")
			return
		}
		err := p.Add(r.Context(), cfg)
		switch {
		case errors.Is(err, ErrStreamExists):
			writeError(w, http.StatusConflict, err.Error())
			return
		case errors.Is(err, ErrNotRunning):
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		case err != nil:
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		st, _ := p.Stream(cfg.ID)
		w.Header().Set("Location", "/api/streams/"+cfg.ID)
		writeJSON(w, http.StatusCreated, st)
	})
	mux.HandleFunc("DELETE /api/streams/{id}", func(w http.ResponseWriter, r *http.Request) {
		err := p.Remove(r.Context(), r.PathValue("id"))
		switch {
		case errors.Is(err, ErrStreamNotFound):
			writeError(w, http.StatusNotFound, err.Error())
		case errors.Is(err, ErrNotRunning):
			writeError(w, http.StatusServiceUnavailable, err.Error())
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	if fallback != nil {
		mux.Handle("/", fallback)
	}
	return mux
}

// jsonError words a JSON decoding error so that it names the field.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%s: expected %s, got %s", te.Field, te.Type, te.Value)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Sprintf("body larger than %d bytes", mbe.Limit)
	}
	msg := err.Error()
	// encoding/json says `json: unknown field "x"`.
	return strings.TrimPrefix(msg, "json: ")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
