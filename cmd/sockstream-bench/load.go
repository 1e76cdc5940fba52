package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoClients is returned when no client could connect at all.
var ErrNoClients = errors.New("no client connected")

// FleetConfig describes the clients of a run.
type FleetConfig struct {
	// URLs are the nodes' base URLs (http://host:port); client i connects to
	// URLs[i % len(URLs)].
	URLs []string
	// Clients is the number of connections.
	Clients int
	// Rooms spreads the clients over that many rooms (client i in room
	// i % Rooms), named from RoomPrefix. Default 1.
	Rooms      int
	RoomPrefix string
	// Concurrency bounds the dials in flight. Default 64.
	Concurrency int
	// ConnectTimeout bounds each dial, handshake and readiness echo.
	// Default 20s.
	ConnectTimeout time.Duration
}

func (c *FleetConfig) defaults() error {
	if len(c.URLs) == 0 {
		return errors.New("no node URL")
	}
	if c.Clients < 1 {
		return fmt.Errorf("clients: %d is below 1", c.Clients)
	}
	if c.Rooms < 1 {
		c.Rooms = 1
	}
	if c.RoomPrefix == "" {
		c.RoomPrefix = "bench"
	}
	if c.Concurrency < 1 {
		c.Concurrency = 64
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 20 * time.Second
	}
	return nil
}

// ConnectResult reports how the clients connected.
type ConnectResult struct {
	Clients   int     `json:"clients"`
	Connected int     `json:"connected"`
	Errors    int     `json:"errors"`
	FirstErr  string  `json:"first_error,omitempty"`
	Seconds   float64 `json:"seconds"`    // wall time to connect them all
	P50Ms     float64 `json:"p50_ms"`     // one client's dial to CONNECT reply
	P99Ms     float64 `json:"p99_ms"`     //
	MaxMs     float64 `json:"max_ms"`     //
	PerSecond float64 `json:"per_second"` // connections established per second
}

// member is one connected client of a fleet.
type member struct {
	c    *client
	room int

	mu   sync.Mutex
	seen [][]uint64 // seen[sender] is a bitset of the sequence numbers received in the current phase
	ph   *phase     // the phase seen belongs to
}

// fleet is a set of connected clients reused by several phases.
type fleet struct {
	cfg     FleetConfig
	members []*member
	cur     atomic.Pointer[phase]
	stale   atomic.Int64 // messages of another phase, or malformed
}

// connect dials cfg.Clients clients and waits until each has answered an
// echo, which tells the server ran its connection handler (joined the room).
func connect(ctx context.Context, cfg FleetConfig) (*fleet, ConnectResult, error) {
	if err := cfg.defaults(); err != nil {
		return nil, ConnectResult{}, err
	}
	f := &fleet{cfg: cfg}
	res := ConnectResult{Clients: cfg.Clients}
	var h hist
	var mu sync.Mutex
	members := make([]*member, cfg.Clients)
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < cfg.Clients; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			m := &member{room: i % cfg.Rooms}
			cctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
			defer cancel()
			t0 := time.Now()
			c, err := dial(cctx, cfg.URLs[i%len(cfg.URLs)], dialOptions{Room: f.roomName(m.room)}, func(b []byte) { f.onEvent(m, b) })
			if err == nil {
				h.Record(time.Since(t0))
				m.c = c
				if _, err = c.EmitWithAck(cctx, "echo", "ready"); err != nil {
					c.Close()
				}
			}
			if err != nil {
				mu.Lock()
				res.Errors++
				if res.FirstErr == "" {
					res.FirstErr = err.Error()
				}
				mu.Unlock()
				return
			}
			members[i] = m
		}(i)
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	for _, m := range members {
		if m != nil {
			f.members = append(f.members, m)
		}
	}
	res.Connected = len(f.members)
	res.P50Ms = ms(h.Quantile(0.5))
	res.P99Ms = ms(h.Quantile(0.99))
	res.MaxMs = ms(h.Quantile(1))
	if res.Seconds > 0 {
		res.PerSecond = float64(res.Connected) / res.Seconds
	}
	if err := ctx.Err(); err != nil {
		f.Close()
		return nil, res, err
	}
	if res.Connected == 0 {
		return nil, res, fmt.Errorf("%w: %s", ErrNoClients, res.FirstErr)
	}
	return f, res, nil
}

func (f *fleet) roomName(i int) string { return f.cfg.RoomPrefix + strconv.Itoa(i) }

// Close disconnects every client.
func (f *fleet) Close() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, m := range f.members {
		wg.Add(1)
		sem <- struct{}{}
		go func(m *member) {
			defer wg.Done()
			defer func() { <-sem }()
			m.c.Close()
		}(m)
	}
	wg.Wait()
}

// PhaseConfig is one measured period of sending.
type PhaseConfig struct {
	// Senders are the first Senders clients of the fleet.
	Senders int
	// Rate is the total messages per second over all senders; 0 sends as
	// fast as Window allows.
	Rate float64
	// Window bounds the messages a sender has sent and not yet received
	// back itself (it is in the room it sends to). Default 16.
	Window int
	// Duration is how long the senders send.
	Duration time.Duration
	// Count, when > 0, stops each sender after that many messages instead.
	Count int
	// Size is the length of each message's payload in bytes. Default 100.
	Size int
	// Drain is how long to wait for missing deliveries without any
	// progress once the senders stop. Default 2s.
	Drain time.Duration
}

// Result reports a phase.
type Result struct {
	Clients       int     `json:"clients"`
	Nodes         int     `json:"nodes"`
	Senders       int     `json:"senders"`
	TargetRate    float64 `json:"target_rate"`                 // messages/s asked for, 0 for windowed
	SentRate      float64 `json:"sent_rate"`                   // messages/s sent
	Sent          int64   `json:"sent"`                        // messages
	Expected      int64   `json:"expected"`                    // deliveries: each message times its room's size
	Delivered     int64   `json:"delivered"`                   // unique deliveries
	Lost          int64   `json:"lost"`                        // Expected - Delivered
	Duplicates    int64   `json:"duplicates"`                  // deliveries of a message already received
	Stale         int64   `json:"stale"`                       // messages of an earlier phase, or malformed
	Disconnected  int     `json:"disconnected"`                // clients whose connection ended
	DisconnectWhy string  `json:"disconnect_reason,omitempty"` // the first one's reason
	Stalled       int     `json:"stalled"`                     // senders that gave up waiting for their window
	Seconds       float64 `json:"seconds"`                     // first send to last delivery
	PerSecond     float64 `json:"deliveries_per_second"`
	P50Ms         float64 `json:"p50_ms"`
	P90Ms         float64 `json:"p90_ms"`
	P99Ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`
	SendErrors    int64   `json:"send_errors"`
	FirstSendErr  string  `json:"first_send_error,omitempty"`
	// ServerCPUSeconds is the CPU time the servers used during the phase,
	// when the suite started them (0 otherwise).
	ServerCPUSeconds  float64 `json:"server_cpu_seconds,omitempty"`
	ServerWallSeconds float64 `json:"server_wall_seconds,omitempty"` // the phase, as the CPU time was taken
}

// phase is the shared state of a running phase.
type phase struct {
	id        int64
	lat       hist
	delivered atomic.Int64
	dups      atomic.Int64
	lastRecv  atomic.Int64 // unix nanoseconds
	tokens    []chan struct{}
}

var phaseIDs atomic.Int64

// Run runs one phase over the fleet and returns its figures.
func (f *fleet) Run(ctx context.Context, pc PhaseConfig) (Result, error) {
	if pc.Senders < 1 || pc.Senders > len(f.members) {
		return Result{}, fmt.Errorf("senders: %d is not between 1 and the %d clients", pc.Senders, len(f.members))
	}
	if pc.Duration <= 0 && pc.Count <= 0 {
		return Result{}, errors.New("a phase needs a duration or a count")
	}
	if pc.Window < 1 {
		pc.Window = 16
	}
	if pc.Size <= 0 {
		pc.Size = 100
	}
	if pc.Drain <= 0 {
		pc.Drain = 2 * time.Second
	}
	ph := &phase{id: phaseIDs.Add(1), tokens: make([]chan struct{}, pc.Senders)}
	for i := range ph.tokens {
		ph.tokens[i] = make(chan struct{}, pc.Window)
		for j := 0; j < pc.Window; j++ {
			ph.tokens[i] <- struct{}{}
		}
	}
	roomSize := make([]int64, f.cfg.Rooms)
	for _, m := range f.members {
		roomSize[m.room]++
		m.mu.Lock()
		m.seen, m.ph = nil, ph
		m.mu.Unlock()
	}
	staleBefore := f.stale.Load()
	f.cur.Store(ph)

	res := Result{Clients: len(f.members), Nodes: len(f.cfg.URLs), Senders: pc.Senders, TargetRate: pc.Rate}
	sent := make([]int64, pc.Senders)
	var sendErrs atomic.Int64
	var firstErr atomic.Value
	var stalled atomic.Int64
	start := time.Now()
	end := start.Add(pc.Duration)
	var wg sync.WaitGroup
	for s := 0; s < pc.Senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			m := f.members[s]
			var interval time.Duration
			if pc.Rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(pc.Senders) / pc.Rate)
			}
			// Senders start spread over one interval, not all at once.
			next := start
			if interval > 0 {
				next = start.Add(interval * time.Duration(s) / time.Duration(pc.Senders))
			}
			frame := make([]byte, 0, pc.Size+32)
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for seq := 0; ; seq++ {
				if pc.Count > 0 && seq >= pc.Count {
					return
				}
				if pc.Count <= 0 && !time.Now().Before(end) {
					return
				}
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						timer.Reset(d)
						select {
						case <-timer.C:
						case <-ctx.Done():
							return
						}
					}
					next = next.Add(interval)
				} else {
					timer.Reset(5 * time.Second)
					select {
					case <-ph.tokens[s]:
						if !timer.Stop() {
							<-timer.C
						}
					case <-timer.C:
						stalled.Add(1)
						return
					case <-ctx.Done():
						return
					}
				}
				frame = appendMessage(frame[:0], ph.id, s, seq, time.Now().UnixNano(), pc.Size)
				if err := m.c.emitRaw(frame); err != nil {
					sendErrs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					return
				}
				sent[s]++
			}
		}(s)
	}
	wg.Wait()
	sendSeconds := time.Since(start).Seconds()

	for s := 0; s < pc.Senders; s++ {
		res.Sent += sent[s]
		res.Expected += sent[s] * roomSize[f.members[s].room]
	}
	// Drain: wait for what is still on its way, as long as it keeps coming.
	last, lastChange := ph.delivered.Load(), time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	for ph.delivered.Load() < res.Expected && time.Since(lastChange) < pc.Drain && ctx.Err() == nil {
		<-tick.C
		if d := ph.delivered.Load(); d != last {
			last, lastChange = d, time.Now()
		}
	}
	tick.Stop()
	f.cur.Store(nil)

	res.Delivered = ph.delivered.Load()
	res.Lost = res.Expected - res.Delivered
	res.Duplicates = ph.dups.Load()
	res.Stale = f.stale.Load() - staleBefore
	res.SendErrors = sendErrs.Load()
	if v, ok := firstErr.Load().(string); ok {
		res.FirstSendErr = v
	}
	res.Stalled = int(stalled.Load())
	if sendSeconds > 0 {
		res.SentRate = float64(res.Sent) / sendSeconds
	}
	if lr := ph.lastRecv.Load(); lr > 0 {
		res.Seconds = time.Unix(0, lr).Sub(start).Seconds()
	}
	if res.Seconds > 0 {
		res.PerSecond = float64(res.Delivered) / res.Seconds
	}
	res.P50Ms = ms(ph.lat.Quantile(0.5))
	res.P90Ms = ms(ph.lat.Quantile(0.9))
	res.P99Ms = ms(ph.lat.Quantile(0.99))
	res.MaxMs = ms(ph.lat.Quantile(1))
	for _, m := range f.members {
		select {
		case <-m.c.done:
			res.Disconnected++
			if res.DisconnectWhy == "" && m.c.err != nil {
				res.DisconnectWhy = m.c.err.Error()
			}
		default:
		}
	}
	return res, ctx.Err()
}

// A message is the event "bcast" with one string argument, which the app
// broadcasts back as "m":
//
//	42["bcast","<phase>.<sender>.<seq>.<unix ns>.xxxx…"]
//
// The payload is padded to its size with letters so that no JSON escaping
// is ever needed and receivers parse it without a JSON decoder.
func appendMessage(b []byte, ph int64, sender, seq int, ts int64, size int) []byte {
	b = append(b, `42["bcast","`...)
	n := len(b)
	b = strconv.AppendInt(b, ph, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(sender), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, '.')
	for len(b)-n < size {
		b = append(b, 'x')
	}
	return append(b, `"]`...)
}

var eventPrefix = []byte(`42["m","`)

// parseMessage reads a received "m" event: the payload's numbers and, when
// the server appended one (connection state recovery), the offset.
func parseMessage(frame []byte) (ph int64, sender, seq int, ts int64, offset []byte, ok bool) {
	if !bytes.HasPrefix(frame, eventPrefix) {
		return 0, 0, 0, 0, nil, false
	}
	rest := frame[len(eventPrefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return 0, 0, 0, 0, nil, false
	}
	p := rest[:end]
	var nums [4]int64
	for i := range nums {
		dot := bytes.IndexByte(p, '.')
		if dot <= 0 {
			return 0, 0, 0, 0, nil, false
		}
		v, err := strconv.ParseInt(string(p[:dot]), 10, 64)
		if err != nil {
			return 0, 0, 0, 0, nil, false
		}
		nums[i] = v
		p = p[dot+1:]
	}
	after := rest[end+1:]
	if bytes.HasPrefix(after, []byte(`,"`)) {
		after = after[2:]
		if q := bytes.IndexByte(after, '"'); q >= 0 {
			offset = after[:q]
		}
	}
	return nums[0], int(nums[1]), int(nums[2]), nums[3], offset, true
}

// onEvent runs on the member's read goroutine for every event frame.
func (f *fleet) onEvent(m *member, frame []byte) {
	now := time.Now()
	phID, sender, seq, ts, _, ok := parseMessage(frame)
	if !ok {
		f.stale.Add(1)
		return
	}
	ph := f.cur.Load()
	if ph == nil || ph.id != phID || sender < 0 || sender >= len(ph.tokens) || seq < 0 {
		f.stale.Add(1)
		return
	}
	m.mu.Lock()
	if m.ph != ph {
		m.mu.Unlock()
		f.stale.Add(1)
		return
	}
	if m.seen == nil {
		m.seen = make([][]uint64, len(ph.tokens))
	}
	bs := m.seen[sender]
	w := seq / 64
	for w >= len(bs) {
		bs = append(bs, 0)
	}
	m.seen[sender] = bs
	bit := uint64(1) << uint(seq%64)
	dup := bs[w]&bit != 0
	bs[w] |= bit
	m.mu.Unlock()
	if dup {
		ph.dups.Add(1)
		return
	}
	ph.lat.Record(now.Sub(time.Unix(0, ts)))
	ph.delivered.Add(1)
	ph.lastRecv.Store(now.UnixNano())
	if f.members[sender] == m {
		select {
		case ph.tokens[sender] <- struct{}{}:
		default:
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
