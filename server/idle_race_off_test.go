//go:build !race

package server_test

// idleRace: the race detector is on (TestIdleMemoryServer uses fewer clients).
const idleRace = false
