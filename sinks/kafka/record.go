package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	kafkago "github.com/segmentio/kafka-go"
)

// A spool record on disk is
//
//	length  uint32 big-endian, bytes of payload
//	crc     uint32 big-endian, CRC-32C (Castagnoli) of payload
//	payload version byte 1, then uvarint-length-prefixed topic, key and
//	        value, a uvarint header count and each header's
//	        length-prefixed key and value.
const (
	recordHeaderSize = 8
	recordVersion    = 1
	// maxRecordSize rejects a corrupt length before it allocates.
	maxRecordSize = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a record whose bytes do not decode.
var errCorrupt = errors.New("corrupt spool record")

// appendRecord appends m's spool record to buf.
func appendRecord(buf []byte, m *kafkago.Message) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, recordHeaderSize)...)
	buf = append(buf, recordVersion)
	buf = appendBytes(buf, []byte(m.Topic))
	buf = appendBytes(buf, m.Key)
	buf = appendBytes(buf, m.Value)
	buf = binary.AppendUvarint(buf, uint64(len(m.Headers)))
	for _, h := range m.Headers {
		buf = appendBytes(buf, []byte(h.Key))
		buf = appendBytes(buf, h.Value)
	}
	payload := buf[start+recordHeaderSize:]
	binary.BigEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli))
	return buf
}

func appendBytes(buf, b []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	return append(buf, b...)
}

// recordSize is the size of m's spool record.
func recordSize(m *kafkago.Message) int {
	n := recordHeaderSize + 1 + uvarintLen(len(m.Topic)) + len(m.Topic) + uvarintLen(len(m.Key)) + len(m.Key) +
		uvarintLen(len(m.Value)) + len(m.Value) + uvarintLen(len(m.Headers))
	for _, h := range m.Headers {
		n += uvarintLen(len(h.Key)) + len(h.Key) + uvarintLen(len(h.Value)) + len(h.Value)
	}
	return n
}

func uvarintLen(n int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(n))
}

// decodePayload decodes a record's payload (after its length and CRC). The
// message's slices are copies, so payload may be reused.
func decodePayload(payload []byte) (kafkago.Message, error) {
	var m kafkago.Message
	if len(payload) == 0 || payload[0] != recordVersion {
		return m, fmt.Errorf("%w: unknown version", errCorrupt)
	}
	d := decoder{b: payload[1:]}
	m.Topic = string(d.bytes())
	m.Key = clone(d.bytes())
	m.Value = clone(d.bytes())
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each header takes at least two bytes
		return m, fmt.Errorf("%w: %d headers in %d bytes", errCorrupt, n, len(d.b))
	}
	if n > 0 {
		m.Headers = make([]kafkago.Header, n)
		for i := range m.Headers {
			m.Headers[i] = kafkago.Header{Key: string(d.bytes()), Value: clone(d.bytes())}
		}
	}
	if d.err != nil {
		return kafkago.Message{}, d.err
	}
	if len(d.b) != 0 {
		return kafkago.Message{}, fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	return m, nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad length", errCorrupt)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: field of %d bytes past the end", errCorrupt, n)
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

// parseRecordHeader returns the payload length and checksum of a record
// header, or errCorrupt for an impossible length.
func parseRecordHeader(h []byte) (int, uint32, error) {
	n := binary.BigEndian.Uint32(h)
	if n == 0 || n > maxRecordSize {
		return 0, 0, fmt.Errorf("%w: length %d", errCorrupt, n)
	}
	return int(n), binary.BigEndian.Uint32(h[4:]), nil
}

// checkPayload reports whether payload matches its checksum.
func checkPayload(payload []byte, sum uint32) error {
	if crc32.Checksum(payload, castagnoli) != sum {
		return fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	return nil
}
