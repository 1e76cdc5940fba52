package server

import (
	"context"
	"errors"
	"slices"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/siocodec"
)

// connect admits a client into the namespace, as Node's Namespace._add
// does, on the client's reading goroutine: restore the session if the
// client asks for it, run the middlewares, register the socket, answer
// CONNECT (then the missed packets, for a restored session), and queue the
// OnConnection handlers. The client's next packet is read afterwards, so it
// always finds its socket.
func (n *Namespace) connect(c *client, auth map[string]any) {
	s := newSocket(n, c, auth)
	var restored *adapter.RestoredSession
	if n.srv.cfg.Recovery.Enabled {
		restored = n.restore(s, auth)
	}
	if restored == nil || !n.srv.cfg.Recovery.SkipMiddlewares {
		n.mu.Lock()
		mws := slices.Clone(n.middlewares)
		n.mu.Unlock()
		for _, mw := range mws {
			if err := s.runMiddleware(mw); err != nil {
				// Rooms a middleware joined, and a handover, end here.
				n.adapter.DelAll(s.id)
				s.cancelContext()
				var ce *ConnectError
				if errors.As(err, &ce) {
					c.writeConnectError(n.name, ce.Message, ce.Data)
				} else {
					c.writeConnectError(n.name, err.Error(), nil)
				}
				return
			}
		}
	}

	rooms := []string{s.id}
	if restored != nil {
		rooms = append(rooms, restored.Rooms...)
	}
	n.adapter.AddAll(s.id, rooms)
	if !c.register(s) {
		// The session ended while the middlewares ran.
		n.adapter.DelAll(s.id)
		s.cancelContext()
		return
	}
	n.mu.Lock()
	n.sockets[s.id] = s
	n.mu.Unlock()
	s.connected.Store(true)
	s.countOutgoing() // outgoing listeners a middleware registered
	nm := n.metrics()
	nm.connected.Inc()
	nm.connections.Inc()

	reply := map[string]any{"sid": s.id}
	if n.srv.cfg.Recovery.Enabled {
		reply["pid"] = s.pid
	}
	_ = c.write(siocodec.Connect, n.name, nil, reply)
	if restored != nil {
		for _, p := range restored.MissedPackets {
			_ = c.write(siocodec.Event, n.name, nil, p)
		}
		n.adapter.SessionResumed(s.id)
	}

	n.mu.Lock()
	hs := slices.Clone(n.onConnect)
	n.mu.Unlock()
	for _, h := range hs {
		s.queue.push(func() { h(s) })
	}
}

// restore takes back the session the client names in its auth payload
// (pid and offset, as the official client sends them), giving s its
// previous id, rooms and data; nil when there is none to restore.
func (n *Namespace) restore(s *Socket, auth map[string]any) *adapter.RestoredSession {
	pid, _ := auth["pid"].(string)
	offset, _ := auth["offset"].(string)
	if pid == "" || offset == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.srv.cfg.Redis.withDefaults().RequestTimeout)
	defer cancel()
	rs, err := n.adapter.RestoreSession(ctx, pid, offset)
	if err != nil || rs == nil {
		if err != nil {
			n.srv.log.Debug("session not restored", "nsp", n.name, "err", err)
		}
		return nil
	}
	s.id, s.pid, s.recovered = rs.SID, rs.PID, true
	s.setData(rs.Data)
	return rs
}
