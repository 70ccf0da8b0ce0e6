// Package vp8 reassembles VP8 frames from RTP packets (RFC 7741).
//
// RTP payloads enter a Depacketizer with their sequence number, timestamp
// and marker bit; whole VP8 frames leave through a callback, with key frames
// flagged and their picture size read from the frame header (RFC 6386
// section 9.1). The package does no I/O and starts no goroutines, and no
// input makes it panic: it is fuzzed.
package vp8

import (
	"errors"
)

// DefaultMaxFrameSize bounds a frame when Depacketizer.MaxFrameSize is 0.
const DefaultMaxFrameSize = 8 << 20

// ErrShortDescriptor is returned by ParseDescriptor when the payload ends
// inside the payload descriptor.
var ErrShortDescriptor = errors.New("VP8 payload descriptor truncated")

// Descriptor is the VP8 payload descriptor of RFC 7741 section 4.2.
type Descriptor struct {
	// NonReference is the N bit: the frame can be discarded.
	NonReference bool
	// Start is the S bit: the payload starts a VP8 partition.
	Start bool
	// PartitionID is the PID field.
	PartitionID uint8
	// PictureID is the picture ID when HasPictureID (7 or 15 bits).
	PictureID    uint16
	HasPictureID bool
	// Size is the length of the descriptor in bytes; the VP8 data follows.
	Size int
}

// ParseDescriptor reads the payload descriptor at the start of an RTP payload.
func ParseDescriptor(p []byte) (Descriptor, error) {
	var d Descriptor
	if len(p) < 1 {
		return d, ErrShortDescriptor
	}
	b := p[0]
	d.NonReference = b&0x20 != 0
	d.Start = b&0x10 != 0
	d.PartitionID = b & 0x07
	i := 1
	if b&0x80 != 0 { // X: extension byte
		if len(p) < 2 {
			return d, ErrShortDescriptor
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture ID, 7 or 15 bits (M)
			if len(p) < i+1 {
				return d, ErrShortDescriptor
			}
			d.HasPictureID = true
			if p[i]&0x80 != 0 {
				if len(p) < i+2 {
					return d, ErrShortDescriptor
				}
				d.PictureID = uint16(p[i]&0x7f)<<8 | uint16(p[i+1])
				i += 2
			} else {
				d.PictureID = uint16(p[i])
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K: TID, Y, KEYIDX
			i++
		}
		if len(p) < i {
			return d, ErrShortDescriptor
		}
	}
	d.Size = i
	return d, nil
}

// FrameInfo is what the first bytes of a VP8 frame say about it (RFC 6386
// section 9.1).
type FrameInfo struct {
	// KeyFrame is true when the frame header's P bit is 0.
	KeyFrame bool
	// Width and Height are the picture size of a key frame, 0 otherwise.
	Width, Height int
}

// ParseFrameHeader reads the frame tag of a VP8 frame and, for a key frame
// with its start code, the picture size. ok is false when b is too short.
func ParseFrameHeader(b []byte) (info FrameInfo, ok bool) {
	if len(b) < 3 {
		return info, false
	}
	info.KeyFrame = b[0]&0x01 == 0
	if info.KeyFrame && len(b) >= 10 && b[3] == 0x9d && b[4] == 0x01 && b[5] == 0x2a {
		info.Width = int(b[6]) | int(b[7]&0x3f)<<8
		info.Height = int(b[8]) | int(b[9]&0x3f)<<8
	}
	return info, true
}
