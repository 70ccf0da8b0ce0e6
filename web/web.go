// Package web holds Vigil's browser page, embedded in the binary and served
// at "/". For now the page lists the streams and their counters from
// /api/streams; the live overlay viewer grows here.
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
