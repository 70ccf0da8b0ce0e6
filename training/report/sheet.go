package report

import (
	"errors"
	"fmt"
	"html/template"
	"image"
	"image/color"
	"image/draw"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/training/dataset"
)

// Item is one image of a contact sheet or worst-images page.
type Item struct {
	// ID names the image (a dataset.Sample ID).
	ID string
	// Image is the picture; nil draws a grey field of the boxes' extent.
	Image image.Image
	// Truth are the labelled objects, drawn green (ignored ones grey).
	Truth []dataset.Object
	// Preds are the predictions, drawn red with their score.
	Preds []frame.Detection
	// Score rates the image (e.g. its F1), shown in the caption.
	Score float64
	// Caption is extra text for the caption, optional.
	Caption string
}

// CellWidth is the width a contact sheet scales each image to; the height
// keeps the aspect ratio, at most CellWidth*3/4.
const CellWidth = 320

// KeypointThreshold is the score at which a predicted keypoint is drawn;
// a labelled one is drawn when its score (visibility) is above 0.
const KeypointThreshold = 0.3

// COCOSkeleton are the limbs of COCO's 17 person keypoints, as 0-based
// pairs of keypoint indices (COCO's "skeleton" minus one).
var COCOSkeleton = [][2]int{
	{15, 13}, {13, 11}, {16, 14}, {14, 12}, {11, 12}, {5, 11}, {6, 12}, {5, 6}, {5, 7},
	{6, 8}, {7, 9}, {8, 10}, {1, 2}, {0, 1}, {0, 2}, {1, 3}, {2, 4}, {3, 5}, {4, 6},
}

var (
	truthColor  = color.RGBA{0, 200, 0, 255}
	ignoreColor = color.RGBA{160, 160, 160, 255}
	predColor   = color.RGBA{230, 0, 0, 255}
	captionBG   = color.RGBA{30, 30, 30, 255}
	captionFG   = color.RGBA{240, 240, 240, 255}
	emptyBG     = color.RGBA{90, 90, 90, 255}
)

// Annotate draws item at scale (1 = the image's own size; at most 8192
// pixels a side): the picture,
// ground-truth boxes and skeletons in green, predictions in red with
// their scores, and no caption.
func Annotate(it Item, scale float64) *image.RGBA {
	if !(scale > 0) || math.IsInf(scale, 0) {
		scale = 1
	}
	src := it.Image
	w, h := itemSize(it)
	// At most 8192 pixels a side, whatever the scale.
	scale = math.Min(scale, 8192/float64(max(w, h)))
	dw, dh := max(1, int(math.Round(float64(w)*scale))), max(1, int(math.Round(float64(h)*scale)))
	img := image.NewRGBA(image.Rect(0, 0, dw, dh))
	if src == nil {
		fillRect(img, 0, 0, dw, dh, emptyBG)
	} else {
		scaleInto(img, src)
	}
	sx, sy := float64(dw)/float64(w), float64(dh)/float64(h)
	pt := func(x, y float32) (int, int) {
		return int(math.Floor(float64(x) * sx)), int(math.Floor(float64(y) * sy))
	}
	boxAt := func(b frame.Box, c color.RGBA) (int, int) {
		x0, y0 := pt(b.X1, b.Y1)
		x1, y1 := pt(b.X2, b.Y2)
		strokeRect(img, x0, y0, max(x1, x0+2), max(y1, y0+2), 2, c)
		return x0, y0
	}
	for _, o := range it.Truth {
		c := truthColor
		if o.Ignore {
			c = ignoreColor
		}
		boxAt(o.Box, c)
		skeleton(img, o.Keypoints, 0, c, pt)
	}
	for _, d := range it.Preds {
		x0, y0 := boxAt(d.Box, predColor)
		skeleton(img, d.Keypoints, KeypointThreshold, predColor, pt)
		l := strconv.FormatFloat(float64(d.Score), 'f', 2, 32)
		if d.Label != "" {
			l = d.Label + " " + l
		}
		ty := y0 - textHeight(1) - 3
		if ty < 0 {
			ty = y0 + 3
		}
		fillRect(img, x0, ty-1, x0+textWidth(l, 1)+2, ty+textHeight(1)+1, predColor)
		drawText(img, x0+1, ty, l, white, 1)
	}
	return img
}

// skeleton draws COCO limbs and points whose scores pass above thr.
func skeleton(img *image.RGBA, kps frame.Keypoints, thr float32, c color.RGBA, pt func(x, y float32) (int, int)) {
	ok := func(i int) bool {
		return i < len(kps) && kps[i].Score > thr && finite(float64(kps[i].X)) && finite(float64(kps[i].Y))
	}
	for _, l := range COCOSkeleton {
		if ok(l[0]) && ok(l[1]) {
			x0, y0 := pt(kps[l[0]].X, kps[l[0]].Y)
			x1, y1 := pt(kps[l[1]].X, kps[l[1]].Y)
			drawLine(img, x0, y0, x1, y1, 2, c)
		}
	}
	for i := range kps {
		if ok(i) {
			x, y := pt(kps[i].X, kps[i].Y)
			fillRect(img, x-2, y-2, x+3, y+3, c)
		}
	}
}

// scaleInto fills dst with src scaled by nearest neighbour.
func scaleInto(dst *image.RGBA, src image.Image) {
	sb, db := src.Bounds(), dst.Bounds()
	if sb.Dx() == db.Dx() && sb.Dy() == db.Dy() {
		draw.Draw(dst, db, src, sb.Min, draw.Src)
		return
	}
	rgba, isRGBA := src.(*image.RGBA)
	for y := range db.Dy() {
		syy := sb.Min.Y + y*sb.Dy()/db.Dy()
		for x := range db.Dx() {
			sxx := sb.Min.X + x*sb.Dx()/db.Dx()
			o := dst.PixOffset(x, y)
			if isRGBA {
				so := rgba.PixOffset(sxx, syy)
				copy(dst.Pix[o:o+4], rgba.Pix[so:so+4])
				continue
			}
			r, g, b, a := src.At(sxx, syy).RGBA()
			dst.Pix[o], dst.Pix[o+1], dst.Pix[o+2], dst.Pix[o+3] = uint8(r>>8), uint8(g>>8), uint8(b>>8), uint8(a>>8)
		}
	}
}

// caption is the text under an item: its ID, then its score and caption.
func caption(it Item) [2]string {
	s := "score " + strconv.FormatFloat(it.Score, 'f', 3, 64)
	if it.Caption != "" {
		s += "  " + it.Caption
	}
	return [2]string{it.ID, s}
}

// Sheet draws items in a grid up to cols wide (cols < 1: 4), each scaled
// to CellWidth with a two-line caption (ID; score and caption).
func Sheet(items []Item, cols int) (*image.RGBA, error) {
	if len(items) == 0 {
		return nil, errors.New("contact sheet: no items")
	}
	if cols < 1 {
		cols = 4
	}
	cols = min(cols, len(items))
	rows := (len(items) + cols - 1) / cols
	const pad, capH = 4, 2*textHeight1 + 10
	maxH := CellWidth * 3 / 4
	cells := make([]*image.RGBA, len(items))
	imgH := 1 // the tallest cell sets every row's height
	for i, it := range items {
		w, h := itemSize(it)
		scale := math.Min(float64(CellWidth)/float64(w), float64(maxH)/float64(h))
		cells[i] = Annotate(it, scale)
		imgH = max(imgH, cells[i].Bounds().Dy())
	}
	cellH := imgH + capH
	W := cols*(CellWidth+pad) + pad
	H := rows*(cellH+pad) + pad
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	fillRect(img, 0, 0, W, H, captionBG)
	for i, c := range cells {
		x0 := pad + (i%cols)*(CellWidth+pad)
		y0 := pad + (i/cols)*(cellH+pad)
		r := c.Bounds().Add(image.Pt(x0, y0))
		draw.Draw(img, r, c, image.Point{}, draw.Src)
		for j, line := range caption(items[i]) {
			line = fitText(line, CellWidth)
			drawText(img, x0+2, y0+imgH+4+j*(textHeight1+3), line, captionFG, 1)
		}
	}
	return img, nil
}

const textHeight1 = glyphH

// fitText cuts s to fit width pixels at scale 1.
func fitText(s string, width int) string {
	r := []rune(s)
	n := (width + 1) / cellW
	if len(r) <= n {
		return s
	}
	return string(r[:max(n-2, 0)]) + ".."
}

// itemSize is the size Annotate draws an item at scale 1: its image's, or
// without one the extent of its boxes.
func itemSize(it Item) (int, int) {
	if it.Image != nil {
		b := it.Image.Bounds()
		return max(b.Dx(), 1), max(b.Dy(), 1)
	}
	// No picture: the extent of the boxes, within reason.
	w, h := 1, 1
	for _, o := range it.Truth {
		w, h = max(w, clampInt(o.Box.X2)), max(h, clampInt(o.Box.Y2))
	}
	for _, d := range it.Preds {
		w, h = max(w, clampInt(d.Box.X2)), max(h, clampInt(d.Box.Y2))
	}
	return w, h
}

// clampInt converts a coordinate to 0..4096, NaN to 0.
func clampInt(v float32) int {
	if !(v > 0) {
		return 0
	}
	return int(min(v, 4096))
}

// ContactSheet writes items as one PNG grid (see Sheet) to path.
func ContactSheet(path string, items []Item) error {
	img, err := Sheet(items, 0)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return writePNG(path, img)
}

var worstPage = template.Must(template.New("worst").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Worst images</title>
<style>body{font-family:sans-serif;background:#222;color:#eee}figure{display:inline-block;margin:8px;vertical-align:top}
img{max-width:640px;display:block}figcaption{font-size:13px;margin-top:4px}.g{color:#4c4}.r{color:#f44}</style></head>
<body><h1>Worst images</h1><p><span class="g">green</span>: ground truth, <span class="r">red</span>: predictions with score.</p>
{{range .}}<figure><a href="{{.File}}"><img src="{{.File}}" alt="{{.ID}}"></a><figcaption>#{{.Rank}} {{.ID}} &middot; score {{printf "%.3f" .Score}}{{if .Caption}} &middot; {{.Caption}}{{end}}</figcaption></figure>
{{end}}</body></html>
`))

// WorstHTML writes each item, annotated at its own size, as dir/NNN.png
// (NNN its 1-based rank) and an index.html showing them in order with
// their captions. dir is created if needed.
func WorstHTML(dir string, items []Item) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	type row struct {
		Rank     int
		ID, File string
		Score    float64
		Caption  string
	}
	rows := make([]row, len(items))
	for i, it := range items {
		file := fmt.Sprintf("%03d.png", i+1)
		if err := writePNG(filepath.Join(dir, file), Annotate(it, 1)); err != nil {
			return err
		}
		rows[i] = row{Rank: i + 1, ID: it.ID, File: file, Score: it.Score, Caption: it.Caption}
	}
	var b strings.Builder
	if err := worstPage.Execute(&b, rows); err != nil {
		return fmt.Errorf("rendering %s: %w", filepath.Join(dir, "index.html"), err)
	}
	return writeAtomic(filepath.Join(dir, "index.html"), []byte(b.String()))
}
