package cdp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// ErrJS reports a JavaScript exception thrown by an evaluated expression.
var ErrJS = errors.New("javascript exception")

// Page is one browser tab. It is safe for concurrent use.
type Page struct {
	browser  *Browser
	targetID string
	conn     *conn
	loaded   chan struct{}

	mu     sync.Mutex
	errors []string

	closeOnce sync.Once
}

// event runs on the connection's read goroutine.
func (p *Page) event(method string, params json.RawMessage) {
	var msg string
	switch method {
	case "Page.loadEventFired":
		select {
		case p.loaded <- struct{}{}:
		default:
		}
		return
	case "Runtime.exceptionThrown":
		var e struct {
			ExceptionDetails exceptionDetails `json:"exceptionDetails"`
		}
		if json.Unmarshal(params, &e) != nil {
			return
		}
		msg = "exception: " + e.ExceptionDetails.String()
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		if json.Unmarshal(params, &e) != nil || (e.Type != "error" && e.Type != "assert") {
			return
		}
		parts := make([]string, 0, len(e.Args))
		for _, a := range e.Args {
			if a.Value != nil {
				parts = append(parts, fmt.Sprint(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		msg = "console." + e.Type + ": " + strings.Join(parts, " ")
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Level  string `json:"level"`
				Source string `json:"source"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		if json.Unmarshal(params, &e) != nil || e.Entry.Level != "error" {
			return
		}
		msg = joinNonEmpty(" ", "log ("+e.Entry.Source+"):", e.Entry.Text, e.Entry.URL)
	default:
		return
	}
	p.mu.Lock()
	p.errors = append(p.errors, msg)
	p.mu.Unlock()
}

type exceptionDetails struct {
	Text       string `json:"text"`
	URL        string `json:"url"`
	LineNumber int    `json:"lineNumber"`
	Exception  *struct {
		Description string `json:"description"`
		Value       any    `json:"value"`
	} `json:"exception"`
}

func (e exceptionDetails) String() string {
	s := e.Text
	if e.Exception != nil {
		switch {
		case e.Exception.Description != "":
			s = e.Exception.Description
		case e.Exception.Value != nil:
			s = fmt.Sprint(e.Exception.Value)
		}
	}
	if e.URL != "" {
		s += fmt.Sprintf(" (%s:%d)", e.URL, e.LineNumber+1)
	}
	return s
}

// Navigate loads url in the tab and waits for its load event.
func (p *Page) Navigate(ctx context.Context, url string) error {
	select { // forget an earlier page's load
	case <-p.loaded:
	default:
	}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.conn.call(ctx, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return fmt.Errorf("navigating to %s: %w", url, err)
	}
	if nav.ErrorText != "" {
		return fmt.Errorf("navigating to %s: %s", url, nav.ErrorText)
	}
	select {
	case <-p.loaded:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s to load: %w", url, ctx.Err())
	}
}

// Eval evaluates the JavaScript expression expr in the page, awaiting it
// when it is a promise, and decodes its JSON value into out (which may be
// nil to ignore it). An exception thrown by expr is an error wrapping ErrJS
// with the exception's text. A result of undefined leaves out untouched.
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	var res struct {
		Result struct {
			Type                string          `json:"type"`
			Value               json.RawMessage `json:"value"`
			UnserializableValue string          `json:"unserializableValue"`
		} `json:"result"`
		ExceptionDetails *exceptionDetails `json:"exceptionDetails"`
	}
	err := p.conn.call(ctx, "Runtime.evaluate", map[string]any{
		"expression":    expr,
		"returnByValue": true,
		"awaitPromise":  true,
	}, &res)
	if err != nil {
		return fmt.Errorf("evaluating %s: %w", abbrev(expr), err)
	}
	if res.ExceptionDetails != nil {
		return fmt.Errorf("evaluating %s: %w: %s", abbrev(expr), ErrJS, res.ExceptionDetails)
	}
	if res.Result.UnserializableValue != "" {
		return fmt.Errorf("evaluating %s: result %s has no JSON form", abbrev(expr), res.Result.UnserializableValue)
	}
	if out == nil || len(res.Result.Value) == 0 {
		return nil
	}
	if err := json.Unmarshal(res.Result.Value, out); err != nil {
		return fmt.Errorf("decoding the value of %s: %w", abbrev(expr), err)
	}
	return nil
}

// Screenshot returns a PNG of the tab's viewport.
func (p *Page) Screenshot(ctx context.Context) ([]byte, error) {
	var res struct {
		Data string `json:"data"`
	}
	if err := p.conn.call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"}, &res); err != nil {
		return nil, fmt.Errorf("taking a screenshot: %w", err)
	}
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		return nil, fmt.Errorf("decoding the screenshot: %w", err)
	}
	return png, nil
}

// Errors returns what the page reported as errors so far: uncaught
// exceptions, console.error calls and error log entries (such as a script
// that failed to load).
func (p *Page) Errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errors...)
}

// Close closes the tab and its connection.
func (p *Page) Close() error {
	p.closeOnce.Do(func() {
		p.conn.close()
		p.browser.closeTarget(p.targetID)
	})
	return nil
}

func abbrev(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return fmt.Sprintf("%q", s)
}
