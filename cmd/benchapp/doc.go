// Command benchapp is the application sockstream-bench measures on the Go
// side; testdata/bench/app.js is the same application on Node's socket.io,
// so that one load run compares the two servers and nothing else:
//
//   - a client joins the room named by the "room" query parameter of its
//     handshake ("bench" when absent);
//   - "bcast" broadcasts its arguments to that room, cluster-wide, as "m"
//     (the sender receives its own message too);
//   - "echo" acknowledges with its arguments.
//
// Usage:
//
//	benchapp [-addr :3000] [-redis redis://127.0.0.1:6379] [-recovery] [-pprof]
//
// Every server option of package server is a flag (and an environment
// variable, SOCKSTREAM_...); benchapp -h lists them. -pprof serves
// net/http/pprof under /debug/pprof/ for profiling a run.
package main
