package siotest

import (
	"encoding/base64"
	"fmt"
	"slices"
	"testing"
	"time"
)

// ClientsScript is the Node script [StartClients] runs, relative to the
// module root.
const ClientsScript = "testdata/siotest/clients.js"

// Timeouts of the client waits: generous, since the machine running the
// tests may be loaded; they only bound how long a failing test hangs.
const (
	readyTimeout   = 15 * time.Second
	connectTimeout = 20 * time.Second
	dropTimeout    = 10 * time.Second
)

// Event is one line printed by testdata/siotest/clients.js.
type Event struct {
	Type      string `json:"type"` // ready, connect, connect_error, event, ack, disconnect, error
	ID        string `json:"id"`   // the client's id
	Sid       string `json:"sid"`
	Recovered bool   `json:"recovered"`
	Event     string `json:"event"`
	Args      []any  `json:"args"` // binary values as {"$bin": base64}
	WithAck   bool   `json:"withAck"`
	Seq       int    `json:"seq"`
	Reason    string `json:"reason"`
	Message   string `json:"message"`
}

// Clients is one Node process running socket.io-client instances, each
// named by an id.
type Clients struct {
	*Proc[Event]
}

// StartClients starts testdata/siotest/clients.js and waits until it is
// ready.
func StartClients(t testing.TB) *Clients {
	t.Helper()
	c := &Clients{StartProc[Event](t, "node clients", ClientsScript, nil)}
	c.Wait(t, "client process ready", readyTimeout, func(ev Event) bool { return ev.Type == "ready" })
	return c
}

// Connect connects a new client id to url (a namespace URL) with the query
// parameters query and the other connect options of extra (auth, ack,
// noAck, recoverFrom...; see the script), and returns its connect event,
// failing t on a connect error.
func (c *Clients) Connect(t testing.TB, id, url string, query map[string]string, extra map[string]any) Event {
	t.Helper()
	cmd := map[string]any{"cmd": "connect", "id": id, "url": url, "query": query}
	for k, v := range extra {
		cmd[k] = v
	}
	n := c.Connects(id)
	c.Do(t, cmd)
	return c.NthConnect(t, id, n)
}

// Connects returns how many connects (or connect errors) client id has
// reported so far: what [Clients.NthConnect] counts.
func (c *Clients) Connects(id string) int { return c.Count(isConnectOf(id)) }

// NthConnect waits for the (n+1)-th connect (or connect error) of client
// id, the first being n = 0, and returns it, failing t on a connect error.
func (c *Clients) NthConnect(t testing.TB, id string, n int) Event {
	t.Helper()
	ev := c.WaitN(t, fmt.Sprintf("connect #%d of %s", n+1, id), n+1, connectTimeout, isConnectOf(id))[n]
	if ev.Type != "connect" {
		t.Fatalf("client %s: connect error: %s", id, ev.Message)
	}
	return ev
}

func isConnectOf(id string) func(Event) bool {
	return func(ev Event) bool { return ev.ID == id && (ev.Type == "connect" || ev.Type == "connect_error") }
}

// Emit makes client id emit event with args.
func (c *Clients) Emit(t testing.TB, id, event string, args ...any) {
	t.Helper()
	c.Do(t, map[string]any{"cmd": "emit", "id": id, "event": event, "args": args})
}

// Disconnect disconnects client id (a normal disconnection).
func (c *Clients) Disconnect(t testing.TB, id string) {
	t.Helper()
	c.Do(t, map[string]any{"cmd": "disconnect", "id": id})
}

// Drop closes the transport of client id, as when the network drops, and
// waits for its disconnection.
func (c *Clients) Drop(t testing.TB, id string) {
	t.Helper()
	isDisconnect := func(ev Event) bool { return ev.ID == id && ev.Type == "disconnect" }
	n := c.Count(isDisconnect)
	c.Do(t, map[string]any{"cmd": "drop", "id": id})
	c.WaitN(t, "disconnect of "+id, n+1, dropTimeout, isDisconnect)
}

// Reconnect reconnects client id, to url (a namespace URL) when not "";
// the client asks to recover its session. [Clients.NthConnect] waits for
// the outcome.
func (c *Clients) Reconnect(t testing.TB, id, url string) {
	t.Helper()
	cmd := map[string]any{"cmd": "reconnect", "id": id}
	if url != "" {
		cmd["url"] = url
	}
	c.Do(t, cmd)
}

// Receivers returns the sorted ids of the clients that got event name so
// far, once per event received.
func (c *Clients) Receivers(name string) []string {
	var ids []string
	for _, ev := range c.Filter(IsEvent(name)) {
		ids = append(ids, ev.ID)
	}
	slices.Sort(ids)
	return ids
}

// IsEvent matches the events named name, whichever client got them.
func IsEvent(name string) func(Event) bool {
	return func(ev Event) bool { return ev.Type == "event" && ev.Event == name }
}

// IsEventFor matches the events named name that client id got.
func IsEventFor(id, name string) func(Event) bool {
	return func(ev Event) bool { return ev.Type == "event" && ev.Event == name && ev.ID == id }
}

// Bin decodes a binary value as the script prints it, {"$bin": base64},
// failing t if v is not one.
func Bin(t testing.TB, v any) []byte {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("not binary: %#v", v)
	}
	s, _ := m["$bin"].(string)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("bad base64 %q: %v", s, err)
	}
	return b
}
