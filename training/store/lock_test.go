package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWriterLockHelper is the other process of TestWriterLock: it opens
// the store in STORE_LOCK_DIR for writing and holds it until its stdin
// closes.
func TestWriterLockHelper(t *testing.T) {
	dir := os.Getenv("STORE_LOCK_DIR")
	if dir == "" {
		t.Skip("run by TestWriterLock")
	}
	s, err := Open(dir, Options{})
	require.NoError(t, err)
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	require.NoError(t, s.Close())
}

// TestWriterLock: while another process has a store open for writing, a
// writable Open fails naming that process, and a read-only one works; once
// the writer is gone (killed: the kernel releases its lock), Open works.
func TestWriterLock(t *testing.T) {
	dir := t.TempDir()
	s, err := Create(dir, Options{Classes: []string{"person", "bicycle", "car"}})
	require.NoError(t, err)
	id, err := s.Put(testEntry(1))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = s.Put(testEntry(2))
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, s.Close(), "a second Close does nothing")

	cmd := exec.Command(os.Args[0], "-test.run", "^TestWriterLockHelper$")
	cmd.Env = append(os.Environ(), "STORE_LOCK_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)

	_, err = Open(dir, Options{})
	require.ErrorIs(t, err, ErrLocked)
	require.ErrorContains(t, err, fmt.Sprintf("process %d writes it", cmd.Process.Pid))
	ro, err := Open(dir, Options{ReadOnly: true})
	require.NoError(t, err)
	_, err = ro.Get(id)
	require.NoError(t, err)

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	_ = stdin.Close()
	s, err = Open(dir, Options{})
	require.NoError(t, err, "a killed writer's lock is gone")
	_, err = s.Put(testEntry(2))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	requireValid(t, dir)
}
