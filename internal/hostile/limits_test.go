package hostile

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/server"
)

// TestLimits: the HTTP-level bounds (ReadTimeout, IdleTimeout,
// MaxHeaderBytes, MaxConnections), the attachment bound and CORS
// credentials.
func TestLimits(t *testing.T) {
	t.Parallel()

	t.Run("POST stalled mid-body", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{ReadTimeout: 300 * time.Millisecond}, nil)
		g := h.good(t)
		p := h.joinPoll(t, ctxFor(t), "bad", false)
		h.joined(t, "bad")
		conn, br := h.rawHTTP(t, h.postHead(p.SID, "Content-Length: 100\r\n")+`42["ec`)
		// The body never completes: the request is cut, the session
		// closed.
		h.wantReason(t, "bad", "transport error")
		g.alive(t)
		// The cut frees the connection too: answered with an error (or
		// not), then closed, whatever the client still sends or not.
		_ = conn.SetReadDeadline(time.Now().Add(waitFor))
		res, err := http.ReadResponse(br, nil)
		if err == nil {
			if res.StatusCode < 400 {
				t.Errorf("stalled POST answered %d", res.StatusCode)
			}
			_, err = io.Copy(io.Discard, br) // until the server closes
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("a POST cut by ReadTimeout kept its connection open: %v", err)
		}
	})

	t.Run("headers stalled", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{ReadTimeout: 300 * time.Millisecond}, nil)
		g := h.good(t)
		conn, _ := h.rawHTTP(t, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n")
		connClosed(t, conn)
		g.alive(t)
	})

	t.Run("keep-alive connection left idle", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{IdleTimeout: 300 * time.Millisecond}, nil)
		g := h.good(t)
		conn, br := h.rawHTTP(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if st, _ := readStatus(t, br); st != 200 {
			t.Fatalf("/healthz: %d", st)
		}
		connClosed(t, conn)
		g.alive(t)
	})

	t.Run("headers over MaxHeaderBytes", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxHeaderBytes: 4096}, nil)
		g := h.good(t)
		_, br := h.rawHTTP(t, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Junk: "+
			strings.Repeat("j", 64<<10)+"\r\n\r\n")
		if st, _ := readStatus(t, br); st != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431", st)
		}
		g.alive(t)
		h.waitSessions(t, 1)
	})

	t.Run("more connections than MaxConnections", func(t *testing.T) {
		t.Parallel()
		const max = 8
		h := start(t, server.Config{MaxConnections: max}, nil)
		g := h.good(t) // one connection
		var held []net.Conn
		for range max - 1 {
			c, err := net.DialTimeout("tcp", h.addr, waitFor)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			held = append(held, c)
		}
		// At the cap: a Socket.IO request is answered 503, a probe is
		// served.
		waitUntil(t, "a handshake over the cap is refused", func() bool {
			_, br := h.rawHTTP(t, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				return false
			}
			_ = res.Body.Close()
			return res.StatusCode == http.StatusServiceUnavailable
		})
		_, br := h.rawHTTP(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if st, _ := readStatus(t, br); st != 200 {
			t.Errorf("/healthz over the cap: %d, want 200", st)
		}
		g.alive(t)
		// Once the hoarded connections are gone, clients get in again.
		for _, c := range held {
			_ = c.Close()
		}
		waitUntil(t, "a handshake once the connections are gone", func() bool {
			_, br := h.rawHTTP(t, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				return false
			}
			_ = res.Body.Close()
			return res.StatusCode == 200
		})
		g.alive(t)
	})

	for _, tr := range []string{"websocket", "polling"} {
		t.Run(tr+"/attachments over MaxAttachmentBytes", func(t *testing.T) {
			t.Parallel()
			h := start(t, server.Config{MaxAttachmentBytes: 1000}, nil)
			g := h.good(t)
			o := h.join(t, tr, "bad")
			// Exactly the bound: served.
			o.send(t, text(`52-1["echo",`+ph("0")+`,`+ph("1")+`]`))
			o.send(t, bin(strings.Repeat("a", 500)))
			o.send(t, bin(strings.Repeat("b", 500)))
			o.until(t, `62-1[`)
			// One byte over: closed.
			o.send(t, text(`52-["echo",`+ph("0")+`,`+ph("1")+`]`))
			o.send(t, bin(strings.Repeat("a", 500)))
			o.send(t, bin(strings.Repeat("b", 501)))
			o.closed(t)
			h.wantReason(t, "bad", "forced close")
			g.alive(t)
		})
	}

	cors := []struct {
		name        string
		credentials bool
		want        string
	}{
		{"CORS without credentials", false, ""},
		{"CORS with credentials", true, "true"},
	}
	for _, c := range cors {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, server.Config{CORSOrigins: []string{"https://app.example"}, CORSCredentials: c.credentials}, nil)
			for _, origin := range []string{"https://app.example", "https://evil.example"} {
				req, _ := http.NewRequest(http.MethodGet, h.url+"?EIO=4&transport=polling", nil)
				req.Header.Set("Origin", origin)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				allowed := origin == "https://app.example"
				acao, acac := res.Header.Get("Access-Control-Allow-Origin"), res.Header.Get("Access-Control-Allow-Credentials")
				switch {
				case allowed && (acao != origin || acac != c.want):
					t.Errorf("%s: Allow-Origin %q, Allow-Credentials %q; want %q, %q", origin, acao, acac, origin, c.want)
				case !allowed && (acao != "" || acac != ""):
					t.Errorf("%s (not listed): Allow-Origin %q, Allow-Credentials %q; want neither", origin, acao, acac)
				}
			}
		})
	}
}

// connClosed waits until the server closes conn (reading and discarding
// whatever it sends first).
func connClosed(t testing.TB, conn net.Conn) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.Copy(io.Discard, conn); err != nil && !isReset(err) {
		t.Fatalf("waiting for the server to close the connection: %v", err)
	}
}
