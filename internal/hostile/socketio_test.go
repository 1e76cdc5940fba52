package hostile

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/sockstream/sockstream/internal/eiotest"
	"github.com/sockstream/sockstream/server"
)

// msg is one Engine.IO message of a test: text, or binary.
type msg struct {
	binary bool
	data   string
}

func text(s string) msg  { return msg{data: s} }
func bin(s string) msg   { return msg{binary: true, data: s} }
func ph(n string) string { return `{"_placeholder":true,"num":` + n + `}` }

// offender is a client joined to "/" as "bad" over one transport.
type offender interface {
	send(t testing.TB, m msg)
	// until reads until a Socket.IO packet starting with prefix.
	until(t testing.TB, prefix string)
	// closed waits until the server closed the connection.
	closed(t testing.TB)
}

type wsOffender struct {
	ctx context.Context
	ws  *eiotest.WS
}

func (o *wsOffender) send(t testing.TB, m msg) {
	t.Helper()
	var err error
	if m.binary {
		err = o.ws.SendBinary([]byte(m.data))
	} else {
		err = o.ws.Send("4" + m.data)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (o *wsOffender) until(t testing.TB, prefix string) {
	t.Helper()
	for {
		f, err := o.ws.Read(o.ctx)
		if err != nil {
			t.Fatalf("waiting for %q: %v", prefix, err)
		}
		if f.Binary {
			continue
		}
		if s := string(f.Data); s == "2" {
			_ = o.ws.Send("3")
		} else if strings.HasPrefix(s, "4"+prefix) {
			return
		}
	}
}

func (o *wsOffender) closed(t testing.TB) {
	t.Helper()
	if code := wsClosed(t, o.ctx, o.ws); code != 1000 {
		t.Errorf("close code %d, want 1000", code)
	}
}

type pollOffender struct {
	ctx context.Context
	p   *eiotest.Poller
}

func (o *pollOffender) send(t testing.TB, m msg) {
	t.Helper()
	body := "4" + m.data
	if m.binary {
		body = "b" + base64.StdEncoding.EncodeToString([]byte(m.data))
	}
	r, err := o.p.Post(o.ctx, body)
	if err != nil {
		t.Fatal(err)
	}
	// The session may be gone already (closed by an earlier message).
	if r.Status != 200 && !(r.Status == 400 && strings.Contains(r.Body, `"code":1`)) {
		t.Fatalf("POST %q: %d %q", body, r.Status, r.Body)
	}
}

func (o *pollOffender) until(t testing.TB, prefix string) {
	t.Helper()
	pollUntil(t, o.ctx, o.p, "4"+prefix)
}

func (o *pollOffender) closed(t testing.TB) {
	t.Helper()
	for {
		r, err := o.p.Get(o.ctx)
		if err != nil {
			t.Fatalf("GET waiting for the close: %v", err)
		}
		if r.Status == 400 && strings.Contains(r.Body, `"code":1`) {
			return // gone (its close packet taken by an earlier GET)
		}
		if r.Status != 200 {
			t.Fatalf("GET waiting for the close: %d %q", r.Status, r.Body)
		}
		for _, pk := range strings.Split(r.Body, "\x1e") {
			if pk == "1" {
				return
			}
		}
	}
}

// join connects the offender "bad" over transport.
func (h *harness) join(t testing.TB, transport, name string) offender {
	t.Helper()
	ctx := ctxFor(t)
	if transport == "websocket" {
		return &wsOffender{ctx: ctx, ws: h.joinWS(t, ctx, name, false)}
	}
	o := &pollOffender{ctx: ctx, p: h.joinPoll(t, ctx, name, false)}
	o.until(t, "0{")
	return o
}

// TestSocketIO sends malformed Socket.IO packets over both transports:
// those Node's parser refuses close the offender's connection ("forced
// close", as Node's client.onerror does), the others are answered; a
// client connected meanwhile is still served.
func TestSocketIO(t *testing.T) {
	t.Parallel()
	deep := "2[\"echo\"," + strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000) + "]"
	closes := []struct {
		name string
		msgs []msg
	}{
		{"DISCONNECT with a payload", []msg{text(`1["x"]`)}},
		{"EVENT without payload", []msg{text(`2`)}},
		{"EVENT with an object", []msg{text(`2{}`)}},
		{"EVENT with a string", []msg{text(`2"echo"`)}},
		{"EVENT with an empty array", []msg{text(`2[]`)}},
		{"EVENT with an object name", []msg{text(`2[{}]`)}},
		{"EVENT with a null name", []msg{text(`2[null]`)}},
		{"EVENT with a reserved name", []msg{text(`2["connect"]`)}},
		{"EVENT with invalid JSON", []msg{text(`2["echo"`)}},
		{"EVENT with trailing bytes", []msg{text(`21["rooms"]xyz`)}},
		{"EVENT with a second value", []msg{text(`2["echo"]["echo"]`)}},
		{"EVENT nested past the JSON depth limit", []msg{text(deep)}},
		{"EVENT with a namespace and no comma", []msg{text(`2/`)}},
		{"EVENT with a namespace over 256 bytes", []msg{text(`2/` + strings.Repeat("n", 300) + `,["echo"]`)}},
		{"ACK without payload", []msg{text(`31`)}},
		{"ACK with an object", []msg{text(`31{}`)}},
		{"CONNECT_ERROR from the client", []msg{text(`4{"message":"x"}`)}},
		{"BINARY_EVENT without count", []msg{text(`5["echo"]`)}},
		{"BINARY_EVENT with an empty count", []msg{text(`5-["echo"]`)}},
		{"BINARY_EVENT with a negative count", []msg{text(`5-1-["echo"]`)}},
		{"BINARY_EVENT with a count that is not a number", []msg{text(`5x-["echo"]`)}},
		{"BINARY_ACK without payload", []msg{text(`61-1`)}},
		{"unknown packet type 7", []msg{text(`7["echo"]`)}},
		{"unknown packet type :", []msg{text(`:["echo"]`)}},
		{"empty packet", []msg{text(``)}},
		{"ack id above 2^53", []msg{text(`29007199254740993["echo"]`)}},
		{"ack id past uint64", []msg{text(`2123456789012345678901234567890["echo"]`)}},
		{"placeholder num -1", []msg{text(`51-["echo",` + ph("-1") + `]`), bin("a")}},
		{"placeholder num \"0\"", []msg{text(`51-["echo",` + ph(`"0"`) + `]`), bin("a")}},
		{"placeholder num 0.5", []msg{text(`51-["echo",` + ph("0.5") + `]`), bin("a")}},
		{"placeholder num out of range", []msg{text(`51-["echo",` + ph("1") + `]`), bin("a")}},
		{"placeholder num huge", []msg{text(`51-["echo",` + ph("1e300") + `]`), bin("a")}},
		{"placeholder without num", []msg{text(`51-["echo",{"_placeholder":true}]`), bin("a")}},
		{"placeholder with 0 attachments", []msg{text(`50-["echo",` + ph("0") + `]`)}},
		{"more attachments than MaxAttachments", []msg{text(`511-["echo"]`)}},
		{"attachment count past int", []msg{text(`599999999999999999999999-["echo"]`)}},
		{"text while attachments are awaited", []msg{text(`52-["echo",` + ph("0") + `,` + ph("1") + `]`), bin("a"), text(`2["echo"]`)}},
		{"binary without a header", []msg{bin("a")}},
		{"EVENT on a namespace not joined", []msg{text(`2/other,["echo"]`)}},
		{"DISCONNECT of a namespace not joined", []msg{text(`1/other,`)}},
		{"CONNECT with a string", []msg{text(`0"x"`)}},
		{"CONNECT with an array", []msg{text(`0[]`)}},
		{"CONNECT with a number", []msg{text(`01`)}},
		{"CONNECT with null", []msg{text(`0null`)}},
		{"CONNECT with invalid JSON", []msg{text(`0{`)}},
		{"second CONNECT to the same namespace", []msg{text(`0`)}},
	}
	for _, tr := range []string{"websocket", "polling"} {
		for _, c := range closes {
			t.Run(tr+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				h := start(t, server.Config{}, nil)
				g := h.good(t)
				o := h.join(t, tr, "bad")
				for _, m := range c.msgs {
					o.send(t, m)
				}
				o.closed(t)
				h.wantReason(t, "bad", "forced close")
				g.alive(t)
				h.waitSessions(t, 1)
			})
		}
	}

	// Input Node accepts: answered, the connection stays.
	answers := []struct {
		name  string
		msgs  []msg
		reply string // the Socket.IO packet expected, a prefix
	}{
		{"ack id 2^53", []msg{text(`29007199254740992["echo"]`)}, `39007199254740992[]`},
		{"numeric event name", []msg{text(`242[42]`), text(`243["echo"]`)}, `343[]`},
		{"ACK of an unknown id", []msg{text(`399["x"]`), text(`21["echo"]`)}, `31[]`},
		{"MaxAttachments exactly", []msg{text(`510-1["echo"` + strings.Repeat(","+ph("0"), 10) + `]`),
			bin("0"), bin("1"), bin("2"), bin("3"), bin("4"), bin("5"), bin("6"), bin("7"), bin("8"), bin("9")}, `610-1[`},
		{"attachment not referenced", []msg{text(`52-1["echo",` + ph("1") + `]`), bin("a"), bin("b")}, `61-1[` + ph("0") + `]`},
		{"_placeholder that is not true", []msg{text(`51-1["echo",{"_placeholder":"true","num":0}]`), bin("a")}, `31[{"_placeholder":"true","num":0}]`},
		{"CONNECT to an unknown namespace", []msg{text(`0/nope,`)}, `4/nope,{"message":"Invalid namespace"}`},
	}
	for _, tr := range []string{"websocket", "polling"} {
		for _, c := range answers {
			t.Run(tr+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				h := start(t, server.Config{}, nil)
				g := h.good(t)
				o := h.join(t, tr, "bad")
				for _, m := range c.msgs {
					o.send(t, m)
				}
				o.until(t, c.reply)
				o.send(t, text(`277["echo"]`))
				o.until(t, `377[]`)
				h.noReason(t, "bad")
				g.alive(t)
			})
		}
	}

	for _, tr := range []string{"websocket", "polling"} {
		t.Run(tr+"/event on a namespace the client left", func(t *testing.T) {
			t.Parallel()
			h := start(t, server.Config{}, nil)
			g := h.good(t)
			o := h.join(t, tr, "bad")
			o.send(t, text(`1`))
			h.wantReason(t, "bad", "client namespace disconnect")
			// Node closes the connection: the client is in no namespace.
			o.send(t, text(`2["echo"]`))
			o.closed(t)
			g.alive(t)
			h.waitSessions(t, 1)
		})

		t.Run(tr+"/MaxAttachments from the config", func(t *testing.T) {
			t.Parallel()
			h := start(t, server.Config{MaxAttachments: 2}, nil)
			g := h.good(t)
			o := h.join(t, tr, "bad")
			o.send(t, text(`52-1["echo",`+ph("0")+`,`+ph("1")+`]`))
			o.send(t, bin("a"))
			o.send(t, bin("b"))
			o.until(t, `62-1[`)
			o.send(t, text(`53-["echo"]`))
			o.closed(t)
			h.wantReason(t, "bad", "forced close")
			g.alive(t)
		})

		t.Run(tr+"/attachments that never come", func(t *testing.T) {
			t.Parallel()
			h := start(t, server.Config{}, nil)
			g := h.good(t)
			o := h.join(t, tr, "bad")
			o.send(t, text(`52-1["echo",`+ph("0")+`,`+ph("1")+`]`))
			o.send(t, bin("a"))
			// As in Node, a client may take its time: it is not closed
			// for waiting, and the others are served meanwhile.
			g.alive(t)
			h.noReason(t, "bad")
			o.send(t, bin("b"))
			o.until(t, `62-1[`)
			h.noReason(t, "bad")
		})
	}
}
