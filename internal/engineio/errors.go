package engineio

import "github.com/zishang520/socket.io/servers/engine/v3"

// Node's engine.io answers a handshake with an unsupported protocol revision
// (EIO=3 while allowEIO3 is off, a missing or unknown EIO) with error code 5,
// UNSUPPORTED_PROTOCOL_VERSION. Upstream declares that error with code 4, the
// code of FORBIDDEN, so its 400 body reads {"code":4,...}. The error is an
// exported pointer that upstream compares by identity, never by code, so
// correcting the code in place changes only what is written on the wire.
// Importing this package (server.New does) applies the correction.
func init() {
	engine.UNSUPPORTED_PROTOCOL_VERSION.Code = 5
}
