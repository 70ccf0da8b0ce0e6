// Package cdp is a small Chrome DevTools Protocol client for tests: it
// starts headless Chromium in its own process group, opens pages, evaluates
// JavaScript in them and takes screenshots. Commands go out and replies come
// back as JSON over one WebSocket per page
// (https://chromedevtools.github.io/devtools-protocol/); errors the page
// reports (exceptions, console.error, failed loads) are collected for
// Page.Errors.
//
// It drives only what Vigil's browser tests need; it is not a general
// automation library.
package cdp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
)

// ErrClosed reports a command sent on a closed connection.
var ErrClosed = errors.New("cdp connection closed")

// conn is one DevTools WebSocket: commands are matched to replies by id;
// events go to onEvent, called from the read goroutine.
type conn struct {
	ws      *websocket.Conn
	onEvent func(method string, params json.RawMessage)

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan reply
	err     error // set once the read loop ends

	done chan struct{}
}

type reply struct {
	Result json.RawMessage
	Err    error
}

type message struct {
	ID     int64           `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    string `json:"data"`
	} `json:"error,omitempty"`
}

func dial(ctx context.Context, wsURL string, onEvent func(string, json.RawMessage)) (*conn, error) {
	d := websocket.Dialer{ReadBufferSize: 1 << 16, WriteBufferSize: 1 << 16}
	ws, _, err := d.DialContext(ctx, wsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("dialing devtools %s: %w", wsURL, err)
	}
	ws.SetReadLimit(256 << 20) // screenshots are large
	c := &conn{ws: ws, onEvent: onEvent, pending: map[int64]chan reply{}, done: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

func (c *conn) readLoop() {
	defer close(c.done)
	var err error
	for {
		var m message
		if err = c.ws.ReadJSON(&m); err != nil {
			break
		}
		if m.ID == 0 {
			if c.onEvent != nil && m.Method != "" {
				c.onEvent(m.Method, m.Params)
			}
			continue
		}
		c.mu.Lock()
		ch := c.pending[m.ID]
		delete(c.pending, m.ID)
		c.mu.Unlock()
		if ch == nil {
			continue
		}
		r := reply{Result: m.Result}
		if m.Error != nil {
			r.Err = fmt.Errorf("cdp error %d: %s %s", m.Error.Code, m.Error.Message, m.Error.Data)
		}
		ch <- r // buffered
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %v", ErrClosed, err)
	for id, ch := range c.pending {
		ch <- reply{Err: c.err}
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// call sends method with params and decodes the reply's result into out
// (when out is not nil).
func (c *conn) call(ctx context.Context, method string, params, out any) error {
	if params == nil {
		params = struct{}{}
	}
	p, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("encoding %s params: %w", method, err)
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return fmt.Errorf("calling %s: %w", method, c.err)
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()

	c.wmu.Lock()
	err = c.ws.WriteJSON(message{ID: id, Method: method, Params: p})
	c.wmu.Unlock()
	if err != nil {
		c.forget(id)
		return fmt.Errorf("sending %s: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.Err != nil {
			return fmt.Errorf("calling %s: %w", method, r.Err)
		}
		if out != nil {
			if err := json.Unmarshal(r.Result, out); err != nil {
				return fmt.Errorf("decoding %s result: %w", method, err)
			}
		}
		return nil
	case <-ctx.Done():
		c.forget(id)
		return fmt.Errorf("calling %s: %w", method, ctx.Err())
	}
}

func (c *conn) forget(id int64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// close ends the connection and waits for its read goroutine.
func (c *conn) close() {
	c.wmu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadlineSoon())
	c.wmu.Unlock()
	_ = c.ws.Close()
	<-c.done
}

// wsURL rewrites a DevTools path onto the browser's host and port.
func wsURL(port int, path string) string {
	u := url.URL{Scheme: "ws", Host: fmt.Sprintf("127.0.0.1:%d", port), Path: path}
	return u.String()
}

// joinNonEmpty joins the non-empty parts with sep.
func joinNonEmpty(sep string, parts ...string) string {
	out := parts[:0:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}
