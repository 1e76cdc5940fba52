package redistest

import (
	"errors"
	"net"
	"sync"
)

var (
	portsMu sync.Mutex
	// portsHanded remembers every port FreePort returned in this process so
	// two servers started concurrently by the same test binary never get the
	// same port. Ports are not released: a test binary uses few of them.
	portsHanded = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that was free when it was checked
// and that FreePort has not returned before in this process.
//
// The port is found by listening on 127.0.0.1:0 and closing the listener, so
// another process may bind it before the caller does. Callers must be ready
// to retry with a new port on "address already in use"; StartStandalone and
// StartCluster do.
func FreePort() (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if err := ln.Close(); err != nil {
			return 0, err
		}
		if port == 6379 || port == 16379 {
			continue // never anywhere near the shared default Redis
		}
		portsMu.Lock()
		handed := portsHanded[port]
		portsHanded[port] = true
		portsMu.Unlock()
		if !handed {
			return port, nil
		}
	}
	return 0, errors.New("redistest: no free loopback port found")
}
