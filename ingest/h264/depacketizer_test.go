package h264

import (
	"bytes"
	"testing"

	"github.com/pion/rtp/codecs"
	"github.com/stretchr/testify/require"
)

type pkt struct {
	seq     uint16
	ts      uint32
	marker  bool
	payload []byte
}

// run pushes packets and returns copies of the emitted access units and the
// total reported loss.
func run(d *Depacketizer, pkts []pkt) (aus []AccessUnit, lost int) {
	for _, p := range pkts {
		lost += d.Push(p.seq, p.ts, p.marker, p.payload, func(au AccessUnit) {
			au.Data = bytes.Clone(au.Data)
			aus = append(aus, au)
		})
	}
	return aus, lost
}

var (
	sps = []byte{0x67, 0x42, 0xc0, 0x1f, 0xda}
	pps = []byte{0x68, 0xce, 0x3c, 0x80}
	idr = []byte{0x65, 0x88, 0x84, 0x00, 0x33, 0xff, 0x01, 0x02, 0x03, 0x04}
	p1  = []byte{0x41, 0x9a, 0x24, 0x6c, 0x41}
)

// stapA builds a STAP-A payload as RFC 6184 section 5.7.1 figure 7 shows:
// a header with the highest NRI of the units, then 16-bit sizes and units.
func stapA(nals ...[]byte) []byte {
	out := []byte{0x78} // F=0, NRI=3, type 24
	for _, n := range nals {
		out = append(out, byte(len(n)>>8), byte(len(n)))
		out = append(out, n...)
	}
	return out
}

// fuA splits nal into FU-A fragments of at most size body bytes (RFC 6184
// section 5.8): indicator = F|NRI|28, header = S|E|R|type.
func fuA(nal []byte, size int) [][]byte {
	ind := nal[0]&0xe0 | 28
	body := nal[1:]
	var out [][]byte
	for i := 0; i < len(body); i += size {
		hdr := nal[0] & 0x1f
		if i == 0 {
			hdr |= 0x80
		}
		end := min(i+size, len(body))
		if end == len(body) {
			hdr |= 0x40
		}
		out = append(out, append([]byte{ind, hdr}, body[i:end]...))
	}
	return out
}

func TestDepacketizer(t *testing.T) {
	frags := fuA(idr, 4)
	require.Len(t, frags, 3)
	require.Equal(t, byte(0x7c), frags[0][0], "FU indicator of an NRI=3 unit")
	require.Equal(t, byte(0x85), frags[0][1], "FU header with S and type 5")
	require.Equal(t, byte(0x45), frags[2][1], "FU header with E and type 5")
	keyAU := AppendAnnexB(nil, sps, pps, idr)

	for _, tc := range []struct {
		name     string
		pkts     []pkt
		want     []AccessUnit
		lost     int
		damaged  uint64
		malform  uint64
		late     uint64
		maxBytes int
	}{
		{
			name: "STAP-A then FU-A key frame, then single NAL",
			pkts: []pkt{
				{1, 100, false, stapA(sps, pps)},
				{2, 100, false, frags[0]}, {3, 100, false, frags[1]}, {4, 100, true, frags[2]},
				{5, 3100, true, p1},
			},
			want: []AccessUnit{
				{Data: keyAU, Timestamp: 100, KeyFrame: true},
				{Data: AppendAnnexB(nil, p1), Timestamp: 3100},
			},
		},
		{
			name: "timestamp change ends an access unit without marker",
			pkts: []pkt{{1, 100, false, p1}, {2, 200, true, p1}},
			want: []AccessUnit{
				{Data: AppendAnnexB(nil, p1), Timestamp: 100},
				{Data: AppendAnnexB(nil, p1), Timestamp: 200},
			},
		},
		{
			name: "lost middle fragment drops the access unit",
			pkts: []pkt{
				{1, 100, false, stapA(sps, pps)},
				{2, 100, false, frags[0]}, {4, 100, true, frags[2]},
				{5, 3100, true, p1},
			},
			want:    []AccessUnit{{Data: AppendAnnexB(nil, p1), Timestamp: 3100}},
			lost:    1,
			damaged: 1,
		},
		{
			name: "lost packet at a timestamp change drops both access units",
			pkts: []pkt{
				{1, 100, false, p1},
				{3, 200, true, p1},
				{4, 300, true, p1},
			},
			want:    []AccessUnit{{Data: AppendAnnexB(nil, p1), Timestamp: 300}},
			lost:    1,
			damaged: 2,
		},
		{
			name:    "fragment without start dropped",
			pkts:    []pkt{{10, 100, true, frags[1]}, {11, 200, true, p1}},
			want:    []AccessUnit{{Data: AppendAnnexB(nil, p1), Timestamp: 200}},
			damaged: 1,
		},
		{
			name: "IDR without parameter sets gets the last ones",
			pkts: []pkt{
				{1, 100, true, stapA(sps, pps, idr)},
				{2, 200, true, idr},
			},
			want: []AccessUnit{
				{Data: keyAU, Timestamp: 100, KeyFrame: true},
				{Data: keyAU, Timestamp: 200, KeyFrame: true},
			},
		},
		{
			name:    "unsupported and malformed payloads",
			pkts:    []pkt{{1, 100, true, []byte{0x79, 0, 1}}, {2, 200, true, []byte{0x78, 0, 9, 1}}, {3, 300, true, nil}, {4, 400, true, p1}},
			want:    []AccessUnit{{Data: AppendAnnexB(nil, p1), Timestamp: 400}},
			damaged: 3,
			malform: 3,
		},
		{
			name: "late and duplicate packets dropped",
			pkts: []pkt{{5, 100, true, p1}, {5, 100, true, p1}, {4, 100, true, p1}, {6, 200, true, p1}},
			want: []AccessUnit{
				{Data: AppendAnnexB(nil, p1), Timestamp: 100},
				{Data: AppendAnnexB(nil, p1), Timestamp: 200},
			},
			late: 2,
		},
		{
			name: "sequence restart far behind is accepted",
			pkts: []pkt{{5000, 100, true, p1}, {10, 200, true, p1}, {11, 300, true, p1}},
			want: []AccessUnit{
				{Data: AppendAnnexB(nil, p1), Timestamp: 100},
				{Data: AppendAnnexB(nil, p1), Timestamp: 200},
				{Data: AppendAnnexB(nil, p1), Timestamp: 300},
			},
		},
		{
			name: "sequence number wraps",
			pkts: []pkt{{65535, 100, true, p1}, {0, 200, true, p1}},
			want: []AccessUnit{
				{Data: AppendAnnexB(nil, p1), Timestamp: 100},
				{Data: AppendAnnexB(nil, p1), Timestamp: 200},
			},
		},
		{
			name:     "oversized access unit dropped",
			pkts:     []pkt{{1, 100, false, frags[0]}, {2, 100, false, frags[1]}, {3, 100, true, frags[2]}, {4, 200, true, p1}},
			want:     []AccessUnit{{Data: AppendAnnexB(nil, p1), Timestamp: 200}},
			damaged:  1,
			maxBytes: 12,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Depacketizer{MaxAccessUnitSize: tc.maxBytes}
			aus, lost := run(d, tc.pkts)
			require.Equal(t, tc.want, aus)
			require.Equal(t, tc.lost, lost)
			st := d.Stats()
			require.Equal(t, uint64(tc.lost), st.Lost)
			require.Equal(t, tc.damaged, st.Damaged)
			require.Equal(t, tc.malform, st.Malformed)
			require.Equal(t, tc.late, st.Late)
			require.Equal(t, uint64(len(tc.want)), st.AccessUnits)
		})
	}
}

// TestDepacketizerPionPayloader checks the depacketizer against another
// implementation: pion's RFC 6184 packetizer, at several MTUs.
func TestDepacketizerPionPayloader(t *testing.T) {
	big := make([]byte, 5000)
	for i := range big {
		big[i] = byte(i*7 + 1)
	}
	big[0] = 0x65
	nonIDR := append([]byte{0x41}, big[1:1400]...)
	frames := [][][]byte{{sps, pps, big}, {p1}, {p1, p1}, {nonIDR}}
	for _, mtu := range []uint16{100, 1200, 9000} {
		var p codecs.H264Payloader
		d := &Depacketizer{}
		var seq uint16 = 60000
		var got []AccessUnit
		for i, nals := range frames {
			payloads := p.Payload(mtu, AppendAnnexB(nil, nals...))
			for j, pl := range payloads {
				d.Push(seq, uint32(i*3000), j == len(payloads)-1, pl, func(au AccessUnit) {
					au.Data = bytes.Clone(au.Data)
					got = append(got, au)
				})
				seq++
			}
		}
		require.Len(t, got, len(frames), "mtu %d", mtu)
		for i, nals := range frames {
			require.True(t, bytes.Equal(AppendAnnexB(nil, nals...), got[i].Data), "mtu %d frame %d", mtu, i)
			require.Equal(t, ContainsIDR(nals), got[i].KeyFrame)
		}
		require.Zero(t, d.Stats().Damaged)
	}
}

// FuzzH264Depacketizer reads the input as a list of packets: a flags byte
// (bit 0 marker, bit 1 new timestamp, bits 2-3 sequence number skip), a
// length byte and the payload.
func FuzzH264Depacketizer(f *testing.F) {
	var seed []byte
	add := func(flags byte, payload []byte) {
		seed = append(seed, flags, byte(len(payload)))
		seed = append(seed, payload...)
	}
	add(2, stapA(sps, pps))
	for i, fr := range fuA(idr, 3) {
		add(byte(i/3), fr)
	}
	add(3, p1)
	f.Add(seed)
	f.Add([]byte{3, 3, 0x7c, 0x85, 0x00, 1, 2, 0x7c, 0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := &Depacketizer{MaxAccessUnitSize: 1024}
		var seq uint16
		var ts uint32
		for len(b) >= 2 {
			flags, n := b[0], int(b[1])
			b = b[2:]
			n = min(n, len(b))
			payload := b[:n]
			b = b[n:]
			seq += 1 + uint16(flags>>2&3)
			if flags&2 != 0 {
				ts += 3000
			}
			d.Push(seq, ts, flags&1 != 0, payload, func(au AccessUnit) {
				if len(au.Data) == 0 || len(au.Data) > 1024+2*256 {
					t.Fatalf("access unit of %d bytes", len(au.Data))
				}
				if !bytes.HasPrefix(au.Data, startCode) {
					t.Fatalf("access unit %x does not start with a start code", au.Data)
				}
				// A key frame holds an IDR. The converse does not hold for
				// malformed input: a NAL whose payload emulates a start code
				// (which a real encoder's emulation prevention rules out)
				// re-splits into NALs the depacketizer never saw.
				if au.KeyFrame && !ContainsIDR(SplitAnnexB(nil, au.Data)) {
					t.Fatalf("KeyFrame true without an IDR in %x", au.Data)
				}
			})
		}
	})
}
