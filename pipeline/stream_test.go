package pipeline

import (
	"context"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/decode"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// TestLiveQueueOverflowSkipsToKeyFrame overflows a live stream's packet
// queue: the dropped packets are counted, and the decoder resumes at the next
// key frame instead of decoding pictures whose references were lost.
func TestLiveQueueOverflowSkipsToKeyFrame(t *testing.T) {
	clip := shareddata.Path(t, "video/vtest_h264.mp4") // GOP 20: key frames at 0, 20, 40
	dmx, err := decode.OpenFile(clip)
	require.NoError(t, err)
	defer dmx.Close()

	p, err := New(Options{Logger: quietLogger()})
	require.NoError(t, err)
	s := &stream{cfg: streamCfg("s", "file://"+clip, 0), p: p, log: quietLogger()}
	units := make(chan unit, 4)
	out := &streamOutput{s: s, units: units, free: make(chan *frame.Packet, 8), live: true}
	slot := newFrameQueue(false)

	require.NoError(t, out.Params(dmx.Params()))
	next := func() *frame.Packet {
		var pkt frame.Packet
		require.NoError(t, dmx.ReadPacket(&pkt))
		return &pkt
	}
	// Nobody reads yet: packets 0-2 fill the queue behind the params, 3-9
	// are dropped.
	for range 10 {
		require.NoError(t, out.Packet(next()))
	}
	require.Equal(t, uint64(7), s.stats.dropped[dropQueueFull].Load())

	var seqs []uint64
	keyRequests := 0
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for f := range slot.ch {
			seqs = append(seqs, uint64(f.PTS.Milliseconds()/100))
			f.Release()
		}
	}()
	decoded := make(chan error, 1)
	go func() {
		decoded <- s.decodeLoop(context.Background(), units, out.free, slot, func() { keyRequests++ })
		slot.close()
	}()
	// From now on the reader keeps up: packets 10-39 are all queued, but
	// 10-19 depend on dropped ones and are skipped until key frame 20.
	for range 30 {
		for len(units) > 0 {
			// wait for room so that nothing more is dropped
			runtime.Gosched()
		}
		require.NoError(t, out.Packet(next()))
	}
	close(units)
	require.NoError(t, <-decoded)
	<-collected

	want := []uint64{0, 1, 2}
	for i := uint64(20); i < 40; i++ {
		want = append(want, i)
	}
	require.Equal(t, want, seqs, "frames by PTS (10 fps)")
	require.Equal(t, uint64(7+10), s.stats.dropped[dropQueueFull].Load())
	require.Zero(t, s.stats.decodeErrors.Load())
	require.Equal(t, 1, keyRequests, "the gap asks the sender for a key frame once")
}

func TestOutputCopiesPacketData(t *testing.T) {
	s := &stream{cfg: config.Stream{ID: "s"}, p: &Pipeline{}}
	units := make(chan unit, 2)
	out := &streamOutput{s: s, units: units, free: make(chan *frame.Packet, 2), live: true}
	buf := []byte{1, 2, 3}
	require.NoError(t, out.Packet(&frame.Packet{Data: buf}))
	buf[0] = 9 // sources reuse their buffers
	u := <-units
	require.Equal(t, []byte{1, 2, 3}, u.pkt.Data)
	require.Equal(t, uint64(3), s.stats.bytes.Load())
}
