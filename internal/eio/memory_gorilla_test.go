package eio

import (
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"
)

// TestIdleMemoryGorilla measures, for comparison with TestIdleMemory, the
// idle cost of a bare gorilla/websocket connection with its reader
// goroutine blocked in NextReader (no Engine.IO session at all), with
// gorilla's defaults (it reuses net/http's 4 KiB bufio.Reader and the
// hijacked bufio.Writer's buffer) and tuned (256-byte read buffer, write
// buffers from a pool). It logs; it does not assert.
func TestIdleMemoryGorilla(t *testing.T) {
	if os.Getenv("EIO_IDLE_CHILD") != "" || testing.Short() || os.Getenv("EIO_IDLE_GORILLA") == "" {
		t.Skip("set EIO_IDLE_GORILLA=1 to run")
	}
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("EIO_IDLE_CLIENTS")); err == nil && v > 0 {
		n = v
	}
	for _, tc := range []struct {
		name string
		up   websocket.Upgrader
	}{
		{"gorilla defaults", websocket.Upgrader{}},
		{"gorilla tuned", websocket.Upgrader{ReadBufferSize: 256, WriteBufferPool: &sync.Pool{}}},
	} {
		var open atomic.Int64
		var wg sync.WaitGroup
		var mu sync.Mutex
		var conns []*websocket.Conn
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := tc.up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			_ = c.WriteMessage(websocket.TextMessage, []byte(`0{"maxPayload":1}`))
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			open.Add(1)
			go func() {
				defer wg.Done()
				for {
					if _, _, err := c.NextReader(); err != nil {
						return
					}
				}
			}()
		})
		measureIdle(t, tc.name, h, n, func() int { return int(open.Load()) })
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}
