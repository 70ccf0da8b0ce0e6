package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockName is the file whose POSIX record lock a writable Store holds, so
// that two processes never write one store at once: the second writer's
// crash recovery would delete the first's Put in progress, and each would
// overwrite the other's manifest.
const lockName = "writer.lock"

// ErrLocked is returned by Open and Create when another process has the
// store open for writing.
var ErrLocked = errors.New("store open for writing by another process")

// lockStore takes the store's writer lock. The lock belongs to the process
// (fcntl F_SETLK): the kernel releases it when the process ends, however
// it ends, and a second Store of the same process does not conflict.
func lockStore(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the writer lock: %w", err)
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		if errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.ENOTSUP) {
			return f, nil // no record locks here: Correct's ErrChanged check remains
		}
		defer f.Close()
		if !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("taking the writer lock: %w", err)
		}
		holder := "another process"
		probe := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
		if syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &probe) == nil && probe.Type != syscall.F_UNLCK {
			holder = fmt.Sprintf("process %d", probe.Pid)
		}
		return nil, fmt.Errorf("%w: %s writes it (a server mining into it?): stop it first, or read the store read-only", ErrLocked, holder)
	}
	return f, nil
}
