package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/training/dataset"
	"github.com/vigil-video/vigil/training/store"
)

var storeClasses = []string{"person", "bicycle", "car"}

// makeHardFrames fills a store with n generated street frames whose
// pre-labels are the scene's truth with model-like scores.
func makeHardFrames(t *testing.T, n int) (string, []string) {
	t.Helper()
	p := synth.DefaultParams()
	p.Width, p.Height, p.Seed, p.Objects, p.Distractors = 320, 192, 21, 8, 2
	p.Realtime = false
	syn, err := dataset.NewSynthSource(dataset.SynthOptions{Params: p, Frames: n, Stride: 5, Width: 160, Height: 96, Workers: 1})
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "hard")
	st, err := store.Create(dir, store.Options{Classes: storeClasses})
	require.NoError(t, err)
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	var ids []string
	for i := range syn.Len() {
		s, err := syn.At(i)
		require.NoError(t, err)
		e := store.Entry{
			StreamID: "night-1", CaptureTime: t0.Add(time.Duration(i) * time.Second), FrameSeq: uint64(i),
			Miner: []string{"band", "flicker"}[i%2], Reason: "score near the threshold",
			Model: store.Model{Name: "builtin:detector", Version: "1"}, Image: s.Image, Segmentation: s.Segmentation,
		}
		for k, o := range s.Objects {
			e.Objects = append(e.Objects, store.Object{Box: o.Box, Class: o.Class, Label: o.Label,
				Score: 0.3 + 0.1*float32(k%5), TrackID: o.TrackID, Keypoints: o.Keypoints, Mask: o.Mask, Ignore: o.Ignore})
		}
		id, err := st.Put(e)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	return dir, ids
}

type dsResult struct {
	code           int
	stdout, stderr string
}

func runDS(args ...string) dsResult {
	var so, se bytes.Buffer
	code := run(append([]string{"dataset"}, args...), &so, &se)
	return dsResult{code, so.String(), se.String()}
}

// snapshotDir reads every file under dir, by relative path.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	}))
	return out
}

func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "copy")
	for rel, data := range snapshotDir(t, from) {
		p := filepath.Join(to, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(data), 0o644))
	}
	return to
}

// plant writes a store file and lists it in the manifest with its hash, so
// that only the planted problem remains.
func plant(t *testing.T, dir, rel string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.FromSlash(rel)), data, 0o644))
	var m struct {
		Format  string            `json:"format"`
		Version string            `json:"version"`
		Classes []string          `json:"classes"`
		Files   []store.FileEntry `json:"files"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m))
	fe := store.FileEntry{Path: rel, SHA256: sha256Hex(data), Size: int64(len(data))}
	if i := slices.IndexFunc(m.Files, func(f store.FileEntry) bool { return f.Path == rel }); i >= 0 {
		m.Files[i] = fe
	} else {
		m.Files = append(m.Files, fe)
	}
	m.Version = store.Version(m.Files)
	b, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644))
}

// editLabelJSON rewrites an entry's label file through edit.
func editLabelJSON(t *testing.T, dir, id string, edit func(l map[string]any)) {
	t.Helper()
	rel := "labels/" + id + ".json"
	b, err := os.ReadFile(filepath.Join(dir, rel))
	require.NoError(t, err)
	var l map[string]any
	require.NoError(t, json.Unmarshal(b, &l))
	edit(l)
	b, err = json.Marshal(l)
	require.NoError(t, err)
	plant(t, dir, rel, b)
}

// objectWith returns the first object of a label that has key.
func objectWith(t *testing.T, l map[string]any, key string) map[string]any {
	t.Helper()
	for _, o := range l["objects"].([]any) {
		if om := o.(map[string]any); om[key] != nil {
			return om
		}
	}
	t.Fatalf("no object with %s", key)
	return nil
}

func encodePNG(t *testing.T, img image.Image, level png.CompressionLevel) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, (&png.Encoder{CompressionLevel: level}).Encode(&buf, img))
	return buf.Bytes()
}

func TestDatasetValidate(t *testing.T) {
	clean, ids := makeHardFrames(t, 3)
	r := runDS("validate", clean)
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `: ok: 3 entries \(0 corrected\), \d+ bytes, version [0-9a-f]{12}, miners: band 2, flicker 1\n$`, r.stdout)

	r = runDS("validate", clean, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var vj validateJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &vj))
	require.True(t, vj.OK)
	require.Equal(t, 3, vj.Entries)
	require.Empty(t, vj.Problems)

	id := ids[1]
	img, lbl, msk := "images/"+id+".png", "labels/"+id+".json", "masks/"+id+".png"
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, dir string)
		file   string
		kind   store.Kind
		msg    string
	}{
		{"missing file", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, img)))
		}, img, store.KindMissing, "listed in the manifest"},
		{"extra file", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "labels", "stray.json"), []byte("{}"), 0o644))
		}, "labels/stray.json", store.KindExtra, "not in the manifest"},
		{"hash mismatch", func(t *testing.T, dir string) {
			b, err := os.ReadFile(filepath.Join(dir, img))
			require.NoError(t, err)
			b[len(b)/2] ^= 0x40
			require.NoError(t, os.WriteFile(filepath.Join(dir, img), b, 0o644))
		}, img, store.KindHash, "sha256"},
		{"size mismatch", func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, lbl), os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteString("\n")
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}, lbl, store.KindHash, "size"},
		{"version", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "manifest.json")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			var m map[string]any
			require.NoError(t, json.Unmarshal(b, &m))
			m["version"] = "0123456789ab"
			b, err = json.Marshal(m)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, b, 0o644))
		}, "manifest.json", store.KindVersion, `version "0123456789ab"`},
		{"label not json", func(t *testing.T, dir string) {
			plant(t, dir, lbl, []byte(`{"format": "vigil-hardframe-label/1", "objects": [`))
		}, lbl, store.KindLabel, "decoding label"},
		{"label format", func(t *testing.T, dir string) {
			editLabelJSON(t, dir, id, func(l map[string]any) { l["format"] = "coco" })
		}, lbl, store.KindLabel, `format: got "coco"`},
		{"box outside", func(t *testing.T, dir string) {
			editLabelJSON(t, dir, id, func(l map[string]any) { l["objects"].([]any)[0].(map[string]any)["box"] = []float64{100, 10, 170, 20} })
		}, lbl, store.KindBox, "objects[0].box: [100 10 170 20] is outside the 160x96 image"},
		{"box inverted", func(t *testing.T, dir string) {
			editLabelJSON(t, dir, id, func(l map[string]any) { l["objects"].([]any)[0].(map[string]any)["box"] = []float64{50, 10, 40, 20} })
		}, lbl, store.KindBox, "inverted"},
		{"keypoint outside", func(t *testing.T, dir string) {
			editLabelJSON(t, dir, id, func(l map[string]any) {
				objectWith(t, l, "keypoints")["keypoints"].([]any)[0] = []float64{200, 10, 1}
			})
		}, lbl, store.KindKeypoint, "keypoints[0]: (200, 10) is outside"},
		{"keypoint score", func(t *testing.T, dir string) {
			editLabelJSON(t, dir, id, func(l map[string]any) {
				objectWith(t, l, "keypoints")["keypoints"].([]any)[0] = []float64{20, 10, 1.5}
			})
		}, lbl, store.KindKeypoint, "score 1.5 is outside [0,1]"},
		{"instance mask size", func(t *testing.T, dir string) {
			editLabelJSON(t, dir, id, func(l map[string]any) {
				objectWith(t, l, "mask")["mask"] = map[string]any{"size": []int{2, 2}, "counts": "04"}
			})
		}, lbl, store.KindMask, "mask: 2x2, image is 160x96"},
		{"class map size", func(t *testing.T, dir string) {
			plant(t, dir, msk, encodePNG(t, image.NewGray(image.Rect(0, 0, 10, 10)), png.BestSpeed))
		}, msk, store.KindMask, "segmentation: 10x10, image is 160x96"},
		{"class map value", func(t *testing.T, dir string) {
			g := image.NewGray(image.Rect(0, 0, 160, 96))
			g.SetGray(7, 7, color.Gray{Y: 4}) // class 3: the store has 3 classes
			plant(t, dir, msk, encodePNG(t, g, png.BestSpeed))
		}, msk, store.KindMask, "value 4 is not 0 or a class id + 1"},
		{"image not png", func(t *testing.T, dir string) {
			e, err := store.Open(clean, store.Options{ReadOnly: true})
			require.NoError(t, err)
			got, err := e.Get(id)
			require.NoError(t, err)
			var buf bytes.Buffer
			require.NoError(t, jpeg.Encode(&buf, got.Image, nil))
			plant(t, dir, img, buf.Bytes())
		}, img, store.KindImage, "format jpeg, want png"},
		{"duplicate pixels", func(t *testing.T, dir string) {
			// Entry 2's picture re-encoded into entry 1: other bytes, same
			// pixels (the labels still fit: same size).
			e, err := store.Open(clean, store.Options{ReadOnly: true})
			require.NoError(t, err)
			other, err := e.Get(ids[2])
			require.NoError(t, err)
			plant(t, dir, img, encodePNG(t, other.Image, png.BestCompression))
		}, "", store.KindDuplicate, "same pixels as"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, clean)
			tc.break_(t, dir)
			r := runDS("validate", dir)
			require.Equal(t, 1, r.code, r.stdout)
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			require.Len(t, lines, 1, "one broken thing, one problem: %s", r.stdout)
			require.Contains(t, r.stderr, "1 problem in "+dir)
			require.Contains(t, lines[0], ": "+string(tc.kind)+": ")
			require.Contains(t, lines[0], tc.msg)
			file := tc.file
			if file == "" {
				// Whichever of the two copies comes second is the duplicate.
				file = "images/" + slices.Max([]string{id, ids[2]}) + ".png"
			}
			require.True(t, strings.HasPrefix(lines[0], filepath.Join(dir, filepath.FromSlash(file))+": "), "names the file: %s", lines[0])

			r = runDS("validate", dir, "--json")
			require.Equal(t, 1, r.code)
			var vj validateJSON
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &vj))
			require.False(t, vj.OK)
			require.Len(t, vj.Problems, 1)
			require.Equal(t, tc.kind, vj.Problems[0].Kind)
		})
	}

	r = runDS("validate")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "DIR is required")
	r = runDS("validate", filepath.Join(clean, "nope"))
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "no such file")
}

// readCOCO reads an exported annotations file as plain JSON for editing.
func readCOCO(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

// annotationsOf returns the indices in "annotations" of image imgID's.
func annotationsOf(m map[string]any, imgID float64) []int {
	var out []int
	for i, a := range m["annotations"].([]any) {
		if a.(map[string]any)["image_id"].(float64) == imgID {
			out = append(out, i)
		}
	}
	return out
}

func TestDatasetExportRoundTrip(t *testing.T) {
	dir, ids := makeHardFrames(t, 3)
	st, err := store.Open(dir, store.Options{ReadOnly: true})
	require.NoError(t, err)
	want := dataset.NewStoreSource(st)

	// COCO, images linked to the store's.
	out := filepath.Join(t.TempDir(), "coco")
	r := runDS("export", dir, "--format", "coco", "--out", out)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "exported 3 images")
	require.Contains(t, r.stdout, "images linked")
	fi, err := os.Lstat(filepath.Join(out, "images", ids[0]+".png"))
	require.NoError(t, err)
	require.NotZero(t, fi.Mode()&os.ModeSymlink)
	got, err := dataset.LoadCOCO(filepath.Join(out, "annotations.json"), out, dataset.COCOOptions{})
	require.NoError(t, err)
	requireSameSamples(t, want, got, 1e-4, true)
	m := readCOCO(t, filepath.Join(out, "annotations.json"))
	var cats []string
	for _, c := range m["categories"].([]any) {
		cats = append(cats, c.(map[string]any)["name"].(string))
	}
	require.Equal(t, storeClasses, cats)
	vg := m["images"].([]any)[1].(map[string]any)["vigil"].(map[string]any)
	require.Equal(t, ids[1], vg["id"])
	require.Equal(t, "flicker", vg["miner"])
	require.Equal(t, "score near the threshold", vg["reason"])
	require.Equal(t, st.Version(), vg["dataset_version"])

	r = runDS("export", dir, "--format", "coco", "--out", out)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "--out: "+out+" is not empty")

	// YOLO, images copied byte for byte.
	yout := filepath.Join(t.TempDir(), "yolo")
	r = runDS("export", dir, "--format", "yolo", "--out", yout)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "images copied")
	b1, err := os.ReadFile(filepath.Join(yout, "images", ids[2]+".png"))
	require.NoError(t, err)
	b2, err := os.ReadFile(filepath.Join(dir, "images", ids[2]+".png"))
	require.NoError(t, err)
	require.Equal(t, b2, b1)
	_, err = os.Stat(filepath.Join(yout, "data.yaml"))
	require.NoError(t, err)
	ys, err := dataset.LoadYOLO(filepath.Join(yout, "images"), filepath.Join(yout, "labels"), filepath.Join(yout, "classes.txt"), dataset.YOLOOptions{})
	require.NoError(t, err)
	requireSameSamples(t, want, ys, 1e-3*160, false)

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"export", dir, "--out", t.TempDir()}, 2, "--format is required"},
		{[]string{"export", dir, "--format", "voc", "--out", t.TempDir()}, 1, `--format: "voc" is not coco or yolo`},
		{[]string{"export", dir, "--format", "coco", "--out", t.TempDir(), "--labels", "gt"}, 1, `--labels: "gt"`},
		{[]string{"export", filepath.Join(dir, "nope"), "--format", "coco", "--out", t.TempDir()}, 1, "manifest"},
		{[]string{"frobnicate"}, 2, `unknown subcommand "frobnicate"`},
	} {
		r := runDS(tc.args...)
		require.Equal(t, tc.code, r.code, r.stderr)
		require.Contains(t, r.stderr, tc.msg)
	}
}

// requireSameSamples compares a store's samples with those an export
// loads back: pictures, boxes, classes, keypoints, masks (COCO). YOLO leaves
// out ignored objects and reads keypoints only as seen or not.
func requireSameSamples(t *testing.T, want *dataset.StoreSource, got dataset.Source, tol float64, coco bool) {
	t.Helper()
	require.Equal(t, want.Len(), got.Len())
	for i := range want.Len() {
		w, err := want.At(i)
		require.NoError(t, err)
		g, err := got.At(i)
		require.NoError(t, err)
		require.Equal(t, w.ID, g.ID)
		require.Equal(t, w.Image.Pix, g.Image.Pix)
		var wo []dataset.Object
		for _, o := range w.Objects {
			if coco || !o.Ignore {
				wo = append(wo, o)
			}
		}
		require.Len(t, g.Objects, len(wo))
		for k, o := range wo {
			gk := g.Objects[k]
			require.Equal(t, o.Class, gk.Class)
			require.Equal(t, o.Label, gk.Label)
			require.InDelta(t, o.Box.X1, gk.Box.X1, tol)
			require.InDelta(t, o.Box.Y2, gk.Box.Y2, tol)
			for j, kp := range o.Keypoints {
				if kp.Score > 0 {
					require.InDelta(t, kp.X, gk.Keypoints[j].X, tol)
					require.InDelta(t, kp.Y, gk.Keypoints[j].Y, tol)
					require.Equal(t, float32(1), gk.Keypoints[j].Score)
				}
			}
			if coco {
				require.Equal(t, o.Score, gk.Score)
				require.Equal(t, o.TrackID, gk.TrackID)
				require.Equal(t, o.Ignore, gk.Ignore)
				require.Equal(t, o.Mask != nil, gk.Mask != nil)
				if o.Mask != nil {
					require.Equal(t, o.Mask.Counts, gk.Mask.Counts)
				}
			}
		}
	}
}

func TestDatasetImportCOCO(t *testing.T) {
	dir, ids := makeHardFrames(t, 4)
	out := filepath.Join(t.TempDir(), "coco")
	r := runDS("export", dir, "--format", "coco", "--out", out, "--copy-images")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "images copied")
	ann := filepath.Join(out, "annotations.json")
	before := snapshotDir(t, dir)
	st0, err := store.Open(dir, store.Options{ReadOnly: true})
	require.NoError(t, err)
	v0 := st0.Version()
	pre := map[string]store.Entry{}
	for _, e := range st0.List() {
		pre[e.ID] = e
	}

	// The labeller moves a box of image 1, deletes an object of image 2,
	// adds a bicycle to image 3, leaves image 4 out and adds a picture the
	// store does not hold.
	m := readCOCO(t, ann)
	anns := m["annotations"].([]any)
	moved := anns[annotationsOf(m, 1)[0]].(map[string]any)
	bb := moved["bbox"].([]any)
	bb[0] = bb[0].(float64) + 2
	deleted := annotationsOf(m, 2)[0]
	var keep []any
	for i, a := range anns {
		if i != deleted && a.(map[string]any)["image_id"].(float64) != 4 {
			keep = append(keep, a)
		}
	}
	keep = append(keep, map[string]any{"id": 9001, "image_id": 3, "category_id": 2, "bbox": []float64{10, 20, 12, 30}, "area": 360, "iscrowd": 0})
	keep = append(keep, map[string]any{"id": 9002, "image_id": 77, "category_id": 1, "bbox": []float64{1, 1, 5, 5}, "area": 25, "iscrowd": 0})
	m["annotations"] = keep
	imgs := m["images"].([]any)
	m["images"] = append(slices.Clone(imgs[:3]), map[string]any{"id": 77, "file_name": "images/elsewhere.png", "width": 160, "height": 96})
	edited := filepath.Join(out, "corrected.json")
	writeJSON(t, edited, m)

	// A dry run writes nothing.
	r = runDS("import", dir, "--from", edited, "--dry-run")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "would update 3 entries")
	require.Equal(t, before, snapshotDir(t, dir))

	r = runDS("import", dir, "--from", edited, "--format", "coco")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "images[3] (images/elsewhere.png): not in "+dir+", skipped")
	n0, n1, n2 := len(pre[ids[0]].Objects), len(pre[ids[1]].Objects), len(pre[ids[2]].Objects)
	require.Contains(t, r.stdout, "updated 3 entries (3 changed, 1 left as they were)")
	require.Contains(t, r.stdout, "1 images skipped")

	st, err := store.Open(dir, store.Options{})
	require.NoError(t, err)
	require.NotEqual(t, v0, st.Version())
	require.Contains(t, r.stdout, "version "+v0+" -> "+st.Version())
	var objsBefore, objsAfter int
	for _, id := range ids[:3] {
		e, err := st.Get(id)
		require.NoError(t, err)
		require.True(t, e.Corrected, id)
		require.Equal(t, pre[id].Objects, e.PreObjects, "the pre-labels are kept")
		for _, o := range e.Objects {
			require.Equal(t, float32(1), o.Score, "a person's label is certain")
		}
		objsBefore += len(pre[id].Objects)
		objsAfter += len(e.Objects)
	}
	require.Contains(t, r.stdout, "objects "+itoa(objsBefore)+" -> "+itoa(objsAfter))
	e0, err := st.Get(ids[0])
	require.NoError(t, err)
	require.Len(t, e0.Objects, n0)
	require.InDelta(t, pre[ids[0]].Objects[0].Box.X1+2, e0.Objects[0].Box.X1, 1e-4)
	require.InDelta(t, pre[ids[0]].Objects[0].Box.X2+2, e0.Objects[0].Box.X2, 1e-4)
	require.Equal(t, pre[ids[0]].Objects[0].Mask, e0.Objects[0].Mask)
	require.Equal(t, pre[ids[0]].Objects[0].TrackID, e0.Objects[0].TrackID)
	for k, o := range e0.Objects[1:] {
		require.Equal(t, pre[ids[0]].Objects[k+1].Box, o.Box)
		require.Equal(t, pre[ids[0]].Objects[k+1].Ignore, o.Ignore)
	}
	e1, err := st.Get(ids[1])
	require.NoError(t, err)
	require.Len(t, e1.Objects, n1-1)
	e2, err := st.Get(ids[2])
	require.NoError(t, err)
	require.Len(t, e2.Objects, n2+1)
	added := e2.Objects[n2]
	require.Equal(t, 1, added.Class)
	require.Equal(t, "bicycle", added.Label)
	require.Equal(t, float32(10), added.Box.X1)
	require.Equal(t, float32(50), added.Box.Y2)
	e3, err := st.Get(ids[3])
	require.NoError(t, err)
	require.False(t, e3.Corrected)
	after := snapshotDir(t, dir)
	require.Equal(t, before["labels/"+ids[3]+".json"], after["labels/"+ids[3]+".json"], "entries not in the file stay as they were")
	var l map[string]any
	require.NoError(t, json.Unmarshal([]byte(after["labels/"+ids[0]+".json"]), &l))
	require.Equal(t, true, l["corrected"])

	r = runDS("validate", dir)
	require.Equal(t, 0, r.code, r.stdout)
	require.Contains(t, r.stdout, "4 entries (3 corrected)")

	// A trainer takes the corrected labels or the pre-labels apart.
	require.Equal(t, 3, dataset.NewStoreSourceWith(st, dataset.StoreOptions{Labels: dataset.StoreLabelsCorrected}).Len())
	ps := dataset.NewStoreSourceWith(st, dataset.StoreOptions{Labels: dataset.StoreLabelsPre})
	s1, err := ps.At(1)
	require.NoError(t, err)
	require.Len(t, s1.Objects, n1)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestDatasetImportRejects(t *testing.T) {
	dir, _ := makeHardFrames(t, 2)
	out := filepath.Join(t.TempDir(), "coco")
	r := runDS("export", dir, "--format", "coco", "--out", out)
	require.Equal(t, 0, r.code, r.stderr)
	ann := filepath.Join(out, "annotations.json")
	before := snapshotDir(t, dir)
	first := func(m map[string]any) map[string]any { return m["annotations"].([]any)[0].(map[string]any) }
	for _, tc := range []struct {
		name string
		edit func(m map[string]any)
		raw  string
		msg  string
	}{
		{name: "not json", raw: `{"images": [`, msg: "reading --from"},
		{name: "bbox numbers", edit: func(m map[string]any) { first(m)["bbox"] = []float64{1, 2, 3} }, msg: "annotations[0]: bbox has 3 numbers, want 4"},
		{name: "bbox outside", edit: func(m map[string]any) { first(m)["bbox"] = []float64{150, 10, 30, 10} }, msg: "annotations[0].bbox: corners [150 10 180 20] are outside the 160x96 image"},
		{name: "unknown category", edit: func(m map[string]any) {
			m["categories"] = append(m["categories"].([]any), map[string]any{"id": 9, "name": "dragon"})
			first(m)["category_id"] = 9
		}, msg: `annotations[0].category_id: category 9 ("dragon") is not a class of the store`},
		{name: "keypoints", edit: func(m map[string]any) { first(m)["keypoints"] = []float64{1, 2} }, msg: "annotations[0].keypoints: 2 numbers"},
		{name: "keypoint outside", edit: func(m map[string]any) { first(m)["keypoints"] = []float64{300, 2, 2} }, msg: "annotations[0].keypoints[0]: (300, 2) is outside"},
		{name: "image size", edit: func(m map[string]any) {
			m["images"].([]any)[0].(map[string]any)["width"] = 320
			for _, a := range m["annotations"].([]any) {
				delete(a.(map[string]any), "segmentation")
			}
		}, msg: "width, height: 320x96, entry"},
		{name: "rle", edit: func(m map[string]any) {
			first(m)["segmentation"] = map[string]any{"size": []int{96, 160}, "counts": "zzzz"}
		}, msg: "annotations[0]: segmentation: RLE counts"},
		{name: "no match", edit: func(m map[string]any) {
			for _, im := range m["images"].([]any) {
				im.(map[string]any)["sample_id"] = "x"
				im.(map[string]any)["file_name"] = "x.png"
			}
		}, msg: "no image matches an entry"},
		{name: "one entry twice", edit: func(m map[string]any) {
			ims := m["images"].([]any)
			ims[1].(map[string]any)["sample_id"] = ims[0].(map[string]any)["sample_id"]
		}, msg: "is also"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(out, "bad.json")
			if tc.edit != nil {
				m := readCOCO(t, ann)
				tc.edit(m)
				writeJSON(t, bad, m)
			} else {
				require.NoError(t, os.WriteFile(bad, []byte(tc.raw), 0o644))
			}
			r := runDS("import", dir, "--from", bad)
			require.Equal(t, 1, r.code, r.stdout)
			require.Contains(t, r.stderr, tc.msg)
			require.Equal(t, before, snapshotDir(t, dir), "the store is untouched")
		})
	}
	r = runDS("import", dir)
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--from is required")
	r = runDS("import", dir, "--from", ann, "--format", "voc")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `--format: "voc"`)
}

func TestDatasetImportYOLO(t *testing.T) {
	dir, ids := makeHardFrames(t, 2)
	out := filepath.Join(t.TempDir(), "yolo")
	r := runDS("export", dir, "--format", "yolo", "--out", out)
	require.Equal(t, 0, r.code, r.stderr)
	st0, err := store.Open(dir, store.Options{ReadOnly: true})
	require.NoError(t, err)
	pre, err := st0.Get(ids[0])
	require.NoError(t, err)

	// The labeller keeps only the first line of image 1 and turns it into
	// a car.
	lp := filepath.Join(out, "labels", ids[0]+".txt")
	b, err := os.ReadFile(lp)
	require.NoError(t, err)
	line, _, _ := strings.Cut(string(b), "\n")
	_, rest, _ := strings.Cut(line, " ")
	require.NoError(t, os.WriteFile(lp, []byte("2 "+rest+"\n"), 0o644))
	before := snapshotDir(t, dir)
	r = runDS("import", dir, "--from", out)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "updated 2 entries")
	st, err := store.Open(dir, store.Options{})
	require.NoError(t, err)
	e, err := st.Get(ids[0])
	require.NoError(t, err)
	require.True(t, e.Corrected)
	require.Len(t, e.Objects, 1)
	require.Equal(t, 2, e.Objects[0].Class)
	require.Equal(t, "car", e.Objects[0].Label)
	var first store.Object
	for _, o := range pre.Objects {
		if !o.Ignore {
			first = o
			break
		}
	}
	require.InDelta(t, first.Box.X1, e.Objects[0].Box.X1, 0.01)
	require.InDelta(t, first.Box.Y2, e.Objects[0].Box.Y2, 0.01)
	r = runDS("validate", dir)
	require.Equal(t, 0, r.code, r.stdout)

	// A malformed line is rejected, naming the file and the field.
	require.NoError(t, os.WriteFile(lp, []byte("0 0.5 0.5 1.5 0.1\n"), 0o644))
	before = snapshotDir(t, dir)
	r = runDS("import", dir, "--from", out)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, ids[0]+".txt:1: field 4 (w): 1.5 is outside 0-1")
	require.Equal(t, before, snapshotDir(t, dir))

	// A class the store does not know.
	require.NoError(t, os.WriteFile(filepath.Join(out, "classes.txt"), []byte("person\nbicycle\ncar\ndragon\n"), 0o644))
	require.NoError(t, os.WriteFile(lp, []byte("3 0.5 0.5 0.1 0.1\n"), 0o644))
	r = runDS("import", dir, "--from", out, "--format", "yolo")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, ids[0]+`.txt:1: class: 3 ("dragon") is not a class of the store (person, bicycle, car)`)
	require.True(t, maps.Equal(before, snapshotDir(t, dir)))
}
