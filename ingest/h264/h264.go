// Package h264 splits and converts H.264 byte streams and reassembles H.264
// access units from RTP packets (RFC 6184).
//
// Bytes enter as Annex-B streams (start-code delimited), AVCC/avcC samples
// (length-prefixed, as MP4 stores them) or RTP payloads pushed into a
// Depacketizer; they leave as NAL unit slices, converted buffers, or
// Annex-B access units. The package does no I/O and starts no goroutines,
// and no input makes it panic: it is fuzzed.
package h264

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// NALUType is the nal_unit_type of a NAL unit header (ITU-T H.264 table 7-1),
// extended with the RTP aggregation and fragmentation types of RFC 6184.
type NALUType uint8

// NAL unit types Vigil looks at.
const (
	NALUTypeSlice NALUType = 1  // coded slice of a non-IDR picture
	NALUTypeIDR   NALUType = 5  // coded slice of an IDR picture
	NALUTypeSEI   NALUType = 6  // supplemental enhancement information
	NALUTypeSPS   NALUType = 7  // sequence parameter set
	NALUTypePPS   NALUType = 8  // picture parameter set
	NALUTypeAUD   NALUType = 9  // access unit delimiter
	NALUTypeSTAPA NALUType = 24 // RFC 6184 single-time aggregation packet
	NALUTypeFUA   NALUType = 28 // RFC 6184 fragmentation unit
)

// Type returns the type of the NAL unit whose first (header) byte is b.
func Type(b byte) NALUType { return NALUType(b & 0x1f) }

// TypeOf returns the type of nal, 0 for an empty slice.
func TypeOf(nal []byte) NALUType {
	if len(nal) == 0 {
		return 0
	}
	return Type(nal[0])
}

// IsVCL reports whether t carries coded picture data (types 1 to 5).
func (t NALUType) IsVCL() bool { return t >= 1 && t <= 5 }

// ContainsIDR reports whether one of nals is an IDR slice, which makes the
// access unit a key frame.
func ContainsIDR(nals [][]byte) bool {
	for _, n := range nals {
		if TypeOf(n) == NALUTypeIDR {
			return true
		}
	}
	return false
}

// ErrTruncated is returned when a length prefix points past the end of the
// buffer.
var ErrTruncated = errors.New("truncated NAL unit")

// SplitAnnexB appends to dst the NAL units of the Annex-B byte stream b and
// returns the extended slice. Start codes are 00 00 01 and 00 00 00 01; bytes
// before the first start code, empty NAL units and trailing zero bytes are
// dropped. The returned slices alias b.
func SplitAnnexB(dst [][]byte, b []byte) [][]byte {
	start := -1 // start of the current NAL unit, -1 before the first start code
	zeros := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == 0 {
			zeros++
			continue
		}
		if c == 1 && zeros >= 2 {
			if start >= 0 {
				dst = appendNAL(dst, b[start:i-zeros])
			}
			start = i + 1
		}
		zeros = 0
	}
	if start >= 0 {
		dst = appendNAL(dst, b[start:])
	}
	return dst
}

func appendNAL(dst [][]byte, nal []byte) [][]byte {
	for len(nal) > 0 && nal[len(nal)-1] == 0 {
		nal = nal[:len(nal)-1]
	}
	if len(nal) == 0 {
		return dst
	}
	return append(dst, nal)
}

// SplitAVCC appends to dst the NAL units of b, a sample whose NAL units are
// each prefixed by a big-endian length of lengthSize bytes (1, 2, 3 or 4, from
// the avcC record). The returned slices alias b.
func SplitAVCC(dst [][]byte, b []byte, lengthSize int) ([][]byte, error) {
	if lengthSize < 1 || lengthSize > 4 {
		return dst, fmt.Errorf("splitting AVCC: length size %d is not 1 to 4", lengthSize)
	}
	for len(b) > 0 {
		if len(b) < lengthSize {
			return dst, fmt.Errorf("splitting AVCC: %d bytes left for a %d-byte length: %w", len(b), lengthSize, ErrTruncated)
		}
		var n uint64
		for _, c := range b[:lengthSize] {
			n = n<<8 | uint64(c)
		}
		b = b[lengthSize:]
		if n > uint64(len(b)) {
			return dst, fmt.Errorf("splitting AVCC: NAL unit of %d bytes with %d left: %w", n, len(b), ErrTruncated)
		}
		if n > 0 {
			dst = append(dst, b[:n])
		}
		b = b[n:]
	}
	return dst, nil
}

var startCode = []byte{0, 0, 0, 1}

// AppendAnnexB appends nals to dst, each behind a 4-byte start code.
func AppendAnnexB(dst []byte, nals ...[]byte) []byte {
	for _, n := range nals {
		dst = append(dst, startCode...)
		dst = append(dst, n...)
	}
	return dst
}

// AVCCToAnnexB appends to dst the length-prefixed sample b rewritten with
// 4-byte start codes.
func AVCCToAnnexB(dst, b []byte, lengthSize int) ([]byte, error) {
	var arr [16][]byte
	nals, err := SplitAVCC(arr[:0], b, lengthSize)
	if err != nil {
		return dst, err
	}
	return AppendAnnexB(dst, nals...), nil
}

// AnnexBToAVCC appends to dst the Annex-B stream b rewritten with 4-byte
// big-endian length prefixes.
func AnnexBToAVCC(dst, b []byte) []byte {
	var arr [16][]byte
	for _, n := range SplitAnnexB(arr[:0], b) {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(n)))
		dst = append(dst, n...)
	}
	return dst
}

// DecoderConfig is what an AVCDecoderConfigurationRecord (MP4's avcC box,
// ISO/IEC 14496-15 5.3.3.1) says: the parameter sets and the size of the
// samples' length prefixes.
type DecoderConfig struct {
	// ProfileIDC, ConstraintFlags and LevelIDC repeat the first SPS's
	// profile_idc, constraint_set flags and level_idc.
	ProfileIDC, ConstraintFlags, LevelIDC uint8
	// LengthSize is the size of each NAL unit's length prefix, 1 to 4.
	LengthSize int
	// SPS and PPS are the parameter sets; they alias the parsed record.
	SPS, PPS [][]byte
}

// ParseDecoderConfig parses an avcC record. Annex-B extradata (what RTP
// sources give) is not one: IsAVCC tells them apart.
func ParseDecoderConfig(b []byte) (DecoderConfig, error) {
	var c DecoderConfig
	if len(b) < 7 {
		return c, fmt.Errorf("parsing avcC: %d bytes, want at least 7: %w", len(b), ErrTruncated)
	}
	if b[0] != 1 {
		return c, fmt.Errorf("parsing avcC: configurationVersion %d, want 1", b[0])
	}
	c.ProfileIDC, c.ConstraintFlags, c.LevelIDC = b[1], b[2], b[3]
	c.LengthSize = int(b[4]&3) + 1
	rest := b[5:]
	readSets := func(what string) ([][]byte, error) {
		if len(rest) < 1 {
			return nil, fmt.Errorf("parsing avcC: no %s count: %w", what, ErrTruncated)
		}
		count := int(rest[0])
		if what == "SPS" {
			count &= 0x1f
		}
		rest = rest[1:]
		var sets [][]byte
		for i := range count {
			if len(rest) < 2 {
				return nil, fmt.Errorf("parsing avcC: %s %d of %d: %w", what, i+1, count, ErrTruncated)
			}
			n := int(binary.BigEndian.Uint16(rest))
			if len(rest)-2 < n {
				return nil, fmt.Errorf("parsing avcC: %s %d of %d is %d bytes with %d left: %w", what, i+1, count, n, len(rest)-2, ErrTruncated)
			}
			if n > 0 {
				sets = append(sets, rest[2:2+n])
			}
			rest = rest[2+n:]
		}
		return sets, nil
	}
	var err error
	if c.SPS, err = readSets("SPS"); err != nil {
		return c, err
	}
	if c.PPS, err = readSets("PPS"); err != nil {
		return c, err
	}
	return c, nil
}

// IsAVCC reports whether extradata is an avcC record rather than Annex-B
// parameter sets (which start with a start code).
func IsAVCC(extradata []byte) bool {
	return len(extradata) >= 7 && extradata[0] == 1
}
