package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/servetest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// outageNode is a chat node of the outage test.
type outageNode struct {
	srv *server.Server
	url string
}

// startOutageNode serves the chat, clustered over the Redis at redisURL
// with the default cluster timings (a silent node stays counted for 10 s,
// as in production).
func startOutageNode(t *testing.T, redisURL string) outageNode {
	t.Helper()
	srv, err := server.New(server.Config{
		Recovery: server.RecoveryConfig{Enabled: true},
		Redis:    server.RedisConfig{URL: redisURL},
		Logger:   siotest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	mountChat(srv, 50)
	return outageNode{srv: srv, url: servetest.Serve(t, srv)}
}

// chatClients drives official clients of the chat; call emits an event
// with an ack and returns the ack's first argument.
type chatClients struct {
	*siotest.Clients
	seq atomic.Int64
}

// emit sends event with args and an ack callback; await returns the ack.
func (c *chatClients) emit(t *testing.T, id, event string, args ...any) int {
	t.Helper()
	seq := int(c.seq.Add(1))
	if args == nil {
		args = []any{}
	}
	c.Do(t, map[string]any{"cmd": "emit", "id": id, "event": event, "args": args, "withAck": true, "seq": seq})
	return seq
}

func (c *chatClients) await(t *testing.T, id string, seq int, within time.Duration, what string) map[string]any {
	t.Helper()
	ev := c.Wait(t, what, within, func(ev siotest.Event) bool { return ev.Type == "ack" && ev.ID == id && ev.Seq == seq })
	if len(ev.Args) == 0 {
		t.Fatalf("%s: empty ack", what)
	}
	m, _ := ev.Args[0].(map[string]any)
	return m
}

func (c *chatClients) call(t *testing.T, id, event string, args ...any) map[string]any {
	t.Helper()
	return c.await(t, id, c.emit(t, id, event, args...), 20*time.Second, id+" "+event)
}

func status(url string) int {
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// With Redis cut off: a join (behind the room list the page asks for on
// connecting) is answered within the chat's own timeout; once the publish
// buffer is full, a message is acked {ok: false, error: "not delivered:
// ..."} and never reaches the other node, while one acked ok does, once
// Redis is back.
func TestChatRedisOutage(t *testing.T) {
	rs := redistest.StartStandalone(t)
	p := redistest.NewProxy(t, rs.Addr())
	a := startOutageNode(t, "redis://"+p.Addr())
	b := startOutageNode(t, "redis://"+p.Addr())
	waitReady(t, a.url, b.url)

	c := &chatClients{Clients: siotest.StartClients(t)}
	c.Connect(t, "ann", a.url+"/", nil, nil)
	c.Connect(t, "bob", b.url+"/", nil, nil)
	for _, j := range []struct{ id, nick string }{{"ann", "ann"}, {"bob", "bob"}} {
		if r := c.call(t, j.id, "join", map[string]any{"nick": j.nick, "room": "lobby"}); r["ok"] != true {
			t.Fatalf("%s joins: %v", j.id, r)
		}
	}
	if r := c.call(t, "ann", "message", "before"); r["ok"] != true {
		t.Fatalf("message with Redis up: %v", r)
	}
	c.Wait(t, "bob gets ann's first message", 20*time.Second, func(ev siotest.Event) bool {
		return ev.Type == "event" && ev.ID == "bob" && ev.Event == "message" && fmt.Sprint(ev.Args) != "" && strings.Contains(fmt.Sprint(ev.Args), "before")
	})

	p.Cut()
	siotest.Eventually(t, 20*time.Second, "node A not ready", func() bool { return status(a.url) == http.StatusServiceUnavailable })

	// As the page does: the room list, the users, then a join, back to
	// back on one socket (its handlers run one after the other). Each
	// is answered within fetchTimeout, so the join within its own.
	c.Connect(t, "cid", a.url+"/", nil, nil)
	c.emit(t, "cid", "rooms")
	c.emit(t, "cid", "users")
	seq := c.emit(t, "cid", "join", map[string]any{"nick": "cid", "room": "lobby"})
	if r := c.await(t, "cid", seq, fetchTimeout+2*time.Second, "join with Redis away"); r["ok"] != true {
		t.Errorf("join with Redis away: %v", r)
	}

	// Fill node A's publish buffer (as a busy room would), then send.
	refused := false
	for i := 0; i < 2*10000 && !refused; i++ {
		err := a.srv.To("nobody").Emit("filler", i)
		if err != nil {
			if !errors.Is(err, adapter.ErrBufferFull) {
				t.Fatalf("filler %d: %v, want an error wrapping adapter.ErrBufferFull", i, err)
			}
			refused = true
		}
	}
	if !refused {
		t.Fatal("the publish buffer never filled")
	}
	r := c.call(t, "ann", "message", "lost")
	if r["ok"] != false || !strings.HasPrefix(fmt.Sprint(r["error"]), "not delivered") {
		t.Fatalf("message with the buffer full: ack %v, want {ok: false, error: not delivered...}", r)
	}

	p.Restore()
	waitReady(t, a.url, b.url)
	// Accepted again once the buffer drains; then bob gets it, and never
	// the refused one.
	siotest.Eventually(t, 60*time.Second, "a message accepted again", func() bool {
		return c.call(t, "ann", "message", "after")["ok"] == true
	})
	c.Wait(t, "bob gets the message sent after the outage", 60*time.Second, func(ev siotest.Event) bool {
		return ev.Type == "event" && ev.ID == "bob" && ev.Event == "message" && strings.Contains(fmt.Sprint(ev.Args), "after")
	})
	for _, ev := range c.Filter(siotest.IsEventFor("bob", "message")) {
		if strings.Contains(fmt.Sprint(ev.Args), "lost") {
			t.Errorf("bob got the message acked not delivered: %v", ev.Args)
		}
	}
}
