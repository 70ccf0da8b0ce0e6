package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/decode"
	"github.com/vigil-video/vigil/pipeline"
)

const benchIngestUsage = `usage: vigil bench ingest [--streams N] [--duration D] [--size WxH] [--fps F] [--client gortsplib|vdk]

Starts an RTSP server in this process on 127.0.0.1 that serves N streams of
an H.264 clip (the reference clip scaled to WxH at F fps, made once with
ffmpeg, looped in real time), reads them all through Vigil's pipeline
(RTSP over TCP, every frame decoded, infer_fps 5, no models) for D, and
prints one JSON line: packets, frames decoded, packets dropped at the source,
peak RSS and CPU time.
`

// benchIngestReport is the JSON line `vigil bench ingest` prints.
type benchIngestReport struct {
	Client   string  `json:"client"`
	Streams  int     `json:"streams"`
	Size     string  `json:"size"`
	FPS      float64 `json:"fps"`
	Duration string  `json:"duration"`
	// Packets and Frames are totals over all streams; FramesExpected is
	// streams x fps x duration.
	Packets        uint64 `json:"packets"`
	Frames         uint64 `json:"frames"`
	FramesExpected uint64 `json:"frames_expected"`
	// DroppedAtSource counts vigil_ingest_frames_dropped_total{reason=
	// "queue_full"}: packets a live source delivered that the decoder had
	// no room for.
	DroppedAtSource uint64 `json:"dropped_at_source"`
	PacketsLost     uint64 `json:"packets_lost"`
	Restarts        uint64 `json:"restarts"`
	// MaxRSSMiB is the process's peak resident set (VmHWM), server included.
	MaxRSSMiB float64 `json:"max_rss_mib"`
	// CPUSeconds is user + system time of the whole process during the
	// run, server included; CPUPercent is that over wall time, in percent
	// of one core.
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPercent float64 `json:"cpu_percent"`
}

// runBenchIngest implements `vigil bench ingest`.
func runBenchIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchIngestUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	streams := fs.Int("streams", 8, "number of RTSP streams")
	duration := fs.Duration("duration", 60*time.Second, "how long to read")
	size := fs.String("size", "1280x720", "picture size of the served clip, WxH")
	fps := fs.Float64("fps", 15, "frame rate of the served clip")
	client := fs.String("client", "gortsplib", "RTSP client library: gortsplib or vdk")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	w, h, err := parseSize(*size)
	if err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	switch {
	case *streams < 1:
		return fmt.Errorf("--streams is %d, must be 1 or more", *streams)
	case *duration <= 0:
		return fmt.Errorf("--duration is %s, must be positive", *duration)
	case *fps <= 0 || *fps > 120:
		return fmt.Errorf("--fps is %g, must be in (0, 120]", *fps)
	case *client != "gortsplib" && *client != "vdk":
		return fmt.Errorf("--client is %q, must be gortsplib or vdk", *client)
	}
	clipPath, err := benchIngestClip(ctx, stderr, w, h, *fps)
	if err != nil {
		return err
	}
	clip, err := loadBenchClip(clipPath)
	if err != nil {
		return err
	}

	srv, err := startBenchServer(clip, *streams)
	if err != nil {
		return err
	}
	defer srv.close()

	cfgs := make([]config.Stream, *streams)
	for i := range cfgs {
		s := config.Stream{ID: fmt.Sprintf("s%d", i), URL: fmt.Sprintf("rtsp://%s/s%d?rtsp_client=%s", srv.addr, i, *client)}
		s.ApplyDefaults()
		s.Transport = config.TransportTCP
		s.InferFPS = 5
		cfgs[i] = s
	}
	reg := prometheus.NewRegistry()
	p, err := pipeline.New(pipeline.Options{
		Streams:    cfgs,
		Registerer: reg,
		Logger:     slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	cpu0 := cpuTime()
	start := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	if err := p.Run(runCtx); err != nil {
		return err
	}
	wall := time.Since(start)
	cpu := cpuTime() - cpu0

	rep := benchIngestReport{
		Client: *client, Streams: *streams, Size: fmt.Sprintf("%dx%d", w, h), FPS: *fps, Duration: duration.String(),
		FramesExpected: uint64(float64(*streams) * *fps * duration.Seconds()),
		CPUSeconds:     round(cpu.Seconds(), 2),
		CPUPercent:     round(100*cpu.Seconds()/wall.Seconds(), 1),
		MaxRSSMiB:      round(float64(vmHWM())/1024, 1),
	}
	for _, st := range p.Streams() {
		rep.Frames += st.FramesIn
		rep.PacketsLost += st.PacketsLost
		rep.Restarts += st.Restarts
	}
	mfs, err := reg.Gather()
	if err != nil {
		return fmt.Errorf("gathering metrics: %w", err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "vigil_ingest_packets_total":
				rep.Packets += uint64(m.GetCounter().GetValue())
			case "vigil_ingest_frames_dropped_total":
				for _, l := range m.GetLabel() {
					if l.GetName() == "reason" && l.GetValue() == "queue_full" {
						rep.DroppedAtSource += uint64(m.GetCounter().GetValue())
					}
				}
			}
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}

func parseSize(s string) (w, h int, err error) {
	ws, hs, ok := strings.Cut(s, "x")
	if ok {
		w, err = strconv.Atoi(ws)
		if err == nil {
			h, err = strconv.Atoi(hs)
		}
	}
	if !ok || err != nil || w < 16 || h < 16 || w > 7680 || h > 4320 || w%2 != 0 || h%2 != 0 {
		return 0, 0, fmt.Errorf("%q is not an even WxH between 16x16 and 7680x4320", s)
	}
	return w, h, nil
}

// cpuTime returns the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vmHWM returns the peak resident set in KiB from /proc/self/status, or 0
// where there is no /proc.
func vmHWM() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// benchIngestClip makes (once) a 10 s clip from the reference clip at the
// given size and rate, with a key frame every 2 s and no B-frames, as IP
// cameras send.
func benchIngestClip(ctx context.Context, stderr io.Writer, w, h int, fps float64) (string, error) {
	gop := strconv.Itoa(max(1, int(2*fps)))
	return cachedClip(ctx, stderr, fmt.Sprintf("vtest_h264-%dx%d-%gfps.mp4", w, h, fps), "-t", "10",
		"-vf", fmt.Sprintf("scale=%d:%d,fps=%g", w, h, fps), "-c:v", "libx264", "-preset", "veryfast",
		"-g", gop, "-bf", "0", "-pix_fmt", "yuv420p", "-an")
}

// benchClipData is a clip in memory, as NAL units per access unit.
type benchClipData struct {
	sps, pps []byte
	aus      [][][]byte
	pts      []time.Duration
	keys     []bool
	length   time.Duration // of one pass
}

func loadBenchClip(path string) (*benchClipData, error) {
	dmx, err := decode.OpenFile(path)
	if err != nil {
		return nil, err
	}
	defer dmx.Close()
	par := dmx.Params()
	c := &benchClipData{}
	if c.sps, c.pps, err = avcCSPSPPS(par.Extradata); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var pkt frame.Packet
	for {
		err := dmx.ReadPacket(&pkt)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		var au h264.AVCC
		if err := au.Unmarshal(pkt.Data); err != nil {
			return nil, fmt.Errorf("reading %s: packet %d: %w", path, len(c.aus), err)
		}
		nalus := make([][]byte, len(au))
		for i, n := range au {
			nalus[i] = append([]byte(nil), n...)
		}
		c.aus = append(c.aus, nalus)
		c.pts = append(c.pts, pkt.PTS)
		c.keys = append(c.keys, pkt.KeyFrame)
	}
	if len(c.aus) == 0 {
		return nil, fmt.Errorf("reading %s: no video packets", path)
	}
	step := time.Second / 15
	if par.FrameRate > 0 {
		step = time.Duration(float64(time.Second) / par.FrameRate)
	}
	c.length = c.pts[len(c.pts)-1] + step
	return c, nil
}

// avcCSPSPPS returns the first SPS and PPS of an avcC record (ISO/IEC
// 14496-15 5.3.3.1) that uses 4-byte NAL lengths.
func avcCSPSPPS(b []byte) (sps, pps []byte, err error) {
	if len(b) < 7 || b[4]&3 != 3 || b[5]&0x1f == 0 {
		return nil, nil, errors.New("avcC record too short, without SPS, or not 4-byte lengths")
	}
	pos := 6
	read := func() ([]byte, error) {
		if pos+2 > len(b) {
			return nil, errors.New("avcC truncated")
		}
		n := int(b[pos])<<8 | int(b[pos+1])
		pos += 2
		if pos+n > len(b) {
			return nil, errors.New("avcC truncated")
		}
		v := b[pos : pos+n]
		pos += n
		return v, nil
	}
	for i := range int(b[5] & 0x1f) {
		v, err := read()
		if err != nil {
			return nil, nil, err
		}
		if i == 0 {
			sps = v
		}
	}
	pos++ // numOfPictureParameterSets
	pps, err = read()
	return sps, pps, err
}

// benchServer serves one clip at /s0 … /sN-1, each path its own RTSP
// stream, fed by one goroutine in real time.
type benchServer struct {
	addr    string
	srv     *gortsplib.Server
	streams map[string]*gortsplib.ServerStream
	medias  []*description.Media
	order   []*gortsplib.ServerStream
	stop    chan struct{}
	wg      sync.WaitGroup

	// The feeder starts when every stream has a reader, so that no reader
	// waits for the next key frame and the frame count is comparable.
	mu      sync.Mutex
	playing int
	ready   chan struct{}
}

func startBenchServer(clip *benchClipData, n int) (*benchServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &benchServer{addr: addr, streams: map[string]*gortsplib.ServerStream{}, stop: make(chan struct{}), ready: make(chan struct{})}
	s.srv = &gortsplib.Server{Handler: s, RTSPAddress: addr}
	if err := s.srv.Start(); err != nil {
		return nil, fmt.Errorf("starting the RTSP server: %w", err)
	}
	for i := range n {
		medi := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{
			PayloadTyp: 96, PacketizationMode: 1, SPS: clip.sps, PPS: clip.pps,
		}}}
		st := &gortsplib.ServerStream{Server: s.srv, Desc: &description.Session{Medias: []*description.Media{medi}}}
		if err := st.Initialize(); err != nil {
			s.close()
			return nil, fmt.Errorf("starting stream %d: %w", i, err)
		}
		s.streams[fmt.Sprintf("/s%d", i)] = st
		s.order = append(s.order, st)
		s.medias = append(s.medias, medi)
	}
	enc, err := s.medias[0].Formats[0].(*format.H264).CreateEncoder()
	if err != nil {
		s.close()
		return nil, err
	}
	s.wg.Add(1)
	go s.feed(clip, enc.Encode)
	return s, nil
}

// feed writes the clip, looped at real time, to every stream, with SPS and
// PPS in-band before each key frame.
func (s *benchServer) feed(clip *benchClipData, encode func([][]byte) ([]*rtp.Packet, error)) {
	defer s.wg.Done()
	select {
	case <-s.stop:
		return
	case <-s.ready:
	case <-time.After(10 * time.Second):
	}
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for pass := 0; ; pass++ {
		for i, au := range clip.aus {
			pts := time.Duration(pass)*clip.length + clip.pts[i]
			t.Reset(max(time.Until(start.Add(pts)), 0))
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			if clip.keys[i] {
				au = append([][]byte{clip.sps, clip.pps}, au...)
			}
			pkts, err := encode(au)
			if err != nil {
				continue
			}
			ts := uint32(int64(pts) * 90000 / int64(time.Second))
			for _, p := range pkts {
				p.Timestamp = ts
			}
			for j, st := range s.order {
				for _, p := range pkts {
					_ = st.WritePacketRTP(s.medias[j], p)
				}
			}
		}
	}
}

func (s *benchServer) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
	for _, st := range s.streams {
		st.Close()
	}
	s.srv.Close()
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (s *benchServer) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	st := s.streams[ctx.Path]
	if st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (s *benchServer) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	st := s.streams[ctx.Path]
	if st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (s *benchServer) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	s.mu.Lock()
	s.playing++
	if s.playing == len(s.order) {
		close(s.ready)
	}
	s.mu.Unlock()
	return &base.Response{StatusCode: base.StatusOK}, nil
}
