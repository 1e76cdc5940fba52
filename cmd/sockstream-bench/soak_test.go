//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/sockstream/sockstream/server"
)

// soakNodeEnv makes the test binary run as a node of the soak smoke test:
// the application of cmd/benchapp, so that the test needs no build step.
const soakNodeEnv = "SOCKSTREAM_BENCH_TEST_SOAK_NODE"

func TestMain(m *testing.M) {
	if os.Getenv(soakNodeEnv) == "1" {
		if err := runTestNode(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "soak test node:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runTestNode is cmd/benchapp: the same handlers, flags and pprof.
func runTestNode(args []string) error {
	var cfg server.Config
	fs := flag.NewFlagSet("soak test node", flag.ContinueOnError)
	if err := cfg.Parse(fs, args, os.LookupEnv); err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	srv.OnConnection(func(s *server.Socket) {
		room := s.Handshake().Query.Get("room")
		s.Join(room)
		s.On("bcast", func(e *server.Event) {
			if err := srv.To(room).Emit("m", e.Args...); err != nil {
				srv.Logger().Warn("broadcast failed", "room", room, "err", err)
			}
		})
		s.On("echo", func(e *server.Event) { e.Ack(e.Args...) })
	})
	srv.Mux().HandleFunc("/debug/pprof/", pprof.Index)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// TestSoakSmoke runs the soak mode small and short: a baseline window, then
// Redis killed and restarted, a node restarted, a node's Redis connection
// cut; with connection state recovery nothing may be lost or duplicated.
func TestSoakSmoke(t *testing.T) {
	cfg := defaultSoak()
	cfg.quick()
	cfg.nodeCmd = func(addr, redisURL string) (string, []string, []string) {
		return os.Args[0], []string{"-addr", addr, "-redis", redisURL, "-recovery"}, []string{soakNodeEnv + "=1"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := soak(ctx, cfg, &out)
	t.Logf("soak output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{faultNone, faultRedisRestart, faultNodeRestart, faultRedisCut}
	if len(res.Windows) != len(want) {
		t.Fatalf("%d windows, want %d", len(res.Windows), len(want))
	}
	for i, w := range res.Windows {
		if w.Fault != want[i] || w.FaultErr != "" || !w.Final {
			t.Errorf("window %d: %+v", i, w)
		}
		if w.Sent == 0 || w.Delivered == 0 {
			t.Errorf("window %d: nothing sent or delivered: %+v", i, w)
		}
	}
	tot := res.Total
	if tot.Lost != 0 || tot.Duplicates != 0 || res.Misrouted != 0 {
		t.Errorf("%d lost, %d duplicates, %d misrouted", tot.Lost, tot.Duplicates, res.Misrouted)
	}
	if tot.Delivered+tot.Away+tot.InFlight+tot.Lost != tot.Expected {
		t.Errorf("deliveries do not add up: %+v", tot)
	}
	// The restarted node's clients came back (some may after the window).
	if tot.Reconnects < int64(cfg.Clients/2) {
		t.Errorf("%d reconnections, want at least the %d clients of the restarted node", tot.Reconnects, cfg.Clients/2)
	}
	if len(res.Samples) == 0 || res.Samples[0].RSS[0] == 0 || res.Samples[0].Goroutines[0] <= 0 {
		t.Errorf("samples: %+v", res.Samples)
	}
}
