package server

import "time"

// hookDropped counts a notification for slow handlers dropped (hook is
// "outgoing" or "room") and logs it, at most once a second.
func (s *Server) hookDropped(hook, msg string, args ...any) {
	s.metrics.hookDrops.WithLabelValues(hook).Inc()
	now := time.Now().UnixNano()
	last := s.hookLogAt.Load()
	if now-last < int64(time.Second) || !s.hookLogAt.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn(msg, args...)
}
