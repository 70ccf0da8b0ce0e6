package viewer_test

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/sinks/viewer"
	"github.com/vigil-video/vigil/sinks/viewer/viewertest"
)

// TestViewerChurn has 20 viewers join and leave a stream over and over for
// 60 s (10 s with -short): the stream's analysis rate holds, and sessions,
// goroutines and memory come back to where they were.
func TestViewerChurn(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	churn := 60 * time.Second
	if testing.Short() {
		churn = 10 * time.Second
	}
	const viewers = 20
	srv := startServer(t, []config.Stream{synthStream("cam")}, viewer.Options{MaxViewers: 4 * viewers}) // vanished viewers hold a place until ICE gives up
	analyzed := func() uint64 {
		st, ok := srv.p.Stream("cam")
		require.True(t, ok)
		return st.FramesAnalyzed
	}
	rate := func(d time.Duration) float64 {
		a0, t0 := analyzed(), time.Now()
		time.Sleep(d)
		return float64(analyzed()-a0) / time.Since(t0).Seconds()
	}
	// Live heap: two collections empty the sync.Pools (pion keeps packet
	// buffers in them).
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	require.Eventually(t, func() bool { return analyzed() > 15 }, 10*time.Second, 50*time.Millisecond)
	before := rate(3 * time.Second)
	goroutinesBefore, heapBefore := runtime.NumGoroutine(), heap()

	ctx, cancel := context.WithTimeout(context.Background(), churn)
	defer cancel()
	var sessions, failed atomic.Int64
	var aus atomic.Int64
	var wg sync.WaitGroup
	for i := range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for n := 0; ctx.Err() == nil; n++ {
				dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
				v, err := viewertest.Dial(dctx, srv.http.URL+"/whep/cam", viewertest.Options{})
				dcancel()
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						t.Logf("viewer %d: %v", i, err)
					}
					continue
				}
				sessions.Add(1)
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(300+rng.IntN(2700)) * time.Millisecond):
				}
				aus.Add(v.AccessUnits.Load())
				// Most hang up; some just vanish, like a closed tab.
				_ = v.Close(n%4 != 3)
			}
		}()
	}
	during := rate(churn - 2*time.Second)
	wg.Wait()
	t.Logf("churn: %d sessions, %d failed, %d access units received; analysed %.1f fps before, %.1f during",
		sessions.Load(), failed.Load(), aus.Load(), before, during)
	require.Greater(t, sessions.Load(), int64(2*viewers))
	require.Zero(t, failed.Load())
	require.Greater(t, aus.Load(), sessions.Load(), "viewers got video")
	require.GreaterOrEqual(t, during, 0.9*before, "the analysis rate holds while viewers come and go")

	// Vanished viewers are let go when ICE gives up on them.
	require.Eventually(t, func() bool { return srv.hub.Sessions() == 0 }, 30*time.Second, 100*time.Millisecond)
	var goroutinesAfter int
	require.Eventually(t, func() bool {
		goroutinesAfter = runtime.NumGoroutine()
		return goroutinesAfter <= goroutinesBefore+5
	}, 10*time.Second, 100*time.Millisecond, "goroutines: %d before, %d after", goroutinesBefore, goroutinesAfter)
	heapAfter := heap()
	t.Logf("goroutines %d -> %d, live heap %.1f -> %.1f MB", goroutinesBefore, goroutinesAfter, float64(heapBefore)/1e6, float64(heapAfter)/1e6)
	require.Less(t, float64(heapAfter), float64(heapBefore)+8e6, "live heap after churn")
	srv.stop()
}
