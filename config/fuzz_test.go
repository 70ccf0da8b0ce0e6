package config

import (
	"os"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse feeds arbitrary bytes to Parse: config files come from users
// and, through reload, from whatever lands on disk. Parse must never panic,
// and whatever it accepts must be valid and survive a marshal round trip.
// The seed corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add(defaultYAML)
	if data, err := os.ReadFile("example.yaml"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned a config with an error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid config: %v", err)
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshalling an accepted config: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parsing a marshalled config: %v\n%s", err, out)
		}
		again, err := yaml.Marshal(back)
		if err != nil {
			t.Fatalf("marshalling again: %v", err)
		}
		if string(again) != string(out) {
			t.Fatalf("round trip changed the config:\n%s\nthen\n%s", out, again)
		}
	})
}
