//go:build !linux

package report

import "os"

// isTerminal reports false off Linux: progress prints plain lines there.
func isTerminal(*os.File) bool { return false }
