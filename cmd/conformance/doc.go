// Command conformance serves what the official Socket.IO protocol test suites
// expect, so that anyone can run them against sockstream:
//
//   - /socket.io/: a server.Server configured as the socket.io-protocol
//     suite's README asks (pingInterval 300 ms, pingTimeout 200 ms,
//     maxPayload 1,000,000, connectTimeout 1 s, CORS "*"), which emits
//     "auth" back on connection to / and /custom, answers "message" with
//     "message-back" and acks "message-with-ack" with its arguments;
//   - /engine.io/: a bare Engine.IO server configured as the
//     engine.io-protocol suite's README asks, which sends every message back.
//
// Both run on sockstream's own core: /engine.io/ is an internal/eio server,
// /socket.io/ a server.Server (itself on internal/eio).
//
// Usage:
//
//	go run ./cmd/conformance            # localhost:3000, on 127.0.0.1 and ::1
//	go run ./cmd/conformance -addr 127.0.0.1:4000
//
// docs/compatibility.md says how to fetch and run the suites.
package main
