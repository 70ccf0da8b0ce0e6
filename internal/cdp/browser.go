package cdp

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Chromium is the browser Launch starts.
const Chromium = "/usr/bin/chromium"

// Flags are the command-line flags Launch always passes: headless, no
// sandbox or GPU, nothing phoning home, WebRTC over loopback with real IP
// candidates, autoplaying video. Launch adds --window-size from
// Options.Width and Height.
var Flags = []string{
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-quic",
	"--no-first-run",
	"--no-default-browser-check",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--allow-loopback-in-peer-connection",
	"--disable-features=WebRtcHideLocalIpsWithMdns",
	"--autoplay-policy=no-user-gesture-required",
	"--remote-debugging-port=0",
}

// Options configure Launch.
type Options struct {
	// UserDataDir is Chromium's profile folder. It defaults to a fresh
	// temporary folder, removed by Close.
	UserDataDir string
	// ExtraFlags are appended to Flags.
	ExtraFlags []string
	// Width and Height are the window's and every page's viewport size in
	// CSS pixels. They default to 1280 x 800.
	Width, Height int
	// Stderr receives Chromium's standard error. It defaults to discarding
	// it.
	Stderr io.Writer
}

// Browser is a running Chromium. It is safe for concurrent use.
type Browser struct {
	cmd     *exec.Cmd
	port    int
	conn    *conn
	tmpDir  string
	width   int
	height  int
	waitErr chan error

	closeOnce sync.Once
}

// Launch starts headless Chromium in its own process group and connects to
// its DevTools endpoint. The context bounds only the start-up.
func Launch(ctx context.Context, opts Options) (*Browser, error) {
	b := &Browser{waitErr: make(chan error, 1), width: opts.Width, height: opts.Height}
	if b.width <= 0 || b.height <= 0 {
		b.width, b.height = 1280, 800
	}
	dir := opts.UserDataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "vigil-chromium-")
		if err != nil {
			return nil, fmt.Errorf("creating chromium profile folder: %w", err)
		}
		dir, b.tmpDir = d, d
	}
	portFile := filepath.Join(dir, "DevToolsActivePort")
	_ = os.Remove(portFile) // a stale one from an earlier run would mislead us

	args := append([]string{"--user-data-dir=" + dir, fmt.Sprintf("--window-size=%d,%d", b.width, b.height)}, Flags...)
	args = append(args, opts.ExtraFlags...)
	args = append(args, "about:blank")
	cmd := exec.Command(Chromium, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = opts.Stderr
	cmd.Stderr = opts.Stderr
	if err := cmd.Start(); err != nil {
		b.removeTmp()
		return nil, fmt.Errorf("starting %s: %w", Chromium, err)
	}
	b.cmd = cmd
	go func() { b.waitErr <- cmd.Wait() }()

	port, path, err := b.waitPort(ctx, portFile)
	if err == nil {
		b.port = port
		b.conn, err = dial(ctx, wsURL(port, path), nil)
	}
	if err != nil {
		b.kill()
		return nil, err
	}
	return b, nil
}

// waitPort polls DevToolsActivePort, which Chromium writes once it listens:
// the port on the first line, the browser's WebSocket path on the second.
func (b *Browser) waitPort(ctx context.Context, file string) (int, string, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if data, err := os.ReadFile(file); err == nil {
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			if len(lines) == 2 {
				port, err := strconv.Atoi(strings.TrimSpace(lines[0]))
				if err != nil || port <= 0 || port > 65535 {
					return 0, "", fmt.Errorf("reading %s: bad port %q", file, lines[0])
				}
				return port, strings.TrimSpace(lines[1]), nil
			}
		}
		select {
		case err := <-b.waitErr:
			b.waitErr <- err // for kill
			return 0, "", fmt.Errorf("waiting for chromium's devtools port: chromium exited: %v", err)
		case <-ctx.Done():
			return 0, "", fmt.Errorf("waiting for chromium's devtools port in %s: %w", file, ctx.Err())
		case <-tick.C:
		}
	}
}

// NewPage opens a new tab, enables the events Page.Errors collects, sets
// its viewport to the browser's size, and navigates it to url, returning once its load event fired.
func (b *Browser) NewPage(ctx context.Context, url string) (*Page, error) {
	var created struct {
		TargetID string `json:"targetId"`
	}
	if err := b.conn.call(ctx, "Target.createTarget", map[string]any{"url": "about:blank"}, &created); err != nil {
		return nil, fmt.Errorf("opening a tab for %s: %w", url, err)
	}
	p := &Page{browser: b, targetID: created.TargetID, loaded: make(chan struct{}, 1)}
	c, err := dial(ctx, wsURL(b.port, "/devtools/page/"+created.TargetID), p.event)
	if err != nil {
		b.closeTarget(created.TargetID)
		return nil, err
	}
	p.conn = c
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		if err := c.call(ctx, m, nil, nil); err != nil {
			p.Close()
			return nil, fmt.Errorf("preparing the tab for %s: %w", url, err)
		}
	}
	// Headless windows keep room for browser UI; pin the viewport so that
	// screenshots and layout have the size asked for.
	err = c.call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": b.width, "height": b.height, "deviceScaleFactor": 1, "mobile": false,
	}, nil)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("sizing the tab for %s: %w", url, err)
	}
	if err := p.Navigate(ctx, url); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (b *Browser) closeTarget(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.conn.call(ctx, "Target.closeTarget", map[string]any{"targetId": id}, nil)
}

// Close ends the browser: it kills the whole process group, waits for
// Chromium to exit and removes the temporary profile. Pages still open
// should be closed first.
func (b *Browser) Close() error {
	b.closeOnce.Do(func() {
		if b.conn != nil {
			b.conn.close()
		}
		b.kill()
	})
	return nil
}

func (b *Browser) kill() {
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	<-b.waitErr // "signal: killed" is the expected end
	b.removeTmp()
}

func (b *Browser) removeTmp() {
	if b.tmpDir != "" {
		_ = os.RemoveAll(b.tmpDir)
	}
}

func deadlineSoon() time.Time { return time.Now().Add(time.Second) }
