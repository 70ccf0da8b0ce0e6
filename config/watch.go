package config

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"
)

// pollInterval is how often Watch looks at the file.
const pollInterval = time.Second

// Watch polls the config file at path every second until ctx is done. When
// the file's modification time or size changes and its content differs
// from the last version seen, Watch parses it and calls onChange with the
// new, validated config; if it does not load, Watch calls onError and the
// caller keeps running its current config. Each version is reported once,
// and so is a file that goes missing, not every second.
//
// Polling needs no inotify and sees edits made through editors' rename
// tricks, bind mounts and Kubernetes ConfigMap symlink swaps alike.
//
// The version on disk when Watch starts is the baseline: the caller has
// loaded it already. Watch blocks; it calls onChange and onError from its
// own goroutine, one call at a time, and starts no other goroutine.
func Watch(ctx context.Context, path string, onChange func(*Config), onError func(error)) {
	w := watcher{path: path}
	if fi, err := os.Stat(path); err == nil {
		if data, err := os.ReadFile(path); err == nil {
			w.mod, w.size, w.seen = fi.ModTime(), fi.Size(), true
			w.content, w.haveContent = data, true
		}
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.poll(onChange, onError)
		}
	}
}

// watcher is Watch's state; only Watch's goroutine touches it.
type watcher struct {
	path        string
	seen        bool // mod and size describe a version read successfully
	mod         time.Time
	size        int64
	content     []byte // the last version read, valid or not
	haveContent bool
	lastErr     string // the last error reported, to report each problem once
}

func (w *watcher) poll(onChange func(*Config), onError func(error)) {
	fi, err := os.Stat(w.path)
	if err != nil {
		w.seen = false
		w.report(fmt.Errorf("watching config: %w", err), onError)
		return
	}
	if w.seen && fi.ModTime().Equal(w.mod) && fi.Size() == w.size {
		return
	}
	data, err := os.ReadFile(w.path)
	if err != nil {
		w.report(fmt.Errorf("watching config: %w", err), onError)
		return
	}
	w.mod, w.size, w.seen = fi.ModTime(), fi.Size(), true
	if w.haveContent && bytes.Equal(data, w.content) {
		// Touched, or back after a brief absence, but not changed.
		return
	}
	w.content, w.haveContent = data, true
	w.lastErr = ""
	// Each new version is parsed, and reported, once.
	c, err := Parse(data)
	if err != nil {
		onError(fmt.Errorf("reloading config %s (keeping the running one): %w", w.path, err))
		return
	}
	onChange(c)
}

func (w *watcher) report(err error, onError func(error)) {
	if msg := err.Error(); msg != w.lastErr {
		w.lastErr = msg
		onError(err)
	}
}
