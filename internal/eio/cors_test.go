package eio

import (
	"errors"
	"net/http"
	"testing"
)

// TestCORSAnyOrigin: AllowAnyOrigin answers a literal *, for a request and
// a preflight, never with credentials; with AllowCredentials it is refused.
func TestCORSAnyOrigin(t *testing.T) {
	if _, err := NewServer(Options{AllowAnyOrigin: true, AllowCredentials: true}, func(*Session) Handler { return nil }); !errors.Is(err, errAnyOriginCredentials) {
		t.Errorf("AllowAnyOrigin with AllowCredentials: %v, want an error", err)
	}
	h := newHarness(t, Options{AllowAnyOrigin: true}, false)
	for _, origin := range []string{"https://app.example", "null"} {
		r := h.do("GET", "EIO=4&transport=polling", "", "Origin", origin)
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "*" || r.header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("origin %s: Access-Control-Allow-Origin %q, credentials %q; want * without credentials",
				origin, got, r.header.Get("Access-Control-Allow-Credentials"))
		}
	}
	r := h.do("OPTIONS", "EIO=4&transport=polling", "", "Origin", "https://app.example", "Access-Control-Request-Method", "POST")
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight: %d %v", r.status, r.header)
	}
	if r := h.do("GET", "EIO=4&transport=polling", ""); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("no Origin: Access-Control-Allow-Origin %q", r.header.Get("Access-Control-Allow-Origin"))
	}
}
