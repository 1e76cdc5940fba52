// Package servetest runs a sockstream server for a test: on a loopback
// listener, stopped when the test ends. It is apart from internal/siotest,
// which packages below server (cluster, adapter) use in their own tests.
package servetest

import (
	"context"
	"net"
	"testing"

	"github.com/sockstream/sockstream/server"
)

// Serve runs srv on a loopback listener until the test ends and returns
// its base URL, http://127.0.0.1:port. t.Cleanup stops it and fails the
// test if Serve returned an error.
func Serve(t testing.TB, srv *server.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}
