// Command chat is sockstream's demo: a chat server with rooms, presence,
// typing indicators, message history and acknowledgements, on one node
// without Redis, or clustered over Redis.
//
//	chat [-addr :3000] [-history 50] [-admin-password secret]
//
// Every server option is also read from the environment (SOCKSTREAM_ADDR,
// ...); run chat -h for the list. A bad value stops the program with one line
// naming it. Connection state recovery is on by default.
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
	// The demo shows recovery at work: missed messages come back after a
	// short outage. The environment and flags can still turn it off.
	cfg.Recovery.Enabled = true
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	historySize := fs.Int("history", 50, "messages of each room kept for those who join later")
	adminPassword := fs.String("admin-password", "", "watch the chat in the Socket.IO Admin UI (https://admin.socket.io): user admin (or -admin-username), this password; a demo convenience, see -admin-password-hash")
	if err := cfg.Parse(fs, args, os.LookupEnv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := watchWithAdminUI(&cfg, *adminPassword); err != nil {
		return err
	}
	if *historySize < 0 || *historySize > 10000 {
		return fmt.Errorf("invalid option history: %d is not between 0 and 10000", *historySize)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))

	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	mountChat(srv, *historySize)
	cfg.Logger.Info("chat: starting", "recovery", cfg.Recovery.Enabled, "history", *historySize)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.Run(ctx)
}
