package emitter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockstream/sockstream/emitter"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

const waitLong = 15 * time.Second

// ctx bounds one emitter call of a test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitLong)
	t.Cleanup(cancel)
	return c
}

// newEmitter returns an emitter with options o, closed at the end of the
// test.
func newEmitter(t *testing.T, o emitter.Options) *emitter.Emitter {
	t.Helper()
	e, err := emitter.New(o)
	if err != nil {
		t.Fatalf("emitter.New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// nodeOptions configure a Go node of the tests.
type nodeOptions struct {
	streamCount int
	recovery    bool
	nsps        []string // namespaces served; "/" always
}

// startGoNode starts a sockstream server clustered over the Redis at
// redisURL through Config.Redis (what an application does), with short
// heartbeats, and waits until it is ready (its stream readers know where to
// start: what is written from then on reaches it). A socket joins the rooms
// of its "rooms" query parameter before it is connected, in every
// namespace.
func startGoNode(t *testing.T, name, redisURL string, o nodeOptions) *siotest.Server {
	t.Helper()
	cfg := server.Config{Redis: server.RedisConfig{
		URL:               redisURL,
		StreamCount:       o.streamCount,
		HeartbeatInterval: 200 * time.Millisecond,
		HeartbeatTimeout:  2 * time.Second,
		RequestTimeout:    5 * time.Second,
	}}
	if o.recovery {
		cfg.Recovery = server.RecoveryConfig{Enabled: true, MaxDisconnection: time.Minute, SkipMiddlewares: true}
	}
	s := siotest.StartServer(t, name, cfg)
	for _, nsp := range append([]string{"/"}, o.nsps...) {
		s.Srv.Of(nsp).Use(siotest.JoinQueryRooms(func(q url.Values) any {
			return map[string]any{"user": q.Get("user"), "node": name}
		}))
	}
	siotest.Eventually(t, waitLong, name+" /readyz 200", func() bool {
		resp, err := http.Get(s.URL + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// connect connects client id to the namespace nsp of baseURL, in rooms
// (comma separated), and returns its sid.
func connect(t *testing.T, c *siotest.Clients, id, baseURL, nsp, rooms string) string {
	t.Helper()
	return c.Connect(t, id, baseURL+nsp, map[string]string{"rooms": rooms, "user": "user-" + id}, nil).Sid
}

// marker emits a sentinel from the emitter to every socket of nsp and
// waits until want clients got it: what the emitter wrote before it to the
// same namespace has been applied by every node by then.
func marker(t *testing.T, e *emitter.Emitter, c *siotest.Clients, nsp string, want int) {
	t.Helper()
	ev := fmt.Sprintf("marker-%d", markers.Add(1))
	if err := e.Of(nsp).Emit(ctx(t), ev); err != nil {
		t.Fatalf("marker: %v", err)
	}
	c.WaitN(t, ev, want, waitLong, siotest.IsEvent(ev))
}

var markers atomic.Int64

// checkReceivers fails t unless exactly the clients want got event ev,
// each with args unless args is nil (compared as JSON; binary as the
// clients print it, {"$bin": base64}).
func checkReceivers(t *testing.T, c *siotest.Clients, ev string, want []string, args []any) {
	t.Helper()
	if got := c.Receivers(ev); !slices.Equal(got, siotest.Sorted(want...)) {
		t.Errorf("%s reached %v, want %v", ev, got, siotest.Sorted(want...))
	}
	if args == nil {
		return
	}
	for _, e := range c.Filter(siotest.IsEvent(ev)) {
		if !siotest.EqualJSON(e.Args, args) {
			t.Errorf("%s got %s with %v, want %v", e.ID, ev, e.Args, args)
		}
	}
}

var entryID = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

func str(v any) string { s, _ := v.(string); return s }

// offsetOf returns the offset client id got as last argument of event ev,
// failing t if there is none.
func offsetOf(t *testing.T, c *siotest.Clients, id, ev string) string {
	t.Helper()
	e := c.Wait(t, ev+" on "+id, waitLong, siotest.IsEventFor(id, ev))
	if len(e.Args) == 0 || !entryID.MatchString(str(e.Args[len(e.Args)-1])) {
		t.Fatalf("%s got %s with %v: no offset last", id, ev, e.Args)
	}
	return str(e.Args[len(e.Args)-1])
}

// disconnects returns the sorted ids of the clients disconnected so far
// with reason.
func disconnects(c *siotest.Clients, reason string) []string {
	var ids []string
	for _, e := range c.Filter(func(e siotest.Event) bool { return e.Type == "disconnect" && e.Reason == reason }) {
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	return ids
}

// ---- the Node reference node ----

// peer is the Node reference node of package cluster's mixed-cluster tests
// (testdata/cluster/node-peer.js: socket.io 4.8.1 with
// @socket.io/redis-streams-adapter 0.3.1); each command carrying a "seq"
// is answered by a line with the same seq.
type peer struct {
	*siotest.Proc[map[string]any]
	url string
	seq atomic.Int64
}

type peerOptions struct {
	streamCount int
	recovery    bool
	nsps        []string
}

// startPeer starts the Node node on the Redis at redisURL and waits until
// it listens (and its adapters are subscribed). Its stream readers start in
// the background with nothing telling when: see syncPeer.
func startPeer(t *testing.T, redisURL string, o peerOptions) *peer {
	t.Helper()
	nsps := append([]string{"/"}, o.nsps...)
	cfg, _ := json.Marshal(map[string]any{
		"name": "node", "port": 0, "redisUrl": redisURL, "streamCount": max(o.streamCount, 1),
		"namespaces": nsps, "recovery": o.recovery,
	})
	p := &peer{Proc: siotest.StartProc[map[string]any](t, "node peer", "testdata/cluster/node-peer.js",
		[]string{"DEBUG=socket.io-adapter,socket.io-redis-streams-adapter", "DEBUG_COLORS=0", "DEBUG_HIDE_DATE=1"}, string(cfg))}
	t.Cleanup(func() { checkPeerLog(t, p.Stderr()) })
	ready := p.Wait(t, "node peer listening", waitLong, func(ev map[string]any) bool { return ev["type"] == "listening" })
	p.url = fmt.Sprintf("http://127.0.0.1:%v", ready["port"])
	return p
}

// checkPeerLog fails t for every line of the Node packages' debug log
// saying an entry could not be handled (they report nothing else).
func checkPeerLog(t *testing.T, log string) {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		if _, typ, ok := strings.Cut(line, "unknown message type: "); ok {
			// The Go nodes' heartbeats and ADAPTER_CLOSE, which 0.3
			// ignores.
			if typ = strings.TrimSpace(typ); typ != "1" && typ != "2" && typ != "13" {
				t.Errorf("the Node node could not handle a message: %s", line)
			}
			continue
		}
		for _, bad := range []string{"invalid format", "error while", "something went wrong"} {
			if strings.Contains(line, bad) {
				t.Errorf("the Node node could not handle a message: %s", line)
			}
		}
	}
}

// call sends a command to the Node node and returns its reply.
func (p *peer) call(t *testing.T, cmd map[string]any) map[string]any {
	t.Helper()
	seq := float64(p.seq.Add(1))
	cmd["seq"] = seq
	p.Do(t, cmd)
	reply := p.Wait(t, fmt.Sprintf("reply to %v", cmd["cmd"]), waitLong, func(ev map[string]any) bool { return ev["seq"] == seq })
	if reply["type"] == "error" {
		t.Fatalf("node peer: %v failed: %v", cmd["cmd"], reply["message"])
	}
	return reply
}

// syncPeer waits until the Node node reads the stream of nsp: its adapter
// starts XREAD at "$" in the background, so an entry written before that
// is never seen. The emitter broadcasts numbered probes until client (on
// the Node node) gets one.
func syncPeer(t *testing.T, e *emitter.Emitter, c *siotest.Clients, nsp, client string) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for i := 0; ; i++ {
		ev := fmt.Sprintf("sync-%d", i)
		if err := e.Of(nsp).Emit(ctx(t), ev); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if c.Count(siotest.IsEventFor(client, ev)) > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no probe reached client %s in %v", nsp, client, waitLong)
		}
	}
}

// startRedis starts a Redis of the test's own.
func startRedis(t *testing.T) *redistest.Server { return redistest.StartStandalone(t) }
