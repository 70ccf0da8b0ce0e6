package vp8

import "github.com/vigil-video/vigil/ingest/rtpseq"

// Frame is one VP8 frame reassembled from RTP packets.
type Frame struct {
	// Data is the VP8 frame without payload descriptors. It is only valid
	// until the next call to Push.
	Data []byte
	// Timestamp is the RTP timestamp of the frame's packets.
	Timestamp uint32
	FrameInfo
}

// DepacketizerStats counts what a Depacketizer saw.
type DepacketizerStats struct {
	// Packets is the number of packets pushed.
	Packets uint64
	// Lost is the number of packets missing from the sequence numbers.
	Lost uint64
	// Late is the number of packets with an old or repeated sequence
	// number; they are dropped.
	Late uint64
	// Malformed is the number of packets whose descriptor or frame header
	// could not be parsed.
	Malformed uint64
	// Damaged is the number of frames dropped because a packet of theirs
	// was lost or malformed, or they exceeded the size bound.
	Damaged uint64
	// Frames is the number of frames emitted.
	Frames uint64
}

// Depacketizer reassembles VP8 frames from the RTP packets of one stream
// (RFC 7741 section 4). A frame starts at a packet with the S bit and
// partition ID 0 and ends at the marker bit or a timestamp change. A frame
// that lost a packet is dropped whole and counted in Stats().Damaged; the
// caller should then ask the sender for a key frame. The zero value is
// ready to use; a Depacketizer is not safe for concurrent use.
//
// See https://www.rfc-editor.org/rfc/rfc7741.
type Depacketizer struct {
	// MaxFrameSize bounds a frame in bytes. It defaults to
	// DefaultMaxFrameSize (8 MiB).
	MaxFrameSize int

	stats   DepacketizerStats
	buf     []byte
	ts      uint32
	started bool // a frame with timestamp ts is being built
	damaged bool
	seq     rtpseq.Tracker
}

// Stats returns the counters so far.
func (d *Depacketizer) Stats() DepacketizerStats { return d.stats }

// Push adds one RTP packet. emit is called for each frame the packet
// completes (at most two). It returns the number of packets found missing
// before this one. payload may be reused after Push returns.
func (d *Depacketizer) Push(seq uint16, ts uint32, marker bool, payload []byte, emit func(Frame)) (lost int) {
	d.stats.Packets++
	st := d.seq.Observe(seq)
	if st.Late {
		d.stats.Late++
		return 0
	}
	if st.Lost > 0 {
		lost = st.Lost
		d.stats.Lost += uint64(lost)
	}
	if d.started && (st.Lost > 0 || st.Restart) {
		d.damaged = true
	}

	if d.started && ts != d.ts {
		d.finish(emit)
	}
	desc, err := ParseDescriptor(payload)
	if err != nil {
		d.stats.Malformed++
		if !d.started {
			d.begin(ts)
		}
		d.damaged = true
	} else {
		body := payload[desc.Size:]
		if desc.Start && desc.PartitionID == 0 {
			if d.started {
				// A new frame with the same timestamp: the previous one
				// never got its marker.
				d.finish(emit)
			}
			// Lost packets before a frame start belonged to the previous
			// frame, which finish dropped.
			d.begin(ts)
		} else if !d.started {
			// A continuation whose frame start is gone.
			d.begin(ts)
			d.damaged = true
		}
		switch {
		case d.damaged:
		case len(d.buf)+len(body) > d.maxSize():
			d.damaged = true
			d.buf = d.buf[:0]
		default:
			d.buf = append(d.buf, body...)
		}
	}
	if marker {
		d.finish(emit)
	}
	return lost
}

func (d *Depacketizer) maxSize() int {
	if d.MaxFrameSize > 0 {
		return d.MaxFrameSize
	}
	return DefaultMaxFrameSize
}

func (d *Depacketizer) begin(ts uint32) {
	d.buf = d.buf[:0]
	d.ts, d.started, d.damaged = ts, true, false
}

func (d *Depacketizer) finish(emit func(Frame)) {
	if !d.started {
		return
	}
	d.started = false
	if d.damaged {
		d.stats.Damaged++
		return
	}
	info, ok := ParseFrameHeader(d.buf)
	if !ok {
		d.stats.Malformed++
		d.stats.Damaged++
		return
	}
	d.stats.Frames++
	emit(Frame{Data: d.buf, Timestamp: d.ts, FrameInfo: info})
}
