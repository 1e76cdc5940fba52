// Package hostile is the hostile-client suite: its tests attack a
// sockstream server (server.New on a loopback listener) the way a hostile
// or broken client would, with raw Engine.IO and Socket.IO frames
// (internal/eiotest) and raw TCP where HTTP itself is abused, and with
// Redis failing underneath (internal/redistest).
//
// Every case asserts the same four things: the process stays up (no
// panic, not even a recovered one: the servers' loggers fail the test on
// one), only the offender is closed, with its reason (the server-side
// disconnect reason, or the HTTP status or close the client sees), a
// well-behaved client connected meanwhile keeps working (its ack round
// trip completes), and, in TestMemoryReturns, the heap returns under a
// bound once the offenders are gone.
//
// The package has no API: everything is in its _test.go files.
package hostile
