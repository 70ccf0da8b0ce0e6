package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/internal/cdp"
	"github.com/vigil-video/vigil/internal/shareddata"
	"github.com/vigil-video/vigil/web"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stub is the fake Vigil server side: the embedded page plus canned answers
// for /api/streams and WHEP, recording what the page sent.
type stub struct {
	mu      sync.Mutex
	streams string            // body of GET /api/streams
	code    int               // its status when not 0
	whep    map[string]int    // stream -> status for POST /whep/{stream}
	offers  map[string]string // stream -> last SDP offer
	auth    map[string]string // stream -> last Authorization header
}

func newServer(t *testing.T, s *stub) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/", web.Handler())
	mux.HandleFunc("GET /test/harness.html", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, "testdata/harness.html")
	})
	mux.HandleFunc("GET /api/streams", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.code != 0 {
			http.Error(w, http.StatusText(s.code), s.code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, s.streams)
	})
	mux.HandleFunc("POST /whep/{stream}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.PathValue("stream")
		s.mu.Lock()
		defer s.mu.Unlock()
		s.offers[id] = string(body)
		s.auth[id] = r.Header.Get("Authorization")
		code, ok := s.whep[id]
		if !ok {
			code = http.StatusNotFound
		}
		http.Error(w, http.StatusText(code), code)
	})
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv
}

func newStub(streams string) *stub {
	return &stub{streams: streams, whep: map[string]int{}, offers: map[string]string{}, auth: map[string]string{}}
}

func openPage(t *testing.T, ctx context.Context, url string) *cdp.Page {
	t.Helper()
	shareddata.NeedCommands(t, "chromium")
	b, err := cdp.Launch(ctx, cdp.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	p, err := b.NewPage(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// waitEval polls expr until it returns true.
func waitEval(t *testing.T, ctx context.Context, p *cdp.Page, expr string) {
	t.Helper()
	var ok bool
	require.Eventually(t, func() bool {
		return p.Eval(ctx, expr, &ok) == nil && ok
	}, 10*time.Second, 20*time.Millisecond, "waiting for %s", expr)
}

// call evaluates fn (a JS expression of the harness's window.v) applied to
// args, which are passed as JSON.
func call(ctx context.Context, p *cdp.Page, out any, fn string, args ...any) error {
	js := make([]string, len(args))
	for i, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		js[i] = string(b)
	}
	return p.Eval(ctx, fmt.Sprintf("(%s)(%s)", fn, strings.Join(js, ", ")), out)
}

func TestVigilJS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	srv := newServer(t, newStub("[]"))
	p := openPage(t, ctx, srv.URL+"/test/harness.html")
	waitEval(t, ctx, p, "window.ready === true")

	t.Run("decodeRLE", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		blob := func(w, h int) frame.Mask {
			data := make([]byte, w*h)
			for i := range data {
				if rng.IntN(3) == 0 {
					data[i] = 1
				}
			}
			return frame.EncodeMask(data, w, h)
		}
		disk, err := frame.MaskFromPolygon(circle(400, 300, 180, 64), 1280, 720)
		require.NoError(t, err)
		box, err := frame.MaskFromBox(100, 50, 300, 600, 1280, 720)
		require.NoError(t, err)
		for _, tc := range []struct {
			name string
			m    frame.Mask
		}{
			{"random 37x23", blob(37, 23)},
			{"random 1x1", blob(1, 1)},
			{"empty", frame.EncodeMask(make([]byte, 64*48), 64, 48)},
			{"full", frame.EncodeMask(bytesOf(1, 64*48), 64, 48)},
			{"disk 1280x720", disk},
			{"box 1280x720", box},
		} {
			t.Run(tc.name, func(t *testing.T) {
				want := tc.m.Decode(nil)
				var got string
				require.NoError(t, call(ctx, p, &got, "(s, h, w) => v.decodeRLE(s, h, w).join('')",
					tc.m.COCOString(), tc.m.Height, tc.m.Width))
				require.Len(t, got, len(want))
				for i := range want {
					if got[i]-'0' != want[i] {
						t.Fatalf("pixel (%d, %d) is %c, want %d", i%tc.m.Width, i/tc.m.Width, got[i], want[i])
					}
				}
			})
		}
		// Strings Go's parser rejects make decodeRLE throw.
		for _, bad := range []string{"P", "0!", "0o", "ooooooo0"} {
			_, goErr := frame.MaskFromCOCOString(bad, 4, 4)
			require.Error(t, goErr, "Go rejects %q", bad)
			err := call(ctx, p, nil, "(s) => v.decodeRLE(s, 4, 4)", bad)
			require.ErrorIs(t, err, cdp.ErrJS, "%q", bad)
		}
	})

	t.Run("readStamp", func(t *testing.T) {
		const ms = int64(1796000000123)
		for _, tc := range []struct {
			name  string
			width int
			bits  func([]int)
			want  any
		}{
			{"valid", 384, nil, float64(ms)},
			{"wider row", 400, nil, float64(ms)},
			{"broken sync", 384, func(b []int) { b[1] = 1 }, nil},
			{"no stamp", 384, func(b []int) { clear(b) }, nil},
			{"too narrow", 383, nil, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				bits := stampBits(ms)
				if tc.bits != nil {
					tc.bits(bits)
				}
				px := stampPixels(bits, tc.width, 32)
				var got any
				require.NoError(t, call(ctx, p, &got, "(px, w) => v.readStamp(Uint8ClampedArray.from(atob(px), c => c.charCodeAt(0)), w)", px, tc.width))
				require.Equal(t, tc.want, got)
			})
		}
	})

	t.Run("trackColor", func(t *testing.T) {
		var got struct {
			Colors []string  `json:"colors"`
			Hues   []float64 `json:"hues"`
			Again  string    `json:"again"`
			Grey   []string  `json:"grey"`
		}
		require.NoError(t, p.Eval(ctx, `(() => {
			const ids = [...Array(100).keys()].map(i => i + 1);
			return {colors: ids.map(v.trackColor), hues: ids.map(v.trackHue), again: v.trackColor(7),
				grey: [v.trackColor(0), v.trackColor(undefined), v.trackColor(null)]};
		})()`, &got))
		require.Equal(t, got.Colors[6], got.Again, "stable")
		seen := map[string]bool{}
		for i, c := range got.Colors {
			require.False(t, seen[c], "track %d repeats colour %s", i+1, c)
			seen[c] = true
			require.NotEqual(t, got.Grey[0], c)
		}
		for i := 1; i < len(got.Hues); i++ {
			d := math.Abs(got.Hues[i] - got.Hues[i-1])
			d = math.Min(d, 360-d)
			require.Greater(t, d, 60.0, "tracks %d and %d have hues %v and %v", i, i+1, got.Hues[i-1], got.Hues[i])
		}
		require.Equal(t, got.Grey[0], got.Grey[1])
		require.Equal(t, got.Grey[0], got.Grey[2])
	})

	t.Run("rtpDiff", func(t *testing.T) {
		for _, tc := range []struct{ a, b, want int64 }{
			{3000, 0, 3000},
			{0, 3000, -3000},
			{1500, 1<<32 - 1500, 3000},
			{1<<32 - 1500, 1500, -3000},
			{1<<31 + 10, 10, -1 << 31}, // half way round reads as behind
		} {
			var got int64
			require.NoError(t, call(ctx, p, &got, "v.rtpDiff", tc.a, tc.b))
			require.Equal(t, tc.want, got, "rtpDiff(%d, %d)", tc.a, tc.b)
		}
	})

	t.Run("pickResult", func(t *testing.T) {
		ring := []map[string]int64{{"rtp": 1<<32 - 6000}, {"rtp": 1<<32 - 3000}, {"rtp": 0}, {"rtp": 3000}}
		for _, tc := range []struct {
			rtp, maxAge int64
			want        any
		}{
			{0, 90000, float64(0)},
			{1500, 90000, float64(0)},
			{1<<32 - 1, 90000, float64(1<<32 - 3000)},
			{1<<32 - 4500, 90000, float64(1<<32 - 6000)},
			{3000, 90000, float64(3000)},
			{1<<32 - 9000, 90000, nil}, // before every result
			{100000, 90000, nil},       // newest result 97000 ticks old
			{93000, 90000, float64(3000)},
			{1000, 500, nil},
		} {
			var got any
			require.NoError(t, call(ctx, p, &got, "(ring, rtp, age) => v.pickResult(ring, rtp, age)?.rtp ?? null", ring, tc.rtp, tc.maxAge))
			require.Equal(t, tc.want, got, "pickResult(%d, %d)", tc.rtp, tc.maxAge)
		}
		// Only results from before the wrap.
		var got any
		require.NoError(t, call(ctx, p, &got, "(ring, rtp, age) => v.pickResult(ring, rtp, age)?.rtp ?? null",
			ring[:2], 1500, 90000))
		require.Equal(t, float64(1<<32-3000), got)
	})

	t.Run("pushResult", func(t *testing.T) {
		var got [][]int64
		require.NoError(t, p.Eval(ctx, `(() => {
			const ring = [], out = [];
			for (const rtp of [4294900000, 4294950000, 10000, 60000, 200000]) out.push(v.pushResult(ring, {rtp}, 150000).map(r => r.rtp));
			return out;
		})()`, &got))
		// Across the wrap 60000 is 127296 ticks after 4294900000: all kept;
		// 200000 is 190000 after 10000: older ones go.
		require.Equal(t, []int64{4294900000, 4294950000, 10000, 60000}, got[3])
		require.Equal(t, []int64{60000, 200000}, got[4])
	})

	t.Run("Stats", func(t *testing.T) {
		var got map[string]float64
		require.NoError(t, p.Eval(ctx, `(() => {
			const s = new v.Stats();
			for (let i = 100; i >= 1; i--) s.add(i - 60);
			s.add(NaN);
			return s.summary();
		})()`, &got))
		// Values -59..40; numpy.percentile([...], [50, 95]) = -9.5, 35.05.
		require.Equal(t, 100.0, got["n"])
		require.Equal(t, -59.0, got["last"])
		require.InDelta(t, -9.5, got["mean"], 1e-9)
		require.InDelta(t, -9.5, got["median"], 1e-9)
		require.InDelta(t, 35.05, got["p95"], 1e-9)
		require.Equal(t, 59.0, got["max_abs"])
	})
	require.Empty(t, p.Errors())
}

// stampBits lays out the protocol's stamp: sync 1,0,1,0 then 44 bits of ms,
// most significant first.
func stampBits(ms int64) []int {
	bits := []int{1, 0, 1, 0}
	for i := 43; i >= 0; i-- {
		bits = append(bits, int(ms>>i&1))
	}
	return bits
}

// stampPixels paints bits as 16 px cells, 24 to a row, white for 1 and
// black for 0, into RGBA rows of width pixels. The rim of each cell gets the
// opposite value: only the central 8x8 pixels count.
func stampPixels(bits []int, width, height int) []byte {
	px := make([]byte, width*height*4)
	for y := range height {
		for x := range width {
			o := (y*width + x) * 4
			px[o+3] = 255
			col, row := x/16, y/16
			k := row*24 + col
			if col >= 24 || k >= len(bits) {
				continue
			}
			on := bits[k] == 1
			if cx, cy := x%16, y%16; cx < 2 || cx >= 14 || cy < 2 || cy >= 14 {
				on = !on
			}
			v := byte(16)
			if on {
				v = 235
			}
			px[o], px[o+1], px[o+2] = v, v, v
		}
	}
	return px
}

func circle(cx, cy, r float64, n int) []float64 {
	xy := make([]float64, 0, 2*n)
	for i := range n {
		a := 2 * math.Pi * float64(i) / float64(n)
		xy = append(xy, cx+r*math.Cos(a), cy+r*math.Sin(a))
	}
	return xy
}

func bytesOf(v byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = v
	}
	return b
}

func TestIndexLoadsClean(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := newServer(t, newStub("[]"))
	p := openPage(t, ctx, srv.URL+"/")
	waitEval(t, ctx, p, "typeof window.vigil?.report === 'function'")
	// Let one refresh of the stream list go by.
	require.NoError(t, p.Eval(ctx, "new Promise(r => setTimeout(r, 2300))", nil))
	var rep struct {
		Tiles []any `json:"tiles"`
	}
	require.NoError(t, p.Eval(ctx, "window.vigil.report()", &rep))
	require.NotNil(t, rep.Tiles)
	require.Empty(t, rep.Tiles)
	var banner string
	require.NoError(t, p.Eval(ctx, "document.getElementById('banner').textContent", &banner))
	require.Empty(t, banner)
	require.Empty(t, p.Errors())

	// Toggles survive a reload.
	var checked []bool
	require.NoError(t, p.Eval(ctx, `document.querySelector('[data-toggle=masks]').click()`, nil))
	require.NoError(t, p.Navigate(ctx, srv.URL+"/"))
	waitEval(t, ctx, p, "typeof window.vigil?.report === 'function'")
	require.NoError(t, p.Eval(ctx, `[...document.querySelectorAll('[data-toggle]')].map(b => b.checked)`, &checked))
	require.Equal(t, []bool{true, true, true, false}, checked, "boxes, ids, keypoints, masks")
	require.Empty(t, p.Errors())
}

func TestTileErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newStub(`[{"id":"gone","state":"running"},{"id":"locked","state":"running"}]`)
	s.whep["locked"] = http.StatusUnauthorized
	srv := newServer(t, s)
	p := openPage(t, ctx, srv.URL+"/?stream=locked#token=s3cret")

	waitEval(t, ctx, p, `(() => {
		const t = window.vigil?.report().tiles ?? [];
		return t.length === 2 && t.every(x => x.error !== '');
	})()`)
	var rep struct {
		Tiles []struct {
			Stream string `json:"stream"`
			State  string `json:"state"`
			Error  string `json:"error"`
		} `json:"tiles"`
	}
	require.NoError(t, p.Eval(ctx, "window.vigil.report()", &rep))
	require.Len(t, rep.Tiles, 2)
	require.Equal(t, "gone", rep.Tiles[0].Stream)
	require.Contains(t, rep.Tiles[0].Error, "not found")
	require.Equal(t, "locked", rep.Tiles[1].Stream)
	require.Contains(t, rep.Tiles[1].Error, "token was refused")

	var dom struct {
		Focus      bool   `json:"focus"`
		Focused    string `json:"focused"`
		Video      bool   `json:"video"`
		Canvas     bool   `json:"canvas"`
		Hash       string `json:"hash"`
		ErrorShown string `json:"errorShown"`
	}
	require.NoError(t, p.Eval(ctx, `(() => {
		const t = document.querySelector('[data-stream="locked"]');
		return {focus: document.body.classList.contains('focus'),
			focused: document.querySelector('.tile.focused')?.dataset.stream ?? '',
			video: !!t.querySelector('video'), canvas: !!t.querySelector('canvas.overlay'),
			hash: location.hash, errorShown: t.querySelector('.error').textContent};
	})()`, &dom))
	require.True(t, dom.Focus)
	require.Equal(t, "locked", dom.Focused)
	require.True(t, dom.Video)
	require.True(t, dom.Canvas)
	require.Empty(t, dom.Hash, "the token leaves the address bar")
	require.Contains(t, dom.ErrorShown, "token was refused")

	s.mu.Lock()
	offer, auth := s.offers["locked"], s.auth["gone"]
	s.mu.Unlock()
	require.Equal(t, "Bearer s3cret", auth)
	require.Contains(t, offer, "m=video")
	require.Contains(t, offer, "a=recvonly")
	require.Contains(t, offer, "m=application") // the data channel
	require.Contains(t, offer, "H264")
	require.Contains(t, offer, "a=candidate", "non-trickle: candidates are in the offer")

	// Escape leaves focus; the stream list dropping a stream removes its tile.
	require.NoError(t, p.Eval(ctx, `document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}))`, nil))
	s.mu.Lock()
	s.streams = `[{"id":"locked"}]`
	s.mu.Unlock()
	waitEval(t, ctx, p, `(() => {
		const t = window.vigil.report().tiles;
		return t.length === 1 && t[0].stream === 'locked' && !document.body.classList.contains('focus') && location.search === '';
	})()`)
}

func TestStreamListNeedsToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newStub("[]")
	s.code = http.StatusUnauthorized
	srv := newServer(t, s)
	p := openPage(t, ctx, srv.URL+"/")
	waitEval(t, ctx, p, `document.getElementById('banner').textContent.includes('this server needs a token')`)
	s.mu.Lock()
	s.code = 0
	s.streams = `[{"id":"cam"}]`
	s.mu.Unlock()
	waitEval(t, ctx, p, `document.getElementById('banner').textContent === '' && window.vigil.report().tiles.length === 1`)
}
