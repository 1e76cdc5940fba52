// Package engineio holds small, documented corrections to zishang520's
// Engine.IO server (github.com/zishang520/socket.io/servers/engine/v3 v3.0.6)
// where it behaves differently from Node's engine.io, found by the official
// engine.io-protocol and socket.io-protocol test suites.
//
// The corrections live in a replacement for the upstream HTTP long-polling
// transport constructor, Polling. It builds the upstream transport and
// overrides OnRequest, OnData and DoClose (the last two reached through the
// upstream "prototype" mechanism), so that everything else (request
// handling, writing, compression) stays upstream code:
//
//   - An undecodable long-polling payload closes the session, as in Node.
//     Upstream (transports/polling.go, OnData) ignores the error returned by
//     DecodePayload, so the session stays open and the next poll answers 200.
//     Here the POST is answered 400 and an ERROR packet is handed to the
//     session, which closes it with reason "parse error", like engine.io's
//     socket.onPacket does for Node's decoder error packet.
//   - A long-polling GET still pending when the client's UPGRADE packet
//     arrives over WebSocket is answered 400. Upstream answers it 200 with
//     the CLOSE packet of the discarded transport (socket.go, MaybeUpgrade
//     then clearTransport then polling.DoClose). A conforming client never
//     has a poll pending when it sends UPGRADE (it pauses polling first), so
//     such a GET was sent by the client alongside or after UPGRADE, and Node
//     answers requests after the upgrade 400. Node rarely shows the pending
//     case because its single thread reads the WebSocket frames that were
//     sent first before it reads the GET; upstream reads the WebSocket on its
//     own goroutine, which starts after the 101 response, so the GET often
//     wins and the race is visible.
//   - A poll that reaches a transport its client has just closed is answered
//     400. Upstream registers a poll (polling.go, onPollRequest) and handles
//     the client's CLOSE (OnData, then OnClose) with no common lock: a poll
//     that passed the session lookup while a concurrent POST "1" closed the
//     transport is registered on the closed transport and never answered.
//     Here a poll's registration and the CLOSE are ordered by one mutex.
//   - A POST body sent without Content-Length (chunked) and larger than
//     maxPayload is answered 413, as in Node. Upstream (polling.go,
//     onDataRequest) checks the limit against Content-Length only and reads
//     the body through a LimitReader, so it decodes the first maxPayload
//     bytes and answers 200.
//
// The WebSocket transport constructor, WebSocket, builds a transport of its
// own on upstream's base transport, with gorilla's connection for reading:
//
//   - Writing: everything queued for a connection goes out in one write(2),
//     and a broadcast's frame, encoded once, is copied as it is. Upstream
//     wrote each packet with its own system call and rebuilt a broadcast's
//     frame as a gorilla PreparedMessage for every client (docs/benchmarks.md).
//   - The answer to an upgrade probe ("3probe") reaches the wire before the
//     client's next frame is handled, as Node does; upstream queued it for a
//     writer goroutine while its reader went on to the UPGRADE packet, which
//     ends the session's polling, so a client could see its poll answered
//     before it saw "3probe".
//   - Each client PONG is handed to the engine a second time, a second later,
//     unless another PING went out: upstream arms the pong timeout after it
//     sends the PING, and a PONG handled in between left a timeout nobody
//     cleared, closing a client that had answered ("ping timeout"). The
//     polling transport does the same.
//
// ReleaseAfterHijack wraps the engine's handler so that a hijacked WebSocket
// connection does not keep net/http's 8 KiB of buffers for its whole life.
//
// One more correction needs no wiring: importing the package gives the
// "Unsupported protocol version" handshake error Node's code, 5, in place of
// upstream's 4 (see errors.go).
//
// JSONP polling requests (the "j" query parameter) keep upstream's transport
// unchanged. Stats counts the corrections; each one is also logged.
//
// Use NewPolling and WebSocket in place of engine.Polling and
// engine.WebSocket in the server options, then call Attach with the engine
// once it exists (and serve it through ReleaseAfterHijack):
//
//	polling := engineio.NewPolling(logger)
//	opts.SetTransports(types.NewSet[transports.TransportCtor](polling, engineio.WebSocket{}))
//	eng := engine.NewServer(opts)
//	polling.Attach(eng)
//	http.Handle("/engine.io/", engineio.ReleaseAfterHijack(eng))
package engineio
