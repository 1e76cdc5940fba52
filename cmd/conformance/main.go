package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sockstream/sockstream/server"
)

func main() {
	if err := run(context.Background(), os.Args[1:], nil); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(2)
	}
}

// The suites connect to "localhost:3000", which resolves to 127.0.0.1, ::1
// or both depending on the machine: by default the program listens on both.
var defaultAddrs = []string{"127.0.0.1:3000", "[::1]:3000"}

// run serves until ctx ends or a signal arrives. If ready is not nil, it
// receives the listening addresses once the program accepts connections.
func run(ctx context.Context, args []string, ready chan<- []net.Addr) error {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	addr := fs.String("addr", "", "address to listen on (default: port 3000 on 127.0.0.1 and [::1])")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	lns, err := listen(log, *addr, defaultAddrs)
	if err != nil {
		return err
	}
	a, err := newApp(log)
	if err != nil {
		closeAll(lns)
		return err
	}
	defer func() {
		// The engine's sessions end with the program; Close waits (a
		// little) for its goroutines.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.engine.Close(ctx)
	}()

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if ready != nil {
		addrs := make([]net.Addr, len(lns))
		for i, ln := range lns {
			addrs[i] = ln.Addr()
		}
		ready <- addrs
	}
	// One server, one Serve per listener; the first to return shuts the
	// server down, which ends the others.
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- a.srv.Serve(ctx, ln) }()
	}
	var errs []error
	for range lns {
		if err := <-errc; err != nil && !errors.Is(err, server.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// listen opens addr, or else every address of defaults (both loopback
// addresses of port 3000). Only the first default is required: a machine
// without IPv6 loopback gets a warning, as its "localhost" cannot resolve to
// ::1 either.
func listen(log *slog.Logger, addr string, defaults []string) ([]net.Listener, error) {
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		return []net.Listener{ln}, nil
	}
	var lns []net.Listener
	for i, a := range defaults {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			if i == 0 {
				closeAll(lns)
				return nil, fmt.Errorf("listen on %s: %w", a, err)
			}
			log.Warn("not listening on this loopback address", "addr", a, "err", err)
			continue
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		_ = ln.Close()
	}
}
