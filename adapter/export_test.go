package adapter

// SetHandoverMaxHeld lowers handoverMaxHeld for the adapter a.
func SetHandoverMaxHeld(a *NamespaceAdapter, n int) {
	a.sessions.mu.Lock()
	a.sessions.maxHeld = n
	a.sessions.mu.Unlock()
}

// InboundHeld returns the messages queued on a's inbound queue plus the
// one being applied.
func InboundHeld(a *NamespaceAdapter) int { return a.inbound.held() }

// Subscribed is closed once a's transport subscription is made.
func Subscribed(a *NamespaceAdapter) <-chan struct{} { return a.subscribed }

// OutQueued returns the operations queued on a's outbound queue (not the
// batch being published).
func OutQueued(a *NamespaceAdapter) int { return a.out.len() }

// Closing reports whether Close has begun on a.
func Closing(a *NamespaceAdapter) bool { return a.isClosing() }
