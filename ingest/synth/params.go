package synth

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
)

// Params describe a generated scene and how a source plays it. They come from
// the query of a synth:// URL; the host and path of the URL are ignored.
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
}

// DefaultParams returns the parameters of synth:// with an empty query.
func DefaultParams() Params {
	return Params{Objects: 6, Width: 1280, Height: 720, FPS: 15, Seed: 1, Realtime: true}
}

// ParseParams reads a synth:// URL query. Missing keys take their defaults;
// unknown keys and bad values are errors that name the key.
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
		default:
			return Params{}, fmt.Errorf("synth: unknown parameter %q (have objects, w, h, fps, seed, frames, realtime)", k)
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

func kindOf(key string) string {
	switch key {
	case "fps":
		return "number"
	case "seed":
		return "unsigned integer"
	case "realtime":
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
	}
	return nil
}

// Values returns the query that ParseParams turns back into p.
func (p Params) Values() url.Values {
	return url.Values{
		"objects":  {strconv.Itoa(p.Objects)},
		"w":        {strconv.Itoa(p.Width)},
		"h":        {strconv.Itoa(p.Height)},
		"fps":      {strconv.FormatFloat(p.FPS, 'g', -1, 64)},
		"seed":     {strconv.FormatUint(p.Seed, 10)},
		"frames":   {strconv.Itoa(p.Frames)},
		"realtime": {strconv.FormatBool(p.Realtime)},
	}
}
