package engineio

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/websocket"
)

// A WebSocket upgrade gets a writer that lets go of net/http's once
// hijacked; other requests get net/http's own writer, untouched.
func TestReleaseAfterHijack(t *testing.T) {
	type seen struct {
		wrapped     *releasingWriter
		flusher     bool
		writeErr    error
		hijackAgain error
	}
	got := make(chan seen, 2)
	h := ReleaseAfterHijack(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s seen
		s.wrapped, _ = w.(*releasingWriter)
		_, s.flusher = w.(http.Flusher)
		if s.wrapped == nil {
			got <- s
			return
		}
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade through the wrapper: %v", err)
			got <- s
			return
		}
		defer conn.Close()
		_, s.writeErr = w.Write([]byte("late"))
		_, _, s.hijackAgain = s.wrapped.Hijack()
		w.Header().Set("X-After", "ignored") // must not panic
		got <- s
	}))
	hs := httptest.NewServer(h)
	defer hs.Close()

	res, err := http.Get(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if s := <-got; s.wrapped != nil || !s.flusher {
		t.Errorf("plain request: wrapped %v, flusher %v; want net/http's writer", s.wrapped != nil, s.flusher)
	}

	c, res, err := websocket.DefaultDialer.Dial("ws"+hs.URL[len("http"):], nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	defer c.Close()
	s := <-got
	if s.wrapped == nil {
		t.Fatal("upgrade request not wrapped")
	}
	if s.wrapped.w != nil {
		t.Error("the wrapper still holds net/http's writer after the hijack")
	}
	if !errors.Is(s.writeErr, http.ErrHijacked) || !errors.Is(s.hijackAgain, http.ErrHijacked) {
		t.Errorf("after the hijack: Write %v, Hijack %v; want http.ErrHijacked", s.writeErr, s.hijackAgain)
	}
}
