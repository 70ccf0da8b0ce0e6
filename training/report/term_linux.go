package report

import (
	"os"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether f is a terminal: only a tty answers TCGETS.
// It goes through SyscallConn because f.Fd would switch f to blocking mode.
func isTerminal(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		_, ioErr = unix.IoctlGetTermios(int(fd), unix.TCGETS)
	}); err != nil {
		return false
	}
	return ioErr == nil
}
