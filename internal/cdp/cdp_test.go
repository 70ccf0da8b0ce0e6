package cdp

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/internal/shareddata"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func launch(t *testing.T) *Browser {
	t.Helper()
	shareddata.NeedCommands(t, "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := Launch(ctx, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	return b
}

func TestBrowser(t *testing.T) {
	b := launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!doctype html><title>cdp test</title><body style="margin:0;background:#f00">` +
			`<script>window.answer = 6 * 7; console.error("said", 42)</script>` +
			`<script src="/missing.js"></script>`))
	}))
	defer srv.Close()
	require.Contains(t, srv.URL, "127.0.0.1")

	p, err := b.NewPage(ctx, srv.URL)
	require.NoError(t, err)
	defer p.Close()

	t.Run("eval", func(t *testing.T) {
		var n int
		require.NoError(t, p.Eval(ctx, "window.answer + 1", &n))
		require.Equal(t, 43, n)
		var title string
		require.NoError(t, p.Eval(ctx, "document.title", &title))
		require.Equal(t, "cdp test", title)
		var obj struct {
			A []int `json:"a"`
			B string
		}
		require.NoError(t, p.Eval(ctx, `({a: [1, 2, 3], B: "x"})`, &obj))
		require.Equal(t, []int{1, 2, 3}, obj.A)
		require.Equal(t, "x", obj.B)
	})
	t.Run("promise", func(t *testing.T) {
		var s string
		require.NoError(t, p.Eval(ctx, `new Promise(r => setTimeout(() => r("late"), 50))`, &s))
		require.Equal(t, "late", s)
	})
	t.Run("exception", func(t *testing.T) {
		err := p.Eval(ctx, `(() => { throw new Error("boom at 7") })()`, nil)
		require.ErrorIs(t, err, ErrJS)
		require.ErrorContains(t, err, "boom at 7")
		err = p.Eval(ctx, `Promise.reject(new TypeError("refused"))`, nil)
		require.ErrorIs(t, err, ErrJS)
		require.ErrorContains(t, err, "refused")
		require.Error(t, p.Eval(ctx, `1/0`, new(float64)), "Infinity has no JSON form")
	})
	t.Run("errors", func(t *testing.T) {
		errs := p.Errors()
		require.Contains(t, errs, "console.error: said 42")
		require.Condition(t, func() bool {
			for _, e := range errs {
				if bytes.Contains([]byte(e), []byte("missing.js")) {
					return true
				}
			}
			return false
		}, "the failed script load is reported: %q", errs)
	})
	t.Run("screenshot", func(t *testing.T) {
		data, err := p.Screenshot(ctx)
		require.NoError(t, err)
		img, err := png.Decode(bytes.NewReader(data))
		require.NoError(t, err)
		require.Equal(t, 1280, img.Bounds().Dx())
		require.Equal(t, 800, img.Bounds().Dy())
		r, g, bl, _ := img.At(640, 400).RGBA()
		require.Equal(t, [3]uint32{0xffff, 0, 0}, [3]uint32{r, g, bl}, "the page's red background")
	})
	t.Run("data url", func(t *testing.T) {
		p2, err := b.NewPage(ctx, "data:text/html,"+url.PathEscape("<p id=x>hi</p>"))
		require.NoError(t, err)
		defer p2.Close()
		var s string
		require.NoError(t, p2.Eval(ctx, `document.getElementById("x").textContent`, &s))
		require.Equal(t, "hi", s)
	})
}

func TestCloseEndsProcessGroup(t *testing.T) {
	shareddata.NeedCommands(t, "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	b, err := Launch(ctx, Options{UserDataDir: dir})
	require.NoError(t, err)
	p, err := b.NewPage(ctx, "about:blank")
	require.NoError(t, err)
	require.NoError(t, p.Close())
	pgid := b.cmd.Process.Pid
	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "Close is idempotent")
	// No process of the group is left (Kill with signal 0 probes).
	require.Eventually(t, func() bool { return !groupAlive(pgid) }, 5*time.Second, 50*time.Millisecond)
	_, err = os.Stat(filepath.Join(dir, "DevToolsActivePort"))
	require.NoError(t, err, "a caller's profile folder is kept")
	require.ErrorIs(t, p.Eval(ctx, "1", nil), ErrClosed)
}

func TestLaunchTimeout(t *testing.T) {
	shareddata.NeedCommands(t, "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err := Launch(ctx, Options{})
	require.Error(t, err)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
}
