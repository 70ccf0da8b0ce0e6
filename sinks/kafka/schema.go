package kafka

import (
	"bytes"
	"embed"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Topic kinds, each with its JSON Schema.
const (
	KindDetections = "detections"
	KindTracks     = "tracks"
)

//go:embed schema/*.json
var schemaFS embed.FS

// Schema returns the JSON Schema (draft 2020-12) of a topic kind.
func Schema(kind string) ([]byte, error) {
	b, err := schemaFS.ReadFile("schema/" + kind + ".json")
	if err != nil {
		return nil, fmt.Errorf("no schema for topic kind %q (want %s or %s)", kind, KindDetections, KindTracks)
	}
	return b, nil
}

var compiled = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	out := map[string]*jsonschema.Schema{}
	for _, kind := range []string{KindDetections, KindTracks} {
		b, err := Schema(kind)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("parsing %s schema: %w", kind, err)
		}
		url := "mem:///" + kind + ".json"
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("loading %s schema: %w", kind, err)
		}
		if out[kind], err = c.Compile(url); err != nil {
			return nil, fmt.Errorf("compiling %s schema: %w", kind, err)
		}
	}
	return out, nil
})

// Validate checks a message value against its topic kind's schema. The
// error names the offending field by JSON pointer.
func Validate(kind string, value []byte) error {
	schemas, err := compiled()
	if err != nil {
		return err
	}
	sch, ok := schemas[kind]
	if !ok {
		return fmt.Errorf("no schema for topic kind %q (want %s or %s)", kind, KindDetections, KindTracks)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
	if err != nil {
		return fmt.Errorf("decoding %s message: %w", kind, err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("invalid %s message: %w", kind, err)
	}
	return nil
}

// KindOf guesses a topic's kind from its name: one ending in "tracks" is
// KindTracks, any other KindDetections.
func KindOf(topic string) string {
	if len(topic) >= len(KindTracks) && topic[len(topic)-len(KindTracks):] == KindTracks {
		return KindTracks
	}
	return KindDetections
}
