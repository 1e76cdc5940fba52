package engineio

// SetTestHookPingSent makes f run on the goroutine that handed a PING to a
// WebSocket transport, right after (see testHookPingSent); the returned
// function removes it. Tests using it must not run in parallel
// with other tests of WebSocket heartbeats.
func SetTestHookPingSent(f func()) (remove func()) {
	testHookPingSent.Store(&f)
	return func() { testHookPingSent.Store(nil) }
}
