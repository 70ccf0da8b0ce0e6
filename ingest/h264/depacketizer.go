package h264

import "github.com/vigil-video/vigil/ingest/rtpseq"

// DefaultMaxAccessUnitSize bounds an access unit when
// Depacketizer.MaxAccessUnitSize is 0.
const DefaultMaxAccessUnitSize = 8 << 20

// AccessUnit is one picture reassembled from RTP packets.
type AccessUnit struct {
	// Data holds the NAL units in Annex-B form (4-byte start codes). It is
	// only valid until the next call to Push.
	Data []byte
	// Timestamp is the RTP timestamp shared by the access unit's packets.
	Timestamp uint32
	// KeyFrame reports an IDR picture. The Depacketizer puts the last SPS and
	// PPS it saw in front of an IDR picture that lacks them.
	KeyFrame bool
}

// DepacketizerStats counts what a Depacketizer saw.
type DepacketizerStats struct {
	// Packets is the number of packets pushed.
	Packets uint64
	// Lost is the number of packets missing from the sequence numbers.
	Lost uint64
	// Late is the number of packets that came with an old or repeated
	// sequence number; they are dropped.
	Late uint64
	// Malformed is the number of packets that could not be parsed or use a
	// packetization mode other than single NAL, STAP-A and FU-A.
	Malformed uint64
	// Damaged is the number of access units dropped because a packet of
	// theirs was lost, malformed or made them exceed the size bound.
	Damaged uint64
	// AccessUnits is the number of access units emitted.
	AccessUnits uint64
}

// Depacketizer reassembles H.264 access units from the RTP packets of one
// stream, as RFC 6184 packetizes them in non-interleaved mode (single NAL
// unit packets, STAP-A and FU-A). An access unit ends at a packet with the
// marker bit or when the timestamp changes. An access unit that lost data is
// dropped whole and counted in Stats().Damaged; the caller should then ask
// the sender for a key frame. The zero value is ready to use; a
// Depacketizer is not safe for concurrent use.
//
// See https://www.rfc-editor.org/rfc/rfc6184.
type Depacketizer struct {
	// MaxAccessUnitSize bounds the size of an access unit in bytes. It
	// defaults to DefaultMaxAccessUnitSize (8 MiB).
	MaxAccessUnitSize int

	stats DepacketizerStats

	au      []byte // Annex-B access unit being built
	out     []byte // last emitted access unit, with parameter sets added
	ts      uint32
	started bool // au belongs to ts (at least one packet seen for it)
	damaged bool
	hasIDR  bool
	hasSPS  bool
	hasPPS  bool

	inFU    bool
	fuStart int // offset in au of the FU's NAL unit start code

	seq rtpseq.Tracker

	sps, pps []byte
}

// Stats returns the counters so far.
func (d *Depacketizer) Stats() DepacketizerStats { return d.stats }

func (d *Depacketizer) maxSize() int {
	if d.MaxAccessUnitSize > 0 {
		return d.MaxAccessUnitSize
	}
	return DefaultMaxAccessUnitSize
}

// Push adds one RTP packet: its sequence number, timestamp, marker bit and
// payload. emit is called for each access unit the packet completes (at
// most two: the previous one when the timestamp changed without a marker,
// and this one). It returns the number of packets found missing before this
// one (also counted in Stats().Lost). payload may be reused after Push
// returns.
func (d *Depacketizer) Push(seq uint16, ts uint32, marker bool, payload []byte, emit func(AccessUnit)) (lost int) {
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
		// A new timestamp ends the previous access unit, marker or not. If
		// packets were lost, they may have belonged to either access unit:
		// both are treated as damaged.
		d.finish(emit)
	}
	if !d.started {
		d.reset(ts)
		d.damaged = lost > 0
	}
	d.add(payload)
	if marker {
		d.finish(emit)
	}
	return lost
}

func (d *Depacketizer) reset(ts uint32) {
	d.au = d.au[:0]
	d.ts, d.started = ts, true
	d.damaged, d.hasIDR, d.hasSPS, d.hasPPS, d.inFU = false, false, false, false, false
}

// finish emits the current access unit unless it is damaged or empty, and
// starts over.
func (d *Depacketizer) finish(emit func(AccessUnit)) {
	if !d.started {
		return
	}
	if d.inFU {
		// A fragmented NAL unit without its end.
		d.damaged = true
		d.au = d.au[:d.fuStart]
	}
	switch {
	case d.damaged:
		d.stats.Damaged++
	case len(d.au) > 0:
		data := d.au
		if d.hasIDR && (!d.hasSPS || !d.hasPPS) && d.sps != nil && d.pps != nil {
			d.out = AppendAnnexB(d.out[:0], d.sps, d.pps)
			d.out = append(d.out, d.au...)
			data = d.out
		}
		d.stats.AccessUnits++
		emit(AccessUnit{Data: data, Timestamp: d.ts, KeyFrame: d.hasIDR})
	}
	d.au = d.au[:0]
	d.started, d.damaged, d.inFU = false, false, false
}

// add parses one payload into the current access unit.
func (d *Depacketizer) add(p []byte) {
	if len(p) == 0 {
		d.malformed()
		return
	}
	switch t := Type(p[0]); {
	case t >= 1 && t <= 23:
		if d.inFU { // a fragmented NAL unit was cut short
			d.au = d.au[:d.fuStart]
			d.inFU = false
			d.damaged = true
		}
		d.addNAL(p)
	case t == NALUTypeSTAPA:
		if d.inFU {
			d.au = d.au[:d.fuStart]
			d.inFU = false
			d.damaged = true
		}
		d.addSTAPA(p[1:])
	case t == NALUTypeFUA:
		d.addFUA(p)
	default:
		// STAP-B, MTAP and FU-B need interleaved mode; 0, 30 and 31 are
		// undefined.
		d.malformed()
	}
}

func (d *Depacketizer) malformed() {
	d.stats.Malformed++
	d.damaged = true
}

func (d *Depacketizer) fits(n int) bool {
	if len(d.au)+n > d.maxSize() {
		d.damaged = true
		d.inFU = false
		d.au = d.au[:0]
		return false
	}
	return true
}

func (d *Depacketizer) addNAL(nal []byte) {
	if len(nal) == 0 {
		return
	}
	if !d.fits(len(startCode) + len(nal)) {
		return
	}
	d.au = AppendAnnexB(d.au, nal)
	d.note(nal)
}

// note records what kind of NAL unit the access unit holds and keeps the
// parameter sets for IDR pictures that come without them.
func (d *Depacketizer) note(nal []byte) {
	switch TypeOf(nal) {
	case NALUTypeIDR:
		d.hasIDR = true
	case NALUTypeSPS:
		d.hasSPS = true
		d.sps = append(d.sps[:0], nal...)
	case NALUTypePPS:
		d.hasPPS = true
		d.pps = append(d.pps[:0], nal...)
	}
}

// addSTAPA adds the NAL units of a STAP-A payload (RFC 6184 section
// 5.7.1): each is prefixed by a 16-bit size.
func (d *Depacketizer) addSTAPA(p []byte) {
	if len(p) == 0 {
		d.malformed()
		return
	}
	for len(p) > 0 {
		if len(p) < 2 {
			d.malformed()
			return
		}
		n := int(p[0])<<8 | int(p[1])
		p = p[2:]
		if n == 0 || n > len(p) {
			d.malformed()
			return
		}
		d.addNAL(p[:n])
		p = p[n:]
	}
}

// addFUA adds one FU-A fragment (RFC 6184 section 5.8): the FU indicator
// carries F and NRI, the FU header the S and E bits and the NAL unit type.
func (d *Depacketizer) addFUA(p []byte) {
	if len(p) < 3 {
		d.malformed()
		d.inFU = false
		return
	}
	ind, hdr, body := p[0], p[1], p[2:]
	start, end := hdr&0x80 != 0, hdr&0x40 != 0
	switch {
	case start:
		if d.inFU { // the previous fragmented NAL unit never ended
			d.au = d.au[:d.fuStart]
			d.damaged = true
		}
		if !d.fits(len(startCode) + 1 + len(body)) {
			return
		}
		d.fuStart = len(d.au)
		d.au = append(d.au, startCode...)
		d.au = append(d.au, ind&0xe0|hdr&0x1f)
		d.au = append(d.au, body...)
		d.inFU = true
	case !d.inFU:
		// A middle or end fragment whose start is gone: dropped, and the
		// access unit with it.
		d.damaged = true
		return
	default:
		if !d.fits(len(body)) {
			return
		}
		d.au = append(d.au, body...)
	}
	if end {
		d.inFU = false
		d.note(d.au[d.fuStart+len(startCode):])
	}
}
