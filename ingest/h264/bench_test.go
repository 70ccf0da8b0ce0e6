package h264

import (
	"testing"

	"github.com/pion/rtp/codecs"
)

// benchPackets is a 30-frame GOP-like sequence: a 20 kB key frame and 2 kB
// inter frames, packetized by pion at MTU 1200.
func benchPackets() []pkt {
	var p codecs.H264Payloader
	var out []pkt
	for i := range 30 {
		size := 2000
		hdr := byte(0x41)
		if i == 0 {
			size, hdr = 20000, 0x65
		}
		nal := make([]byte, size)
		for j := range nal {
			nal[j] = byte(j*31 + 7)
		}
		nal[0] = hdr
		au := nal
		if i == 0 {
			au = AppendAnnexB(nil, sps, pps, nal)
		}
		pls := p.Payload(1200, au)
		for j, pl := range pls {
			out = append(out, pkt{seq: uint16(len(out)), ts: uint32(i * 3000), marker: j == len(pls)-1, payload: pl})
		}
	}
	return out
}

// BenchmarkDepacketizer reassembles access units; compare with
// BenchmarkPionH264Packet, pion's depacketizer, which only converts each
// packet to Annex-B without reassembling access units.
func BenchmarkDepacketizer(b *testing.B) {
	pkts := benchPackets()
	var d Depacketizer
	var seq uint16
	var ts uint32
	n := 0
	for _, p := range pkts {
		n += len(p.payload)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	aus := 0
	for b.Loop() {
		for _, p := range pkts {
			d.Push(seq, ts+p.ts, p.marker, p.payload, func(AccessUnit) { aus++ })
			seq++
		}
		ts += 90000
	}
	if d.Stats().Damaged > 0 || aus == 0 {
		b.Fatalf("%d access units, stats %+v", aus, d.Stats())
	}
}

func BenchmarkPionH264Packet(b *testing.B) {
	pkts := benchPackets()
	var d codecs.H264Packet
	n := 0
	for _, p := range pkts {
		n += len(p.payload)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range pkts {
			_, _ = d.Unmarshal(p.payload)
		}
	}
}
