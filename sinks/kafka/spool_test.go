package kafka

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
)

func spoolMsgs(from, n int) []kafkago.Message {
	out := make([]kafkago.Message, n)
	for i := range out {
		out[i] = kafkago.Message{
			Topic: testDetections, Key: []byte("cam"), Value: fmt.Appendf(nil, `{"seq":%d,"pad":"%0200d"}`, from+i, 0),
			Headers: headers(fmt.Sprintf("cam/%d", from+i)),
		}
	}
	return out
}

// drainSpool peeks and commits everything, returning the message IDs in
// order.
func drainSpool(t *testing.T, s *spool) []string {
	t.Helper()
	var ids []string
	for s.count > 0 {
		recs, err := s.peek(7, 1<<20)
		require.NoError(t, err)
		require.NotEmpty(t, recs)
		for _, r := range recs {
			ids = append(ids, header(r.msg, HeaderMessageID))
		}
		require.NoError(t, s.commit(recs))
	}
	return ids
}

func seqIDs(from, to int) []string {
	var ids []string
	for i := from; i < to; i++ {
		ids = append(ids, fmt.Sprintf("cam/%d", i))
	}
	return ids
}

func TestSpoolOrderAndRestart(t *testing.T) {
	for _, fsync := range []string{FsyncAlways, FsyncBatch, FsyncNever} {
		t.Run(fsync, func(t *testing.T) {
			dir := t.TempDir()
			s, err := openSpool(dir, 1<<20, fsync)
			require.NoError(t, err)
			require.Less(t, s.segMax, int64(100<<10), "small bound, small segments")
			require.NoError(t, s.append(spoolMsgs(0, 300))) // several segments
			require.Greater(t, len(s.segs), 1)
			require.Equal(t, 300, s.count)

			// Acknowledge 10, read 5 more without acknowledging them, and
			// "crash" (close without the reads counting).
			recs, err := s.peek(10, 1<<20)
			require.NoError(t, err)
			require.NoError(t, s.commit(recs))
			_, err = s.peek(5, 1<<20)
			require.NoError(t, err)
			require.NoError(t, s.close())

			s, err = openSpool(dir, 1<<20, fsync)
			require.NoError(t, err)
			require.Equal(t, 290, s.count)
			require.NoError(t, s.append(spoolMsgs(300, 10)))
			require.Equal(t, seqIDs(10, 310), drainSpool(t, s))
			require.Zero(t, s.bytes)
			require.NoError(t, s.close())
			left, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
			require.NoError(t, err)
			require.Empty(t, left, "drained segments are deleted")
		})
	}
}

func TestSpoolPrependGoesFirst(t *testing.T) {
	s, err := openSpool(t.TempDir(), 1<<20, FsyncNever)
	require.NoError(t, err)
	require.NoError(t, s.append(spoolMsgs(20, 10)))
	recs, err := s.peek(3, 1<<20) // partly acknowledged first segment
	require.NoError(t, err)
	require.NoError(t, s.commit(recs))
	require.NoError(t, s.prepend(spoolMsgs(0, 20)))
	require.NoError(t, s.append(spoolMsgs(30, 5)))
	want := append(seqIDs(0, 20), seqIDs(23, 35)...)
	require.Equal(t, want, drainSpool(t, s))
	require.NoError(t, s.close())
}

func TestSpoolFullDropsOldest(t *testing.T) {
	s, err := openSpool(t.TempDir(), 64<<10, FsyncNever)
	require.NoError(t, err)
	dropped := 0
	s.onDrop = func(topic string, n int) {
		require.Equal(t, testDetections, topic)
		dropped += n
	}
	require.NoError(t, s.append(spoolMsgs(0, 1000)))
	require.LessOrEqual(t, s.bytes, int64(64<<10))
	require.Positive(t, dropped)
	require.Equal(t, 1000, dropped+s.count)
	ids := drainSpool(t, s)
	require.Equal(t, seqIDs(dropped, 1000), ids, "the newest survive, in order")
	require.NoError(t, s.close())
}

func TestSpoolDamagedTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"truncated mid-record", func(t *testing.T, path string) {
			st, err := os.Stat(path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, st.Size()-17))
		}},
		{"flipped byte", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			b[len(b)-30] ^= 0x40
			require.NoError(t, os.WriteFile(path, b, 0o644))
		}},
		{"garbage length", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.Write([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6})
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := openSpool(dir, 1<<20, FsyncAlways)
			require.NoError(t, err)
			require.NoError(t, s.append(spoolMsgs(0, 20)))
			path := filepath.Join(dir, s.tail.name())
			require.NoError(t, s.close())
			tc.damage(t, path)

			s, err = openSpool(dir, 1<<20, FsyncAlways)
			require.NoError(t, err)
			require.Equal(t, 1, s.corrupt)
			require.NoError(t, s.append(spoolMsgs(20, 2)))
			ids := drainSpool(t, s)
			survivors := 19
			if tc.name == "garbage length" {
				survivors = 20
			}
			require.Equal(t, append(seqIDs(0, survivors), seqIDs(20, 22)...), ids)
			require.NoError(t, s.close())
		})
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, m := range []kafkago.Message{
		spoolMsgs(5, 1)[0],
		{Topic: "t"},
		{Topic: "t", Key: []byte{}, Value: []byte("x"), Headers: []kafkago.Header{{Key: "k"}}},
	} {
		b := appendRecord(nil, &m)
		require.Len(t, b, recordSize(&m))
		n, sum, err := parseRecordHeader(b)
		require.NoError(t, err)
		require.Equal(t, len(b)-recordHeaderSize, n)
		require.NoError(t, checkPayload(b[recordHeaderSize:], sum))
		got, err := decodePayload(b[recordHeaderSize:])
		require.NoError(t, err)
		require.Equal(t, m.Topic, got.Topic)
		require.Equal(t, string(m.Key), string(got.Key))
		require.Equal(t, string(m.Value), string(got.Value))
		require.Len(t, got.Headers, len(m.Headers))
	}
}

func FuzzDecodePayload(f *testing.F) {
	m := spoolMsgs(1, 1)[0]
	f.Add(appendRecord(nil, &m)[recordHeaderSize:])
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add([]byte{1, 1, 'x', 0, 0, 200, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodePayload(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to a record that decodes the same.
		re := appendRecord(nil, &got)
		again, err := decodePayload(re[recordHeaderSize:])
		require.NoError(t, err)
		require.Equal(t, got, again)
	})
}
