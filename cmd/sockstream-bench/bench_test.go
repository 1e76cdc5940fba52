package main

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/servetest"
	"github.com/sockstream/sockstream/server"
)

// startApp serves, in process, the application of cmd/benchapp (the same
// three handlers) on one node, without Redis.
func startApp(t *testing.T, cfg server.Config) string {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnConnection(func(s *server.Socket) {
		room := s.Handshake().Query.Get("room")
		s.Join(room)
		s.On("bcast", func(e *server.Event) {
			if err := srv.To(room).Emit("m", e.Args...); err != nil {
				t.Errorf("broadcast: %v", err)
			}
		})
		s.On("echo", func(e *server.Event) { e.Ack(e.Args...) })
	})
	return servetest.Serve(t, srv)
}

// checkNoLoss runs a fixed-rate phase and a windowed one over f and checks
// that every client got every message of its room exactly once.
func checkNoLoss(t *testing.T, ctx context.Context, f *fleet, senders int) {
	t.Helper()
	if err := warmUp(ctx, f, senders); err != nil {
		t.Fatal(err)
	}
	for _, pc := range []PhaseConfig{
		{Senders: senders, Rate: 200, Duration: 500 * time.Millisecond, Size: 100},
		{Senders: senders, Window: 4, Count: 40, Size: 300},
	} {
		res, err := f.Run(ctx, pc)
		if err != nil {
			t.Fatal(err)
		}
		if res.Sent == 0 || res.Expected == 0 {
			t.Fatalf("%+v: nothing sent: %+v", pc, res)
		}
		if res.Lost != 0 || res.Duplicates != 0 || res.Delivered != res.Expected || res.Stale != 0 {
			t.Errorf("%+v: %d of %d delivered, %d lost, %d duplicates, %d stale", pc, res.Delivered, res.Expected, res.Lost, res.Duplicates, res.Stale)
		}
		if res.SendErrors != 0 || res.Disconnected != 0 || res.Stalled != 0 {
			t.Errorf("%+v: %d send errors (%s), %d disconnected, %d stalled", pc, res.SendErrors, res.FirstSendErr, res.Disconnected, res.Stalled)
		}
		if res.P50Ms <= 0 || res.MaxMs < res.P99Ms || res.P99Ms < res.P50Ms {
			t.Errorf("%+v: latencies out of order: %+v", pc, res)
		}
	}
}

func TestRunAgainstInProcessServer(t *testing.T) {
	url := startApp(t, server.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Two "nodes" that are the same server: the spreading code runs too.
	f, cr, err := connect(ctx, FleetConfig{URLs: []string{url, url}, Clients: 30, Rooms: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if cr.Connected != 30 || cr.Errors != 0 {
		t.Fatalf("connect: %+v", cr)
	}
	checkNoLoss(t, ctx, f, 5)
}

func TestRecoveryAgainstInProcessServer(t *testing.T) {
	url := startApp(t, server.Config{Recovery: server.RecoveryConfig{Enabled: true}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := measureRecovery(ctx, []string{url}, 300, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Supported || res.Restored != 300 || res.Lost != 0 || res.Dups != 0 {
		t.Fatalf("recovery: %+v", res)
	}
}

func TestRecoveryNotSupported(t *testing.T) {
	url := startApp(t, server.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := measureRecovery(ctx, []string{url}, 10, 100)
	if err != nil {
		t.Fatal(err)
	}
	if res.Supported || res.Reason == "" {
		t.Fatalf("recovery without recovery on: %+v", res)
	}
}

// startNodeApp runs testdata/bench/app.js on the in-memory adapter.
func startNodeApp(t *testing.T, args ...string) string {
	t.Helper()
	script, err := filepath.Abs("../../testdata/bench/app.js")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", append([]string{script, "--port", "0"}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("node: %v (run `make test`, which installs Node)", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatal("app.js exited before listening")
		}
		var msg struct{ Listening int }
		if err := json.Unmarshal([]byte(line), &msg); err != nil || msg.Listening == 0 {
			t.Fatalf("app.js: unexpected first line %q (%v)", line, err)
		}
		return "http://127.0.0.1:" + strconv.Itoa(msg.Listening)
	case <-time.After(20 * time.Second):
		t.Fatal("app.js did not start listening within 20 s")
	}
	return ""
}

func TestRunAgainstNodeApp(t *testing.T) {
	url := startNodeApp(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, _, err := connect(ctx, FleetConfig{URLs: []string{url}, Clients: 20, Rooms: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkNoLoss(t, ctx, f, 4)
}

func TestRecoveryAgainstNodeApp(t *testing.T) {
	url := startNodeApp(t, "--recovery")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := measureRecovery(ctx, []string{url}, 200, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Supported || res.Restored != 200 || res.Lost != 0 || res.Dups != 0 {
		t.Fatalf("recovery: %+v", res)
	}
}

func TestParseMessage(t *testing.T) {
	frame := appendMessage(nil, 7, 3, 12345, 1700000000123456789, 100)
	payload := strings.TrimSuffix(strings.TrimPrefix(string(frame), `42["bcast","`), `"]`)
	if len(payload) != 100 {
		t.Fatalf("payload of %d bytes, want 100: %q", len(payload), payload)
	}
	for _, tc := range []struct {
		frame  string
		offset string
	}{
		{`42["m","` + payload + `"]`, ""},
		{`42["m","` + payload + `","1700000000000-3"]`, "1700000000000-3"},
	} {
		ph, sender, seq, ts, off, ok := parseMessage([]byte(tc.frame))
		if !ok || ph != 7 || sender != 3 || seq != 12345 || ts != 1700000000123456789 || string(off) != tc.offset {
			t.Errorf("parseMessage(%q) = %d %d %d %d %q %v", tc.frame, ph, sender, seq, ts, off, ok)
		}
	}
	for _, bad := range []string{`42["m",1]`, `42["other","1.2.3.4.x"]`, `42["m","1.2.x.4.y"]`, `42["m","1.2.3"]`, `42["m","1.2.3.4.`} {
		if _, _, _, _, _, ok := parseMessage([]byte(bad)); ok {
			t.Errorf("parseMessage(%q) accepted", bad)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.Quantile(tc.q)
		if diff := got - tc.want; diff < -tc.want/50 || diff > tc.want/50 {
			t.Errorf("q%.2f = %v, want %v within 2%%", tc.q, got, tc.want)
		}
	}
	if h.Count() != 1000 {
		t.Errorf("count %d", h.Count())
	}
	for v := uint64(0); v < 1<<20; v = v*3 + 1 {
		if i := bucketOf(v); lowerBound(i) > v || lowerBound(i+1) <= v {
			t.Errorf("value %d in bucket %d of [%d, %d)", v, i, lowerBound(i), lowerBound(i+1))
		}
	}
}
