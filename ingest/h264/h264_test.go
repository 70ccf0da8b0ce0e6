package h264

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSplitAnnexB(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want [][]byte
	}{
		{"four-byte start codes", []byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3}, [][]byte{{0x67, 1, 2}, {0x68, 3}}},
		{"three-byte start codes", []byte{0, 0, 1, 0x67, 1, 0, 0, 1, 0x65, 9}, [][]byte{{0x67, 1}, {0x65, 9}}},
		{"mixed with trailing zeros", []byte{0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x41, 7, 0, 0}, [][]byte{{0x09, 0xf0}, {0x41, 7}}},
		{"leading garbage dropped", []byte{5, 6, 0, 0, 1, 0x41}, [][]byte{{0x41}}},
		{"no start code", []byte{0x41, 1, 2}, nil},
		{"empty NAL units skipped", []byte{0, 0, 1, 0, 0, 1, 0x41, 0, 0, 1}, [][]byte{{0x41}}},
		{"emulation prevention kept", []byte{0, 0, 1, 0x41, 0, 0, 3, 1}, [][]byte{{0x41, 0, 0, 3, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, SplitAnnexB(nil, tc.in))
		})
	}
}

func TestSplitAVCC(t *testing.T) {
	nals, err := SplitAVCC(nil, []byte{0, 0, 0, 2, 0x67, 1, 0, 0, 0, 1, 0x68}, 4)
	require.NoError(t, err)
	require.Equal(t, [][]byte{{0x67, 1}, {0x68}}, nals)

	nals, err = SplitAVCC(nil, []byte{0, 2, 0x67, 1, 0, 1, 0x68}, 2)
	require.NoError(t, err)
	require.Equal(t, [][]byte{{0x67, 1}, {0x68}}, nals)

	_, err = SplitAVCC(nil, []byte{0, 0, 0, 9, 0x67}, 4)
	require.ErrorIs(t, err, ErrTruncated)
	_, err = SplitAVCC(nil, []byte{0, 0}, 4)
	require.ErrorIs(t, err, ErrTruncated)
	_, err = SplitAVCC(nil, []byte{1}, 5)
	require.Error(t, err)
}

func TestConvert(t *testing.T) {
	avcc := []byte{0, 0, 0, 2, 0x67, 1, 0, 0, 0, 1, 0x68, 0, 0, 0, 3, 0x65, 0, 3}
	annexb, err := AVCCToAnnexB(nil, avcc, 4)
	require.NoError(t, err)
	require.Equal(t, []byte{0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 0, 0, 0, 1, 0x65, 0, 3}, annexb)
	require.Equal(t, avcc, AnnexBToAVCC(nil, annexb))
	require.True(t, ContainsIDR(SplitAnnexB(nil, annexb)))
	require.False(t, ContainsIDR([][]byte{{0x41}, {}}))
	require.True(t, NALUTypeIDR.IsVCL())
	require.False(t, NALUTypeSPS.IsVCL())
}

func FuzzSplitAnnexB(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3})
	f.Add([]byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		nals := SplitAnnexB(nil, b)
		for _, n := range nals {
			if len(n) == 0 || n[len(n)-1] == 0 {
				t.Fatalf("NAL unit %x is empty or ends in a zero byte", n)
			}
		}
		// Joining and splitting again is stable.
		again := SplitAnnexB(nil, AppendAnnexB(nil, nals...))
		if len(again) != len(nals) {
			t.Fatalf("resplit gave %d NAL units, want %d", len(again), len(nals))
		}
		avcc := AnnexBToAVCC(nil, b)
		back, err := SplitAVCC(nil, avcc, 4)
		if err != nil || len(back) != len(nals) {
			t.Fatalf("AVCC round trip: %d NAL units, err %v; want %d", len(back), err, len(nals))
		}
	})
}

func FuzzSplitAVCC(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 0x67, 1, 0, 0, 0, 1, 0x68}, 4)
	f.Add([]byte{0, 2, 0x67, 1}, 2)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, 4)
	f.Fuzz(func(t *testing.T, b []byte, lengthSize int) {
		nals, err := SplitAVCC(nil, b, lengthSize)
		if err != nil {
			return
		}
		total := 0
		for _, n := range nals {
			total += len(n) + lengthSize
		}
		if total > len(b) {
			t.Fatalf("NAL units cover %d bytes of %d", total, len(b))
		}
		annexb, err := AVCCToAnnexB(nil, b, lengthSize)
		if err != nil {
			t.Fatalf("AVCCToAnnexB failed where SplitAVCC did not: %v", err)
		}
		if !bytes.HasPrefix(annexb, startCode) && len(nals) > 0 {
			t.Fatalf("Annex-B output %x has no start code", annexb)
		}
	})
}

func TestParseDecoderConfig(t *testing.T) {
	sps := []byte{0x67, 0x42, 0xc0, 0x1f, 0xda}
	pps := []byte{0x68, 0xce, 0x3c, 0x80}
	rec := []byte{1, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0, byte(len(sps))}
	rec = append(rec, sps...)
	rec = append(rec, 1, 0, byte(len(pps)))
	rec = append(rec, pps...)
	require.True(t, IsAVCC(rec))
	c, err := ParseDecoderConfig(rec)
	require.NoError(t, err)
	require.Equal(t, 4, c.LengthSize)
	require.Equal(t, uint8(0x42), c.ProfileIDC)
	require.Equal(t, [][]byte{sps}, c.SPS)
	require.Equal(t, [][]byte{pps}, c.PPS)

	require.False(t, IsAVCC(AppendAnnexB(nil, sps, pps)))
	for n := range len(rec) {
		_, err := ParseDecoderConfig(rec[:n])
		require.Error(t, err, "truncated to %d bytes", n)
	}
}

func FuzzParseDecoderConfig(f *testing.F) {
	f.Add([]byte{1, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0, 2, 0x67, 0x42, 1, 0, 1, 0x68})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseDecoderConfig(b)
		if err != nil {
			return
		}
		if c.LengthSize < 1 || c.LengthSize > 4 {
			t.Fatalf("length size %d", c.LengthSize)
		}
		for _, s := range append(c.SPS, c.PPS...) {
			if len(s) == 0 {
				t.Fatal("empty parameter set")
			}
		}
	})
}
