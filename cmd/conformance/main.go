package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	addr := fs.String("addr", "", "address to listen on (default: localhost:3000 on IPv4 and IPv6 loopback)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	a, err := newApp(log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if *addr == "" {
		ln, err = net.Listen("tcp", "127.0.0.1:3000")
	}
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.srv.Serve(ctx, ln)
}
