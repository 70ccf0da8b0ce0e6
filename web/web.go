// Package web holds Vigil's live viewer, a browser page embedded in the
// binary and served at "/". It needs no build step: index.html, app.js (the
// grid of streams, WHEP playback, overlay drawing) and vigil.js (pure helpers:
// COCO RLE decoding, the synth capture-time stamp, RTP alignment, colours).
//
// The page lists streams from GET /api/streams, plays each with WHEP
// (POST /whep/{stream}) and receives Vigil's results on the 'vigil' data
// channel of the same peer connection. It draws a result over the video
// frame whose RTP timestamp it belongs to, in requestVideoFrameCallback.
// window.vigil.report() exposes per-tile counters for tests. The server side
// of the protocol is package sinks/viewer.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the embedded page and its assets.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServerFS(sub)
}
