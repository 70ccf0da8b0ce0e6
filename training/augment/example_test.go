package augment_test

import (
	"fmt"
	"image"
	"log"
	"math/rand/v2"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/training/augment"
	"github.com/vigil-video/vigil/training/dataset"
)

func Example() {
	s := dataset.Sample{
		ID:    "example",
		Image: image.NewRGBA(image.Rect(0, 0, 1280, 720)),
		Objects: []dataset.Object{
			{Box: frame.Box{X1: 600, Y1: 300, X2: 680, Y2: 500}, Class: 0, Label: "person", Score: 1},
		},
	}

	// Training: one Augmenter and one seeded rand per loader goroutine.
	a, err := augment.New(augment.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	train, _, err := a.Apply(s, rng, 384, 224)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("train input:", train.Image.Bounds().Size(), len(train.Objects), "object")

	// Validation: a plain letterbox; predictions map back with Inverse.
	val, t, err := augment.Letterbox(s, 384, 224)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("validation box:", val.Objects[0].Box)
	fmt.Println("back in the source:", t.Inverse().Box(val.Objects[0].Box))
	// Output:
	// train input: (384,224) 1 object
	// validation box: {180 94 204 154}
	// back in the source: {600 300 680 500}
}
