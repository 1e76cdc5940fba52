package adapter

// SetHandoverMaxHeld lowers handoverMaxHeld for the adapter a.
func SetHandoverMaxHeld(a *NamespaceAdapter, n int) {
	a.sessions.mu.Lock()
	a.sessions.maxHeld = n
	a.sessions.mu.Unlock()
}
