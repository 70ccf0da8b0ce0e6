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
		{name: "all", url: "synth://?objects=3&w=320&h=240&fps=29.97&seed=42&frames=100&realtime=0",
			want: synth.Params{Objects: 3, Width: 320, Height: 240, FPS: 29.97, Seed: 42, Frames: 100}},
		{name: "host ignored", url: "synth://scene?objects=2", want: with(func(p *synth.Params) { p.Objects = 2 })},
		{name: "path ignored", url: "synth:///?w=640&h=360", want: with(func(p *synth.Params) { p.Width, p.Height = 640, 360 })},
		{name: "no objects", url: "synth://?objects=0", want: with(func(p *synth.Params) { p.Objects = 0 })},
		{name: "realtime true", url: "synth://?realtime=true", want: def},
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
		{name: "unknown key", url: "synth://?colour=red", wantErr: `synth: unknown parameter "colour"`},
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
