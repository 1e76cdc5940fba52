//go:build linux

package eio

import (
	"syscall"
	"unsafe"
)

// inlineWrites: Batch.Flush writes from the deliverer's goroutine (inline.go).
const inlineWrites = true

// sendNow writes b to the socket fd without waiting: send(2) with
// MSG_DONTWAIT, as a raw system call. It returns how much the socket took
// and the call's errno (0 on success, EAGAIN when its buffer is full).
//
// Raw, because the call never waits for buffer space (MSG_DONTWAIT, on a
// descriptor that is non-blocking anyway; the kernel may still take the
// socket's lock for the microseconds a concurrent read holds it): the
// runtime's system call bookkeeping buys nothing here and costs much. A loopback write spends ~7 µs in the kernel
// delivering to the receiver, longer than the 20 µs sysmon tick often
// enough that sysmon hands the P to another thread and the writer has to
// get one back afterwards: measured while saturated, context switches were
// 10 % of the node's CPU, half of them sysmon's own wake-ups. send(2) rather
// than write(2): it goes straight to the socket layer, skipping the VFS
// (fdget_pos, vfs_write: 6 % of the node's CPU in the same profile).
// MSG_NOSIGNAL: a closed peer is an EPIPE error, never a SIGPIPE.
func sendNow(fd uintptr, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}
