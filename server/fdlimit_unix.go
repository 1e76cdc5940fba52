//go:build unix

package server

import (
	"math"
	"syscall"
)

// fdLimit is the process's soft limit on open files (RLIMIT_NOFILE), or 0
// when it is unknown or unlimited. Go raises the soft limit to the hard one
// at start-up on Linux and the BSDs, so this is usually ulimit -Hn.
func fdLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Cur > math.MaxInt32 { // RLIM_INFINITY included
		return 0
	}
	return int(rl.Cur)
}
