package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"github.com/sockstream/sockstream/server"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchapp:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string) error {
	var cfg server.Config
	fs := flag.NewFlagSet("benchapp", flag.ContinueOnError)
	withPprof := fs.Bool("pprof", false, "serve net/http/pprof under /debug/pprof/")
	verbose := fs.Bool("v", false, "log at Info level (default Warn: logging is not what is measured)")
	if err := cfg.Parse(fs, args, os.LookupEnv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	mount(srv)
	if *withPprof {
		mountPprof(srv.Mux())
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.Run(ctx)
}

// mount registers the application's handlers.
func mount(srv *server.Server) {
	srv.OnConnection(func(s *server.Socket) {
		room := s.Handshake().Query.Get("room")
		if room == "" {
			room = "bench"
		}
		s.Join(room)
		s.On("bcast", func(e *server.Event) {
			if err := srv.To(room).Emit("m", e.Args...); err != nil {
				srv.Logger().Warn("benchapp: broadcast failed", "room", room, "err", err)
			}
		})
		s.On("echo", func(e *server.Event) {
			e.Ack(e.Args...)
		})
	})
}

func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
