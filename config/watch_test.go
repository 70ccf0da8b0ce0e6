package config

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// watchLog records Watch's callbacks.
type watchLog struct {
	mu      sync.Mutex
	configs []*Config
	errs    []error
}

func (l *watchLog) onChange(c *Config) { l.mu.Lock(); l.configs = append(l.configs, c); l.mu.Unlock() }
func (l *watchLog) onError(err error)  { l.mu.Lock(); l.errs = append(l.errs, err); l.mu.Unlock() }

func (l *watchLog) take() ([]*Config, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, e := l.configs, l.errs
	l.configs, l.errs = nil, nil
	return c, e
}

func TestWatch(t *testing.T) {
	defer goleak.VerifyNone(t)
	// synctest's clock makes the one-second polls instant; the file
	// system is real.
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "vigil.yaml")
		write := func(s string) { require.NoError(t, os.WriteFile(path, []byte(s), 0o600)) }
		// wait lets a couple of polls run and returns what they reported.
		var log watchLog
		wait := func() ([]*Config, []error) {
			time.Sleep(2500 * time.Millisecond)
			synctest.Wait()
			return log.take()
		}
		write("listen: 127.0.0.1:1\n")

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			Watch(ctx, path, log.onChange, log.onError)
		}()

		cs, errs := wait()
		require.Empty(t, cs, "the version present at start is the baseline")
		require.Empty(t, errs)

		// A valid change is handed over once.
		write("listen: 127.0.0.1:2\n")
		cs, errs = wait()
		require.Empty(t, errs)
		require.Len(t, cs, 1)
		require.Equal(t, "127.0.0.1:2", cs[0].Listen)

		// An invalid version is reported once; the caller keeps the old one.
		write("listen: 127.0.0.1:2\nlog: {level: loud}\n")
		cs, errs = wait()
		require.Empty(t, cs)
		require.Len(t, errs, 1)
		require.ErrorContains(t, errs[0], path)
		require.ErrorContains(t, errs[0], "keeping the running one")
		require.ErrorContains(t, errs[0], "log.level:")

		// Unknown keys are reported with their line.
		write("listen: 127.0.0.1:2\nlisten_port: 3\n")
		_, errs = wait()
		require.Len(t, errs, 1)
		require.ErrorContains(t, errs[0], "line 2: field listen_port not found")

		// A change of the same size is seen through the modification time.
		write("listen: 127.0.0.1:3\n")
		cs, _ = wait()
		require.Len(t, cs, 1)
		write("listen: 127.0.0.1:4\n")
		future := time.Now().Add(time.Hour) // synctest's clock differs from the file system's: set it explicitly
		require.NoError(t, os.Chtimes(path, future, future))
		cs, errs = wait()
		require.Empty(t, errs)
		require.Len(t, cs, 1)
		require.Equal(t, "127.0.0.1:4", cs[0].Listen)

		// Touching the file without changing it is not a change.
		later := future.Add(time.Hour)
		require.NoError(t, os.Chtimes(path, later, later))
		cs, errs = wait()
		require.Empty(t, cs)
		require.Empty(t, errs)

		// A missing file is reported once, however many polls see it.
		require.NoError(t, os.Remove(path))
		cs, errs = wait()
		_, errs2 := wait()
		require.Empty(t, cs)
		require.Len(t, errs, 1)
		require.ErrorIs(t, errs[0], os.ErrNotExist)
		require.Empty(t, errs2)

		// Back with the same content: nothing to do. Then a real change.
		write("listen: 127.0.0.1:4\n")
		cs, errs = wait()
		require.Empty(t, cs)
		require.Empty(t, errs)
		write("listen: 127.0.0.1:55\n")
		cs, _ = wait()
		require.Len(t, cs, 1)
		require.Equal(t, "127.0.0.1:55", cs[0].Listen)

		cancel()
		<-done
	})
}

func TestWatchStartsWithoutFile(t *testing.T) {
	defer goleak.VerifyNone(t)
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "later.yaml")
		var log watchLog
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			Watch(ctx, path, log.onChange, log.onError)
		}()
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		_, errs := log.take()
		require.Len(t, errs, 1)

		require.NoError(t, os.WriteFile(path, []byte(""), 0o600))
		time.Sleep(time.Second)
		synctest.Wait()
		cs, errs := log.take()
		require.Empty(t, errs)
		require.Len(t, cs, 1, "an empty file is a valid config")
		require.Equal(t, "127.0.0.1:8080", cs[0].Listen)

		cancel()
		<-done
	})
}
