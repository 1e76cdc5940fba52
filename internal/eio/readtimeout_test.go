package eio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestReadTimeoutPost: a POST whose body stops coming is cut after
// Options.ReadTimeout, even on an http.Server without a ReadTimeout of its
// own: 400, the connection closed, the session closed ("transport error").
func TestReadTimeoutPost(t *testing.T) {
	h := newHarness(t, Options{ReadTimeout: 50 * time.Millisecond}, false)
	sid := h.openPolling()
	r := h.next()
	c, err := net.Dial("tcp", strings.TrimPrefix(h.hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := fmt.Fprintf(c, "POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: test\r\n"+
		"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 100\r\n\r\n4hello", sid); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("stalled POST: no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !resp.Close {
		t.Errorf("stalled POST: %s (close %v), want 400 and the connection closed", resp.Status, resp.Close)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("stalled POST: connection not closed: %v", err)
	}
	if reason := r.waitClose(t); reason != ReasonTransportError {
		t.Errorf("session closed with %q, want %q", reason, ReasonTransportError)
	}
}
