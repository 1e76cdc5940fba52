package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "sockstream-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && (args[0] == "-suite" || args[0] == "--suite") {
		return runSuite(ctx, args[1:], stdout)
	}
	if len(args) > 0 && (args[0] == "-soak" || args[0] == "--soak") {
		return runSoak(ctx, args[1:], stdout)
	}
	fs := flag.NewFlagSet("sockstream-bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: sockstream-bench [flags]          one load run against running nodes
       sockstream-bench -suite [flags]   Go and Node side by side (sockstream-bench -suite -h)
       sockstream-bench -soak [flags]    two Go nodes under load and faults (sockstream-bench -soak -h)

`)
		fs.PrintDefaults()
	}
	urls := fs.String("urls", "http://127.0.0.1:3000", "comma-separated base URLs of the nodes; clients are spread over them")
	clients := fs.Int("clients", 1000, "connections")
	rooms := fs.Int("rooms", 1, "rooms the clients are spread over")
	senders := fs.Int("senders", 10, "clients that send (the first ones, spread over the nodes)")
	rate := fs.Float64("rate", 100, "messages per second over all senders; 0 sends as fast as -window allows")
	window := fs.Int("window", 16, "with -rate 0: messages a sender may have on their way")
	duration := fs.Duration("duration", 10*time.Second, "how long the senders send")
	size := fs.Int("size", 100, "message payload size in bytes")
	recoveryMissed := fs.Int("recovery", 0, "instead of a load run, time the recovery of a session that missed this many packets")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file (- for stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nodes := splitList(*urls)
	if len(nodes) == 0 {
		return errors.New("-urls: no URL")
	}

	if *recoveryMissed > 0 {
		r, err := measureRecovery(ctx, nodes, *recoveryMissed, *size)
		if err != nil {
			return err
		}
		printRecovery(stdout, r)
		return writeJSON(*jsonOut, stdout, r)
	}

	f, cr, err := connect(ctx, FleetConfig{URLs: nodes, Clients: *clients, Rooms: *rooms})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer f.Close()
	if err := warmUp(ctx, f, *senders); err != nil {
		return err
	}
	res, err := f.Run(ctx, PhaseConfig{Senders: *senders, Rate: *rate, Window: *window, Duration: *duration, Size: *size})
	if err != nil {
		return err
	}
	printRun(stdout, cr, res)
	return writeJSON(*jsonOut, stdout, struct {
		Connect ConnectResult `json:"connect"`
		Run     Result        `json:"run"`
	}{cr, res})
}

// warmUp sends a few messages until every client receives all of them:
// proof that every node hears the others (a cluster adapter may still be
// starting its stream readers) and a warm-up of JIT and pools alike.
func warmUp(ctx context.Context, f *fleet, senders int) error {
	var last Result
	for attempt := 0; attempt < 8; attempt++ {
		res, err := f.Run(ctx, PhaseConfig{Senders: senders, Count: 3, Drain: 2 * time.Second})
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if res.Lost == 0 && res.Duplicates == 0 && res.SendErrors == 0 {
			return nil
		}
		last = res
	}
	return fmt.Errorf("warm-up: the nodes do not deliver every message: %d of %d lost, %d duplicates, %d send errors (%s)",
		last.Lost, last.Expected, last.Duplicates, last.SendErrors, last.FirstSendErr)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func writeJSON(path string, stdout io.Writer, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("json: %w", err)
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("json: %w", err)
	}
	return nil
}

func printRun(w io.Writer, cr ConnectResult, r Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "clients\t%d connected of %d over %d node(s), %d errors\n", cr.Connected, cr.Clients, r.Nodes, cr.Errors)
	fmt.Fprintf(tw, "connect\t%.2f s, %.0f/s, one client p50 %.1f ms p99 %.1f ms max %.1f ms\n", cr.Seconds, cr.PerSecond, cr.P50Ms, cr.P99Ms, cr.MaxMs)
	if r.TargetRate > 0 {
		fmt.Fprintf(tw, "senders\t%d at %.1f msg/s in all (sent %.1f msg/s)\n", r.Senders, r.TargetRate, r.SentRate)
	} else {
		fmt.Fprintf(tw, "senders\t%d as fast as their window allows (sent %.1f msg/s)\n", r.Senders, r.SentRate)
	}
	fmt.Fprintf(tw, "messages\t%d sent, %d deliveries expected\n", r.Sent, r.Expected)
	fmt.Fprintf(tw, "deliveries\t%d in %.2f s: %.0f/s\n", r.Delivered, r.Seconds, r.PerSecond)
	fmt.Fprintf(tw, "latency\tp50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs)
	fmt.Fprintf(tw, "lost\t%d\n", r.Lost)
	fmt.Fprintf(tw, "duplicates\t%d\n", r.Duplicates)
	if r.Stale > 0 || r.Disconnected > 0 || r.Stalled > 0 || r.SendErrors > 0 {
		fmt.Fprintf(tw, "trouble\t%d stale, %d disconnected (%s), %d stalled senders, %d send errors %s\n", r.Stale, r.Disconnected, r.DisconnectWhy, r.Stalled, r.SendErrors, r.FirstSendErr)
	}
	_ = tw.Flush()
}

func printRecovery(w io.Writer, r RecoveryResult) {
	if !r.Supported {
		fmt.Fprintf(w, "recovery not measured: %s\n", r.Reason)
		return
	}
	fmt.Fprintf(w, "recovery: %d of %d missed packets restored (%d lost, %d duplicates); CONNECT reply after %.1f ms, last packet after %.1f ms\n",
		r.Restored, r.Missed, r.Lost, r.Dups, r.ConnectMs, r.RestoreMs)
}
