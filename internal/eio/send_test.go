//go:build unix

package eio

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// sendOn runs sendNow on c's descriptor.
func sendOn(t *testing.T, c *net.TCPConn, b []byte) (int, syscall.Errno) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var e syscall.Errno
	if err := raw.Write(func(fd uintptr) bool { n, e = sendNow(fd, b); return true }); err != nil {
		t.Fatal(err)
	}
	return n, e
}

// TestSendNow: sendNow writes what the socket takes, reports EAGAIN (not a
// wait) when its buffer is full, and an error (not a SIGPIPE) once the
// peer is gone.
func TestSendNow(t *testing.T) {
	a, b := tcpPair(t)
	if n, e := sendOn(t, a, []byte("hello")); n != 5 || e != 0 {
		t.Fatalf("sendNow = %d, %v; want 5, 0", n, e)
	}
	got := make([]byte, 5)
	if _, err := b.Read(got); err != nil || string(got) != "hello" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	if n, e := sendOn(t, a, nil); n != 0 || e != 0 {
		t.Fatalf("empty sendNow = %d, %v", n, e)
	}

	// b never reads: a's buffers fill up and sendNow stops without waiting.
	_ = a.SetWriteBuffer(16 << 10)
	chunk := make([]byte, 64<<10)
	total, full := 0, false
	for i := 0; i < 4096 && !full; i++ {
		n, e := sendOn(t, a, chunk)
		total += n
		switch e {
		case 0:
		case syscall.EAGAIN:
			full = true
		default:
			t.Fatalf("sendNow after %d bytes: %v", total, e)
		}
	}
	if !full {
		t.Fatalf("%d bytes sent to a peer that never reads, never EAGAIN", total)
	}

	// The peer resets the connection (unread data: close sends RST, which
	// loopback delivers before Close returns): an error comes back, and
	// the test process is still alive (no SIGPIPE).
	_ = b.SetLinger(0)
	b.Close()
	var e syscall.Errno
	for i := 0; i < 100 && (e == 0 || e == syscall.EAGAIN); i++ {
		_, e = sendOn(t, a, chunk[:1])
	}
	if !errors.Is(e, syscall.EPIPE) && !errors.Is(e, syscall.ECONNRESET) {
		t.Fatalf("sendNow to a reset peer: %v, want EPIPE or ECONNRESET", e)
	}
}
