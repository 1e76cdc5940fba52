package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RecoveryResult reports the restoration of a session that missed packets.
type RecoveryResult struct {
	// Supported is false when the server does not recover sessions (no pid
	// in the CONNECT reply, no offset in the packets, or a new session on
	// reconnection); Reason then says which.
	Supported bool   `json:"supported"`
	Reason    string `json:"reason,omitempty"`
	Missed    int    `json:"missed"`
	Restored  int    `json:"restored"`
	Lost      int    `json:"lost"`
	Dups      int    `json:"duplicates"`
	// ConnectMs is from the reconnection's dial to the CONNECT reply;
	// RestoreMs to the last missed packet received.
	ConnectMs float64 `json:"connect_ms"`
	RestoreMs float64 `json:"restore_ms"`
}

// recvLog records the "m" events of one client: which sequence numbers of a
// phase arrived and the last offset seen.
type recvLog struct {
	mu     sync.Mutex
	phase  int64
	seen   []uint64
	n      int
	dups   int
	offset string
	last   time.Time
	notify chan struct{} // signalled (non-blocking) on every new packet
}

func newRecvLog(phase int64) *recvLog {
	return &recvLog{phase: phase, notify: make(chan struct{}, 1)}
}

func (r *recvLog) onEvent(frame []byte) {
	ph, _, seq, _, off, ok := parseMessage(frame)
	if !ok {
		return
	}
	r.mu.Lock()
	if len(off) > 0 {
		r.offset = string(off)
	}
	if ph == r.phase && seq >= 0 {
		w := seq / 64
		for w >= len(r.seen) {
			r.seen = append(r.seen, 0)
		}
		bit := uint64(1) << uint(seq%64)
		if r.seen[w]&bit != 0 {
			r.dups++
		} else {
			r.seen[w] |= bit
			r.n++
			r.last = time.Now()
		}
	}
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recvLog) snapshot() (n, dups int, offset string, last time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n, r.dups, r.offset, r.last
}

// waitCount waits until want packets of the phase arrived, or nothing new
// came for idle, or ctx ends.
func (r *recvLog) waitCount(ctx context.Context, want int, idle time.Duration) int {
	t := time.NewTimer(idle)
	defer t.Stop()
	for {
		n, _, _, _ := r.snapshot()
		if n >= want {
			return n
		}
		select {
		case <-r.notify:
			if !t.Stop() {
				<-t.C
			}
			t.Reset(idle)
		case <-t.C:
			return n
		case <-ctx.Done():
			return n
		}
	}
}

// measureRecovery connects a client to urls[0], lets it receive one packet,
// cuts its connection, has a sender on the last node broadcast missed
// packets to its room, then reconnects it with its pid and offset and times
// the restoration.
func measureRecovery(ctx context.Context, urls []string, missed, size int) (RecoveryResult, error) {
	res := RecoveryResult{Missed: missed}
	room := "rec" + strconv.FormatInt(time.Now().UnixNano(), 36)
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()

	warm := newRecvLog(phaseIDs.Add(1))
	victim, err := dial(dctx, urls[0], dialOptions{Room: room}, warm.onEvent)
	if err != nil {
		return res, fmt.Errorf("victim: %w", err)
	}
	if _, err := victim.EmitWithAck(dctx, "echo", "ready"); err != nil {
		victim.Close()
		return res, fmt.Errorf("victim: %w", err)
	}
	pid := victim.PID
	if pid == "" {
		victim.Close()
		res.Reason = "the CONNECT reply has no pid: connection state recovery is off"
		return res, nil
	}
	// The sender is in the room too: receiving its own packets back tells
	// it they were broadcast (and written to the stream) before the victim
	// comes back.
	missedPhase := phaseIDs.Add(1)
	own := newRecvLog(missedPhase)
	var ownWarm atomic.Int64
	sender, err := dial(dctx, urls[len(urls)-1], dialOptions{Room: room}, func(b []byte) {
		if ph, _, _, _, _, ok := parseMessage(b); ok && ph == warm.phase {
			ownWarm.Add(1)
			return
		}
		own.onEvent(b)
	})
	if err != nil {
		victim.Close()
		return res, fmt.Errorf("sender: %w", err)
	}
	defer sender.Close()
	if _, err := sender.EmitWithAck(dctx, "echo", "ready"); err != nil {
		victim.Close()
		return res, fmt.Errorf("sender: %w", err)
	}

	var frame []byte
	frame = appendMessage(frame, warm.phase, 0, 0, time.Now().UnixNano(), size)
	if err := sender.emitRaw(frame); err != nil {
		victim.Close()
		return res, fmt.Errorf("sender: %w", err)
	}
	if warm.waitCount(dctx, 1, 10*time.Second) < 1 {
		victim.Close()
		return res, errors.New("the victim did not receive the first packet")
	}
	_, _, offset, _ := warm.snapshot()
	if offset == "" {
		victim.Close()
		res.Reason = "packets carry no offset: the server does not recover packets"
		return res, nil
	}
	victim.Drop()
	// The server must have seen the connection go (and kept the session)
	// before the packets it will miss are sent; a cut connection is seen at
	// the next read, at once on loopback.
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return res, ctx.Err()
	}

	const window = 100
	for seq := 0; seq < missed; seq++ {
		if seq >= window {
			if want := seq - window + 1; own.waitCount(ctx, want, 10*time.Second) < want {
				return res, fmt.Errorf("sender: its own packets stopped coming back before %d", want)
			}
		}
		frame = appendMessage(frame[:0], missedPhase, 0, seq, time.Now().UnixNano(), size)
		if err := sender.emitRaw(frame); err != nil {
			return res, fmt.Errorf("sender: %w", err)
		}
	}
	if n := own.waitCount(ctx, missed, 10*time.Second); n < missed {
		return res, fmt.Errorf("sender: received %d of its %d packets back", n, missed)
	}

	back := newRecvLog(missedPhase)
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	t0 := time.Now()
	again, err := dial(rctx, urls[0], dialOptions{Room: room, Auth: map[string]string{"pid": pid, "offset": offset}}, back.onEvent)
	if err != nil {
		return res, fmt.Errorf("reconnection: %w", err)
	}
	defer again.Close()
	res.ConnectMs = ms(time.Since(t0))
	back.waitCount(rctx, missed, 3*time.Second)
	n, dups, _, last := back.snapshot()
	res.Restored, res.Dups, res.Lost = n, dups, missed-n
	if again.SID != victim.SID && n == 0 {
		res.Reason = "the server started a new session instead of recovering it"
		return res, nil
	}
	res.Supported = true
	if n > 0 {
		res.RestoreMs = ms(last.Sub(t0))
	}
	return res, nil
}
