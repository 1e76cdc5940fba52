package server

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMaxConnectionsDefault: the default cap sits below the file-descriptor
// limit, and a cap at or above it is a *ConfigError.
func TestMaxConnectionsDefault(t *testing.T) {
	t.Parallel()
	for limit, want := range map[int]int{0: 10_000, 40: 20, 256: 198, 1024: 889, 1 << 20: 943_686} {
		if got := maxConnectionsFor(limit); got != want {
			t.Errorf("maxConnectionsFor(%d) = %d, want %d", limit, got, want)
		}
	}
	limit := fdLimit()
	if limit <= 0 {
		t.Skip("no file-descriptor limit here")
	}
	if d := DefaultMaxConnections(); d >= limit || d <= 0 {
		t.Errorf("DefaultMaxConnections() = %d with a limit of %d", d, limit)
	}
	var ce *ConfigError
	if err := (Config{MaxConnections: limit}).Validate(); !errors.As(err, &ce) || ce.Option != "max-connections" {
		t.Errorf("MaxConnections at the limit: %v, want a *ConfigError for max-connections", err)
	}
}

// TestConnLimitOverflow: over the cap, connections are accepted (marked)
// while the overflow lasts, then closed unanswered and counted; a closed
// connection frees its place.
func TestConnLimitOverflow(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	// Cap 2 under a limit of 6: an overflow of 2.
	l, err := newConnLimit(2, 6, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := l.wrap(raw)
	defer ln.Close()
	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		return c
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	var server []*limitConn
	for i := range 4 {
		dial()
		c := (<-accepted).(*limitConn)
		if c.overCap != (i >= 2) {
			t.Errorf("connection %d: over the cap %v", i, c.overCap)
		}
		server = append(server, c)
	}
	// The fifth is closed unanswered, and Accept goes on.
	fifth := dial()
	_ = fifth.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := fifth.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("connection past the overflow: %v, want EOF", err)
	}
	if got := l.total.Load(); got != 1 {
		t.Errorf("refusals = %v, want 1", got)
	}
	if got := l.open.Load(); got != 4 {
		t.Errorf("open connections = %v, want 4", got)
	}
	// A connection over the cap cannot lift the deadline of its life.
	if got := server[2].clamp(time.Time{}); !got.Equal(server[2].end) || got.IsZero() {
		t.Errorf("deadline of a connection over the cap lifted: %v", got)
	}
	// Once the connections over the cap and one within it are closed,
	// the next is within the cap.
	for _, c := range []*limitConn{server[2], server[3], server[0], server[0]} { // counted once
		c.Close()
	}
	dial()
	if c := (<-accepted).(*limitConn); c.overCap {
		t.Error("a connection after others closed is over the cap")
	}
	if got := l.open.Load(); got != 2 {
		t.Errorf("open connections = %v, want 2", got)
	}
}
