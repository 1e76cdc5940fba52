package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/servetest"
	"github.com/sockstream/sockstream/server"
)

// startChat serves the chat on a free loopback port and returns its URL.
func startChat(t *testing.T, cfg server.Config) string {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mountChat(srv, 50)
	return servetest.Serve(t, srv)
}

// runClients runs testdata/chat/clients.js against two URLs and returns the
// answers by step, and what each client saw.
func runClients(t *testing.T, urlA, urlB string) (map[string]map[string]any, map[string][]map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	script, _ := filepath.Abs("../../testdata/chat/clients.js")
	cmd := exec.CommandContext(ctx, "node", script, urlA, urlB)
	cmd.Dir = "../../testdata"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	steps := map[string]map[string]any{}
	var seen map[string][]map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m struct {
			Step string                      `json:"step"`
			R    map[string]any              `json:"r"`
			Seen map[string][]map[string]any `json:"seen"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		if m.Step != "" {
			steps[m.Step] = m.R
		}
		if m.Seen != nil {
			seen = m.Seen
		}
	}
	return steps, seen
}

func TestChatWithOfficialClients(t *testing.T) {
	url := startChat(t, server.Config{})
	checkChat(t, url, url)
}

// startClusteredChat starts a real Redis and two chat nodes sharing it, with
// connection state recovery, and returns their URLs.
func startClusteredChat(t *testing.T) (string, string) {
	t.Helper()
	r := redistest.StartStandalone(t)
	cfg := server.Config{
		Recovery: server.RecoveryConfig{Enabled: true},
		Redis:    server.RedisConfig{URL: r.URL(), HeartbeatInterval: 500 * time.Millisecond, HeartbeatTimeout: 2 * time.Second},
	}
	urlA, urlB := startChat(t, cfg), startChat(t, cfg)
	waitReady(t, urlA, urlB)
	return urlA, urlB
}

// waitReady waits until every node's /readyz says its cluster is up.
func waitReady(t *testing.T, urls ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, u := range urls {
		for {
			resp, err := http.Get(u + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never became ready: %v", u, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestChatCluster: the same scenario with the two clients on two nodes.
func TestChatCluster(t *testing.T) {
	urlA, urlB := startClusteredChat(t)
	checkChat(t, urlA, urlB)
}

// checkChat runs the client scenario and checks every answer.
func checkChat(t *testing.T, urlA, urlB string) {
	steps, seen := runClients(t, urlA, urlB)
	for step, want := range map[string]string{
		"badNick": errNick.Error(),
		"badRoom": errRoom.Error(),
		"noRoom":  errNoRoom.Error(),
		"empty":   errMessage.Error(),
		"tooLong": errMessage.Error(),
	} {
		if got := steps[step]["error"]; got != want {
			t.Errorf("%s: error = %v, want %q", step, got, want)
		}
	}
	for _, step := range []string{"joinA", "joinB", "send", "joinC", "leaveB"} {
		if steps[step]["ok"] != true {
			t.Errorf("%s: %v, want ok", step, steps[step])
		}
	}
	if users, _ := steps["joinB"]["users"].([]any); len(users) != 2 || users[0] != "ann" || users[1] != "bob" {
		t.Errorf("users on join = %v, want [ann bob]", steps["joinB"]["users"])
	}
	id, _ := steps["send"]["id"].(string)
	if id == "" {
		t.Fatalf("send ack has no id: %v", steps["send"])
	}

	// bob got ann's message once, as text; ann did not get her own back.
	var got []map[string]any
	var typing bool
	for _, x := range seen["b"] {
		m, _ := x["m"].(map[string]any)
		switch x["ev"] {
		case "message":
			got = append(got, m)
		case "typing":
			typing = typing || m["nick"] == "ann" && m["typing"] == true
		}
	}
	if len(got) != 1 || got[0]["id"] != id || got[0]["text"] != "<b>hello</b>" || got[0]["nick"] != "ann" || got[0]["room"] != "lobby" {
		t.Errorf("bob's messages = %v, want ann's one message", got)
	}
	if !typing {
		t.Errorf("bob never saw ann typing: %v", seen["b"])
	}
	for _, x := range seen["a"] {
		if x["ev"] == "message" {
			t.Errorf("ann got a message back: %v", x)
		}
	}

	rooms, _ := steps["rooms"]["rooms"].([]any)
	if len(rooms) != 1 || rooms[0].(map[string]any)["room"] != "lobby" || rooms[0].(map[string]any)["members"] != float64(2) {
		t.Errorf("rooms = %v, want lobby with 2 members", steps["rooms"])
	}
	if users, _ := steps["users"]["users"].([]any); len(users) != 2 {
		t.Errorf("users = %v, want ann and bob", steps["users"])
	}
	hist, _ := steps["joinC"]["history"].([]any)
	if len(hist) != 1 || hist[0].(map[string]any)["id"] != id {
		t.Errorf("history for a late joiner = %v, want the one message", hist)
	}
}

func TestHistoryKeepsTheLastMessages(t *testing.T) {
	h := newHistory(3, 2)
	for i, room := range []string{"a", "a", "a", "a", "b", "c"} {
		h.add(Message{ID: string(rune('0' + i)), Room: room})
	}
	h.add(Message{ID: "5", Room: "c"}) // a duplicate announcement
	if got := h.last("a"); len(got) != 0 {
		t.Errorf("room a should have been forgotten (max 2 rooms): %v", got)
	}
	if got := h.last("c"); len(got) != 1 || got[0].ID != "5" {
		t.Errorf("room c = %v, want one message", got)
	}
	h2 := newHistory(3, 10)
	for i := 0; i < 5; i++ {
		h2.add(Message{ID: string(rune('0' + i)), Room: "r"})
	}
	got := h2.last("r")
	if len(got) != 3 || got[0].ID != "2" || got[2].ID != "4" {
		t.Errorf("last = %v, want messages 2..4", got)
	}
	newHistory(0, 1).add(Message{ID: "x", Room: "r"}) // size 0 keeps nothing, without panicking
}

func TestBadOptionStopsWithOneLine(t *testing.T) {
	err := run(context.Background(), []string{"-ping-interval", "-5s"})
	var ce *server.ConfigError
	if !errors.As(err, &ce) || ce.Option != "ping-interval" {
		t.Fatalf("err = %v, want a ConfigError naming ping-interval", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	if err := run(context.Background(), []string{"-history", "-1"}); err == nil || !strings.Contains(err.Error(), "history") {
		t.Errorf("-history -1: err = %v, want one naming history", err)
	}
}

func TestBadEnvironmentStopsWithOneLine(t *testing.T) {
	t.Setenv("SOCKSTREAM_PING_TIMEOUT", "soon")
	err := run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "SOCKSTREAM_PING_TIMEOUT") {
		t.Fatalf("err = %v, want one naming SOCKSTREAM_PING_TIMEOUT", err)
	}
}

func TestValidInput(t *testing.T) {
	for s, ok := range map[string]bool{"ann": true, "a-b_9": true, "": false, "<b>": false, "a b": false, "é": false, strings.Repeat("x", 25): false} {
		if validName(s, maxNick) != ok {
			t.Errorf("validName(%q) = %v, want %v", s, !ok, ok)
		}
	}
	for s, ok := range map[string]bool{"hi": true, "<b>x</b>": true, " ": false, "": false, "\xff": false, strings.Repeat("é", 2000): true, strings.Repeat("é", 2001): false} {
		if validText(s) != ok {
			t.Errorf("validText(%q) = %v, want %v", s, !ok, ok)
		}
	}
}
