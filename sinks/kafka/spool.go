package kafka

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Fsync policies for the spool.
const (
	FsyncAlways = "always"
	FsyncBatch  = "batch"
	FsyncNever  = "never"
)

const (
	segmentSuffix = ".seg"
	ackFile       = "ack"
	// firstSegmentID leaves room below for segments put in front of the
	// spool (prepend), which take decreasing IDs.
	firstSegmentID = 1 << 40
	// ackWriteEvery throttles rewriting the ack file; a crash in between
	// only means messages acknowledged meanwhile are sent again.
	ackWriteEvery = time.Second
)

// spool is an on-disk FIFO of Kafka messages: append-only segment files
// named by a 20-digit ID, read oldest first. Each segment remembers how far
// it was acknowledged (off); the ack file keeps that across restarts. It is
// owned by one goroutine and not safe for concurrent use.
type spool struct {
	dir    string
	max    int64 // bound on unacknowledged bytes
	segMax int64
	fsync  string

	segs []*segment // oldest first
	tail *segment   // the segment open for appends, last of segs, or nil
	f    *os.File   // tail's file
	bw   *bufio.Writer
	// dirty is set by writes not yet fsynced.
	dirty bool

	bytes int64 // unacknowledged bytes
	count int   // unacknowledged records

	rd struct {
		seg *segment
		pos int64
		f   *os.File
		br  *bufio.Reader
	}
	buf     []byte
	ackSent time.Time
	ackDone bool // the ack file matches the segments

	// corrupt counts records found damaged, each skipped with what
	// follows it in its segment.
	corrupt int
	// onDrop is told of each message dropped to make room.
	onDrop func(topic string, n int)
}

type segment struct {
	id     uint64
	size   int64 // bytes of valid records
	off    int64 // first unacknowledged byte
	count  int   // records
	acked  int   // records before off
	topics map[string]int
	// ackedTopics counts the acknowledged records per topic.
	ackedTopics map[string]int
}

func (g *segment) name() string { return fmt.Sprintf("%020d%s", g.id, segmentSuffix) }

// spoolRecord is a message read from the spool and where it ends.
type spoolRecord struct {
	msg kafkago.Message
	seg *segment
	end int64
}

// openSpool opens or creates the spool in dir, checking every record; a
// damaged record and the rest of its segment are cut off and counted in
// corrupt.
func openSpool(dir string, maxBytes int64, fsync string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating spool %s: %w", dir, err)
	}
	s := &spool{
		dir: dir, max: maxBytes, fsync: fsync,
		segMax: min(max(maxBytes/16, 64<<10), 16<<20),
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading spool %s: %w", dir, err)
	}
	acks := s.readAck()
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil {
			continue
		}
		g, err := s.scan(id, acks[id])
		if err != nil {
			return nil, err
		}
		if g.off >= g.size {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("removing spool segment: %w", err)
			}
			continue
		}
		s.segs = append(s.segs, g)
		s.bytes += g.size - g.off
		s.count += g.count - g.acked
	}
	slices.SortFunc(s.segs, func(a, b *segment) int { return cmpUint(a.id, b.id) })
	return s, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scan reads segment id, counting its records, and truncates it at the
// first damaged one. ack is the persisted acknowledged offset; it counts
// only if it falls on a record boundary.
func (s *spool) scan(id uint64, ack int64) (*segment, error) {
	g := &segment{id: id, topics: map[string]int{}, ackedTopics: map[string]int{}}
	path := filepath.Join(s.dir, g.name())
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening spool segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("opening spool segment: %w", err)
	}
	br := bufio.NewReaderSize(f, 256<<10)
	var pos int64
	ackAt := ack == 0
	for pos < st.Size() {
		m, n, err := s.readRecord(br, st.Size()-pos)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				return nil, fmt.Errorf("reading spool segment %s: %w", path, err)
			}
			s.corrupt++
			if err := os.Truncate(path, pos); err != nil {
				return nil, fmt.Errorf("truncating damaged spool segment %s: %w", path, err)
			}
			break
		}
		pos += n
		g.count++
		g.topics[m.Topic]++
		if !ackAt && pos <= ack {
			g.acked++
			g.ackedTopics[m.Topic]++
			ackAt = pos == ack
		}
	}
	g.size = pos
	if ackAt {
		g.off = ack
	} else { // not a boundary: send the segment again
		g.acked = 0
		clear(g.ackedTopics)
	}
	return g, nil
}

// readRecord reads one record of at most limit bytes and returns its size.
// A short or damaged record is errCorrupt.
func (s *spool) readRecord(br *bufio.Reader, limit int64) (kafkago.Message, int64, error) {
	var hdr [recordHeaderSize]byte
	if limit < recordHeaderSize {
		return kafkago.Message{}, 0, fmt.Errorf("%w: truncated header", errCorrupt)
	}
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return kafkago.Message{}, 0, readErr(err)
	}
	n, sum, err := parseRecordHeader(hdr[:])
	if err != nil {
		return kafkago.Message{}, 0, err
	}
	if int64(n) > limit-recordHeaderSize {
		return kafkago.Message{}, 0, fmt.Errorf("%w: truncated payload", errCorrupt)
	}
	s.buf = slices.Grow(s.buf[:0], n)[:n]
	if _, err := io.ReadFull(br, s.buf); err != nil {
		return kafkago.Message{}, 0, readErr(err)
	}
	if err := checkPayload(s.buf, sum); err != nil {
		return kafkago.Message{}, 0, err
	}
	m, err := decodePayload(s.buf)
	if err != nil {
		return kafkago.Message{}, 0, err
	}
	return m, int64(recordHeaderSize + n), nil
}

func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated", errCorrupt)
	}
	return err
}

// readAck reads the acknowledged offsets by segment ID; a missing or
// unreadable file means nothing was acknowledged.
func (s *spool) readAck() map[uint64]int64 {
	acks := map[uint64]int64{}
	b, err := os.ReadFile(filepath.Join(s.dir, ackFile))
	if err != nil {
		return acks
	}
	for line := range strings.Lines(string(b)) {
		id, off, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		i, err1 := strconv.ParseUint(id, 10, 64)
		o, err2 := strconv.ParseInt(off, 10, 64)
		if err1 == nil && err2 == nil && o > 0 {
			acks[i] = o
		}
	}
	return acks
}

// writeAck records the acknowledged offsets, replacing the file atomically.
func (s *spool) writeAck() error {
	var b strings.Builder
	for _, g := range s.segs {
		if g.off > 0 {
			fmt.Fprintf(&b, "%d %d\n", g.id, g.off)
		}
	}
	path := filepath.Join(s.dir, ackFile)
	if b.Len() == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing spool ack file: %w", err)
		}
		s.ackDone = true
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing spool ack file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing spool ack file: %w", err)
	}
	s.ackDone = true
	return nil
}

// append adds msgs at the end of the spool, dropping the oldest messages
// when it would grow past its bound.
func (s *spool) append(msgs []kafkago.Message) error {
	for i := range msgs {
		m := &msgs[i]
		size := int64(recordSize(m))
		s.makeRoom(size)
		if size > s.max {
			s.drop(m.Topic, 1)
			continue
		}
		if s.tail != nil && s.tail.size > 0 && s.tail.size+size > s.segMax {
			if err := s.closeTail(); err != nil {
				return err
			}
		}
		if s.tail == nil {
			if err := s.newTail(); err != nil {
				return err
			}
		}
		s.buf = appendRecord(s.buf[:0], m)
		if _, err := s.bw.Write(s.buf); err != nil {
			return fmt.Errorf("writing spool segment %s: %w", s.tail.name(), err)
		}
		s.tail.size += size
		s.tail.count++
		s.tail.topics[m.Topic]++
		s.bytes += size
		s.count++
		s.dirty = true
	}
	if s.fsync == FsyncAlways {
		return s.sync()
	}
	return nil
}

// prepend puts msgs in front of everything in the spool, in a segment of
// their own.
func (s *spool) prepend(msgs []kafkago.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if s.count == 0 {
		return s.append(msgs)
	}
	g := &segment{id: s.segs[0].id - 1, topics: map[string]int{}, ackedTopics: map[string]int{}}
	var buf []byte
	for i := range msgs {
		buf = appendRecord(buf, &msgs[i])
		g.count++
		g.topics[msgs[i].Topic]++
	}
	g.size = int64(len(buf))
	path := filepath.Join(s.dir, g.name())
	if err := s.writeFile(path, buf); err != nil {
		return fmt.Errorf("writing spool segment %s: %w", path, err)
	}
	s.segs = slices.Insert(s.segs, 0, g)
	s.bytes += g.size
	s.count += g.count
	// Past the bound the oldest go first, even these.
	s.makeRoom(0)
	return nil
}

func (s *spool) writeFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && s.fsync != FsyncNever {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// makeRoom drops the oldest segments until size more bytes fit.
func (s *spool) makeRoom(size int64) {
	for s.bytes+size > s.max && len(s.segs) > 0 {
		g := s.segs[0]
		if g == s.tail {
			_ = s.closeTail()
		}
		for topic, n := range g.topics {
			if n -= g.ackedTopics[topic]; n > 0 {
				s.drop(topic, n)
			}
		}
		s.removeFirst()
	}
}

func (s *spool) drop(topic string, n int) {
	if s.onDrop != nil {
		s.onDrop(topic, n)
	}
}

// removeFirst deletes the oldest segment.
func (s *spool) removeFirst() {
	g := s.segs[0]
	if s.rd.seg == g {
		s.closeReader()
	}
	s.segs = s.segs[1:]
	s.bytes -= g.size - g.off
	s.count -= g.count - g.acked
	s.ackDone = false
	_ = os.Remove(filepath.Join(s.dir, g.name()))
}

func (s *spool) newTail() error {
	id := uint64(firstSegmentID)
	if len(s.segs) > 0 {
		id = s.segs[len(s.segs)-1].id + 1
	}
	g := &segment{id: id, topics: map[string]int{}, ackedTopics: map[string]int{}}
	f, err := os.OpenFile(filepath.Join(s.dir, g.name()), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("creating spool segment: %w", err)
	}
	s.segs = append(s.segs, g)
	s.tail, s.f = g, f
	if s.bw == nil {
		s.bw = bufio.NewWriterSize(f, 256<<10)
	} else {
		s.bw.Reset(f)
	}
	return nil
}

// closeTail flushes, syncs (unless never) and closes the tail segment.
func (s *spool) closeTail() error {
	if s.tail == nil {
		return nil
	}
	err := s.bw.Flush()
	if err == nil && s.fsync != FsyncNever && s.dirty {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.tail, s.f, s.dirty = nil, nil, false
	if err != nil {
		return fmt.Errorf("closing spool segment: %w", err)
	}
	return nil
}

// flush hands buffered appends to the OS.
func (s *spool) flush() error {
	if s.tail == nil {
		return nil
	}
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("writing spool segment %s: %w", s.tail.name(), err)
	}
	return nil
}

// sync flushes and fsyncs the tail if it was written to.
func (s *spool) sync() error {
	if err := s.flush(); err != nil {
		return err
	}
	if s.tail == nil || !s.dirty {
		return nil
	}
	s.dirty = false
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("syncing spool segment %s: %w", s.tail.name(), err)
	}
	return nil
}

// peek reads up to maxN records and about maxBytes from the oldest
// unacknowledged one on, without acknowledging them. A damaged record is
// counted and skipped with the rest of its segment.
func (s *spool) peek(maxN int, maxBytes int) ([]spoolRecord, error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	var out []spoolRecord
	size := 0
	for _, g := range s.segs {
		pos := g.off
		for pos < g.size && len(out) < maxN {
			if err := s.seek(g, pos); err != nil {
				return out, err
			}
			m, n, err := s.readRecord(s.rd.br, g.size-pos)
			if err != nil {
				s.closeReader()
				if !errors.Is(err, errCorrupt) {
					return out, fmt.Errorf("reading spool segment %s: %w", g.name(), err)
				}
				// Damaged after Open: acknowledge the rest of the segment
				// as lost.
				s.corrupt++
				kept := g.acked + countIn(out, g)
				s.bytes -= g.size - pos
				s.count -= g.count - kept
				g.size, g.count = pos, kept
				if g == s.tail {
					if err := s.closeTail(); err != nil {
						return out, err
					}
				}
				_ = os.Truncate(filepath.Join(s.dir, g.name()), pos)
				break
			}
			if len(out) > 0 && size+int(n) > maxBytes {
				return out, nil
			}
			pos += n
			s.rd.pos = pos
			size += int(n)
			out = append(out, spoolRecord{msg: m, seg: g, end: pos})
		}
		if len(out) >= maxN {
			break
		}
	}
	return out, nil
}

func countIn(recs []spoolRecord, g *segment) int {
	n := 0
	for _, r := range recs {
		if r.seg == g {
			n++
		}
	}
	return n
}

func (s *spool) seek(g *segment, pos int64) error {
	if s.rd.seg == g && s.rd.pos == pos {
		return nil
	}
	if s.rd.seg != g {
		s.closeReader()
		f, err := os.Open(filepath.Join(s.dir, g.name()))
		if err != nil {
			return fmt.Errorf("opening spool segment: %w", err)
		}
		s.rd.f, s.rd.seg = f, g
		if s.rd.br == nil {
			s.rd.br = bufio.NewReaderSize(f, 256<<10)
		}
	}
	if _, err := s.rd.f.Seek(pos, io.SeekStart); err != nil {
		s.closeReader()
		return fmt.Errorf("seeking spool segment %s: %w", g.name(), err)
	}
	s.rd.br.Reset(s.rd.f)
	s.rd.pos = pos
	return nil
}

func (s *spool) closeReader() {
	if s.rd.f != nil {
		s.rd.f.Close()
	}
	s.rd.f, s.rd.seg, s.rd.pos = nil, nil, 0
}

// commit acknowledges recs, read by peek, and deletes segments that are
// fully acknowledged. Records whose segment was dropped meanwhile are
// ignored.
func (s *spool) commit(recs []spoolRecord) error {
	for _, r := range recs {
		g := r.seg
		if r.end <= g.off || !slices.Contains(s.segs, g) {
			continue
		}
		s.bytes -= r.end - g.off
		s.count--
		g.off = r.end
		g.acked++
		g.ackedTopics[r.msg.Topic]++
		s.ackDone = false
	}
	if err := s.trim(false); err != nil {
		return err
	}
	if !s.ackDone && time.Since(s.ackSent) >= ackWriteEvery {
		s.ackSent = time.Now()
		return s.writeAck()
	}
	return nil
}

// trim deletes the oldest segments while they are fully acknowledged. The
// tail stays open for appends unless withTail: in write-ahead mode every
// batch empties the spool, and a new file per batch would cost a create,
// an fsync and a delete each time.
func (s *spool) trim(withTail bool) error {
	for len(s.segs) > 0 && s.segs[0].off >= s.segs[0].size {
		if s.segs[0] == s.tail {
			if !withTail {
				break
			}
			s.dirty = false // acknowledged: no need to reach the disk
			if err := s.closeTail(); err != nil {
				return err
			}
		}
		s.removeFirst()
	}
	return nil
}

// close flushes, syncs (unless never), deletes acknowledged segments and
// records the acknowledged offsets.
func (s *spool) close() error {
	s.closeReader()
	err := s.trim(true)
	if cerr := s.closeTail(); err == nil {
		err = cerr
	}
	if aerr := s.writeAck(); err == nil {
		err = aerr
	}
	return err
}
