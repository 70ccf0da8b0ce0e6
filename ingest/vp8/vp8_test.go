package vp8

import (
	"bytes"
	"testing"

	"github.com/pion/rtp/codecs"
	"github.com/stretchr/testify/require"
)

func TestParseDescriptor(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want Descriptor
		err  bool
	}{
		{"minimal start", []byte{0x10, 0xaa}, Descriptor{Start: true, Size: 1}, false},
		{"7-bit picture ID", []byte{0x90, 0x80, 0x11, 0xaa}, Descriptor{Start: true, HasPictureID: true, PictureID: 0x11, Size: 3}, false},
		// RFC 7741 section 4.2: M=1 makes the picture ID 15 bits.
		{"15-bit picture ID, TL0PICIDX, TID", []byte{0x80 | 0x20 | 0x02, 0xe0, 0x81, 0x23, 0x05, 0x40, 0xaa}, Descriptor{NonReference: true, PartitionID: 2, HasPictureID: true, PictureID: 0x0123, Size: 6}, false},
		{"truncated extension", []byte{0x80}, Descriptor{}, true},
		{"truncated picture ID", []byte{0x80, 0x80, 0x81}, Descriptor{}, true},
		{"empty", nil, Descriptor{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDescriptor(tc.in)
			if tc.err {
				require.ErrorIs(t, err, ErrShortDescriptor)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, d)
		})
	}
}

// keyFrame is the start of a real 320x240 key frame from libvpx: frame tag
// (P=0), start code 9d 01 2a, width and height as 14-bit little endian.
var keyFrame = []byte{0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 1, 2, 3, 4, 5, 6, 7, 8}

func TestParseFrameHeader(t *testing.T) {
	info, ok := ParseFrameHeader(keyFrame)
	require.True(t, ok)
	require.Equal(t, FrameInfo{KeyFrame: true, Width: 320, Height: 240}, info)
	info, ok = ParseFrameHeader([]byte{0x31, 0x02, 0x00, 9})
	require.True(t, ok)
	require.Equal(t, FrameInfo{}, info)
	_, ok = ParseFrameHeader([]byte{0x30})
	require.False(t, ok)
}

type pkt struct {
	seq     uint16
	ts      uint32
	marker  bool
	payload []byte
}

func run(d *Depacketizer, pkts []pkt) (frames []Frame, lost int) {
	for _, p := range pkts {
		lost += d.Push(p.seq, p.ts, p.marker, p.payload, func(f Frame) {
			f.Data = bytes.Clone(f.Data)
			frames = append(frames, f)
		})
	}
	return frames, lost
}

func TestDepacketizer(t *testing.T) {
	inter := []byte{0x31, 0x02, 0x00, 0xee}
	start := func(b []byte) []byte { return append([]byte{0x10}, b...) }
	cont := func(b []byte) []byte { return append([]byte{0x00}, b...) }
	key := Frame{Data: keyFrame, Timestamp: 100, FrameInfo: FrameInfo{KeyFrame: true, Width: 320, Height: 240}}
	for _, tc := range []struct {
		name    string
		pkts    []pkt
		want    []Frame
		lost    int
		damaged uint64
	}{
		{
			name: "key frame in two packets, then inter frame",
			pkts: []pkt{{1, 100, false, start(keyFrame[:5])}, {2, 100, true, cont(keyFrame[5:])}, {3, 200, true, start(inter)}},
			want: []Frame{key, {Data: inter, Timestamp: 200}},
		},
		{
			name:    "lost continuation drops the frame",
			pkts:    []pkt{{1, 100, false, start(keyFrame[:5])}, {3, 100, true, cont(keyFrame[9:])}, {4, 200, true, start(inter)}},
			want:    []Frame{{Data: inter, Timestamp: 200}},
			lost:    1,
			damaged: 1,
		},
		{
			name:    "lost start drops the frame",
			pkts:    []pkt{{1, 100, true, start(keyFrame)}, {3, 200, true, cont(inter)}},
			want:    []Frame{key},
			lost:    1,
			damaged: 1,
		},
		{
			name: "lost marker packet: the next start is clean",
			pkts: []pkt{{1, 100, false, start(inter)}, {3, 200, true, start(inter)}},
			want: []Frame{{Data: inter, Timestamp: 200}},
			lost: 1, damaged: 1,
		},
		{
			name: "timestamp change without marker",
			pkts: []pkt{{1, 100, false, start(keyFrame)}, {2, 200, true, start(inter)}},
			want: []Frame{key, {Data: inter, Timestamp: 200}},
		},
		{
			name:    "bad descriptor",
			pkts:    []pkt{{1, 100, true, []byte{0x80}}, {2, 200, true, start(inter)}},
			want:    []Frame{{Data: inter, Timestamp: 200}},
			damaged: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Depacketizer{}
			frames, lost := run(d, tc.pkts)
			require.Equal(t, tc.want, frames)
			require.Equal(t, tc.lost, lost)
			require.Equal(t, tc.damaged, d.Stats().Damaged)
		})
	}
}

// TestDepacketizerPionPayloader checks against pion's RFC 7741 packetizer,
// with and without picture IDs.
func TestDepacketizerPionPayloader(t *testing.T) {
	big := make([]byte, 4000)
	for i := range big {
		big[i] = byte(i * 13)
	}
	copy(big, keyFrame)
	frames := [][]byte{big, {0x31, 0x02, 0x00, 1, 2, 3}, big[:1500]}
	for _, pid := range []bool{false, true} {
		for _, mtu := range []uint16{50, 1200} {
			p := codecs.VP8Payloader{EnablePictureID: pid}
			d := &Depacketizer{}
			var seq uint16 = 65530
			var got []Frame
			for i, fr := range frames {
				pls := p.Payload(mtu, fr)
				for j, pl := range pls {
					d.Push(seq, uint32(i*3000), j == len(pls)-1, pl, func(f Frame) {
						f.Data = bytes.Clone(f.Data)
						got = append(got, f)
					})
					seq++
				}
			}
			require.Len(t, got, len(frames))
			for i := range frames {
				require.True(t, bytes.Equal(frames[i], got[i].Data), "picture ID %v mtu %d frame %d", pid, mtu, i)
			}
			require.True(t, got[0].KeyFrame)
			require.False(t, got[1].KeyFrame)
		}
	}
}

// FuzzVP8Depacketizer reads the input as packets: a flags byte (bit 0
// marker, bit 1 new timestamp, bits 2-3 sequence number skip), a length
// byte and the payload.
func FuzzVP8Depacketizer(f *testing.F) {
	var seed []byte
	add := func(flags byte, payload []byte) {
		seed = append(seed, flags, byte(len(payload)))
		seed = append(seed, payload...)
	}
	add(2, append([]byte{0x90, 0x80, 0x01}, keyFrame[:6]...))
	add(1, append([]byte{0x80, 0x80, 0x01}, keyFrame[6:]...))
	add(3, []byte{0x10, 0x31, 0x02, 0x00, 0xee})
	f.Add(seed)
	f.Add([]byte{3, 2, 0x80, 0xe0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := &Depacketizer{MaxFrameSize: 1024}
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
			d.Push(seq, ts, flags&1 != 0, payload, func(f Frame) {
				if len(f.Data) < 3 || len(f.Data) > 1024 {
					t.Fatalf("frame of %d bytes", len(f.Data))
				}
				if f.KeyFrame != (f.Data[0]&1 == 0) {
					t.Fatalf("KeyFrame %v for frame tag %x", f.KeyFrame, f.Data[0])
				}
			})
		}
		st := d.Stats()
		if st.Frames+st.Damaged > st.Packets {
			t.Fatalf("%d frames and %d damaged from %d packets", st.Frames, st.Damaged, st.Packets)
		}
	})
}
