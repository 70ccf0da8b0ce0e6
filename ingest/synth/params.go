package synth

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
)

// Domain is how a scene looks: its lighting and its camera. The same Params
// in another domain give the same objects, motion and ground truth; only the
// picture changes, which is what a domain-shift experiment needs.
type Domain string

const (
	// Day is even daylight and a clean sensor: the look of a scene without a
	// domain parameter.
	Day Domain = "day"
	// Night is street lighting: low light with a gamma that crushes shadows,
	// strong per-frame sensor noise, pools of light under street lamps,
	// glare around lamp heads and car lights, lit windows, and chroma that
	// is washed out and tinted orange (sodium lamps) or blue (LED), chosen
	// by the seed.
	Night Domain = "night"
)

// Auto as Params.Light or Params.Noise takes the domain's value.
const Auto = -1

// Limits of the parameters.
const (
	maxObjects     = 256
	maxDistractors = 64
	maxLight       = 4
	maxNoise       = 32
)

// Params describe a generated scene and how a source plays it. They come from
// the query of a synth:// URL; the host and path of the URL are ignored. Use
// DefaultParams or ParseParams to start from the defaults: the zero value is
// not valid.
type Params struct {
	// Objects is how many people and cars the scene keeps alive at once
	// (0-256). It defaults to 6.
	Objects int
	// Width and Height are the picture size in pixels, even numbers in
	// 16-7680 and 16-4320. They default to 1280 and 720.
	Width, Height int
	// FPS is the frame rate in frames per second (0 < FPS <= 1000). It
	// defaults to 15.
	FPS float64
	// Seed chooses the background and the objects. It defaults to 1.
	Seed uint64
	// Frames is the number of frames a source plays before it ends with
	// io.EOF; 0 (the default) plays forever.
	Frames int
	// Realtime paces a source at FPS (a live camera); false runs it as fast
	// as the consumer takes frames. It defaults to true.
	Realtime bool
	// Domain is Day (the default) or Night. URL key: domain.
	Domain Domain
	// Distractors is how many objects that are not targets (poles, signs,
	// bins, bushes, dogs) stand or walk in the scene (0-64). They are not in
	// Truth but hide the targets behind them; Scene.Distractors lists them.
	// The seed places them independently of the targets, so adding them
	// changes no target's path or identity. It defaults to 0.
	Distractors int
	// Texture adds variety to the background, from 0 (the default: plain
	// facades, tiles and asphalt) to 1: coloured facades, tinted sky,
	// patched asphalt, mottled grass and paving, and street lamps, all drawn
	// from the seed. Street lamps stand at night whatever the texture. URL
	// key: texture.
	Texture float64
	// Light scales the ambient light, 0 < Light <= 4; Auto (the default)
	// takes the domain's: 1 by day, 0.35 at night. URL key: light.
	Light float64
	// Noise is the standard deviation of the sensor noise in luma levels
	// (chroma gets half), 0-32, new on every frame; Auto (the default)
	// takes the domain's: 0 by day, 7 at night. The noise is cut at 3
	// deviations and the picture kept that far inside 0-255, so strong
	// noise also flattens the extremes. URL key: noise.
	Noise float64
	// JPEG, when 1-100, passes every picture through a JPEG encoder and
	// decoder at that quality, for compression artefacts (blocks, ringing,
	// smeared chroma); 0 (the default) leaves it alone. URL key: jpeg.
	JPEG int
	// Stamp makes a source draw each frame's capture time (its Arrival in
	// Unix milliseconds) into the top-left StampWidth x StampHeight pixels,
	// for a viewer that measures latency from the picture (see Stamp). It
	// needs a picture at least that large. Scene.Render never draws it, and
	// the truth ignores it: objects under the stamp keep their boxes. It
	// defaults to false. URL key: stamp.
	Stamp bool
}

// DefaultParams returns the parameters of synth:// with an empty query.
func DefaultParams() Params {
	return Params{Objects: 6, Width: 1280, Height: 720, FPS: 15, Seed: 1, Realtime: true,
		Domain: Day, Light: Auto, Noise: Auto}
}

// paramKeys are the URL keys, in the order error messages list them.
var paramKeys = []string{"objects", "w", "h", "fps", "seed", "frames", "realtime",
	"domain", "distractors", "texture", "light", "noise", "jpeg", "stamp"}

// ParseParams reads a synth:// URL query. Missing keys take their defaults;
// unknown keys and bad values are errors that name the key. light and noise
// also take "auto".
func ParseParams(q url.Values) (Params, error) {
	p := DefaultParams()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys) // report the same error for the same query every time
	for _, k := range keys {
		vs := q[k]
		if len(vs) != 1 {
			return Params{}, fmt.Errorf("synth: %s: given %d times", k, len(vs))
		}
		v := vs[0]
		var err error
		switch k {
		case "objects":
			p.Objects, err = strconv.Atoi(v)
		case "w":
			p.Width, err = strconv.Atoi(v)
		case "h":
			p.Height, err = strconv.Atoi(v)
		case "fps":
			p.FPS, err = strconv.ParseFloat(v, 64)
		case "seed":
			p.Seed, err = strconv.ParseUint(v, 10, 64)
		case "frames":
			p.Frames, err = strconv.Atoi(v)
		case "realtime":
			p.Realtime, err = strconv.ParseBool(v)
		case "domain":
			p.Domain = Domain(v) // Validate checks it
		case "distractors":
			p.Distractors, err = strconv.Atoi(v)
		case "texture":
			p.Texture, err = strconv.ParseFloat(v, 64)
		case "light":
			p.Light, err = parseAuto(v)
		case "noise":
			p.Noise, err = parseAuto(v)
		case "jpeg":
			p.JPEG, err = strconv.Atoi(v)
		case "stamp":
			p.Stamp, err = strconv.ParseBool(v)
		default:
			return Params{}, fmt.Errorf("synth: unknown parameter %q (have %s)", k, joinKeys())
		}
		if err != nil {
			return Params{}, fmt.Errorf("synth: %s: %q is not a valid %s", k, v, kindOf(k))
		}
	}
	if err := p.Validate(); err != nil {
		return Params{}, err
	}
	return p, nil
}

func joinKeys() string {
	s := ""
	for i, k := range paramKeys {
		if i > 0 {
			s += ", "
		}
		s += k
	}
	return s
}

func parseAuto(v string) (float64, error) {
	if v == "auto" {
		return Auto, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err == nil && f < 0 {
		// Only "auto" may spell Auto; a negative number is a mistake.
		return math.NaN(), nil
	}
	return f, err
}

func kindOf(key string) string {
	switch key {
	case "fps", "texture":
		return "number"
	case "light", "noise":
		return "number or auto"
	case "seed":
		return "unsigned integer"
	case "realtime", "stamp":
		return "boolean"
	default:
		return "integer"
	}
}

// Validate reports the first parameter that is out of range, by its URL key.
func (p Params) Validate() error {
	switch {
	case p.Objects < 0 || p.Objects > maxObjects:
		return fmt.Errorf("synth: objects: must be between 0 and %d", maxObjects)
	case p.Width < 16 || p.Width > 7680 || p.Width%2 != 0:
		return fmt.Errorf("synth: w: must be an even number between 16 and 7680")
	case p.Height < 16 || p.Height > 4320 || p.Height%2 != 0:
		return fmt.Errorf("synth: h: must be an even number between 16 and 4320")
	case !(p.FPS > 0 && p.FPS <= 1000): // also rejects NaN
		return fmt.Errorf("synth: fps: must be above 0 and at most 1000")
	case p.Frames < 0:
		return fmt.Errorf("synth: frames: must be 0 (endless) or more")
	case p.Domain != Day && p.Domain != Night:
		return fmt.Errorf("synth: domain: must be day or night, not %q", string(p.Domain))
	case p.Distractors < 0 || p.Distractors > maxDistractors:
		return fmt.Errorf("synth: distractors: must be between 0 and %d", maxDistractors)
	case !(p.Texture >= 0 && p.Texture <= 1):
		return fmt.Errorf("synth: texture: must be between 0 and 1")
	case p.Light != Auto && !(p.Light > 0 && p.Light <= maxLight):
		return fmt.Errorf("synth: light: must be above 0 and at most %d, or auto", maxLight)
	case p.Noise != Auto && !(p.Noise >= 0 && p.Noise <= maxNoise):
		return fmt.Errorf("synth: noise: must be between 0 and %d, or auto", maxNoise)
	case p.JPEG < 0 || p.JPEG > 100:
		return fmt.Errorf("synth: jpeg: must be 0 (off) or a quality of 1 to 100")
	case p.Stamp && (p.Width < StampWidth || p.Height < StampHeight):
		return fmt.Errorf("synth: stamp: needs a picture of at least %dx%d, not %dx%d",
			StampWidth, StampHeight, p.Width, p.Height)
	}
	return nil
}

// Values returns the query that ParseParams turns back into p. It leaves out
// light and noise when they are Auto.
func (p Params) Values() url.Values {
	q := url.Values{
		"objects":     {strconv.Itoa(p.Objects)},
		"w":           {strconv.Itoa(p.Width)},
		"h":           {strconv.Itoa(p.Height)},
		"fps":         {strconv.FormatFloat(p.FPS, 'g', -1, 64)},
		"seed":        {strconv.FormatUint(p.Seed, 10)},
		"frames":      {strconv.Itoa(p.Frames)},
		"realtime":    {strconv.FormatBool(p.Realtime)},
		"domain":      {string(p.Domain)},
		"distractors": {strconv.Itoa(p.Distractors)},
		"texture":     {strconv.FormatFloat(p.Texture, 'g', -1, 64)},
		"jpeg":        {strconv.Itoa(p.JPEG)},
		"stamp":       {strconv.FormatBool(p.Stamp)},
	}
	if p.Light != Auto {
		q["light"] = []string{strconv.FormatFloat(p.Light, 'g', -1, 64)}
	}
	if p.Noise != Auto {
		q["noise"] = []string{strconv.FormatFloat(p.Noise, 'g', -1, 64)}
	}
	return q
}

// light returns the ambient light factor for the domain.
func (p Params) light() float64 {
	switch {
	case p.Light != Auto:
		return p.Light
	case p.Domain == Night:
		return 0.35
	}
	return 1
}

// noise returns the sensor noise sigma for the domain.
func (p Params) noise() float64 {
	switch {
	case p.Noise != Auto:
		return p.Noise
	case p.Domain == Night:
		return 7
	}
	return 0
}
