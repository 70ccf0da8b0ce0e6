package purego

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/vigil-video/vigil/inference/onnx"
)

// FuzzLoadModel feeds mutated model bytes to LoadModel and runs what
// loads: a corrupt model must be an error, never a panic.
func FuzzLoadModel(f *testing.F) {
	for _, m := range [][]byte{mustMarshal(f, uNet(16)), mustMarshal(f, embedder())} {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := onnx.Parse(b)
		if err != nil {
			return
		}
		md, err := LoadModel(m, Options{})
		if err != nil {
			return
		}
		defer md.Close()
		n := 0
		for _, in := range md.Inputs() {
			n += in.Elements()
		}
		if n > 1<<16 {
			return // keep each run fast
		}
		_ = md.Run()
	})
}

func mustMarshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
