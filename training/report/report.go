// Package report turns training runs into things people read: PNG line
// charts of per-epoch curves (PlotCurves), contact sheets and an HTML page
// of the worst images with their boxes and skeletons (ContactSheet,
// WorstHTML), a progress line for the terminal or a log (Progress), and
// summary JSON written atomically (WriteJSON).
//
// Numbers and images enter as plain values (Series, Item, Step calls);
// files leave through image/png, html/template and encoding/json. Text is
// drawn with a small built-in bitmap font, so no font or plotting module is
// needed.
package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
)

// WriteJSON writes v as indented JSON to path atomically: to a temporary
// file in the same directory, synced, then renamed over path, so readers
// see the old file or the new one and never half of one.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return writeAtomic(path, append(b, '\n'))
}

// writeAtomic writes data to path through a temporary file and a rename.
func writeAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("renaming into %s: %w", path, err)
	}
	return nil
}

// writePNG encodes img as a PNG file at path, atomically.
func writePNG(path string, img image.Image) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return writeAtomic(path, buf.Bytes())
}
