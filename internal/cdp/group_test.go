package cdp

import "syscall"

// groupAlive reports whether any process of group pgid still exists.
func groupAlive(pgid int) bool { return syscall.Kill(-pgid, 0) == nil }
