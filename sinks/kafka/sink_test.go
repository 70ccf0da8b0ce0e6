package kafka

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/sinks"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestKafkaSinkDelivers(t *testing.T) {
	c := startBroker(t, "127.0.0.1:0")
	addr := c.ListenAddrs()[0]
	reg := prometheus.NewRegistry()
	s, err := Open(Options{
		Brokers: []string{addr}, SpoolDir: t.TempDir(), Logger: testLogger(t), BatchTimeout: 5 * time.Millisecond,
	}, reg)
	require.NoError(t, err)

	streams := []string{"cam-a", "cam-b", "cam-c"}
	const n = 200
	ctx := context.Background()
	for i := range uint64(n) {
		for _, st := range streams {
			require.NoError(t, s.Write(ctx, testResult(st, i)))
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, s.Close(cctx))
	require.ErrorIs(t, s.Write(ctx, testResult("cam-a", 0)), ErrClosed)

	dets := readTopic(t, addr, testDetections, n*len(streams), 20*time.Second)
	require.Len(t, dets, n*len(streams))
	requireAllSeqs(t, dets, streams, n)
	// Per stream, one partition, in order.
	last := map[string]int64{}
	part := map[string]int{}
	for _, m := range dets {
		require.Equal(t, ContentType, header(m, HeaderContentType))
		require.Equal(t, sinks.SchemaVersion, header(m, HeaderSchemaVersion))
		require.NoError(t, Validate(KindDetections, m.Value))
		var msg sinks.Message
		require.NoError(t, json.Unmarshal(m.Value, &msg))
		if p, ok := part[msg.Stream]; ok {
			require.Equal(t, p, m.Partition, "stream %s on two partitions", msg.Stream)
			require.Equal(t, last[msg.Stream]+1, int64(msg.Seq), "stream %s out of order", msg.Stream)
		}
		part[msg.Stream], last[msg.Stream] = m.Partition, int64(msg.Seq)
	}
	// The first message carries everything a result has.
	var first sinks.Message
	require.NoError(t, json.Unmarshal(dets[0].Value, &first))
	require.Len(t, first.Detections, 2)
	require.Equal(t, "yolox_nano", first.Model)
	require.NotNil(t, first.Detections[0].Mask)
	require.Len(t, first.Detections[0].Keypoints, 2)
	require.Equal(t, uint64(7), first.Detections[0].TrackID)

	trks := readTopic(t, addr, testTracks, n/10*2*len(streams), 20*time.Second)
	require.Len(t, trks, n/10*2*len(streams))
	ids := map[string]bool{}
	for _, m := range trks {
		require.NoError(t, Validate(KindTracks, m.Value))
		var tm TrackMessage
		require.NoError(t, json.Unmarshal(m.Value, &tm))
		require.Equal(t, string(m.Key), tm.Stream)
		id := header(m, HeaderMessageID)
		require.Equal(t, tm.Stream+"/"+itoa(tm.TrackID)+"/"+tm.Kind, id)
		ids[id] = true
	}
	require.Len(t, ids, n/10*2*len(streams))

	require.Equal(t, float64(n*len(streams)), testutil.ToFloat64(s.m.messages.WithLabelValues(testDetections, outcomeDelivered)))
	require.Zero(t, testutil.ToFloat64(s.m.messages.WithLabelValues(testDetections, outcomeSpooled)))
	require.Zero(t, testutil.ToFloat64(s.m.spoolBytes))
	problems, err := testutil.CollectAndLint(prometheus.Collector(reg))
	require.NoError(t, err)
	require.Empty(t, problems)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	require.Contains(t, names, "vigil_sinks_kafka_writer_messages_total")
	require.Contains(t, names, "vigil_sinks_kafka_send_duration_seconds")
}

func itoa(v uint64) string {
	b, _ := json.Marshal(v)
	return strings.TrimSpace(string(b))
}
