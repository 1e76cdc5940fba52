// Command sockstream-bench is sockstream's load tool: it measures any
// Socket.IO v4 server (sockstream or Node's socket.io) running the small
// application of cmd/benchapp / testdata/bench/app.js, with its own
// Socket.IO client over WebSocket (Engine.IO v4 framing, pings, acks), built
// to hold thousands of connections from one process.
//
// One run connects -clients clients spread over the -urls nodes (client i on
// node i mod N, in room i mod -rooms, from the handshake query), waits until
// each has answered an "echo" (so the server has put it in its room), lets
// -senders of them emit "bcast" at -rate messages per second in all (or, with
// -rate 0, as fast as -window messages on their way per sender allow) for
// -duration, and reports: connect time, deliveries per second, end-to-end
// latency p50/p90/p99/max (one clock: senders and receivers are in this
// process), losses and duplicates (every client checks the sequence numbers
// of every sender), as a table and, with -json, as JSON:
//
//	sockstream-bench -urls http://127.0.0.1:3000,http://127.0.0.1:3001 \
//	    -clients 1000 -senders 10 -rate 100 -duration 10s -size 100
//	sockstream-bench -urls http://127.0.0.1:3000 -recovery 10000
//
// -recovery N times connection state recovery instead: a client receives a
// packet, its TCP connection is cut, N packets are broadcast to its room,
// and it reconnects with its pid and offset; the figure is the time from the
// reconnection's dial to the last missed packet.
//
// sockstream-bench -suite is the side-by-side driver behind `make bench`:
// it starts a Redis, two Go nodes (bin/benchapp), runs the scenarios (idle
// memory at 5,000 clients, fan-out at a fixed rate, a rate ramp, saturation,
// recovery of 1,000 and 10,000 missed packets), then does the same with two
// Node nodes, prints one table with Go, Node and Go/Node, and with -out
// rewrites the generated block of docs/benchmarks.md. See
// sockstream-bench -suite -h.
//
// sockstream-bench -soak is `make soak`: a Redis and two Go nodes (recovery
// on, each node's Redis connection through a fault proxy), -soak-clients
// clients kept connected, senders at a steady rate for -soak-duration, and
// from the second period a fault every -soak-period in rotation (Redis
// killed and restarted, a node restarted, a node's Redis connection cut). It
// reports lost, duplicated and missed-while-away deliveries per period and
// in total, and each node's RSS and goroutines every -soak-sample. -quick is
// a smoke test. See sockstream-bench -soak -h.
package main
