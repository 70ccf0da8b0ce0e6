package kafka

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Environment of the child process of TestKafkaWriteAheadSurvivesKill.
const (
	killChildEnv = "VIGIL_KAFKA_KILL_CHILD" // broker address and spool folder, space-separated
	killChildN   = 3000
)

// TestKafkaKillChild is the process the kill test kills: it writes
// killChildN frames of stream "a" and prints each seq once Write returned,
// then waits to be killed. It does nothing in a normal run.
func TestKafkaKillChild(t *testing.T) {
	env := os.Getenv(killChildEnv)
	if env == "" {
		t.Skip("run by TestKafkaWriteAheadSurvivesKill")
	}
	addr, dir, _ := strings.Cut(env, " ")
	o := outageOptions(t, addr, dir)
	o.Logger = testLogger(t)
	s, err := Open(o, nil)
	require.NoError(t, err)
	for i := range uint64(killChildN) {
		require.NoError(t, s.Write(context.Background(), testResult("a", i)))
		fmt.Println(i)
		if i%500 == 0 {
			time.Sleep(20 * time.Millisecond) // let batches and failures happen in between
		}
	}
	time.Sleep(time.Minute)
}

// TestKafkaWriteAheadSurvivesKill kills (SIGKILL) a process that writes
// through the sink, with the broker up (batches in flight) and down
// (everything waiting), then opens a sink on its spool with a broker up:
// every frame whose Write returned before the kill arrives.
func TestKafkaWriteAheadSurvivesKill(t *testing.T) {
	for _, tc := range []struct {
		name     string
		brokerUp bool
	}{
		{"broker up", true},
		{"broker down", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, data, spoolDir := freeAddr(t), t.TempDir(), t.TempDir()
			var c *kfake.Cluster
			if tc.brokerUp {
				c = startBroker(t, addr, kfake.DataDir(data))
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestKafkaKillChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), killChildEnv+"="+addr+" "+spoolDir)
			out, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill() })

			// Kill it mid-run: after half of the frames.
			last := -1
			sc := bufio.NewScanner(out)
			for last < killChildN/2 && sc.Scan() {
				if n, err := strconv.Atoi(sc.Text()); err == nil {
					last = n
				}
			}
			require.NoError(t, cmd.Process.Kill())
			for sc.Scan() { // what it printed before it died
				if n, err := strconv.Atoi(sc.Text()); err == nil {
					last = n
				}
			}
			_ = cmd.Wait()
			require.GreaterOrEqual(t, last, killChildN/2)

			if c != nil {
				c.Close()
			}
			startBroker(t, addr, kfake.DataDir(data))
			s, err := Open(outageOptions(t, addr, spoolDir), nil)
			require.NoError(t, err)
			waitSpoolEmpty(t, s, 20*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, s.Close(ctx))
			requireNoSegments(t, spoolDir)
			msgs := readTopic(t, addr, testDetections, last+1, 20*time.Second)
			requireAllSeqs(t, msgs, []string{"a"}, last+1)
			t.Logf("killed after frame %d returned; %d messages read (%d repeats)", last, len(msgs), len(msgs)-(last+1))
		})
	}
}
