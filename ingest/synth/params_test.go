package synth_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/ingest/synth"
)

func TestParseParams(t *testing.T) {
	def := synth.DefaultParams()
	with := func(f func(p *synth.Params)) synth.Params {
		p := def
		f(&p)
		return p
	}
	for _, tc := range []struct {
		name    string
		url     string
		want    synth.Params
		wantErr string
	}{
		{name: "defaults", url: "synth://", want: def},
		{name: "all", url: "synth://?objects=3&w=384&h=240&fps=29.97&seed=42&frames=100&realtime=0" +
			"&domain=night&distractors=5&texture=0.5&light=0.2&noise=3.5&jpeg=40&stamp=1",
			want: synth.Params{Objects: 3, Width: 384, Height: 240, FPS: 29.97, Seed: 42, Frames: 100,
				Domain: synth.Night, Distractors: 5, Texture: 0.5, Light: 0.2, Noise: 3.5, JPEG: 40, Stamp: true}},
		{name: "night", url: "synth://?domain=night", want: with(func(p *synth.Params) { p.Domain = synth.Night })},
		{name: "day", url: "synth://?domain=day", want: def},
		{name: "auto", url: "synth://?light=auto&noise=auto", want: def},
		{name: "no noise", url: "synth://?domain=night&noise=0",
			want: with(func(p *synth.Params) { p.Domain, p.Noise = synth.Night, 0 })},
		{name: "most distractors", url: "synth://?distractors=64", want: with(func(p *synth.Params) { p.Distractors = 64 })},
		{name: "full texture", url: "synth://?texture=1", want: with(func(p *synth.Params) { p.Texture = 1 })},
		{name: "best jpeg", url: "synth://?jpeg=100", want: with(func(p *synth.Params) { p.JPEG = 100 })},
		{name: "bright", url: "synth://?light=4", want: with(func(p *synth.Params) { p.Light = 4 })},
		{name: "bad domain", url: "synth://?domain=dusk", wantErr: `synth: domain: must be day or night, not "dusk"`},
		{name: "domain case", url: "synth://?domain=Night", wantErr: `synth: domain: must be day or night`},
		{name: "negative distractors", url: "synth://?distractors=-1", wantErr: "synth: distractors: must be between 0 and 64"},
		{name: "too many distractors", url: "synth://?distractors=65", wantErr: "synth: distractors: must be between 0 and 64"},
		{name: "distractors not a number", url: "synth://?distractors=few", wantErr: `synth: distractors: "few" is not a valid integer`},
		{name: "texture too high", url: "synth://?texture=1.5", wantErr: "synth: texture: must be between 0 and 1"},
		{name: "texture nan", url: "synth://?texture=NaN", wantErr: "synth: texture: must be between 0 and 1"},
		{name: "texture word", url: "synth://?texture=rough", wantErr: `synth: texture: "rough" is not a valid number`},
		{name: "zero light", url: "synth://?light=0", wantErr: "synth: light: must be above 0 and at most 4, or auto"},
		{name: "negative light", url: "synth://?light=-1", wantErr: "synth: light: must be above 0 and at most 4, or auto"},
		{name: "light word", url: "synth://?light=dim", wantErr: `synth: light: "dim" is not a valid number or auto`},
		{name: "too much noise", url: "synth://?noise=33", wantErr: "synth: noise: must be between 0 and 32, or auto"},
		{name: "negative noise", url: "synth://?noise=-0.5", wantErr: "synth: noise: must be between 0 and 32, or auto"},
		{name: "jpeg too high", url: "synth://?jpeg=101", wantErr: "synth: jpeg: must be 0 (off) or a quality of 1 to 100"},
		{name: "negative jpeg", url: "synth://?jpeg=-5", wantErr: "synth: jpeg: must be 0 (off)"},
		{name: "jpeg float", url: "synth://?jpeg=50.5", wantErr: `synth: jpeg: "50.5" is not a valid integer`},
		{name: "host ignored", url: "synth://scene?objects=2", want: with(func(p *synth.Params) { p.Objects = 2 })},
		{name: "path ignored", url: "synth:///?w=640&h=360", want: with(func(p *synth.Params) { p.Width, p.Height = 640, 360 })},
		{name: "no objects", url: "synth://?objects=0", want: with(func(p *synth.Params) { p.Objects = 0 })},
		{name: "realtime true", url: "synth://?realtime=true", want: def},
		{name: "stamp", url: "synth://?stamp=1", want: with(func(p *synth.Params) { p.Stamp = true })},
		{name: "stamp off", url: "synth://?stamp=false", want: def},
		{name: "stamp smallest", url: "synth://?stamp=true&w=384&h=32",
			want: with(func(p *synth.Params) { p.Stamp, p.Width, p.Height = true, 384, 32 })},
		{name: "no stamp small", url: "synth://?stamp=0&w=320&h=16",
			want: with(func(p *synth.Params) { p.Width, p.Height = 320, 16 })},
		{name: "stamp too narrow", url: "synth://?stamp=1&w=320&h=240",
			wantErr: "synth: stamp: needs a picture of at least 384x32, not 320x240"},
		{name: "stamp too low", url: "synth://?stamp=1&w=640&h=16",
			wantErr: "synth: stamp: needs a picture of at least 384x32, not 640x16"},
		{name: "bad stamp", url: "synth://?stamp=yes", wantErr: `synth: stamp: "yes" is not a valid boolean`},
		{name: "odd width", url: "synth://?w=641", wantErr: "synth: w: must be an even number between 16 and 7680"},
		{name: "tiny width", url: "synth://?w=8", wantErr: "synth: w: must be an even number between 16 and 7680"},
		{name: "huge height", url: "synth://?h=5000", wantErr: "synth: h: must be an even number between 16 and 4320"},
		{name: "odd height", url: "synth://?h=241", wantErr: "synth: h: must be an even number"},
		{name: "width not a number", url: "synth://?w=wide", wantErr: `synth: w: "wide" is not a valid integer`},
		{name: "negative objects", url: "synth://?objects=-1", wantErr: "synth: objects: must be between 0 and 256"},
		{name: "too many objects", url: "synth://?objects=1000", wantErr: "synth: objects: must be between 0 and 256"},
		{name: "zero fps", url: "synth://?fps=0", wantErr: "synth: fps: must be above 0"},
		{name: "nan fps", url: "synth://?fps=NaN", wantErr: "synth: fps: must be above 0"},
		{name: "negative seed", url: "synth://?seed=-3", wantErr: `synth: seed: "-3" is not a valid unsigned integer`},
		{name: "negative frames", url: "synth://?frames=-1", wantErr: "synth: frames: must be 0 (endless) or more"},
		{name: "bad realtime", url: "synth://?realtime=maybe", wantErr: `synth: realtime: "maybe" is not a valid boolean`},
		{name: "repeated key", url: "synth://?w=320&w=640", wantErr: "synth: w: given 2 times"},
		{name: "unknown key", url: "synth://?colour=red", wantErr: `synth: unknown parameter "colour" (have objects, w, h, fps, seed, frames, realtime, domain, distractors, texture, light, noise, jpeg, stamp)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			require.NoError(t, err)
			got, err := synth.ParseParams(u.Query())
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			back, err := synth.ParseParams(got.Values())
			require.NoError(t, err)
			require.Equal(t, got, back, "Values round trip")
		})
	}
}

func TestValidate(t *testing.T) {
	p := synth.DefaultParams()
	require.NoError(t, p.Validate())
	p.Domain = ""
	require.EqualError(t, p.Validate(), `synth: domain: must be day or night, not ""`, "the zero Domain is not a default")
	p = synth.DefaultParams()
	p.Noise = -2
	require.ErrorContains(t, p.Validate(), "synth: noise:", "only Auto stands for the domain's noise")
}

// FuzzParseParams checks that any query either fails or gives valid Params
// that survive a round trip through Values.
func FuzzParseParams(f *testing.F) {
	for _, q := range []string{"", "objects=3&w=320&h=240", "domain=night&noise=auto&light=0.5",
		"distractors=64&texture=1&jpeg=100", "stamp=1&w=384&h=32", "stamp=1&w=16", "fps=NaN", "light=-1", "w=7680&h=4320", "seed=18446744073709551615"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		p, err := synth.ParseParams(q)
		if err != nil {
			require.Contains(t, err.Error(), "synth: ")
			return
		}
		require.NoError(t, p.Validate())
		back, err := synth.ParseParams(p.Values())
		require.NoError(t, err)
		require.Equal(t, p, back)
	})
}
