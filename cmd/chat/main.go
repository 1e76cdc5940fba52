// Command chat is sockstream's demo: a chat server with rooms, on one node
// with the in-memory adapter.
//
//	chat [-addr :3000]
//
// Every option is also read from the environment (SOCKSTREAM_ADDR, ...); run
// chat -h for the list. A bad value stops the program with one line naming it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sockstream/sockstream/server"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string) error {
	var cfg server.Config
	if err := cfg.LoadEnv(os.LookupEnv); err != nil {
		return err
	}
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))

	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	mountChat(srv)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.Run(ctx)
}
