//go:build unix && !linux

package eio

import "syscall"

// inlineWrites: Batch.Flush writes from the deliverer's goroutine (inline.go).
const inlineWrites = true

// sendNow writes b to the non-blocking socket fd: how much it took and the
// call's errno (EAGAIN when the socket's buffer is full).
func sendNow(fd uintptr, b []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), b)
	if err != nil {
		if e, ok := err.(syscall.Errno); ok {
			return 0, e
		}
		return 0, syscall.EIO
	}
	return n, 0
}
