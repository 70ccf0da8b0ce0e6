package frame

import (
	"bytes"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBoxIoU(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b Box
		want float32
	}{
		{"identical", Box{0, 0, 10, 10}, Box{0, 0, 10, 10}, 1},
		{"disjoint", Box{0, 0, 10, 10}, Box{20, 20, 30, 30}, 0},
		{"touching", Box{0, 0, 10, 10}, Box{10, 0, 20, 10}, 0},
		// 5x10 overlap of two 100-pixel boxes: 50 / 150.
		{"half shifted", Box{0, 0, 10, 10}, Box{5, 0, 15, 10}, 1.0 / 3},
		{"contained", Box{0, 0, 10, 10}, Box{2, 2, 7, 7}, 25.0 / 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.InDelta(t, tc.want, tc.a.IoU(tc.b), 1e-6)
			require.InDelta(t, tc.want, tc.b.IoU(tc.a), 1e-6)
		})
	}
	require.Zero(t, Box{5, 5, 1, 1}.Area())
}

func TestReleaseReturnsToPoolOnce(t *testing.T) {
	var mu sync.Mutex
	returned := 0
	f := &Frame{}
	f.SetRelease(func(*Frame) { mu.Lock(); returned++; mu.Unlock() })
	const holders = 8
	for range holders - 1 {
		f.Retain()
	}
	var wg sync.WaitGroup
	for range holders {
		wg.Go(f.Release)
	}
	wg.Wait()
	require.Equal(t, 1, returned, "the last Release returns the frame")

	var plain *Frame
	plain.Release() // nil and pool-less frames are no-ops
	(&Frame{}).Release()
}

func TestMaskRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		w, h int
		data []byte
		want []uint32
	}{
		{3, 2, []byte{0, 0, 0, 0, 0, 0}, []uint32{6}},
		{3, 2, []byte{1, 1, 1, 1, 1, 1}, []uint32{0, 6}},
		// Column-major: column 0 is (1,0), column 1 is (0,1), column 2 (1,1).
		{3, 2, []byte{1, 0, 1, 0, 1, 1}, []uint32{0, 1, 2, 3}},
	} {
		m := EncodeMask(tc.data, tc.w, tc.h)
		if !slices.Equal(m.Counts, tc.want) {
			t.Fatalf("EncodeMask(%v) = %v, want %v", tc.data, m.Counts, tc.want)
		}
		if got := m.Decode(nil); !bytes.Equal(got, tc.data) {
			t.Fatalf("Decode(%v) = %v, want %v", m.Counts, got, tc.data)
		}
		area := 0
		for _, v := range tc.data {
			area += int(v)
		}
		if m.Area() != area {
			t.Fatalf("Area = %d, want %d", m.Area(), area)
		}
	}
}
