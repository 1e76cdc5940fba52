//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// suiteConfig sizes the suite; quick() shrinks it for a smoke run.
type suiteConfig struct {
	GoApp, NodeApp, Node, RedisServer string
	Sides                             []string
	Out, JSON, ProfileDir             string

	FanoutClients  int
	Senders        int
	FanoutRate     float64
	FanoutFor      time.Duration
	RampStart      float64
	RampFactor     float64
	RampStep       time.Duration
	RampSteps      int
	RampP99        time.Duration
	SaturateFor    time.Duration
	SaturateWindow int
	IdleClients    int
	IdleSettle     time.Duration
	Missed         []int
	Size           int
}

func defaultSuite() suiteConfig {
	return suiteConfig{
		GoApp: "bin/benchapp", NodeApp: "testdata/bench/app.js", Node: "node", RedisServer: "redis-server",
		Sides:         []string{"go", "node"},
		FanoutClients: 1000, Senders: 10, FanoutRate: 10, FanoutFor: 10 * time.Second,
		RampStart: 2, RampFactor: 1.5, RampStep: 4 * time.Second, RampSteps: 12, RampP99: 100 * time.Millisecond,
		SaturateFor: 8 * time.Second, SaturateWindow: 2,
		IdleClients: 5000, IdleSettle: 5 * time.Second,
		Missed: []int{1000, 10000},
		Size:   100,
	}
}

func (c *suiteConfig) quick() {
	c.FanoutClients, c.Senders, c.FanoutFor = 40, 4, 2*time.Second
	c.RampStep, c.RampSteps = time.Second, 3
	c.SaturateFor = time.Second
	c.IdleClients, c.IdleSettle = 100, time.Second
	c.Missed = []int{50, 200}
}

// sideResult holds one server's figures.
type sideResult struct {
	Side       string           `json:"side"`
	Idle       *idleResult      `json:"idle,omitempty"`
	Connect    *ConnectResult   `json:"connect,omitempty"`
	Fanout     *Result          `json:"fanout,omitempty"`
	Ramp       []Result         `json:"ramp,omitempty"`
	RampBest   *Result          `json:"ramp_best,omitempty"`
	RampStop   string           `json:"ramp_stop,omitempty"`
	Saturate   *Result          `json:"saturate,omitempty"`
	Recovery   []RecoveryResult `json:"recovery,omitempty"`
	Errors     []string         `json:"errors,omitempty"`
	ProfileDir string           `json:"profile_dir,omitempty"`
}

type idleResult struct {
	Clients        int     `json:"clients"`
	RSSBefore      int64   `json:"rss_before_bytes"`
	RSSAfter       int64   `json:"rss_after_bytes"`
	BytesPerClient float64 `json:"bytes_per_client"`
	ConnectSeconds float64 `json:"connect_seconds"`
}

func runSuite(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := defaultSuite()
	fs := flag.NewFlagSet("sockstream-bench -suite", flag.ContinueOnError)
	fs.StringVar(&cfg.GoApp, "go-app", cfg.GoApp, "the Go application binary (go build -o bin/benchapp ./cmd/benchapp)")
	fs.StringVar(&cfg.NodeApp, "node-app", cfg.NodeApp, "the Node application script")
	fs.StringVar(&cfg.Node, "node", cfg.Node, "the node binary")
	fs.StringVar(&cfg.RedisServer, "redis-server", cfg.RedisServer, "the redis-server binary")
	sides := fs.String("sides", "go,node", "which servers to measure, in order")
	fs.StringVar(&cfg.Out, "out", "", "write the results into this Markdown file, between its bench markers")
	fs.StringVar(&cfg.JSON, "json", "", "write every figure as JSON to this file")
	fs.StringVar(&cfg.ProfileDir, "profile-dir", "", "save pprof profiles of the Go nodes here (CPU and allocations while saturated, heap when idle)")
	quick := fs.Bool("quick", false, "a small, short run (a smoke test of the suite, not a measurement)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *quick {
		cfg.quick()
	}
	cfg.Sides = splitList(*sides)
	for _, s := range cfg.Sides {
		if s != "go" && s != "node" {
			return fmt.Errorf("-sides: %q is neither go nor node", s)
		}
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return err
		}
	}
	started := time.Now()
	var results []*sideResult
	for _, side := range cfg.Sides {
		fmt.Fprintf(stdout, "== %s\n", side)
		r := runSide(ctx, &cfg, side, stdout)
		results = append(results, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	elapsed := time.Since(started)
	table := renderTable(cfg, results)
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, table.text)
	fmt.Fprintf(stdout, "\nsuite ran in %s\n", elapsed.Round(time.Second))
	if cfg.JSON != "" {
		if err := writeJSON(cfg.JSON, stdout, struct {
			Machine map[string]string `json:"machine"`
			Sides   []*sideResult     `json:"sides"`
		}{machine(cfg), results}); err != nil {
			return err
		}
	}
	if cfg.Out != "" {
		if err := writeMarkdown(cfg, results, table.markdown, elapsed); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", cfg.Out)
	}
	for _, r := range results {
		if len(r.Errors) > 0 {
			return fmt.Errorf("%s: %s", r.Side, strings.Join(r.Errors, "; "))
		}
	}
	return nil
}

// cluster is two nodes of one side over one Redis.
type cluster struct {
	side   string
	nodes  []*proc
	urls   []string
	redis  func()
	pprofs []string // base URLs serving /debug/pprof (Go)
}

func (c *cluster) stop() {
	for _, n := range c.nodes {
		n.Stop()
	}
	if c.redis != nil {
		c.redis()
	}
}

// cpu is the CPU time the nodes (not Redis) have used so far.
func (c *cluster) cpu() (time.Duration, error) { return sumNodes(c.nodes, (*proc).CPU) }

// rss is the resident memory of the nodes (not Redis).
func (c *cluster) rss() (int64, error) { return sumNodes(c.nodes, (*proc).RSS) }

// sumNodes adds up one reading of every node.
func sumNodes[T ~int64](nodes []*proc, read func(*proc) (T, error)) (T, error) {
	var sum T
	for _, n := range nodes {
		v, err := read(n)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// runMeasured runs one phase and adds the CPU time the nodes used during
// it. The load tool shares the machine's cores with the nodes, so a
// saturated phase can be bound by the tool as much as by the server; the
// nodes' CPU per delivery is the server's own cost either way.
func (c *cluster) runMeasured(ctx context.Context, f *fleet, pc PhaseConfig) (Result, error) {
	before, err := c.cpu()
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	res, err := f.Run(ctx, pc)
	if err != nil {
		return res, err
	}
	after, err := c.cpu()
	if err != nil {
		return res, err
	}
	res.ServerCPUSeconds = (after - before).Seconds()
	res.ServerWallSeconds = time.Since(start).Seconds()
	return res, nil
}

func startCluster(ctx context.Context, cfg *suiteConfig, side string, recovery bool) (*cluster, error) {
	_, redisURL, stopRedis, err := startRedis(ctx, cfg.RedisServer)
	if err != nil {
		return nil, err
	}
	c := &cluster{side: side, redis: stopRedis}
	// A stream long enough for the recovery scenario's missed packets, on
	// both sides alike.
	maxLen := 10000
	for _, m := range cfg.Missed {
		if recovery && 4*m > maxLen {
			maxLen = 4 * m
		}
	}
	for i := 0; i < 2; i++ {
		port, err := freePort()
		if err != nil {
			c.stop()
			return nil, err
		}
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		var p *proc
		var ready string
		name := fmt.Sprintf("%s node %d", side, i+1)
		switch side {
		case "go":
			args := []string{"-addr", "127.0.0.1:" + strconv.Itoa(port), "-redis", redisURL,
				"-redis-max-len", strconv.Itoa(maxLen), "-pprof"}
			if recovery {
				args = append(args, "-recovery")
			}
			p, err = startProc(name, []string{"GOMAXPROCS=" + strconv.Itoa(runtime.NumCPU())}, cfg.GoApp, args...)
			ready = base + "/readyz"
			c.pprofs = append(c.pprofs, base)
		case "node":
			args := []string{cfg.NodeApp, "--port", strconv.Itoa(port), "--redis", redisURL, "--max-len", strconv.Itoa(maxLen)}
			if recovery {
				args = append(args, "--recovery")
			}
			p, err = startProc(name, nil, cfg.Node, args...)
			ready = base + "/socket.io/?EIO=4&transport=polling"
		}
		if err != nil {
			c.stop()
			return nil, err
		}
		c.nodes = append(c.nodes, p)
		c.urls = append(c.urls, base)
		if err := waitHTTP(ctx, p, ready, 30*time.Second); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

func runSide(ctx context.Context, cfg *suiteConfig, side string, log io.Writer) *sideResult {
	r := &sideResult{Side: side}
	fail := func(what string, err error) {
		msg := fmt.Sprintf("%s: %v", what, err)
		r.Errors = append(r.Errors, msg)
		fmt.Fprintf(log, "   ERROR %s\n", msg)
	}
	profile := side == "go" && cfg.ProfileDir != ""
	if profile {
		r.ProfileDir = cfg.ProfileDir
	}

	c, err := startCluster(ctx, cfg, side, false)
	if err != nil {
		fail("start", err)
		return r
	}
	// 1. Idle memory, on fresh nodes.
	if idle, err := measureIdle(ctx, cfg, c, profile); err != nil {
		fail("idle memory", err)
	} else {
		r.Idle = idle
		fmt.Fprintf(log, "   idle: %d clients, RSS %.1f -> %.1f MiB, %.1f KiB/client\n", idle.Clients,
			mib(idle.RSSBefore), mib(idle.RSSAfter), idle.BytesPerClient/1024)
	}
	// 2-4. Fan-out, ramp and saturation over one set of clients.
	if err := measureLoad(ctx, cfg, c, r, profile, log); err != nil {
		fail("load", err)
	}
	c.stop()

	// 5. Recovery, on nodes with connection state recovery on.
	c, err = startCluster(ctx, cfg, side, true)
	if err != nil {
		fail("start with recovery", err)
		return r
	}
	defer c.stop()
	for _, missed := range cfg.Missed {
		rr, err := measureRecovery(ctx, c.urls, missed, cfg.Size)
		if err != nil {
			fail(fmt.Sprintf("recovery of %d", missed), err)
			continue
		}
		r.Recovery = append(r.Recovery, rr)
		if rr.Supported {
			fmt.Fprintf(log, "   recovery of %d: %d restored, %d lost, %d dups, in %.1f ms\n", missed, rr.Restored, rr.Lost, rr.Dups, rr.RestoreMs)
		} else {
			fmt.Fprintf(log, "   recovery of %d: not measured: %s\n", missed, rr.Reason)
		}
	}
	return r
}

func measureIdle(ctx context.Context, cfg *suiteConfig, c *cluster, profile bool) (*idleResult, error) {
	settle := func() error {
		select {
		case <-time.After(cfg.IdleSettle):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := settle(); err != nil {
		return nil, err
	}
	before, err := c.rss()
	if err != nil {
		return nil, err
	}
	f, cr, err := connect(ctx, FleetConfig{URLs: c.urls, Clients: cfg.IdleClients, Rooms: 100, RoomPrefix: "idle"})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if cr.Errors > 0 {
		return nil, fmt.Errorf("%d of %d clients failed to connect: %s", cr.Errors, cr.Clients, cr.FirstErr)
	}
	if err := settle(); err != nil {
		return nil, err
	}
	after, err := c.rss()
	if err != nil {
		return nil, err
	}
	if profile {
		path := filepath.Join(cfg.ProfileDir, "go-idle-heap.pb.gz")
		if err := fetchTo(ctx, c.pprofs[0]+"/debug/pprof/heap", path); err != nil {
			return nil, err
		}
		_ = fetchTo(ctx, c.pprofs[0]+"/debug/pprof/goroutine", filepath.Join(cfg.ProfileDir, "go-idle-goroutine.pb.gz"))
	}
	return &idleResult{Clients: cr.Connected, RSSBefore: before, RSSAfter: after,
		BytesPerClient: float64(after-before) / float64(cr.Connected), ConnectSeconds: cr.Seconds}, nil
}

func measureLoad(ctx context.Context, cfg *suiteConfig, c *cluster, r *sideResult, profile bool, log io.Writer) error {
	f, cr, err := connect(ctx, FleetConfig{URLs: c.urls, Clients: cfg.FanoutClients})
	if err != nil {
		return err
	}
	defer f.Close()
	r.Connect = &cr
	fmt.Fprintf(log, "   connect: %d clients in %.2f s (%.0f/s)\n", cr.Connected, cr.Seconds, cr.PerSecond)
	if cr.Errors > 0 {
		return fmt.Errorf("%d of %d clients failed to connect: %s", cr.Errors, cr.Clients, cr.FirstErr)
	}
	if err := warmUp(ctx, f, cfg.Senders); err != nil {
		return err
	}

	fan, err := c.runMeasured(ctx, f, PhaseConfig{Senders: cfg.Senders, Rate: cfg.FanoutRate, Duration: cfg.FanoutFor, Size: cfg.Size})
	if err != nil {
		return err
	}
	r.Fanout = &fan
	fmt.Fprintf(log, "   fan-out at %.0f msg/s: %.0f deliveries/s, p50 %.1f p99 %.1f max %.1f ms, %d lost, %d dups%s\n",
		cfg.FanoutRate, fan.PerSecond, fan.P50Ms, fan.P99Ms, fan.MaxMs, fan.Lost, fan.Duplicates, trouble(fan))

	rate := cfg.RampStart
	r.RampStop = fmt.Sprintf("reached the last step (%d)", cfg.RampSteps)
	for step := 0; step < cfg.RampSteps; step++ {
		// A step that fails is run once more before the ramp stops: on a
		// shared machine one stall of another process can fail a step.
		var res Result
		var why string
		for attempt := 0; attempt < 2; attempt++ {
			res, err = f.Run(ctx, PhaseConfig{Senders: cfg.Senders, Rate: rate, Duration: cfg.RampStep, Size: cfg.Size})
			if err != nil {
				return err
			}
			r.Ramp = append(r.Ramp, res)
			fmt.Fprintf(log, "   ramp %.1f msg/s: sent %.1f/s, %.0f deliveries/s, p99 %.1f ms, %d lost, %d dups%s\n",
				rate, res.SentRate, res.PerSecond, res.P99Ms, res.Lost, res.Duplicates, trouble(res))
			switch {
			case res.Lost > 0 || res.Duplicates > 0:
				why = fmt.Sprintf("%d lost and %d duplicated deliveries at %.1f msg/s%s", res.Lost, res.Duplicates, rate, trouble(res))
			case res.P99Ms > ms(cfg.RampP99):
				why = fmt.Sprintf("p99 %.0f ms above %v at %.1f msg/s (twice)", res.P99Ms, cfg.RampP99, rate)
			case res.SentRate < 0.9*rate:
				why = fmt.Sprintf("the senders could not send %.1f msg/s", rate)
			default:
				why = ""
			}
			if why == "" || res.Lost > 0 || res.Duplicates > 0 {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if why != "" {
			r.RampStop = why
			break
		}
		best := res
		r.RampBest = &best
		rate *= cfg.RampFactor
		// Let the nodes settle between steps.
		time.Sleep(500 * time.Millisecond)
	}

	// Saturation: as fast as the windows allow, profiled on the Go side.
	type prof struct{ name, url string }
	var profs []prof
	if profile {
		secs := strconv.Itoa(int(cfg.SaturateFor.Seconds()))
		profs = []prof{
			{"go-saturated-cpu-node1.pb.gz", c.pprofs[0] + "/debug/pprof/profile?seconds=" + secs},
			{"go-saturated-allocs-node1.pb.gz", c.pprofs[0] + "/debug/pprof/allocs?seconds=" + secs},
		}
	}
	errs := make(chan error, len(profs))
	for _, p := range profs {
		go func(p prof) { errs <- fetchTo(ctx, p.url, filepath.Join(cfg.ProfileDir, p.name)) }(p)
	}
	sat, err := c.runMeasured(ctx, f, PhaseConfig{Senders: cfg.Senders, Window: cfg.SaturateWindow, Duration: cfg.SaturateFor, Size: cfg.Size})
	var perr error
	for range profs {
		perr = errors.Join(perr, <-errs)
	}
	if err != nil {
		return err
	}
	r.Saturate = &sat
	fmt.Fprintf(log, "   saturated (window %d): %.0f msg/s sent, %.0f deliveries/s, p50 %.1f p99 %.1f ms, %d lost, %d dups%s\n",
		cfg.SaturateWindow, sat.SentRate, sat.PerSecond, sat.P50Ms, sat.P99Ms, sat.Lost, sat.Duplicates, trouble(sat))
	return perr
}

// trouble describes what went wrong in a phase besides losses, or "".
func trouble(r Result) string {
	var parts []string
	if r.Disconnected > 0 {
		parts = append(parts, fmt.Sprintf("%d clients disconnected (%s)", r.Disconnected, r.DisconnectWhy))
	}
	if r.SendErrors > 0 {
		parts = append(parts, fmt.Sprintf("%d send errors (%s)", r.SendErrors, r.FirstSendErr))
	}
	if r.Stalled > 0 {
		parts = append(parts, fmt.Sprintf("%d senders stalled", r.Stalled))
	}
	if r.Stale > 0 {
		parts = append(parts, fmt.Sprintf("%d stale messages", r.Stale))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, ", ")
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// table is the side-by-side comparison, as text and as Markdown.
type table struct{ text, markdown string }

type row struct {
	name   string
	unit   string
	better string // "higher" or "lower"
	val    func(*sideResult) (float64, bool)
}

func rows(cfg suiteConfig) []row {
	return []row{
		{fmt.Sprintf("connect %d clients", cfg.FanoutClients), "conn/s", "higher", func(r *sideResult) (float64, bool) {
			if r.Connect == nil {
				return 0, false
			}
			return r.Connect.PerSecond, true
		}},
		{fmt.Sprintf("fan-out %.0f msg/s to %d: deliveries", cfg.FanoutRate, cfg.FanoutClients), "/s", "higher", fanout(func(x *Result) float64 { return x.PerSecond })},
		{"fan-out latency p50", "ms", "lower", fanout(func(x *Result) float64 { return x.P50Ms })},
		{"fan-out latency p90", "ms", "lower", fanout(func(x *Result) float64 { return x.P90Ms })},
		{"fan-out latency p99", "ms", "lower", fanout(func(x *Result) float64 { return x.P99Ms })},
		{"fan-out latency max", "ms", "lower", fanout(func(x *Result) float64 { return x.MaxMs })},
		{"fan-out lost + duplicates", "", "lower", fanout(func(x *Result) float64 { return float64(x.Lost + x.Duplicates) })},
		{"fan-out: CPU of the 2 nodes", "% of a core", "lower", fanout(func(x *Result) float64 { return 100 * x.ServerCPUSeconds / x.ServerWallSeconds })},
		{fmt.Sprintf("max throughput (ramp, p99 ≤ %v, no loss)", cfg.RampP99), "deliveries/s", "higher", func(r *sideResult) (float64, bool) {
			if r.RampBest == nil {
				return 0, false
			}
			return r.RampBest.PerSecond, true
		}},
		{"  at a send rate of", "msg/s", "higher", func(r *sideResult) (float64, bool) {
			if r.RampBest == nil {
				return 0, false
			}
			return r.RampBest.TargetRate, true
		}},
		{"  p99 there", "ms", "lower", func(r *sideResult) (float64, bool) {
			if r.RampBest == nil {
				return 0, false
			}
			return r.RampBest.P99Ms, true
		}},
		{fmt.Sprintf("saturated (window %d/sender)", cfg.SaturateWindow), "deliveries/s", "higher", saturate(func(x *Result) float64 { return x.PerSecond })},
		{"  p99 there", "ms", "lower", saturate(func(x *Result) float64 { return x.P99Ms })},
		{"  CPU of the 2 nodes per delivery", "µs", "lower", saturate(func(x *Result) float64 { return 1e6 * x.ServerCPUSeconds / float64(x.Delivered) })},
		{fmt.Sprintf("idle memory at %d clients", cfg.IdleClients), "KiB/client", "lower", func(r *sideResult) (float64, bool) {
			if r.Idle == nil {
				return 0, false
			}
			return r.Idle.BytesPerClient / 1024, true
		}},
		{"idle RSS of the 2 nodes", "MiB", "lower", func(r *sideResult) (float64, bool) {
			if r.Idle == nil {
				return 0, false
			}
			return mib(r.Idle.RSSAfter), true
		}},
		{fmt.Sprintf("recovery of %d missed packets", cfg.Missed[0]), "ms", "lower", recovery(0)},
		{fmt.Sprintf("recovery of %d missed packets", cfg.Missed[len(cfg.Missed)-1]), "ms", "lower", recovery(len(cfg.Missed) - 1)},
	}
}

func fanout(f func(*Result) float64) func(*sideResult) (float64, bool) {
	return func(r *sideResult) (float64, bool) {
		if r.Fanout == nil {
			return 0, false
		}
		return f(r.Fanout), true
	}
}

func saturate(f func(*Result) float64) func(*sideResult) (float64, bool) {
	return func(r *sideResult) (float64, bool) {
		if r.Saturate == nil {
			return 0, false
		}
		return f(r.Saturate), true
	}
}

func recovery(i int) func(*sideResult) (float64, bool) {
	return func(r *sideResult) (float64, bool) {
		if i >= len(r.Recovery) || !r.Recovery[i].Supported || r.Recovery[i].Lost > 0 {
			return 0, false
		}
		return r.Recovery[i].RestoreMs, true
	}
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func renderTable(cfg suiteConfig, results []*sideResult) table {
	bySide := map[string]*sideResult{}
	for _, r := range results {
		bySide[r.Side] = r
	}
	cell := func(side string, rw row) (string, float64, bool) {
		r := bySide[side]
		if r == nil {
			return "—", 0, false
		}
		v, ok := rw.val(r)
		if !ok {
			switch {
			case strings.HasPrefix(rw.name, "recovery"):
				return "not measured", 0, false
			case strings.HasPrefix(rw.name, "max throughput") && r.Fanout != nil:
				// Not even the first step passed.
				return "< " + fmtNum(cfg.RampStart*float64(cfg.FanoutClients)), 0, false
			case strings.HasPrefix(rw.name, "  at a send rate") && r.Fanout != nil:
				return "< " + fmtNum(cfg.RampStart), 0, false
			}
			return "—", 0, false
		}
		return fmtNum(v), v, true
	}
	var txt, md bytes.Buffer
	tw := tabwriter.NewWriter(&txt, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "figure\tunit\tGo\tNode\tGo/Node\t")
	md.WriteString("| figure | unit | Go | Node | Go/Node |\n|---|---|--:|--:|--:|\n")
	for _, rw := range rows(cfg) {
		g, gv, gok := cell("go", rw)
		n, nv, nok := cell("node", rw)
		ratio := "—"
		if gok && nok && nv != 0 {
			ratio = fmt.Sprintf("%.2f", gv/nv)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", rw.name, rw.unit, g, n, ratio)
		fmt.Fprintf(&md, "| %s | %s | %s | %s | %s |\n", strings.TrimSpace(rw.name), rw.unit, g, n, ratio)
	}
	_ = tw.Flush()
	for _, r := range results {
		if r.RampStop != "" {
			fmt.Fprintf(&txt, "%s ramp stopped: %s\n", r.Side, r.RampStop)
			fmt.Fprintf(&md, "\n%s ramp stopped: %s.", sideName(r.Side), r.RampStop)
		}
		for _, rr := range r.Recovery {
			if !rr.Supported {
				fmt.Fprintf(&txt, "%s recovery not measured: %s\n", r.Side, rr.Reason)
				fmt.Fprintf(&md, "\n%s recovery not measured: %s.", sideName(r.Side), rr.Reason)
				break
			}
			if rr.Lost > 0 {
				fmt.Fprintf(&txt, "%s recovery of %d: %d packets not restored\n", r.Side, rr.Missed, rr.Lost)
				fmt.Fprintf(&md, "\n%s recovery of %d: %d packets not restored.", sideName(r.Side), rr.Missed, rr.Lost)
			}
		}
		for _, e := range r.Errors {
			fmt.Fprintf(&txt, "%s error: %s\n", r.Side, e)
			fmt.Fprintf(&md, "\n%s error: %s.", sideName(r.Side), e)
		}
	}
	md.WriteString("\n")
	return table{text: txt.String(), markdown: md.String()}
}

func sideName(s string) string {
	if s == "go" {
		return "Go"
	}
	return "Node"
}

// machine describes where the suite ran.
func machine(cfg suiteConfig) map[string]string {
	m := map[string]string{
		"cpus": strconv.Itoa(runtime.NumCPU()),
		"go":   runtime.Version(),
		"os":   runtime.GOOS + "/" + runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		m["memory"] = strings.Join(strings.Fields(strings.TrimPrefix(line, "MemTotal:")), " ")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command(cfg.Node, "--version").Output(); err == nil {
		m["node"] = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command(cfg.RedisServer, "--version").Output(); err == nil {
		m["redis"] = strings.TrimSpace(string(out))
	}
	return m
}

const (
	beginMarker = "<!-- bench:begin (written by sockstream-bench -suite; edit outside the markers) -->"
	endMarker   = "<!-- bench:end -->"
)

// writeMarkdown puts the table, the machine and the commands between the
// markers of cfg.Out, keeping what is written around them (the analysis).
func writeMarkdown(cfg suiteConfig, results []*sideResult, tableMD string, elapsed time.Duration) error {
	var b bytes.Buffer
	b.WriteString(beginMarker + "\n\n")
	fmt.Fprintf(&b, "Run of %s, in %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), elapsed.Round(time.Second))
	b.WriteString(tableMD)
	b.WriteString("\n**Machine.** ")
	m := machine(cfg)
	keys := []string{"cpu", "cpus", "memory", "kernel", "os", "go", "node", "redis"}
	var parts []string
	for _, k := range keys {
		if v := m[k]; v != "" {
			parts = append(parts, k+": "+v)
		}
	}
	b.WriteString(strings.Join(parts, "; ") + ".\n\n")
	fmt.Fprintf(&b, "**Scenarios.** Two nodes of each server over one fresh Redis (no persistence), the load tool on the same machine. "+
		"Fan-out: %d clients over the two nodes in one room, %d senders (spread over both nodes) sending %.0f messages/s in all "+
		"(%d-byte payloads) for %v; every client receives every message, %d deliveries per message. "+
		"Max throughput: the same clients, the rate raised ×%.1f from %.0f msg/s every %v until p99 passes %v (in two runs of the step in a row), or a message is lost "+
		"or duplicated, or the senders fall behind; the figure is the last step that passed. "+
		"Saturated: each sender keeps %d messages on their way (closed loop) for %v. "+
		"Idle memory: RSS of both nodes after %v with no client, then with %d idle clients (100 rooms), divided by the clients. "+
		"Recovery: a client on node 1 receives a packet, its TCP connection is cut, a sender on node 2 broadcasts N packets to its room, "+
		"then it reconnects with its pid and offset; the figure is the time from the reconnection's dial to the last missed packet.\n\n",
		cfg.FanoutClients, cfg.Senders, cfg.FanoutRate, cfg.Size, cfg.FanoutFor, cfg.FanoutClients,
		cfg.RampFactor, cfg.RampStart, cfg.RampStep, cfg.RampP99, cfg.SaturateWindow, cfg.SaturateFor, cfg.IdleSettle, cfg.IdleClients)
	b.WriteString("**Commands.**\n\n```sh\nmake bench        # this whole run: builds bin/benchapp and bin/sockstream-bench, then\n" +
		"bin/sockstream-bench -suite -out docs/benchmarks.md -json bin/bench-results.json -profile-dir bin/bench-profiles\n" +
		"go tool pprof -top bin/benchapp bin/bench-profiles/go-saturated-cpu-node1.pb.gz\n```\n\n")
	b.WriteString(endMarker + "\n")

	old, err := os.ReadFile(cfg.Out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var out []byte
	s := string(old)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	switch {
	case i >= 0 && j > i:
		out = []byte(s[:i] + b.String() + strings.TrimPrefix(s[j+len(endMarker):], "\n"))
	case len(old) > 0:
		out = append(append(old, '\n'), b.Bytes()...)
	default:
		out = append([]byte("# Benchmarks: sockstream against the Node reference\n\n"), b.Bytes()...)
	}
	return os.WriteFile(cfg.Out, out, 0o644)
}
