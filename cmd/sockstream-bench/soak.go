//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
)

// soakConfig sizes a soak run; quick() shrinks it to a smoke test.
type soakConfig struct {
	GoApp, RedisServer string
	JSON               string

	Duration time.Duration // how long the senders send
	Period   time.Duration // a fault every Period; the first window has none
	Outage   time.Duration // how long Redis stays dead, a node stays down, a cut lasts
	Sample   time.Duration // RSS and goroutines of the nodes, every Sample
	Clients  int
	Rooms    int
	Senders  int
	Rate     float64 // messages per second over all senders
	Size     int
	Drain    time.Duration // after the senders stop: wait this long without a new delivery

	// nodeCmd says how to start node i (the tests run their own binary);
	// nil runs GoApp.
	nodeCmd func(addr, redisURL string) (bin string, args, env []string)
}

func defaultSoak() soakConfig {
	return soakConfig{
		GoApp: "bin/benchapp", RedisServer: "redis-server",
		Duration: 10 * time.Minute, Period: time.Minute, Outage: 5 * time.Second, Sample: 10 * time.Second,
		Clients: 2000, Rooms: 20, Senders: 20, Rate: 50, Size: 100, Drain: 5 * time.Second,
	}
}

// quick is a smoke test: one fault of each kind in a few seconds.
func (c *soakConfig) quick() {
	c.Period, c.Outage, c.Sample = 3*time.Second, 500*time.Millisecond, time.Second
	c.Duration = 4 * c.Period
	c.Clients, c.Rooms, c.Senders, c.Rate = 40, 4, 4, 40
	c.Drain = 2 * time.Second
}

// runSoak is sockstream-bench -soak, behind `make soak`: a redis-server on a
// free port, two Go nodes (bin/benchapp with connection state recovery and
// pprof) clustered over it, each through its own fault proxy, and
// -soak-clients clients in -rooms rooms kept connected (reconnecting with
// their pid and offset, half to their own node, half to the other). The
// first -senders clients broadcast numbered messages to their rooms at -rate
// in all for -soak-duration; every client records what it receives. The
// first period is a baseline; each later one starts with a fault, in
// rotation: Redis killed (SIGKILL) and restarted empty, a node stopped
// (SIGTERM) and restarted, a node's Redis connections cut by its proxy;
// each lasts -soak-outage. Every period it prints the previous one's
// figures, provisional; at the end, once deliveries stop, every period's
// and the totals (lost, duplicated, missed while away without recovery,
// never broadcast because the sender's node went down), the nodes' RSS and
// goroutines every -soak-sample, and their counters of interest. It fails
// if a delivery was lost, duplicated or misrouted, or a fault could not be
// applied.
func runSoak(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := defaultSoak()
	fs := flag.NewFlagSet("sockstream-bench -soak", flag.ContinueOnError)
	fs.DurationVar(&cfg.Duration, "soak-duration", cfg.Duration, "how long the run sends (a fault every -soak-period, the first period without)")
	fs.IntVar(&cfg.Clients, "soak-clients", cfg.Clients, "clients, spread over the two nodes")
	fs.DurationVar(&cfg.Period, "soak-period", cfg.Period, "a fault every period, in rotation: Redis killed and restarted, a node restarted, a node's Redis connection cut")
	fs.DurationVar(&cfg.Outage, "soak-outage", cfg.Outage, "how long each fault lasts")
	fs.DurationVar(&cfg.Sample, "soak-sample", cfg.Sample, "interval between two samples of the nodes' RSS and goroutines")
	fs.IntVar(&cfg.Rooms, "rooms", cfg.Rooms, "rooms the clients are spread over")
	fs.IntVar(&cfg.Senders, "senders", cfg.Senders, "clients that send (sender i in room i mod -rooms)")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "messages per second over all senders")
	fs.IntVar(&cfg.Size, "size", cfg.Size, "message payload size in bytes")
	fs.StringVar(&cfg.GoApp, "go-app", cfg.GoApp, "the Go application binary (go build -o bin/benchapp ./cmd/benchapp)")
	fs.StringVar(&cfg.RedisServer, "redis-server", cfg.RedisServer, "the redis-server binary")
	fs.StringVar(&cfg.JSON, "json", "", "write every figure as JSON to this file")
	quick := fs.Bool("quick", false, "a short run with a few clients and one fault of each kind (a smoke test, not a measurement)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *quick {
		cfg.quick()
	}
	res, err := soak(ctx, cfg, stdout)
	if res != nil && cfg.JSON != "" {
		if jerr := writeJSON(cfg.JSON, stdout, res); jerr != nil && err == nil {
			err = jerr
		}
	}
	return err
}

func (c *soakConfig) validate() error {
	switch {
	case c.Clients < 2:
		return fmt.Errorf("-soak-clients: %d is below 2", c.Clients)
	case c.Rooms < 1:
		return fmt.Errorf("-rooms: %d is below 1", c.Rooms)
	case c.Senders < 1 || c.Senders > c.Clients:
		return fmt.Errorf("-senders: %d is not between 1 and the %d clients", c.Senders, c.Clients)
	case c.Rate <= 0:
		return fmt.Errorf("-rate: %v is not above 0", c.Rate)
	case c.Period <= 0 || c.Duration < c.Period:
		return fmt.Errorf("-soak-duration %v is shorter than -soak-period %v", c.Duration, c.Period)
	case c.Outage <= 0 || c.Outage >= c.Period/2:
		return fmt.Errorf("-soak-outage: %v is not between 0 and half of -soak-period", c.Outage)
	case c.Sample <= 0:
		return fmt.Errorf("-soak-sample: %v is not above 0", c.Sample)
	case c.Size < 40:
		return fmt.Errorf("-size: %d is below 40", c.Size)
	}
	return nil
}

// The faults, in rotation from the second window on.
const (
	faultNone         = "none"
	faultRedisRestart = "redis-restart"
	faultNodeRestart  = "node-restart"
	faultRedisCut     = "redis-cut"
)

// faultOf is the fault of window w (0 is the baseline) and the node it hits.
func faultOf(w, nodes int) (kind string, node int) {
	if w == 0 {
		return faultNone, -1
	}
	k := (w - 1) / 3
	switch (w - 1) % 3 {
	case 0:
		return faultRedisRestart, -1
	case 1:
		return faultNodeRestart, k % nodes
	default:
		return faultRedisCut, (k + 1) % nodes
	}
}

// SoakWindow is the figures of one period, messages attributed by the time
// they were sent. Deliveries are counted per receiving client.
type SoakWindow struct {
	Index    int     `json:"index"`
	Fault    string  `json:"fault"`
	Node     int     `json:"node,omitempty"`    // 1-based, for the node faults
	FaultAtS float64 `json:"fault_at_s"`        // from the start of the run
	FaultS   float64 `json:"fault_s,omitempty"` // how long injecting and repairing it took
	FaultErr string  `json:"fault_error,omitempty"`

	Sent      int64 `json:"sent"`      // messages
	Unsent    int64 `json:"unsent"`    // sends skipped: the sender was reconnecting
	Expected  int64 `json:"expected"`  // deliveries: each message times its room's size
	Delivered int64 `json:"delivered"` // unique deliveries
	// Lost are the deliveries missing for no excuse below: real losses.
	Lost       int64 `json:"lost"`
	Duplicates int64 `json:"duplicates"`
	// Away are the deliveries missed by a client while it was disconnected
	// and whose reconnection recovery did not restore (a new session).
	Away int64 `json:"missed_while_away"`
	// InFlight are the deliveries of messages nobody received, written by a
	// sender whose connection ended before its own copy came back: the
	// node never took them (it was going down).
	InFlight int64 `json:"in_flight_at_sender_loss"`

	Reconnects   int64 `json:"reconnects"`    // reconnections in this window
	Recovered    int64 `json:"recovered"`     // of which restored the session
	NotRecovered int64 `json:"not_recovered"` // of which got a new session
	Final        bool  `json:"final"`         // false: provisional (printed during the run)
}

// SoakSample is one reading of the nodes.
type SoakSample struct {
	AtS        float64 `json:"at_s"`
	RSS        []int64 `json:"rss_bytes"`  // per node, 0 while down
	Goroutines []int   `json:"goroutines"` // per node, -1 when unknown
	RedisRSS   int64   `json:"redis_rss_bytes"`
	Connected  int     `json:"connected_clients"`
}

// SoakResult is the report of a run.
type SoakResult struct {
	Config struct {
		Clients  int     `json:"clients"`
		Rooms    int     `json:"rooms"`
		Senders  int     `json:"senders"`
		Rate     float64 `json:"rate"`
		Size     int     `json:"size"`
		Duration string  `json:"duration"`
		Period   string  `json:"period"`
		Outage   string  `json:"outage"`
	} `json:"config"`
	Machine   map[string]string `json:"machine"`
	LoadStart string            `json:"load_average_start"`
	LoadEnd   string            `json:"load_average_end"`
	ConnectS  float64           `json:"connect_s"`
	Windows   []SoakWindow      `json:"windows"`
	Total     SoakWindow        `json:"total"`
	Stale     int64             `json:"stale"`     // events not of this run, or malformed
	Misrouted int64             `json:"misrouted"` // messages of another room's sender
	Samples   []SoakSample      `json:"samples"`
	Seconds   float64           `json:"seconds"`
	// Counters are the nodes' Prometheus counters of interest (recovery
	// results, drops, errors), summed over both nodes and every
	// incarnation: a node's are read just before it is stopped.
	Counters map[string]float64 `json:"counters"`
}

// soakNode is one Go node, restartable on its port, behind its own proxy to
// Redis.
type soakNode struct {
	idx   int
	addr  string // 127.0.0.1:port
	base  string // http://addr
	proxy *faultProxy

	mu sync.Mutex
	p  *proc // nil while down
}

func (n *soakNode) proc() *proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.p
}

// soakRedis is the redis-server, restartable.
type soakRedis struct {
	bin, dir string
	port     int // written by start only, on the fault goroutine

	mu sync.Mutex
	p  *proc // nil while dead
}

func (r *soakRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *soakRedis) proc() *proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.p
}

// start runs redis-server on r.port (a new free port if it is taken) and
// waits for PING.
func (r *soakRedis) start(ctx context.Context) error {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 || r.port == 0 {
			port, err := freePort()
			if err != nil {
				return err
			}
			r.port = port
		}
		p, err := startProc("redis-server", nil, r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", r.dir, "--loglevel", "warning")
		if err != nil {
			return err
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if err := p.exited(); err != nil {
				lastErr = err
				break
			}
			if pingRedis(r.addr()) == nil {
				r.mu.Lock()
				r.p = p
				r.mu.Unlock()
				return nil
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				p.Stop()
				return fmt.Errorf("redis-server on %s did not answer PING: %s", r.addr(), p.out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return lastErr
}

// kill is SIGKILL, no goodbye: Redis crashed.
func (r *soakRedis) kill() {
	r.mu.Lock()
	p := r.p
	r.p = nil
	r.mu.Unlock()
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// soakClient is one client of the run and its reconnections.
type soakClient struct {
	s    *soakRun
	idx  int
	room int

	mu     sync.Mutex
	c      *client // nil while reconnecting
	node   int     // the node of c, or of the last connection
	gen    int32   // connection generation: 1 for the first
	pid    string
	offset string
	seen   [][]uint64 // seen[sender]: bitset of the seqs received, for the senders of its room
	lastTs int64      // newest send time (unix ns) of what it received
	away   [][2]int64 // send-time spans it missed with no recovery
	warm   int64      // newest warm-up message received

	// As a sender: what it sent.
	sends []sendRec
}

type sendRec struct {
	ts     int64
	gen    int32
	failed bool // the write failed: possibly never sent
}

// soakRun is the shared state of a run.
type soakRun struct {
	cfg      soakConfig
	log      io.Writer
	counters map[string]float64 // of the stopped incarnations; fault goroutine only
	logMu    sync.Mutex
	start    time.Time // of the sending
	phase    int64
	warmPh   int64
	nodes    []*soakNode
	redis    *soakRedis
	clients  []*soakClient
	dialSem  chan struct{}

	delivered  atomic.Int64
	stale      atomic.Int64
	misrouted  atomic.Int64
	dups       []atomic.Int64 // per window
	reconnects []atomic.Int64
	recovered  []atomic.Int64
	unsent     []atomic.Int64
	nWindows   int
}

func (s *soakRun) logf(format string, args ...any) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.log, "[%6.1fs] ", time.Since(s.start).Seconds())
	fmt.Fprintf(s.log, format, args...)
	fmt.Fprintln(s.log)
}

// windowOf attributes a send time to a window.
func (s *soakRun) windowOf(ts int64) int {
	d := ts - s.start.UnixNano()
	if d < 0 {
		return 0
	}
	w := int(d / int64(s.cfg.Period))
	if w >= s.nWindows {
		w = s.nWindows - 1
	}
	return w
}

func (s *soakRun) roomName(r int) string { return "soak" + strconv.Itoa(r) }

// soak runs the whole thing: Redis, two nodes behind their proxies, the
// clients, the senders, the faults, the samples, and the accounting.
func soak(ctx context.Context, cfg soakConfig, log io.Writer) (*SoakResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &soakRun{cfg: cfg, log: log, start: time.Now(), phase: phaseIDs.Add(1), warmPh: phaseIDs.Add(1),
		dialSem: make(chan struct{}, 64)}
	s.nWindows = int((cfg.Duration + cfg.Period - 1) / cfg.Period)
	s.dups = make([]atomic.Int64, s.nWindows)
	s.reconnects = make([]atomic.Int64, s.nWindows)
	s.recovered = make([]atomic.Int64, s.nWindows)
	s.unsent = make([]atomic.Int64, s.nWindows)
	res := &SoakResult{Machine: machine(suiteConfig{}), LoadStart: loadAvg()}
	res.Config.Clients, res.Config.Rooms, res.Config.Senders = cfg.Clients, cfg.Rooms, cfg.Senders
	res.Config.Rate, res.Config.Size = cfg.Rate, cfg.Size
	res.Config.Duration, res.Config.Period, res.Config.Outage = cfg.Duration.String(), cfg.Period.String(), cfg.Outage.String()
	fmt.Fprintf(log, "soak: %d clients on 2 nodes, %d rooms, %d senders at %.0f msg/s, %v with a fault every %v lasting %v; load average %s\n",
		cfg.Clients, cfg.Rooms, cfg.Senders, cfg.Rate, cfg.Duration, cfg.Period, cfg.Outage, res.LoadStart)

	// Redis and the nodes.
	dir, err := os.MkdirTemp("", "sockstream-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	s.redis = &soakRedis{bin: cfg.RedisServer, dir: dir}
	if err := s.redis.start(ctx); err != nil {
		return nil, err
	}
	defer s.redis.kill()
	for i := 0; i < 2; i++ {
		px, err := newFaultProxy(s.redis.addr())
		if err != nil {
			return nil, err
		}
		defer px.Close()
		port, err := stablePort()
		if err != nil {
			return nil, err
		}
		n := &soakNode{idx: i, addr: "127.0.0.1:" + strconv.Itoa(port), proxy: px}
		n.base = "http://" + n.addr
		s.nodes = append(s.nodes, n)
		if err := s.startNode(ctx, n); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, n := range s.nodes {
			if p := n.proc(); p != nil {
				p.Stop()
			}
		}
	}()

	// The clients, each with the goroutine that keeps it connected.
	cctx, stopClients := context.WithCancel(ctx)
	var cwg sync.WaitGroup
	defer func() {
		stopClients()
		cwg.Wait()
	}()
	connected := make(chan struct{}, cfg.Clients)
	for i := 0; i < cfg.Clients; i++ {
		sc := &soakClient{s: s, idx: i, room: i % cfg.Rooms, node: i % len(s.nodes)}
		sc.seen = make([][]uint64, cfg.Senders)
		s.clients = append(s.clients, sc)
	}
	t0 := time.Now()
	for _, sc := range s.clients {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			sc.run(cctx, connected)
		}()
	}
	for i := 0; i < cfg.Clients; i++ {
		select {
		case <-connected:
		case <-time.After(60 * time.Second):
			return nil, fmt.Errorf("connect: %d of %d clients connected within 60 s", i, cfg.Clients)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	res.ConnectS = time.Since(t0).Seconds()
	fmt.Fprintf(log, "connected %d clients in %.1f s\n", cfg.Clients, res.ConnectS)
	if err := s.warmUp(ctx); err != nil {
		return nil, err
	}

	// Sending, sampling, faults.
	s.start = time.Now()
	runCtx, stopRun := context.WithCancel(ctx)
	var bg sync.WaitGroup
	var samplesMu sync.Mutex
	bg.Add(1)
	go func() {
		defer bg.Done()
		s.sampleLoop(runCtx, func(sm SoakSample) {
			samplesMu.Lock()
			res.Samples = append(res.Samples, sm)
			samplesMu.Unlock()
		})
	}()
	var swg sync.WaitGroup
	sendCtx, stopSend := context.WithDeadline(runCtx, s.start.Add(cfg.Duration))
	for i := 0; i < cfg.Senders; i++ {
		swg.Add(1)
		go func() {
			defer swg.Done()
			s.clients[i].send(sendCtx, i)
		}()
	}
	res.Windows = make([]SoakWindow, s.nWindows)
	for w := range res.Windows {
		kind, node := faultOf(w, len(s.nodes))
		res.Windows[w] = SoakWindow{Index: w, Fault: kind, Node: node + 1}
	}
	faultAt := cfg.Period / 6
	reportAt := cfg.Period / 12
	for w := 1; w < s.nWindows && ctx.Err() == nil; w++ {
		if !sleepUntil(ctx, s.start.Add(time.Duration(w)*cfg.Period+reportAt)) {
			break
		}
		s.report(w-1, &res.Windows[w-1], false)
		s.printWindow(&res.Windows[w-1], res.lastSample(&samplesMu))
		if !sleepUntil(ctx, s.start.Add(time.Duration(w)*cfg.Period+faultAt)) {
			break
		}
		win := &res.Windows[w]
		win.FaultAtS = time.Since(s.start).Seconds()
		t := time.Now()
		if err := s.inject(ctx, win.Fault, win.Node-1); err != nil {
			win.FaultErr = err.Error()
			s.logf("fault %s failed: %v", win.Fault, err)
		}
		win.FaultS = time.Since(t).Seconds()
	}
	swg.Wait()
	stopSend()
	s.drain(ctx)
	stopRun()
	bg.Wait()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for _, n := range s.nodes {
		s.addCounters(ctx, n)
	}
	res.Counters = s.counters

	for w := range res.Windows {
		s.report(w, &res.Windows[w], true)
		addWindow(&res.Total, &res.Windows[w])
	}
	res.Total.Index, res.Total.Fault, res.Total.Final = -1, "total", true
	res.Stale, res.Misrouted = s.stale.Load(), s.misrouted.Load()
	res.Seconds = time.Since(s.start).Seconds()
	res.LoadEnd = loadAvg()
	printSoak(log, res)

	var faultErrs []string
	for _, w := range res.Windows {
		if w.FaultErr != "" {
			faultErrs = append(faultErrs, fmt.Sprintf("window %d %s: %s", w.Index, w.Fault, w.FaultErr))
		}
	}
	switch {
	case len(faultErrs) > 0:
		return res, fmt.Errorf("soak: faults failed: %s", strings.Join(faultErrs, "; "))
	case res.Total.Lost > 0 || res.Total.Duplicates > 0 || res.Misrouted > 0:
		return res, fmt.Errorf("soak: %d deliveries lost, %d duplicated, %d misrouted", res.Total.Lost, res.Total.Duplicates, res.Misrouted)
	}
	return res, nil
}

func (r *SoakResult) lastSample(mu *sync.Mutex) *SoakSample {
	mu.Lock()
	defer mu.Unlock()
	if len(r.Samples) == 0 {
		return nil
	}
	sm := r.Samples[len(r.Samples)-1]
	return &sm
}

func addWindow(t, w *SoakWindow) {
	t.Sent += w.Sent
	t.Unsent += w.Unsent
	t.Expected += w.Expected
	t.Delivered += w.Delivered
	t.Lost += w.Lost
	t.Duplicates += w.Duplicates
	t.Away += w.Away
	t.InFlight += w.InFlight
	t.Reconnects += w.Reconnects
	t.Recovered += w.Recovered
	t.NotRecovered += w.NotRecovered
}

// stablePort is a free loopback port below the kernel's ephemeral range, for
// a node that restarts on it: while the node is down, a port of the range
// can become the local port of any outgoing connection on the machine (ours
// reconnect by the thousand), and the restart would fail to bind.
func stablePort() (int, error) {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				lo = v
			}
		}
	}
	if lo > 11000 {
		for attempt := 0; attempt < 50; attempt++ {
			port := 10000 + rand.N(lo-10000)
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err == nil {
				ln.Close()
				return port, nil
			}
		}
	}
	return freePort()
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool { return sleepUntil(ctx, time.Now().Add(d)) }

// startNode starts node n on its port, its Redis through its proxy, with
// connection state recovery, and waits for /readyz.
func (s *soakRun) startNode(ctx context.Context, n *soakNode) error {
	redisURL := "redis://" + n.proxy.Addr()
	var bin string
	var args, env []string
	if s.cfg.nodeCmd != nil {
		bin, args, env = s.cfg.nodeCmd(n.addr, redisURL)
	} else {
		bin = s.cfg.GoApp
		// A stream long enough for every outage of the run: at 50 msg/s,
		// 100,000 entries are half an hour.
		args = []string{"-addr", n.addr, "-redis", redisURL, "-redis-max-len", "100000", "-recovery", "-pprof"}
	}
	p, err := startProc(fmt.Sprintf("node %d", n.idx+1), env, bin, args...)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, p, n.base+"/readyz", 30*time.Second); err != nil {
		p.Stop()
		return err
	}
	n.mu.Lock()
	n.p = p
	n.mu.Unlock()
	return nil
}

// inject applies one fault, waits the outage, and repairs it.
func (s *soakRun) inject(ctx context.Context, kind string, node int) error {
	switch kind {
	case faultRedisRestart:
		s.logf("fault: redis-server killed (SIGKILL)")
		s.redis.kill()
		sleepCtx(ctx, s.cfg.Outage)
		old := s.redis.addr()
		if err := s.redis.start(ctx); err != nil {
			return err
		}
		if s.redis.addr() != old {
			for _, n := range s.nodes {
				n.proxy.SetTarget(s.redis.addr())
			}
		}
		s.logf("fault: redis-server restarted (empty) on %s", s.redis.addr())
	case faultNodeRestart:
		n := s.nodes[node]
		n.mu.Lock()
		p := n.p
		n.p = nil
		n.mu.Unlock()
		s.addCounters(ctx, n)
		s.logf("fault: node %d stopped (SIGTERM)", node+1)
		if p != nil {
			p.Stop()
		}
		sleepCtx(ctx, s.cfg.Outage)
		if err := s.startNode(ctx, n); err != nil {
			return err
		}
		s.logf("fault: node %d restarted", node+1)
	case faultRedisCut:
		n := s.nodes[node]
		cut := n.proxy.Cut()
		s.logf("fault: Redis connections of node %d cut (%d severed)", node+1, cut)
		sleepCtx(ctx, s.cfg.Outage)
		n.proxy.Restore()
		s.logf("fault: Redis connections of node %d restored", node+1)
	}
	return ctx.Err()
}

// warmUp has every sender send until every client receives its room's
// messages: both nodes hear each other.
func (s *soakRun) warmUp(ctx context.Context) error {
	for seq := 1; seq <= 20; seq++ {
		for i := 0; i < s.cfg.Senders; i++ {
			sc := s.clients[i]
			c, _ := sc.current()
			if c == nil {
				continue
			}
			frame := appendMessage(nil, s.warmPh, i, seq, time.Now().UnixNano(), s.cfg.Size)
			_ = c.emitRaw(frame)
		}
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if s.warmedUp(int64(seq)) {
				return nil
			}
			if !sleepCtx(ctx, 20*time.Millisecond) {
				return ctx.Err()
			}
		}
	}
	return errors.New("warm-up: the nodes do not deliver every message to every client")
}

func (s *soakRun) warmedUp(seq int64) bool {
	hasSender := make([]bool, s.cfg.Rooms)
	for i := 0; i < s.cfg.Senders; i++ {
		hasSender[s.clients[i].room] = true
	}
	for _, sc := range s.clients {
		sc.mu.Lock()
		w := sc.warm
		sc.mu.Unlock()
		if hasSender[sc.room] && w < seq {
			return false
		}
	}
	return true
}

func (sc *soakClient) current() (*client, int32) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.c, sc.gen
}

// awayMargin widens a client's absence backwards from the newest message it
// had received: a message of another sender sent a little earlier may still
// have been on its way when the connection went.
const awayMargin = time.Second

// stickyAttempts is how many times a sticky client tries its own node again
// before it tries the other: with the backoff, about 8 s, longer than a node
// restart.
const stickyAttempts = 7

// run keeps the client connected until ctx ends: on every disconnection it
// reconnects, with its pid and offset for recovery, with a jittered
// backoff: half the clients to the other node first, the other half to
// their own node (they wait for it to restart), so that a restart exercises
// recovery on both the restarted node and the other.
func (sc *soakClient) run(ctx context.Context, connected chan<- struct{}) {
	s := sc.s
	first := true
	for ctx.Err() == nil {
		var c *client
		for attempt := 0; ctx.Err() == nil; attempt++ {
			node := sc.node
			switch {
			case first:
			case (sc.idx/len(s.nodes))%2 == 1:
				// Half the clients go to the other node first, then
				// alternate.
				node = (sc.node + 1 + attempt) % len(s.nodes)
			case attempt >= stickyAttempts:
				// The other half wait for their node (it restarts),
				// then alternate.
				node = (sc.node + 1 + attempt - stickyAttempts) % len(s.nodes)
			}
			var err error
			c, err = sc.dial(ctx, node)
			if err == nil {
				sc.node = node
				break
			}
			back := min(100*time.Millisecond<<min(attempt, 5), 2*time.Second)
			if !sleepCtx(ctx, back/2+rand.N(back)) {
				return
			}
		}
		if c == nil {
			return
		}
		if first {
			first = false
			connected <- struct{}{}
		}
		select {
		case <-c.done:
			sc.mu.Lock()
			sc.c = nil
			sc.mu.Unlock()
		case <-ctx.Done():
			c.Close()
			return
		}
	}
}

// dial connects to node, with recovery when there was a session, and waits
// for the echo that says the server ran the connection handler (the room
// is joined).
func (sc *soakClient) dial(ctx context.Context, node int) (*client, error) {
	s := sc.s
	select {
	case s.dialSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.dialSem }()
	sc.mu.Lock()
	o := dialOptions{Room: s.roomName(sc.room)}
	oldPID := sc.pid
	if sc.pid != "" && sc.offset != "" {
		o.Auth = map[string]string{"pid": sc.pid, "offset": sc.offset}
	}
	awayFrom := sc.lastTs
	sc.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := dial(dctx, s.nodes[node].base, o, sc.onEvent)
	if err != nil {
		return nil, err
	}
	if _, err := c.EmitWithAck(dctx, "echo", "ready"); err != nil {
		c.Close()
		return nil, err
	}
	now := time.Now()
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.gen > 0 {
		w := s.windowOf(now.UnixNano())
		s.reconnects[w].Add(1)
		if c.PID != "" && c.PID == oldPID {
			s.recovered[w].Add(1)
		} else {
			// Whatever was sent from a little before the newest message it
			// had (another sender's may still have been on its way) until
			// now was missed with an excuse.
			sc.away = append(sc.away, [2]int64{awayFrom - int64(awayMargin), now.UnixNano()})
		}
	}
	sc.gen++
	sc.c = c
	sc.pid = c.PID
	return c, nil
}

// onEvent records a received message; it runs on the read goroutine.
func (sc *soakClient) onEvent(frame []byte) {
	s := sc.s
	ph, sender, seq, ts, off, ok := parseMessage(frame)
	if !ok {
		s.stale.Add(1)
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(off) > 0 {
		sc.offset = string(off)
	}
	switch {
	case ph == s.warmPh:
		sc.warm = max(sc.warm, int64(seq))
		return
	case ph != s.phase || sender < 0 || sender >= s.cfg.Senders || seq < 0:
		s.stale.Add(1)
		return
	case sender%s.cfg.Rooms != sc.room:
		s.misrouted.Add(1)
		return
	}
	bs := sc.seen[sender]
	wd := seq / 64
	for wd >= len(bs) {
		bs = append(bs, 0)
	}
	sc.seen[sender] = bs
	bit := uint64(1) << uint(seq%64)
	if bs[wd]&bit != 0 {
		s.dups[s.windowOf(ts)].Add(1)
		return
	}
	bs[wd] |= bit
	sc.lastTs = max(sc.lastTs, ts)
	s.delivered.Add(1)
}

// send broadcasts to the client's room at its share of the rate until ctx
// ends; ticks while it is reconnecting are skipped and counted.
func (sc *soakClient) send(ctx context.Context, sender int) {
	s := sc.s
	interval := time.Duration(float64(time.Second) * float64(s.cfg.Senders) / s.cfg.Rate)
	next := s.start.Add(interval * time.Duration(sender) / time.Duration(s.cfg.Senders))
	var frame []byte
	for {
		if !sleepUntil(ctx, next) {
			return
		}
		next = next.Add(interval)
		now := time.Now()
		c, gen := sc.current()
		if c == nil {
			s.unsent[s.windowOf(now.UnixNano())].Add(1)
			continue
		}
		sc.mu.Lock()
		seq := len(sc.sends)
		sc.sends = append(sc.sends, sendRec{ts: now.UnixNano(), gen: gen})
		sc.mu.Unlock()
		frame = appendMessage(frame[:0], s.phase, sender, seq, now.UnixNano(), s.cfg.Size)
		if err := c.emitRaw(frame); err != nil {
			sc.mu.Lock()
			sc.sends[seq].failed = true
			sc.mu.Unlock()
		}
	}
}

// drain waits, after the senders stopped, until every client is connected
// and no delivery came for cfg.Drain (at most a minute).
func (s *soakRun) drain(ctx context.Context) {
	deadline := time.Now().Add(time.Minute)
	last, since := s.delivered.Load(), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if d := s.delivered.Load(); d != last {
			last, since = d, time.Now()
		}
		if time.Since(since) >= s.cfg.Drain && s.connected() == len(s.clients) {
			return
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
}

func (s *soakRun) connected() int {
	n := 0
	for _, sc := range s.clients {
		if c, _ := sc.current(); c != nil {
			n++
		}
	}
	return n
}

// report computes window w's figures from what the clients recorded. A
// provisional report counts what is still missing as lost.
func (s *soakRun) report(w int, win *SoakWindow, final bool) {
	*win = SoakWindow{Index: win.Index, Fault: win.Fault, Node: win.Node, FaultAtS: win.FaultAtS, FaultS: win.FaultS, FaultErr: win.FaultErr, Final: final}
	win.Duplicates = s.dups[w].Load()
	win.Reconnects = s.reconnects[w].Load()
	win.Recovered = s.recovered[w].Load()
	win.NotRecovered = win.Reconnects - win.Recovered
	win.Unsent = s.unsent[w].Load()
	members := make([][]*soakClient, s.cfg.Rooms)
	for _, sc := range s.clients {
		members[sc.room] = append(members[sc.room], sc)
	}
	for i := 0; i < s.cfg.Senders; i++ {
		snd := s.clients[i]
		snd.mu.Lock()
		sends := append([]sendRec(nil), snd.sends...)
		senderGen, senderUp := snd.gen, snd.c != nil
		snd.mu.Unlock()
		room := members[snd.room]
		for seq, rec := range sends {
			if s.windowOf(rec.ts) != w {
				continue
			}
			win.Sent++
			win.Expected += int64(len(room))
			var got int64
			var missing []*soakClient
			for _, sc := range room {
				sc.mu.Lock()
				bs := sc.seen[i]
				in := seq/64 < len(bs) && bs[seq/64]&(1<<uint(seq%64)) != 0
				sc.mu.Unlock()
				if in {
					got++
				} else {
					missing = append(missing, sc)
				}
			}
			win.Delivered += got
			if got == 0 && (rec.failed || rec.gen < senderGen || !senderUp) {
				// Nobody got it and the sender's connection is gone: the
				// node never broadcast it.
				win.InFlight += int64(len(room))
				continue
			}
			for _, sc := range missing {
				sc.mu.Lock()
				away := false
				for _, sp := range sc.away {
					if rec.ts >= sp[0] && rec.ts <= sp[1] {
						away = true
						break
					}
				}
				sc.mu.Unlock()
				if away {
					win.Away++
				} else {
					win.Lost++
				}
			}
		}
	}
}

func (s *soakRun) sampleLoop(ctx context.Context, add func(SoakSample)) {
	hc := &http.Client{Timeout: 2 * time.Second}
	t := time.NewTicker(s.cfg.Sample)
	defer t.Stop()
	for {
		sm := SoakSample{AtS: time.Since(s.start).Seconds(), Connected: s.connected()}
		for _, n := range s.nodes {
			var rss int64
			g := -1
			if p := n.proc(); p != nil {
				rss, _ = p.RSS()
				g = goroutines(ctx, hc, n.base)
			}
			sm.RSS = append(sm.RSS, rss)
			sm.Goroutines = append(sm.Goroutines, g)
		}
		if p := s.redis.proc(); p != nil {
			sm.RedisRSS, _ = p.RSS()
		}
		add(sm)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// goroutines reads the count from the node's pprof goroutine profile
// ("goroutine profile: total N"); -1 when it cannot.
func goroutines(ctx context.Context, hc *http.Client, base string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return -1
	}
	resp, err := hc.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil && line == "" {
		return -1
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil {
		return -1
	}
	return n
}

// counterPrefixes are the counters the report keeps: how recoveries went,
// and every drop and error that could explain a loss.
var counterPrefixes = []string{
	"sockstream_recovery_attempts_total",
	"sockstream_recovery_sessions_persisted_total",
	"sockstream_disconnections_total",
	"sockstream_engine_slow_consumers_total",
	"sockstream_adapter_publish_errors_total",
	"sockstream_adapter_volatile_dropped_total",
	"sockstream_adapter_malformed_messages_total",
	"sockstream_cluster_",
}

// addCounters adds node n's counters of interest, from /metrics, to
// s.counters; a node that does not answer is logged and skipped.
func (s *soakRun) addCounters(ctx context.Context, n *soakNode) {
	if s.counters == nil {
		s.counters = map[string]float64{}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.base+"/metrics", nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.logf("metrics of node %d: %v", n.idx+1, err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name := line[:sp]
		base, _, _ := strings.Cut(name, "{")
		if !strings.HasSuffix(base, "_total") || !hasAnyPrefix(base, counterPrefixes) {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil || v == 0 {
			continue
		}
		s.counters[name] += v
	}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func faultName(w *SoakWindow) string {
	switch w.Fault {
	case faultNodeRestart, faultRedisCut:
		return fmt.Sprintf("%s node %d", w.Fault, w.Node)
	}
	return w.Fault
}

func (s *soakRun) printWindow(w *SoakWindow, sm *SoakSample) {
	var nodes string
	if sm != nil {
		for i := range sm.RSS {
			nodes += fmt.Sprintf("; node %d RSS %.1f MiB, %d goroutines", i+1, mib(sm.RSS[i]), sm.Goroutines[i])
		}
	}
	s.logf("window %d (%s), provisional: %d sent, %d/%d delivered, %d missing, %d dups, %d missed while away, %d in flight at sender loss, %d reconnects (%d recovered)%s",
		w.Index, faultName(w), w.Sent, w.Delivered, w.Expected, w.Lost, w.Duplicates, w.Away, w.InFlight, w.Reconnects, w.Recovered, nodes)
}

func printSoak(out io.Writer, r *SoakResult) {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "window\tfault\tsent\tunsent\texpected\tdelivered\tlost\tdups\taway\tin flight\treconnects\trecovered\t")
	for _, w := range append(append([]SoakWindow(nil), r.Windows...), r.Total) {
		idx := strconv.Itoa(w.Index)
		if w.Index < 0 {
			idx = "all"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", idx, faultName(&w), w.Sent, w.Unsent, w.Expected, w.Delivered,
			w.Lost, w.Duplicates, w.Away, w.InFlight, w.Reconnects, w.Recovered)
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "\nlost: missing with no excuse; away: missed by a client while disconnected, its session not recovered;")
	fmt.Fprintln(out, "in flight: messages nobody received, sent on a connection that ended before its own copy came back.")
	if r.Stale > 0 || r.Misrouted > 0 {
		fmt.Fprintf(out, "stale events %d, misrouted %d\n", r.Stale, r.Misrouted)
	}
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "t (s)\t")
	nodes := 0
	if len(r.Samples) > 0 {
		nodes = len(r.Samples[0].RSS)
	}
	for i := 0; i < nodes; i++ {
		fmt.Fprintf(tw, "node %d RSS MiB\tgoroutines\t", i+1)
	}
	fmt.Fprintln(tw, "redis RSS MiB\tclients\t")
	for _, sm := range r.Samples {
		fmt.Fprintf(tw, "%.0f\t", sm.AtS)
		for i := range sm.RSS {
			if sm.RSS[i] == 0 {
				fmt.Fprint(tw, "down\t-\t")
				continue
			}
			fmt.Fprintf(tw, "%.1f\t%d\t", mib(sm.RSS[i]), sm.Goroutines[i])
		}
		fmt.Fprintf(tw, "%.1f\t%d\t\n", mib(sm.RedisRSS), sm.Connected)
	}
	_ = tw.Flush()
	if len(r.Counters) > 0 {
		fmt.Fprintln(out, "\nnode counters (both nodes, every incarnation):")
		names := make([]string, 0, len(r.Counters))
		for k := range r.Counters {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(out, "  %s %.0f\n", k, r.Counters[k])
		}
	}
	fmt.Fprintf(out, "\nsoak ran %.0f s; load average %s at the start, %s at the end\n", r.Seconds, r.LoadStart, r.LoadEnd)
}
