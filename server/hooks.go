package server

// hookDropped counts a notification for slow handlers dropped (hook is
// "outgoing" or "room") and logs it, at most once a second.
func (s *Server) hookDropped(hook, msg string, args ...any) {
	s.metrics.hookDrops.WithLabelValues(hook).Inc()
	if s.hookLog.Allow() {
		s.log.Warn(msg, args...)
	}
}

// volatileDropped counts n volatile packets of namespace nsp not written
// to busy clients and logs it, at most once a second (Debug: it is what
// volatile means, not a fault).
func (s *Server) volatileDropped(nsp string, n int) {
	s.metrics.volatileDrops.Add(float64(n))
	if s.volatileLog.Allow() {
		s.log.Debug("volatile packets dropped for clients that were busy", "nsp", nsp, "dropped", n)
	}
}
