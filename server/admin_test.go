package server_test

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// adminPassword is the Admin UI password of these tests; adminHash is its
// bcrypt hash at the lowest cost, so that the tests stay quick.
const adminPassword = "s3cret"

var adminHash = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}()

func adminConfig(serverID string) server.AdminConfig {
	return server.AdminConfig{Username: "admin", PasswordHash: adminHash, ServerID: serverID}
}

func adminAuth() map[string]any {
	return map[string]any{"auth": map[string]any{"username": "admin", "password": adminPassword}}
}

// adminEvent waits for the first event name that client id got and that
// pred accepts.
func adminEvent(t *testing.T, cl *siotest.Clients, id, name string, pred func(args []any) bool) []any {
	t.Helper()
	ev := cl.Wait(t, id+" gets "+name, waitFor, func(ev siotest.Event) bool {
		return ev.Type == "event" && ev.ID == id && ev.Event == name && (pred == nil || pred(ev.Args))
	})
	return ev.Args
}

// field reads a string field of an object argument.
func field(v any, key string) string {
	s, _ := field2(v, key).(string)
	return s
}

// at is args[i], or nil when there are fewer.
func at(args []any, i int) any {
	if i < len(args) {
		return args[i]
	}
	return nil
}

// field2 reads a field of an object argument.
func field2(v any, key string) any {
	m, _ := v.(map[string]any)
	return m[key]
}

func hasRoom(s *server.Socket, room string) bool { return slices.Contains(s.Rooms(), room) }

// TestAdminConfig: the admin options are validated with Node's reasons and
// read from flags and the environment.
func TestAdminConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		admin  server.AdminConfig
		option string
	}{
		{"enabled without credentials", server.AdminConfig{Enabled: true}, "admin-username"},
		{"password not a bcrypt hash", server.AdminConfig{Username: "admin", PasswordHash: "secret"}, "admin-password-hash"},
		{"credentials and no auth", server.AdminConfig{Username: "admin", PasswordHash: adminHash, NoAuth: true}, "admin-no-auth"},
		{"unknown mode", server.AdminConfig{Enabled: true, NoAuth: true, Mode: "debug"}, "admin-mode"},
		{"main namespace", server.AdminConfig{Enabled: true, NoAuth: true, Namespace: "/"}, "admin-namespace"},
	} {
		err := server.Config{Admin: c.admin}.Validate()
		var ce *server.ConfigError
		if !errors.As(err, &ce) || ce.Option != c.option {
			t.Errorf("%s: %v, want a ConfigError on %s", c.name, err, c.option)
		}
	}
	for _, ok := range []server.AdminConfig{{}, adminConfig(""), {Enabled: true, NoAuth: true, Mode: server.AdminProduction}} {
		if err := (server.Config{Admin: ok}).Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	env := map[string]string{"SOCKSTREAM_ADMIN_USERNAME": "ops", "SOCKSTREAM_ADMIN_PASSWORD_HASH": adminHash, "SOCKSTREAM_ADMIN_MODE": "production"}
	var c server.Config
	if err := c.Parse(flag.NewFlagSet("t", flag.ContinueOnError), []string{"-admin-read-only", "-admin-namespace", "/ops"},
		func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	want := server.AdminConfig{Username: "ops", PasswordHash: adminHash, ReadOnly: true, Namespace: "/ops", Mode: "production"}
	if c.Admin != want {
		t.Errorf("parsed %+v, want %+v", c.Admin, want)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

// TestAdminProtocol: the official client, as the Admin UI, logs in to
// /admin and gets what instrument() sends (session, config, all_sockets,
// server_stats), then the feed of another client's life (connection,
// events both ways, rooms, disconnection), and its actions reach that
// client: join, leave, emit, _disconnect.
func TestAdminProtocol(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{Admin: adminConfig("node-a")}, func(srv *server.Server) {
		srv.OnConnection(func(s *server.Socket) {
			s.On("ping", func(e *server.Event) { _ = s.Emit("pong", e.Arg(0)) })
		})
	})
	cl := siotest.StartClients(t)
	cl.Connect(t, "adm", ts.URL+"/admin", nil, adminAuth())
	session := adminEvent(t, cl, "adm", "session", nil)
	cfg := adminEvent(t, cl, "adm", "config", nil)
	features, _ := field2(at(cfg, 0), "supportedFeatures").([]any)
	for _, f := range []string{"EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS"} {
		if !slices.Contains(features, any(f)) {
			t.Errorf("supportedFeatures %v lacks %s", features, f)
		}
	}
	all := adminEvent(t, cl, "adm", "all_sockets", nil)
	if _, ok := at(all, 0).([]any); !ok {
		t.Errorf("all_sockets: %v, want an array", all)
	}
	stats := at(adminEvent(t, cl, "adm", "server_stats", nil), 0)
	st, _ := stats.(map[string]any)
	if st["serverId"] != "node-a" || st["pid"] == nil || st["uptime"] == nil || st["namespaces"] == nil || st["clientsCount"] == nil {
		t.Errorf("server_stats: %v", stats)
	}

	// A client connects: the admin sees it, with its Engine.IO id and transport.
	sid := cl.Connect(t, "u1", ts.URL+"/", nil, nil).Sid
	conn := adminEvent(t, cl, "adm", "socket_connected", func(a []any) bool { return field(at(a, 0), "id") == sid })
	if s, _ := at(conn, 0).(map[string]any); s["nsp"] != "/" || s["transport"] != "websocket" || field(s, "clientId") == "" {
		t.Errorf("socket_connected: %v", s)
	}
	if hs, _ := field2(at(conn, 0), "handshake").(map[string]any); hs["auth"] != nil || hs["address"] == "" {
		t.Errorf("socket_connected handshake: %v (no auth, an address)", hs)
	}
	// Its events, in and out.
	cl.Emit(t, "u1", "ping", "x")
	adminEvent(t, cl, "adm", "event_received", func(a []any) bool {
		ev, _ := at(a, 2).([]any)
		return at(a, 0) == "/" && at(a, 1) == sid && len(ev) == 2 && ev[0] == "ping" && ev[1] == "x"
	})
	adminEvent(t, cl, "adm", "event_sent", func(a []any) bool {
		ev, _ := at(a, 2).([]any)
		return at(a, 1) == sid && len(ev) == 2 && ev[0] == "pong"
	})

	// The actions: join, emit to the room, leave, disconnect.
	sock := func() *server.Socket {
		s, ok := ts.Of("/").Socket(sid)
		if !ok {
			t.Fatalf("socket %s is not on the server", sid)
		}
		return s
	}
	cl.Emit(t, "adm", "join", "/", "vip", sid)
	adminEvent(t, cl, "adm", "room_joined", func(a []any) bool { return at(a, 1) == "vip" && at(a, 2) == sid })
	siotest.Eventually(t, waitFor, "the socket joined vip", func() bool { return hasRoom(sock(), "vip") })
	cl.Emit(t, "adm", "emit", "/", "vip", "notice", "hi")
	cl.Wait(t, "u1 gets the admin's emit", waitFor, siotest.IsEventFor("u1", "notice"))
	cl.Emit(t, "adm", "leave", "/", "vip", sid)
	adminEvent(t, cl, "adm", "room_left", func(a []any) bool { return at(a, 1) == "vip" && at(a, 2) == sid })
	siotest.Eventually(t, waitFor, "the socket left vip", func() bool { return !hasRoom(sock(), "vip") })
	cl.Emit(t, "adm", "_disconnect", "/", false, sid)
	d := cl.Wait(t, "u1 disconnected", waitFor, func(ev siotest.Event) bool { return ev.ID == "u1" && ev.Type == "disconnect" })
	if d.Reason != "io server disconnect" {
		t.Errorf("u1 disconnected with %q, want io server disconnect", d.Reason)
	}
	adminEvent(t, cl, "adm", "socket_disconnected", func(a []any) bool { return at(a, 1) == sid && at(a, 2) == "server namespace disconnect" })

	// The dashboard's connection chart: u1's Engine.IO session opened, and
	// closed once its only namespace was disconnected.
	aggregated := func(typ, subType string) func(a []any) bool {
		return func(a []any) bool {
			evs, _ := field2(at(a, 0), "aggregatedEvents").([]any)
			for _, e := range evs {
				if field(e, "type") == typ && field(e, "subType") == subType {
					n, _ := field2(e, "count").(float64)
					return n >= 1
				}
			}
			return false
		}
	}
	adminEvent(t, cl, "adm", "server_stats", aggregated("rawConnection", ""))
	adminEvent(t, cl, "adm", "server_stats", aggregated("rawDisconnection", "transport close"))

	// The session id the UI stores lets it in again without the password.
	cl.Connect(t, "adm2", ts.URL+"/admin", nil, map[string]any{"auth": map[string]any{"sessionId": at(session, 0)}})
	adminEvent(t, cl, "adm2", "config", nil)
}

// TestAdminNewNamespace: a dynamic namespace created after the server
// started is followed from its first socket on (OnNewNamespace).
func TestAdminNewNamespace(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{Admin: adminConfig("node-a")}, func(srv *server.Server) {
		srv.OfDynamic(func(name string, _ map[string]any) bool { return strings.HasPrefix(name, "/room-") })
	})
	cl := siotest.StartClients(t)
	cl.Connect(t, "adm", ts.URL+"/admin", nil, adminAuth())
	adminEvent(t, cl, "adm", "config", nil)
	sid := cl.Connect(t, "u1", ts.URL+"/room-1", nil, nil).Sid
	conn := adminEvent(t, cl, "adm", "socket_connected", func(a []any) bool { return field(at(a, 0), "id") == sid })
	if s, _ := at(conn, 0).(map[string]any); s["nsp"] != "/room-1" {
		t.Errorf("socket_connected: %v", s)
	}
}

// TestAdminAuthRefused: wrong credentials get instrument()'s error, and no
// admin event.
func TestAdminAuthRefused(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{Admin: adminConfig("")}, nil)
	cl := siotest.StartClients(t)
	for id, auth := range map[string]map[string]any{
		"wrong-password": {"username": "admin", "password": "guess"},
		"wrong-user":     {"username": "root", "password": adminPassword},
		"no-auth":        {},
		"bad-session":    {"sessionId": "0123456789abcdef"},
	} {
		cl.Do(t, map[string]any{"cmd": "connect", "id": id, "url": ts.URL + "/admin", "auth": auth})
		ev := cl.Wait(t, id+"'s outcome", waitFor, func(ev siotest.Event) bool {
			return ev.ID == id && (ev.Type == "connect" || ev.Type == "connect_error")
		})
		if ev.Type != "connect_error" || ev.Message != "invalid credentials" {
			t.Errorf("%s: %s %q, want connect_error \"invalid credentials\"", id, ev.Type, ev.Message)
		}
	}
}

// TestAdminReadOnly: a read-only admin namespace offers no action and
// refuses those sent anyway.
func TestAdminReadOnly(t *testing.T) {
	t.Parallel()
	cfg := adminConfig("")
	cfg.ReadOnly = true
	ts := startServer(t, server.Config{Admin: cfg}, nil)
	cl := siotest.StartClients(t)
	sid := cl.Connect(t, "u1", ts.URL+"/", nil, nil).Sid
	cl.Connect(t, "adm", ts.URL+"/admin", nil, adminAuth())
	c := adminEvent(t, cl, "adm", "config", nil)
	features, _ := field2(at(c, 0), "supportedFeatures").([]any)
	if !slices.Equal(features, []any{"AGGREGATED_EVENTS", "ALL_EVENTS"}) {
		t.Errorf("read-only supportedFeatures: %v", features)
	}
	// The acks come once the server has decided: a join carried out would
	// have taken place on this node before.
	cl.Do(t, map[string]any{"cmd": "emit", "id": "adm", "event": "join", "args": []any{"/", "vip", sid}, "seq": 1, "withAck": true})
	cl.Do(t, map[string]any{"cmd": "emit", "id": "adm", "event": "_disconnect", "args": []any{"/", true, sid}, "seq": 2, "withAck": true})
	for seq := 1; seq <= 2; seq++ {
		ack := cl.Wait(t, "the action's ack", waitFor, func(ev siotest.Event) bool { return ev.Type == "ack" && ev.Seq == seq })
		if len(ack.Args) != 1 || field(ack.Args[0], "error") != "read-only" {
			t.Errorf("action %d answered %v, want a read-only error", seq, ack.Args)
		}
	}
	s, ok := ts.Of("/").Socket(sid)
	if !ok || hasRoom(s, "vip") {
		t.Errorf("read-only: the socket is connected=%v, rooms %v", ok, s)
	}
}

// TestAdminCluster: two Go nodes over Redis, the admin on node A: it sees
// both servers' stats, a client of node B (in all_sockets and as it
// connects), and its actions reach that client on node B.
func TestAdminCluster(t *testing.T) {
	t.Parallel()
	rs := redistest.StartStandalone(t)
	redis := server.RedisConfig{URL: rs.URL(), HeartbeatInterval: 500 * time.Millisecond, HeartbeatTimeout: 2 * time.Second}
	a := startServer(t, server.Config{Admin: adminConfig("node-a"), Redis: redis}, nil)
	b := startServer(t, server.Config{Admin: adminConfig("node-b"), Redis: redis}, nil)
	for _, ts := range []*testServer{a, b} {
		eventually(t, "/readyz 200", func() bool { return readyz(t, ts) == http.StatusOK })
	}
	cl := siotest.StartClients(t)
	early := cl.Connect(t, "early", b.URL+"/", nil, nil).Sid

	cl.Connect(t, "adm", a.URL+"/admin", nil, adminAuth())
	adminEvent(t, cl, "adm", "all_sockets", func(a []any) bool {
		list, _ := at(a, 0).([]any)
		return slices.ContainsFunc(list, func(s any) bool { return field(s, "id") == early })
	})
	for _, id := range []string{"node-a", "node-b"} {
		adminEvent(t, cl, "adm", "server_stats", func(a []any) bool { return field(at(a, 0), "serverId") == id })
	}
	sid := cl.Connect(t, "u1", b.URL+"/", nil, nil).Sid
	adminEvent(t, cl, "adm", "socket_connected", func(a []any) bool { return field(at(a, 0), "id") == sid })

	cl.Emit(t, "adm", "join", "/", "vip", sid)
	adminEvent(t, cl, "adm", "room_joined", func(a []any) bool { return at(a, 1) == "vip" && at(a, 2) == sid })
	siotest.Eventually(t, waitFor, "the socket on node B joined vip", func() bool {
		s, ok := b.Of("/").Socket(sid)
		return ok && hasRoom(s, "vip")
	})
	cl.Emit(t, "adm", "_disconnect", "/", false, sid)
	cl.Wait(t, "u1 disconnected", waitFor, func(ev siotest.Event) bool { return ev.ID == "u1" && ev.Type == "disconnect" })
	adminEvent(t, cl, "adm", "socket_disconnected", func(a []any) bool { return at(a, 1) == sid })
}

// TestAdminMixedCluster: a Go node and a Node node instrumented by
// @socket.io/admin-ui's instrument() share one Redis: an admin on either
// sees both servers; the admin on the Go node sees a client of the Node
// node (as it connects, and in all_sockets with its client id), and its
// join action reaches that client.
func TestAdminMixedCluster(t *testing.T) {
	t.Parallel()
	rs := redistest.StartStandalone(t)
	goNode := startServer(t, server.Config{Admin: adminConfig("node-go"), Redis: server.RedisConfig{URL: rs.URL()}}, nil)
	eventually(t, "/readyz 200", func() bool { return readyz(t, goNode) == http.StatusOK })
	cfg, _ := json.Marshal(map[string]any{"redisUrl": rs.URL(), "serverId": "node-js", "username": "admin", "passwordHash": adminHash})
	js := siotest.StartProc[map[string]any](t, "node admin", "testdata/admin/node-admin.js", nil, string(cfg))
	ready := js.Wait(t, "the Node node listening", waitFor, func(ev map[string]any) bool { return ev["type"] == "listening" })
	jsURL := fmt.Sprintf("http://127.0.0.1:%v", ready["port"])

	cl := siotest.StartClients(t)
	cl.Connect(t, "adm", goNode.URL+"/admin", nil, adminAuth())
	cl.Connect(t, "admjs", jsURL+"/admin", nil, adminAuth())
	for _, c := range []struct{ admin, server string }{
		{"adm", "node-js"}, {"adm", "node-go"}, {"admjs", "node-go"}, {"admjs", "node-js"},
	} {
		adminEvent(t, cl, c.admin, "server_stats", func(a []any) bool { return field(at(a, 0), "serverId") == c.server })
	}

	sid := cl.Connect(t, "u1", jsURL+"/", nil, nil).Sid
	conn := adminEvent(t, cl, "adm", "socket_connected", func(a []any) bool { return field(at(a, 0), "id") == sid })
	clientID := field(at(conn, 0), "clientId")
	if clientID == "" {
		t.Errorf("socket_connected from the Node node: %v, want a clientId", at(conn, 0))
	}
	cl.Connect(t, "adm2", goNode.URL+"/admin", nil, adminAuth())
	adminEvent(t, cl, "adm2", "all_sockets", func(a []any) bool {
		list, _ := at(a, 0).([]any)
		return slices.ContainsFunc(list, func(s any) bool {
			m, _ := s.(map[string]any)
			data, _ := m["data"].(map[string]any)
			return m["id"] == sid && m["clientId"] == clientID && m["transport"] == "websocket" && data["_admin"] == nil
		})
	})

	cl.Emit(t, "adm", "join", "/", "vip", sid)
	js.Wait(t, "the Node node's socket joined vip", waitFor, func(ev map[string]any) bool {
		return ev["type"] == "rooms" && ev["id"] == sid && ev["room"] == "vip"
	})
	adminEvent(t, cl, "adm", "room_joined", func(a []any) bool { return at(a, 1) == "vip" && at(a, 2) == sid })
}

// TestAdminFeedOwnsArgs: the events feed sends what a socket received and
// was sent later, from the admin goroutine, while a handler changes the
// map it received and the application changes the map it emitted once
// Emit has returned: the feed works on copies (the race detector checks).
func TestAdminFeedOwnsArgs(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{Admin: adminConfig("node-a")}, func(srv *server.Server) {
		srv.OnConnection(func(s *server.Socket) {
			s.On("m", func(e *server.Event) {
				m, _ := e.Arg(0).(map[string]any)
				for i := range 200 {
					m["k"] = i // the received map, changed by its handler
				}
				out := map[string]any{"n": 0, "list": []any{1, 2}}
				_ = s.Emit("back", out)
				for i := range 200 {
					out["n"] = i // the emitted map, changed after Emit
				}
				e.Ack("done")
			})
		})
	})
	cl := siotest.StartClients(t)
	cl.Connect(t, "adm", ts.URL+"/admin", nil, adminAuth())
	adminEvent(t, cl, "adm", "config", nil)
	cl.Connect(t, "u1", ts.URL+"/", nil, nil)
	for range 5 {
		cl.Emit(t, "u1", "m", map[string]any{"k": -1})
	}
	adminEvent(t, cl, "adm", "event_received", func(a []any) bool {
		ev, _ := at(a, 2).([]any)
		return len(ev) == 2 && ev[0] == "m"
	})
	sent := adminEvent(t, cl, "adm", "event_sent", func(a []any) bool {
		ev, _ := at(a, 2).([]any)
		return len(ev) == 2 && ev[0] == "back"
	})
	// The copy is the map as emitted, before the changes that followed.
	ev, _ := at(sent, 2).([]any)
	if n, _ := field2(ev[1], "n").(float64); n != 0 {
		t.Errorf("event_sent carried n=%v, want 0 (the value at Emit)", n)
	}
}
