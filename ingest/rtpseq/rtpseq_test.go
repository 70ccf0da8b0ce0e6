package rtpseq

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestObserve(t *testing.T) {
	for _, tc := range []struct {
		name string
		seqs []uint16
		want []Step
	}{
		{"in order", []uint16{10, 11, 12}, []Step{{}, {}, {}}},
		{"wraps", []uint16{65534, 65535, 0, 1}, []Step{{}, {}, {}, {}}},
		{"two lost", []uint16{10, 13, 14}, []Step{{}, {Lost: 2}, {}}},
		{"lost across the wrap", []uint16{65535, 2}, []Step{{}, {Lost: 2}}},
		{"reordered", []uint16{10, 12, 11, 13}, []Step{{}, {Lost: 1}, {Late: true}, {}}},
		{"duplicate", []uint16{10, 10}, []Step{{}, {Late: true}}},
		{"sender restart forward", []uint16{10, 20000, 20001}, []Step{{}, {Restart: true}, {}}},
		{"sender restart backward", []uint16{20000, 10, 11}, []Step{{}, {Restart: true}, {}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tr Tracker
			var got []Step
			for _, s := range tc.seqs {
				got = append(got, tr.Observe(s))
			}
			require.Equal(t, tc.want, got)
		})
	}
}
