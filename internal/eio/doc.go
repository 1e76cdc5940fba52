// Package eio is sockstream's Engine.IO v4 server: handshake, heartbeat,
// HTTP long-polling, WebSocket, the upgrade from one to the other, and a
// bounded output queue per session. It knows nothing of Socket.IO: the
// Socket.IO layer implements Handler and sends Messages.
//
// It follows Node's engine.io 6.x (status codes, error bodies, close
// reasons, packet handling); the differences are deliberate and listed at
// the end.
//
// # Use
//
//	srv, err := eio.NewServer(eio.Options{}, func(s *eio.Session) eio.Handler {
//		return &myHandler{s: s} // OnMessage, OnClose
//	})
//	mux.Handle("/engine.io/", srv)
//	...
//	_ = s.Send(eio.TextMessage(b))  // queues, never blocks
//	m := eio.TextMessage(b)         // a broadcast: built once,
//	for _, s := range room { _ = s.Send(m) } // framed once, shared
//	...
//	_ = srv.Close(ctx)              // every session "forced close", waits for the goroutines
//
// # Goroutines: who owns what
//
//   - WebSocket reader (one per WebSocket connection, started on the
//     handshake or upgrade request after the hijack; the request's own
//     net/http goroutine returns). It owns the connection's read side and
//     its 128-byte read buffer, calls Handler.OnMessage for that session,
//     answers "2probe" during an upgrade (a direct write, before it reads
//     the next frame) and ends when the connection fails or closes. Owner:
//     the connection; Server.Close ends it by closing the session (close
//     frame, then the connection is closed once the client answers or
//     after closeWait, 1 s). It is the only goroutine of an idle
//     WebSocket session.
//   - Flusher (per WebSocket session, only while something is queued).
//     Started by the Send (or ping, or close) that finds the queue idle;
//     writes everything queued in one write(2) per round, loops while more
//     was queued meanwhile, exits when the queue is empty. After it writes
//     a close frame it closes the connection, or gives the reader closeWait
//     to read the client's answer.
//   - Polling requests run on net/http's goroutines: a GET waits (select on
//     its session's signal and the request's context; during an upgrade
//     also a 100 ms timer, after which it gets a noop) and writes its own
//     response; a POST reads its body and calls OnMessage on its goroutine.
//   - Timer callbacks: one time.AfterFunc timer per session (below); its
//     callback runs on a goroutine of the runtime's for a moment, under
//     the session's lock.
//   - OnClose deliveries: a short goroutine per ended session, so that
//     OnClose never runs on the goroutine of a Send, Close or OnMessage
//     call; it waits for an OnMessage in progress (the session's inMu).
//
// Readers, flushers, OnClose deliveries and timer callbacks are counted by
// the server's in-flight group (track), and Server.Close waits for them.
//
// # Ordering
//
// OnMessage calls of one session are serialised by a mutex (inMu) and
// happen in arrival order: a session reads from one place at a time (one
// POST at a time, or the WebSocket reader once upgraded; during an upgrade
// the probing WebSocket carries only "2probe" and "5"). OnClose comes once,
// after the last OnMessage; nothing is delivered after the session ended.
// What is queued for a session goes out in Send order, across the upgrade:
// packets queued while polling and not yet taken by a GET go out over the
// WebSocket once the client's "5" arrives.
//
// # Buffers
//
//   - Per session, at rest: the queue is nil (a slice only while something
//     is queued); no write buffer; the WebSocket reader's 128-byte array
//     (small frames are read with one read(2); larger payloads are read
//     straight into their own slice, grown 64 KiB at a time as data
//     arrives, at most MaxPayload). net/http's bufio.Reader and Writer are
//     dropped at the hijack (whatever the bufio.Reader had already read
//     past the request is copied out first and read before the socket).
//   - Messages: a Message caches its complete WebSocket frame and its
//     polling form the first time a transport needs them, so a broadcast
//     is encoded once; the engine's own packets (ping, noop, close, the
//     "3probe" answer, close frames) are process-wide.
//   - Writes: a flush copies the frames into one pooled buffer (sync.Pool,
//     4 KiB to 64 KiB; bigger batches get a buffer of their own, not
//     pooled), or, above 64 KiB on a TCP connection, hands the frames to
//     one writev(2) (net.Buffers) without copying. Polling responses are
//     joined in the same pooled buffers; gzip/deflate writers are pooled.
//   - POST bodies are read whole (at most MaxPayload); the packets handed
//     to OnMessage are slices of that body.
//   - The bound: Options.MaxBufferedBytes limits the payload bytes queued
//     and not yet written per session, the batch being written included.
//     A Send that would pass it returns ErrSlowConsumer and closes the
//     session ("slow consumer", its connection closed at once, its queue
//     dropped). Engine packets (ping, close) are not refused by the bound.
//
// # Timers
//
// One time.AfterFunc timer per session, pointed at the earliest of three
// deadlines; no goroutine sleeps:
//
//   - Heartbeat: PingInterval after the open packet, the timer fires; the
//     pong deadline (PingTimeout after the PING was due) is armed, then the
//     PING is queued (so a PONG, whenever it comes, finds the deadline to
//     clear). A PONG replaces the deadline with the next PING, PingInterval
//     later. Only a PONG counts; a PONG that answers no PING is ignored.
//     Past the deadline: "ping timeout" (a polling request that arrives
//     past it finds the session closed even if the timer's callback has
//     not run yet).
//   - Upgrade: UpgradeTimeout after the WebSocket of an upgrade is
//     accepted, if "5" has not come, that WebSocket is closed and the
//     session goes on over polling.
//   - Linger: a polling session closed by Session.Close with no GET
//     pending stays known for WriteTimeout, for the GET that takes its
//     last packets and the close packet; one closed by its client's close
//     packet stays known for 1 s and answers a GET with a noop (see
//     below).
//
// A timer that fires while being moved finds nothing due and re-arms; the
// callback acts only on deadlines that have passed.
//
// # What an idle session costs
//
// Measured by TestIdleMemory (go test -run TestIdleMemory -v
// ./internal/eio/; 2,000 and 4,000 raw WebSocket clients in a child
// process, Go 1.26, linux/amd64): one goroutine per session, 2.8 KiB of
// live heap (Session, Handshake, wsConn, net.TCPConn, timer) and 2.0 KiB
// of stack: 4.8 KiB of heap+stack, 6.6–7.3 KiB of process RSS per session
// (measured before the handshake stopped copying the request's headers and
// the reader started handing over a grown stack; docs/core.md has the
// figures of a whole Socket.IO client since). For comparison, a bare gorilla/websocket
// connection with its reader (no Engine.IO session) costs 11.4 KiB of
// heap+stack with gorilla's defaults, 3.0 KiB with a 256-byte read buffer
// and pooled write buffers (TestIdleMemoryGorilla, EIO_IDLE_GORILLA=1).
// The WebSocket reader here is our own (wsread.go): gorilla, tuned, would
// cost about as much, but the own reader validates UTF-8 (gorilla leaves it
// to the application), reads what net/http buffered past the request,
// writes the 101 response and the open packet in one write, and sends
// control frames (pong, close) through the session's queue.
//
// # Close reasons
//
// As Node's engine.io: "transport close" (the client's close packet or
// close frame, or its connection ending), "transport error" (a write that
// failed or passed WriteTimeout, a WebSocket protocol error (close 1002),
// invalid UTF-8 (1007), a message over MaxPayload (1009), a POST over
// MaxPayload (413), overlapping GETs or POSTs (400), a PING from the
// client, a handler that panicked), "ping timeout", "parse error" (an
// undecodable packet), "forced close" (Session.Close, Server.Close), and
// "slow consumer" (ours).
//
// # Differences from Node's engine.io 6
//
//   - No JSONP polling: a request with "j" is answered 400 code 3.
//   - No EIO v3 (allowEIO3), no WebTransport; per-message deflate only
//     without context takeover (deflate.go); the cookie option is
//     Options.Cookie.
//   - A POST over MaxPayload is answered 413 and closes the session
//     ("transport error"); Node keeps the session (its client closes it on
//     the error anyway). An invalid POST payload is answered 400 (Node
//     destroys the request's connection).
//   - A GET pending when "2probe" arrives, or arriving during the upgrade,
//     is answered a noop 100 ms later (Node: at its next 100 ms check),
//     unless something is queued for it; a GET still pending when "5"
//     arrives is answered 400, like any polling request after the upgrade
//     (Node closes the old transport, answering it "1"; a conforming
//     client has no GET pending then).
//   - A polling session closed by its client's close packet with no GET
//     pending answers a GET that arrives within a second with a noop, the
//     answer Node's single thread nearly always gives a GET sent together
//     with the close packet; later GETs get 400.
//   - A handler panic is recovered and closes the session ("transport
//     error"); so is a panic in accept (the handshake gets 403).
//   - Sessions are bounded (MaxBufferedBytes) and writes have a deadline
//     (WriteTimeout); Node has neither.
//   - The CORS options are an origin predicate (the allowed Origin is
//     reflected, with Vary: Origin) and a credentials flag.
package eio
