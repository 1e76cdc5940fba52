//go:build !unix

package eio

import "syscall"

// inlineWrites: without a Unix descriptor to write to without waiting,
// every WebSocket write goes through the session's flusher.
const inlineWrites = false

// sendNow is never called where inlineWrites is false.
func sendNow(uintptr, []byte) (int, syscall.Errno) { return 0, syscall.EAGAIN }
