package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/training/dataset"
)

func decodePNG(t *testing.T, path string) *image.RGBA {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	out := image.NewRGBA(img.Bounds())
	draw.Draw(out, out.Rect, img, img.Bounds().Min, draw.Src)
	return out
}

func TestPlotCurves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curves.png")
	lrColor := color.RGBA{1, 2, 250, 255}
	require.NoError(t, PlotCurves(path, "training",
		Series{Name: "a", X: []float64{0, 5, 10}, Y: []float64{0, 10, 0}},
		Series{Name: "lr", Y: []float64{1e-3, 1e-3, math.NaN(), 1e-4}, Right: true, Color: lrColor},
	))
	img := decodePNG(t, path)
	require.Equal(t, image.Rect(0, 0, ChartWidth, ChartHeight), img.Bounds())
	// Both axes run 0..10 in steps of 2 (at most 8 and 6 ticks): the plot
	// spans x 80..720 (a right axis takes 80 pixels) and y 452..44, so the
	// points are at (80,452), (400,44), (720,452) and the line's middle
	// between the first two at (240,248).
	a := palette[0]
	for _, p := range []image.Point{{80, 451}, {400, 44}, {401, 46}, {719, 451}, {240, 248}} {
		require.Equal(t, a, img.RGBAAt(p.X, p.Y), "at %v", p)
	}
	// Far from any line the plot is white.
	require.Equal(t, white, img.RGBAAt(400, 300))
	// The lr series runs 0..1e-3 on the right axis: its first point at
	// the top left corner's height, x = 80.
	require.Equal(t, lrColor, img.RGBAAt(81, 44))
	// The title is drawn in black at the top, centred.
	dark := 0
	for y := 12; y < 26; y++ {
		for x := 300; x < 500; x++ {
			if img.RGBAAt(x, y) == black {
				dark++
			}
		}
	}
	require.Greater(t, dark, 50)

	require.ErrorContains(t, PlotCurves(path, "x", Series{X: []float64{1}, Y: []float64{1, 2}}), "1 x and 2 y")
	// Degenerate inputs draw axes and return no error.
	for _, ss := range [][]Series{nil, {{Name: "nan", Y: []float64{math.NaN(), math.Inf(1)}}}, {{Name: "one", Y: []float64{3}}}, {{Y: []float64{1e9, -1e9}}}} {
		_, err := Curves("t", ss...)
		require.NoError(t, err)
	}
	require.Error(t, PlotCurves(filepath.Join(t.TempDir(), "no", "such", "dir.png"), "x"))
}

func TestTicks(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lo, hi   float64
		fromZero bool
		want     []string
	}{
		{"loss", 0.47, 2.5, true, []string{"0", "0.5", "1.0", "1.5", "2.0", "2.5"}},
		{"map", 0.05, 0.425, true, []string{"0", "0.1", "0.2", "0.3", "0.4", "0.5"}},
		{"lr", 1e-5, 1e-3, true, []string{"0", "2.0e-04", "4.0e-04", "6.0e-04", "8.0e-04", "1.0e-03"}},
		{"epochs", 1, 30, false, []string{"0", "5", "10", "15", "20", "25", "30"}},
		// 3 ± 0.5 in steps of 1/6 rounded up to 0.2.
		{"flat", 3, 3, false, []string{"2.4", "2.6", "2.8", "3.0", "3.2", "3.4", "3.6"}},
		{"tenths", 2.7, 3.3, false, []string{"2.7", "2.8", "2.9", "3.0", "3.1", "3.2", "3.3"}},
		{"negative", -3, 1, true, []string{"-3", "-2", "-1", "0", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := valueRange{tc.lo, tc.hi}.ticks(6, tc.fromZero)
			var got []string
			for _, v := range a.at {
				got = append(got, a.label(v))
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestDrawText(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 40, 20))
	drawText(img, 2, 3, "A1", black, 2)
	// Inside the text's box some pixels are set, outside none.
	set := 0
	for y := range 20 {
		for x := range 40 {
			if img.RGBAAt(x, y) != (color.RGBA{}) {
				set++
				require.True(t, x >= 2 && x < 2+textWidth("A1", 2) && y >= 3 && y < 3+textHeight(2), "(%d,%d)", x, y)
			}
		}
	}
	// 'A' has 18 pixels and '1' 10, each 2x2 at scale 2.
	require.Equal(t, 4*(18+10), set)
	// Unknown runes draw '?', lower case draws capitals, off-image is clipped.
	a, b := image.NewRGBA(image.Rect(0, 0, 8, 8)), image.NewRGBA(image.Rect(0, 0, 8, 8))
	drawText(a, 0, 0, "é", black, 1)
	drawText(b, 0, 0, "?", black, 1)
	require.Equal(t, a.Pix, b.Pix)
	drawText(a, 0, 0, "q", black, 1)
	drawText(b, 0, 0, "Q", black, 1)
	require.Equal(t, a.Pix, b.Pix)
	drawText(a, -3, 6, "WW", black, 3)
}

func testItem(id string) Item {
	bg := image.NewRGBA(image.Rect(0, 0, 100, 50))
	fillRect(bg, 0, 0, 100, 50, color.RGBA{50, 50, 200, 255})
	kps := make(frame.Keypoints, 17)
	kps[5] = frame.Keypoint{X: 15, Y: 40, Score: 1}
	kps[6] = frame.Keypoint{X: 35, Y: 40, Score: 1}
	kps[7] = frame.Keypoint{X: 15, Y: 48, Score: 0} // hidden: the 5-7 limb is not drawn
	return Item{
		ID: id, Image: bg, Score: 0.25, Caption: "f1 0.25",
		Truth: []dataset.Object{{Box: frame.Box{X1: 10, Y1: 10, X2: 40, Y2: 30}, Keypoints: kps}},
		Preds: []frame.Detection{{Box: frame.Box{X1: 60, Y1: 20, X2: 90, Y2: 45}, Score: 0.9}},
	}
}

func TestAnnotate(t *testing.T) {
	img := Annotate(testItem("x"), 1)
	require.Equal(t, image.Rect(0, 0, 100, 50), img.Bounds())
	bg := color.RGBA{50, 50, 200, 255}
	// Truth box edges green, its inside untouched.
	require.Equal(t, truthColor, img.RGBAAt(10, 20))
	require.Equal(t, truthColor, img.RGBAAt(39, 20))
	require.Equal(t, truthColor, img.RGBAAt(25, 10))
	require.Equal(t, bg, img.RGBAAt(25, 20))
	// Skeleton: the shoulders' limb at y 40, nothing towards the hidden elbow.
	require.Equal(t, truthColor, img.RGBAAt(25, 40))
	require.Equal(t, bg, img.RGBAAt(15, 46))
	// Prediction edges red, with its score on a red tag above it.
	require.Equal(t, predColor, img.RGBAAt(60, 30))
	require.Equal(t, predColor, img.RGBAAt(89, 30))
	require.Equal(t, bg, img.RGBAAt(75, 35))
	tag := 0
	for x := 60; x < 60+textWidth("0.90", 1); x++ {
		if c := img.RGBAAt(x, 12); c == white {
			tag++
		}
	}
	require.Positive(t, tag)

	// Scaled by 2: the truth box's left edge moves to x 20.
	img = Annotate(testItem("x"), 2)
	require.Equal(t, image.Rect(0, 0, 200, 100), img.Bounds())
	require.Equal(t, truthColor, img.RGBAAt(20, 40))
	require.Equal(t, bg, img.RGBAAt(19, 40))

	// No image: a grey field as large as the boxes.
	it := testItem("y")
	it.Image = nil
	img = Annotate(it, 1)
	require.Equal(t, image.Rect(0, 0, 90, 45), img.Bounds())
	require.Equal(t, emptyBG, img.RGBAAt(50, 5))
	// Garbage boxes and scales neither panic nor allocate the world.
	it.Preds[0].Box = frame.Box{X1: float32(math.NaN()), Y1: -1e30, X2: 1e30, Y2: float32(math.Inf(1))}
	img = Annotate(it, math.NaN())
	require.LessOrEqual(t, img.Bounds().Dx(), 4096)
	img = Annotate(Item{Image: image.NewRGBA(image.Rect(0, 0, 100, 1))}, 1e9)
	require.Equal(t, image.Rect(0, 0, 8192, 82), img.Bounds())
}

func TestContactSheet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sheet.png")
	items := []Item{testItem("a"), testItem("b"), testItem("c")}
	require.NoError(t, ContactSheet(path, items))
	img := decodePNG(t, path)
	// 3 columns of 320+4 plus 4; each 100x50 image scales by 3.2 to
	// 320x160, under it a caption of 2*7+10 pixels.
	require.Equal(t, image.Rect(0, 0, 3*324+4, 160+24+8), img.Bounds())
	// The second cell's truth box: left edge at 4+324+floor(10*3.2).
	require.Equal(t, truthColor, img.RGBAAt(4+324+32, 4+50))
	// Captions are drawn below each image.
	lit := 0
	for y := 4 + 160; y < 4+160+24; y++ {
		for x := 4; x < 4+320; x++ {
			if img.RGBAAt(x, y) == captionFG {
				lit++
			}
		}
	}
	require.Greater(t, lit, 100)
	_, err := Sheet(nil, 4)
	require.Error(t, err)
	img, err = Sheet(append(items, items...), 4)
	require.NoError(t, err)
	require.Equal(t, 4*324+4, img.Bounds().Dx())
	require.Equal(t, 2*(160+24+4)+4, img.Bounds().Dy())
}

func TestWorstHTML(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "worst")
	items := []Item{testItem("<b>x</b>"), testItem("seq/2")}
	require.NoError(t, WorstHTML(dir, items))
	page, err := os.ReadFile(filepath.Join(dir, "index.html"))
	require.NoError(t, err)
	s := string(page)
	require.Contains(t, s, `src="001.png"`)
	require.Contains(t, s, `src="002.png"`)
	require.Contains(t, s, "&lt;b&gt;x&lt;/b&gt;")
	require.NotContains(t, s, "<b>x")
	require.Less(t, strings.Index(s, "001.png"), strings.Index(s, "002.png"))
	img := decodePNG(t, filepath.Join(dir, "002.png"))
	require.Equal(t, image.Rect(0, 0, 100, 50), img.Bounds())
	require.Equal(t, predColor, img.RGBAAt(60, 30))
	left, err := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	require.NoError(t, err)
	require.Empty(t, left)
}

func TestWriteJSON(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "summary.json")
	type summary struct {
		Epoch int     `json:"epoch"`
		MAP   float64 `json:"map"`
	}
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o600))
	require.NoError(t, WriteJSON(path, summary{3, 0.42}))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "{\n  \"epoch\": 3,\n  \"map\": 0.42\n}\n", string(b))
	var back summary
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, summary{3, 0.42}, back)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), fi.Mode().Perm())

	require.ErrorContains(t, WriteJSON(path, math.NaN()), "encoding")
	require.Error(t, WriteJSON(filepath.Join(dir, "missing", "x.json"), 1))
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "no temporary files left")
}

// clock is a fake time source advancing by step on each reading after
// the first.
type clock struct {
	t    time.Time
	step time.Duration
	n    int
}

func (c *clock) now() time.Time {
	if c.n > 0 {
		c.t = c.t.Add(c.step)
	}
	c.n++
	return c.t
}

func newTestProgress(w *bytes.Buffer, total int, step time.Duration, opts ...ProgressOption) *Progress {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), step: step}
	p := NewProgress(w, total, opts...)
	p.now = c.now
	p.start = c.now()
	return p
}

func TestProgressLog(t *testing.T) {
	var buf bytes.Buffer
	p := newTestProgress(&buf, 20, time.Second, WithLabel("train"), WithEvery(25))
	require.False(t, p.terminal, "a bytes.Buffer is no terminal")
	for i := range 20 {
		p.Step(8, 2/float64(i+1), 1e-3)
	}
	p.Done()
	p.Done()
	p.Step(8, 0, 0) // after Done: ignored
	require.NoError(t, p.Err())
	// One second and 8 images a step: 8 img/s; after step 5 of 20, 15
	// steps at 1 s remain.
	require.Equal(t, strings.Join([]string{
		"train 5/20  25.0% loss 0.4000 lr 1.00e-03 8.0 img/s ETA 15.0s",
		"train 10/20  50.0% loss 0.2000 lr 1.00e-03 8.0 img/s ETA 10.0s",
		"train 15/20  75.0% loss 0.1333 lr 1.00e-03 8.0 img/s ETA 5.0s",
		"train 20/20 100.0% loss 0.1000 lr 1.00e-03 8.0 img/s",
		"train: done 20 steps in 21.0s, 7.6 img/s, loss 0.1",
		"",
	}, "\n"), buf.String())

	// Unknown total: a line every 100 steps, no percent or ETA.
	buf.Reset()
	p = newTestProgress(&buf, 0, 10*time.Millisecond, WithUnit("seq"))
	for range 250 {
		p.Step(1, 0.5, 0.01)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	require.Equal(t, "100 loss 0.5000 lr 1.00e-02 100.0 seq/s", lines[0])
}

func TestProgressTerminal(t *testing.T) {
	var buf bytes.Buffer
	// 50 ms a step, 40 steps in 2 s: at most one redraw per 200 ms.
	p := newTestProgress(&buf, 40, 50*time.Millisecond, WithTerminal(true))
	for range 40 {
		p.Step(4, 1, 0.1)
	}
	out := buf.String()
	require.NotContains(t, out, "\n")
	draws := strings.Count(out, "\r")
	require.GreaterOrEqual(t, draws, 10)
	require.LessOrEqual(t, draws, 12)
	require.True(t, strings.HasPrefix(out[strings.LastIndex(out, "\r"):], "\r40/40 100.0%"))
	p.Done()
	require.True(t, strings.HasSuffix(buf.String(), "\ndone 40 steps in 2.0s, 78.0 img/s, loss 1\n"), buf.String())

	// A shorter line blanks the rest of a longer one.
	buf.Reset()
	p = newTestProgress(&buf, 0, time.Second, WithTerminal(true))
	p.Step(1, 123456789, 1)
	p.Step(1, 1, 1)
	parts := strings.Split(buf.String(), "\r")
	require.Len(t, parts, 3)
	require.Equal(t, len(parts[1]), len(parts[2]))
}

type failWriter struct{ n int }

func (f *failWriter) Write(b []byte) (int, error) {
	f.n++
	return 0, errors.New("disk full")
}

func TestProgressWriteError(t *testing.T) {
	w := &failWriter{}
	p := NewProgress(w, 2, WithEvery(50))
	p.Step(1, 1, 1)
	p.Step(1, 1, 1)
	p.Done()
	require.ErrorContains(t, p.Err(), "disk full")
	require.Equal(t, 1, w.n, "no writes after the first error")
}

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	require.False(t, isTerminal(w))
	require.False(t, NewProgress(w, 1).terminal)
	f, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer f.Close()
	require.True(t, isTerminal(f))
	require.True(t, NewProgress(f, 1).terminal)
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		850 * time.Millisecond:        "850ms",
		12300 * time.Millisecond:      "12.3s",
		4*time.Minute + 5*time.Second: "4m05s",
		2*time.Hour + 3*time.Minute:   "2h03m",
		-time.Second:                  "?",
	} {
		require.Equal(t, want, fmtDuration(d))
	}
}

func BenchmarkCurves(b *testing.B) {
	y := make([]float64, 300)
	for i := range y {
		y[i] = 1 / float64(i+1)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Curves("loss", Series{Name: "loss", Y: y}, Series{Name: "lr", Y: y, Right: true}); err != nil {
			b.Fatal(err)
		}
	}
}
