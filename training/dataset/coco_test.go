package dataset

import (
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/cocoeval"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// labelledSynth is a small generated data set with people, cars, ignored
// objects, keypoints and masks.
func labelledSynth(t testing.TB) *SynthSource {
	t.Helper()
	src, err := NewSynthSource(SynthOptions{Params: smallParams(11), Sequences: 2, Frames: 3, Stride: 4, Width: 160, Height: 96})
	require.NoError(t, err)
	return src
}

func requireSameObjects(t *testing.T, want, got []Object, boxTol float64) {
	t.Helper()
	require.Len(t, got, len(want))
	for k, w := range want {
		g := got[k]
		require.Equal(t, w.Class, g.Class)
		require.Equal(t, w.Label, g.Label)
		require.InDelta(t, w.Box.X1, g.Box.X1, boxTol)
		require.InDelta(t, w.Box.Y1, g.Box.Y1, boxTol)
		require.InDelta(t, w.Box.X2, g.Box.X2, boxTol)
		require.InDelta(t, w.Box.Y2, g.Box.Y2, boxTol)
		require.Len(t, g.Keypoints, len(w.Keypoints))
		for j, kp := range w.Keypoints {
			require.Equal(t, kp.Score, g.Keypoints[j].Score, "keypoint %d", j)
			require.InDelta(t, kp.X, g.Keypoints[j].X, boxTol)
			require.InDelta(t, kp.Y, g.Keypoints[j].Y, boxTol)
		}
	}
}

// handSample has a person with a visible keypoint, one outside the
// picture and one hidden inside it, and no mask.
func handSample() Sample {
	kps := make(frame.Keypoints, 17)
	kps[0] = frame.Keypoint{X: 10, Y: 10, Score: 1}
	kps[1] = frame.Keypoint{X: -5, Y: 20}
	kps[2] = frame.Keypoint{X: 30, Y: 30}
	return Sample{ID: "hand/000001", Sequence: "hand", Image: image.NewRGBA(image.Rect(0, 0, 160, 96)),
		Objects: []Object{{Box: frame.Box{X1: 5, Y1: 5, X2: 40, Y2: 60}, Label: "person", Keypoints: kps, Score: 0.5}}}
}

func TestCOCORoundTrip(t *testing.T) {
	src := Concat(labelledSynth(t), memSource{handSample()})
	dir := t.TempDir()
	require.NoError(t, WriteCOCO(src, dir, ExportOptions{}))

	// The file is COCO that the evaluator reads, with the COCO class ids.
	ds, err := cocoeval.Load(filepath.Join(dir, "annotations.json"))
	require.NoError(t, err)
	require.Len(t, ds.Images, 7)
	last := ds.Annotations[len(ds.Annotations)-1]
	require.Equal(t, []float64{10, 10, 2, -5, 20, 0, 30, 30, 1}, last.Keypoints[:9])
	require.Equal(t, 2, last.NumKeypoints)
	require.Equal(t, "person", ds.Categories[0].Name)
	require.Equal(t, int64(1), ds.Categories[0].ID)
	require.Equal(t, "car", ds.Categories[2].Name)
	require.Len(t, ds.Categories[0].Keypoints, 17)

	got, err := LoadCOCO(filepath.Join(dir, "annotations.json"), dir, COCOOptions{Segmentation: true})
	require.NoError(t, err)
	require.Equal(t, src.Len(), got.Len())
	var ignored int
	for i := range src.Len() {
		w, err := src.At(i)
		require.NoError(t, err)
		g, err := got.At(i)
		require.NoError(t, err)
		require.Equal(t, w.ID, g.ID)
		require.Equal(t, w.Sequence, g.Sequence)
		require.Equal(t, w.Image.Pix, g.Image.Pix)
		if w.Segmentation != nil {
			require.Equal(t, w.Segmentation.Pix, g.Segmentation.Pix)
		}
		requireSameObjects(t, w.Objects, g.Objects, 1e-4)
		for k, o := range w.Objects {
			require.Equal(t, o.TrackID, g.Objects[k].TrackID)
			require.Equal(t, o.Score, g.Objects[k].Score)
			require.Equal(t, o.Ignore, g.Objects[k].Ignore)
			if o.Mask != nil {
				require.Equal(t, o.Mask.Counts, g.Objects[k].Mask.Counts)
			} else {
				require.Nil(t, g.Objects[k].Mask)
			}
			if o.Ignore {
				ignored++
			}
		}
	}
	require.Positive(t, ignored)
}

func TestCOCOFixture(t *testing.T) {
	ann := shareddata.Path(t, "coco/instances_val2014_100.json")
	ds, err := cocoeval.Load(ann)
	require.NoError(t, err)
	imgDir := t.TempDir()
	// The fixture comes without its pictures: stand in plain JPEGs of the
	// right size for the first two.
	for _, im := range ds.Images[:2] {
		f, err := os.Create(filepath.Join(imgDir, im.FileName))
		require.NoError(t, err)
		require.NoError(t, jpeg.Encode(f, image.NewGray(image.Rect(0, 0, im.Width, im.Height)), nil))
		require.NoError(t, f.Close())
	}
	src, err := LoadCOCO(ann, imgDir, COCOOptions{})
	require.NoError(t, err)
	require.Equal(t, 100, src.Len())
	s, err := src.At(0)
	require.NoError(t, err)
	require.Equal(t, ds.Images[0].Width, s.Image.Bounds().Dx())
	require.Equal(t, "COCO_val2014_000000001146.jpg", s.Sequence)
	_, err = src.At(2)
	require.ErrorContains(t, err, ds.Images[2].FileName)

	byImage := map[int64]int{}
	for i, im := range ds.Images {
		byImage[im.ID] = i
	}
	var n, crowd int
	seen := map[int]int{}
	for _, an := range ds.Annotations {
		k := byImage[an.ImageID]
		o := src.images[k].objects[seen[k]]
		seen[k]++
		n++
		if an.IsCrowd != 0 {
			crowd++
			require.True(t, o.Ignore)
		}
		// Class by position in the categories list: person 0, car 2.
		for ci, c := range ds.Categories {
			if c.ID == an.CategoryID {
				require.Equal(t, ci, o.Class)
				require.Equal(t, c.Name, o.Label)
			}
		}
		require.InDelta(t, an.BBox[0]+an.BBox[2], o.Box.X2, 1e-3)
		// COCO's bbox is the extent of the polygons or RLE, so the
		// rasterised mask lies inside it (to a pixel) and fills most of it.
		// (COCO's "area" is the polygon's area, not the pixel count, and
		// for crowds it is looser still.)
		require.NotNil(t, o.Mask)
		bb := o.Mask.BBox()
		require.GreaterOrEqual(t, bb[0], an.BBox[0]-1)
		require.GreaterOrEqual(t, bb[1], an.BBox[1]-1)
		require.LessOrEqual(t, bb[0]+bb[2], an.BBox[0]+an.BBox[2]+1)
		require.LessOrEqual(t, bb[1]+bb[3], an.BBox[1]+an.BBox[3]+1)
		if an.BBox[2] > 20 && an.BBox[3] > 20 {
			require.Greater(t, frame.BoxIoU(bb, [4]float64(an.BBox), false), 0.8, "annotation %d bbox %v mask %v", an.ID, an.BBox, bb)
		}
		if an.IsCrowd == 0 {
			require.InDelta(t, an.Area, float64(o.Mask.Area()), 0.1*an.Area+20, "annotation %d", an.ID)
		}
	}
	require.Equal(t, 839, n)
	require.Equal(t, 9, crowd)

	byID, err := LoadCOCO(ann, imgDir, COCOOptions{ClassFromID: true})
	require.NoError(t, err)
	for k, im := range src.images {
		for j, o := range im.objects {
			id := ds.Categories[o.Class].ID
			require.Equal(t, int(id), byID.images[k].objects[j].Class)
		}
	}
}

func TestCOCOErrors(t *testing.T) {
	for _, tc := range []struct {
		name, json, msg string
	}{
		{"unknown category", `{"images":[{"id":1,"width":4,"height":4,"file_name":"a.png"}],"annotations":[{"id":1,"image_id":1,"category_id":9,"bbox":[0,0,1,1],"area":1,"iscrowd":0}],"categories":[{"id":1,"name":"person"}]}`, "annotations[0].category_id"},
		{"unknown image", `{"images":[{"id":1,"width":4,"height":4,"file_name":"a.png"}],"annotations":[{"id":1,"image_id":2,"category_id":1,"bbox":[0,0,1,1],"area":1,"iscrowd":0}],"categories":[{"id":1,"name":"person"}]}`, "annotations[0].image_id"},
		{"short bbox", `{"images":[{"id":1,"width":4,"height":4,"file_name":"a.png"}],"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1],"area":1,"iscrowd":0}],"categories":[{"id":1,"name":"person"}]}`, "annotations[0]: bbox"},
		{"keypoints", `{"images":[{"id":1,"width":4,"height":4,"file_name":"a.png"}],"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1,1],"keypoints":[1,2],"area":1,"iscrowd":0}],"categories":[{"id":1,"name":"person"}]}`, "annotations[0].keypoints"},
		{"rle size", `{"images":[{"id":1,"width":4,"height":4,"file_name":"a.png"}],"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1,1],"segmentation":{"size":[2,2],"counts":"04"},"area":1,"iscrowd":0}],"categories":[{"id":1,"name":"person"}]}`, "annotations[0].segmentation"},
		{"duplicate image", `{"images":[{"id":1,"width":4,"height":4,"file_name":"a.png"},{"id":1,"width":4,"height":4,"file_name":"b.png"}],"annotations":[],"categories":[]}`, "images[1].id"},
		{"no size", `{"images":[{"id":1,"file_name":"a.png"}],"annotations":[],"categories":[]}`, "images[0]"},
		{"not json", `{"images":[`, "a.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "a.json")
			require.NoError(t, os.WriteFile(p, []byte(tc.json), 0o644))
			_, err := LoadCOCO(p, "", COCOOptions{})
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

// TestExportOptions: file names, images left in place, the "vigil" image
// key, data.yaml, and Info reading the labels back without pictures.
func TestExportOptions(t *testing.T) {
	src := labelledSynth(t)
	var put []string
	opts := ExportOptions{
		Classes:    []string{"person", "bicycle", "car"},
		Name:       func(i int, s Sample) string { return fmt.Sprintf("img%d", i) },
		WriteImage: func(i int, s Sample, path string) error { put = append(put, path); return nil },
		ImageExtra: func(i int, s Sample) any { return map[string]int{"n": i} },
		Keypoints:  17,
	}
	dir := t.TempDir()
	require.NoError(t, WriteCOCO(src, dir, opts))
	b, err := os.ReadFile(filepath.Join(dir, "annotations.json"))
	require.NoError(t, err)
	var raw struct {
		Images []struct {
			FileName string         `json:"file_name"`
			Vigil    map[string]int `json:"vigil"`
		} `json:"images"`
	}
	require.NoError(t, json.Unmarshal(b, &raw))
	require.Equal(t, "images/img2.png", raw.Images[2].FileName)
	require.Equal(t, 2, raw.Images[2].Vigil["n"])
	require.Len(t, put, src.Len())
	require.Equal(t, filepath.Join(dir, "images", "img0.png"), put[0])
	_, err = os.Stat(put[0])
	require.ErrorIs(t, err, os.ErrNotExist, "WriteImage replaces writing the PNG")

	got, err := LoadCOCO(filepath.Join(dir, "annotations.json"), dir, COCOOptions{})
	require.NoError(t, err)
	n := 0
	for i := range got.Len() {
		info, err := got.Info(i)
		require.NoError(t, err)
		w, err := src.At(i)
		require.NoError(t, err)
		require.Equal(t, w.ID, info.ID)
		require.Equal(t, fmt.Sprintf("images/img%d.png", i), info.File)
		require.Equal(t, 160, info.Width)
		requireSameObjects(t, w.Objects, info.Objects, 1e-4)
		require.Len(t, info.From, len(info.Objects))
		for _, f := range info.From {
			require.Equal(t, fmt.Sprintf("annotations[%d]", n), f)
			n++
		}
	}
	_, err = got.Info(got.Len())
	require.ErrorIs(t, err, ErrRange)

	opts.Name = func(i int, s Sample) string { return "../x" }
	require.ErrorContains(t, WriteCOCO(src, t.TempDir(), opts), `name "../x"`)

	ydir := t.TempDir()
	opts.Name, opts.WriteImage = nil, nil
	require.NoError(t, WriteYOLO(src, ydir, opts))
	var data struct {
		Names    []string `yaml:"names"`
		KptShape []int    `yaml:"kpt_shape"`
		Train    string   `yaml:"train"`
	}
	b, err = os.ReadFile(filepath.Join(ydir, "data.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &data))
	require.Equal(t, []string{"person", "bicycle", "car"}, data.Names)
	require.Equal(t, []int{17, 3}, data.KptShape)
	require.Equal(t, "images", data.Train)
	ys, err := LoadYOLO(filepath.Join(ydir, "images"), filepath.Join(ydir, "labels"), filepath.Join(ydir, "classes.txt"), YOLOOptions{})
	require.NoError(t, err)
	info, err := ys.Info(0)
	require.NoError(t, err)
	require.NotEmpty(t, info.Objects)
	require.Equal(t, filepath.Join(ydir, "labels", info.ID+".txt")+":1", info.From[0])
	require.Equal(t, 96, info.Height)
}

// FuzzLoadCOCO: annotation files come back from labelling tools; whatever
// they hold, LoadCOCO fails or gives objects whose boxes are ordered and
// whose masks fit their image.
func FuzzLoadCOCO(f *testing.F) {
	f.Add([]byte(`{"images":[{"id":1,"width":4,"height":3,"file_name":"a.png","sample_id":"a"}],` +
		`"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,2,2],"keypoints":[1,1,2,5,5,1],"track_id":3,"score":0.5,` +
		`"segmentation":{"size":[3,4],"counts":"0;4"}},{"id":2,"image_id":1,"category_id":2,"segmentation":[[0,0,3,0,3,2]]}],` +
		`"categories":[{"id":1,"name":"person"},{"id":2,"name":"car"}]}`))
	f.Add([]byte(`{"images":[{"id":1,"width":1,"height":1}],"annotations":[],"categories":[]}`))
	path := filepath.Join(f.TempDir(), "a.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		require.NoError(t, os.WriteFile(path, b, 0o644))
		src, err := LoadCOCO(path, "", COCOOptions{})
		if err != nil {
			return
		}
		for i := range src.Len() {
			info, err := src.Info(i)
			require.NoError(t, err)
			require.Len(t, info.From, len(info.Objects))
			for _, o := range info.Objects {
				require.False(t, o.Box.X2 < o.Box.X1 || o.Box.Y2 < o.Box.Y1, "box %v", o.Box)
				if o.Mask != nil {
					require.Equal(t, info.Width, o.Mask.Width)
					require.Equal(t, info.Height, o.Mask.Height)
				}
			}
		}
	})
}
