package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockstream/sockstream/recovery"
)

func TestSessionStorePersistTake(t *testing.T) {
	srv, c := redisClient(t)
	s := NewSessionStore(c, SessionStoreOptions{})
	ctx := context.Background()
	in := recovery.Session{SID: "sid1", PID: testPID, Rooms: []string{"sid1", "r1"}, Data: map[string]any{"user": "u1", "n": 3}, Nsp: "/chat"}
	if err := s.Persist(ctx, in, time.Minute); err != nil {
		t.Fatal(err)
	}
	pttl, err := srv.Do("PTTL", DefaultSessionKeyPrefix+testPID)
	if err != nil || pttl.(int64) <= 0 || pttl.(int64) > 60_000 {
		t.Fatalf("PTTL = %v, %v; want a ttl of at most 60000 ms", pttl, err)
	}
	got, err := s.Take(ctx, testPID)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.Data = map[string]any{"user": "u1", "n": 3.0}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Take = %+v, want %+v", *got, want)
	}
	if _, err := s.Take(ctx, testPID); !errors.Is(err, recovery.ErrNotFound) {
		t.Errorf("second Take: err = %v, want recovery.ErrNotFound (a session is restored at most once)", err)
	}

	if err := s.Persist(ctx, recovery.Session{SID: "x", PID: "bad pid"}, time.Minute); !errors.Is(err, recovery.ErrInvalidPID) {
		t.Errorf("Persist with a bad pid: %v", err)
	}
	if err := s.Persist(ctx, recovery.Session{SID: "x", PID: testPID}, time.Microsecond); !errors.Is(err, recovery.ErrInvalidTTL) {
		t.Errorf("Persist with a 1µs ttl: %v", err)
	}
	if _, err := s.Take(ctx, "*"); !errors.Is(err, recovery.ErrInvalidPID) {
		t.Errorf("Take of a key pattern: %v", err)
	}

	// Expiry is Redis' own.
	if err := s.Persist(ctx, recovery.Session{SID: "x", PID: testPID2}, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if _, err := s.Take(ctx, testPID2); !errors.Is(err, recovery.ErrNotFound) {
		t.Errorf("Take after the ttl: %v, want recovery.ErrNotFound", err)
	}

	// A corrupt value is reported once and consumed.
	if _, err := srv.Do("SET", DefaultSessionKeyPrefix+testPID, "!!not base64"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Take(ctx, testPID); !errors.Is(err, recovery.ErrCorrupt) {
		t.Errorf("Take of a corrupt value: %v, want recovery.ErrCorrupt", err)
	}
	if n, _ := srv.Do("EXISTS", DefaultSessionKeyPrefix+testPID); n.(int64) != 0 {
		t.Error("the corrupt value was not deleted")
	}

	// A custom prefix.
	p := NewSessionStore(c, SessionStoreOptions{KeyPrefix: "app:s:"})
	if err := p.Persist(ctx, recovery.Session{SID: "y", PID: testPID}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n, _ := srv.Do("EXISTS", "app:s:"+testPID); n.(int64) != 1 {
		t.Error("the session is not under the custom prefix")
	}
}

func TestSessionStoreTakeOnce(t *testing.T) {
	_, c := redisClient(t)
	s := NewSessionStore(c, SessionStoreOptions{})
	ctx := context.Background()
	for round := range 20 {
		if err := s.Persist(ctx, recovery.Session{SID: "s", PID: testPID}, time.Minute); err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Take(ctx, testPID); err == nil {
					wins.Add(1)
				} else if !errors.Is(err, recovery.ErrNotFound) {
					t.Errorf("Take: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d concurrent Takes got the session, want exactly 1", round, wins.Load())
		}
	}
}

func TestSessionStoreBackendError(t *testing.T) {
	srv, c := redisClient(t)
	s := NewSessionStore(c, SessionStoreOptions{})
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Persist(ctx, recovery.Session{SID: "s", PID: testPID}, time.Minute); err == nil {
		t.Error("Persist succeeded with Redis down")
	}
	_, err := s.Take(ctx, testPID)
	if err == nil || errors.Is(err, recovery.ErrNotFound) {
		t.Errorf("Take with Redis down: err = %v, want a backend error", err)
	}
	// The restore reports it as a backend failure, not as a missing or
	// corrupt session.
	log := recovery.NewMemoryLog(recovery.MemoryLogOptions{})
	off := log.Append("/", []any{"e"}, recovery.PacketOptions{})
	if _, err := recovery.Restore(ctx, s, log, testPID, off, "/"); recovery.ReasonOf(err) != recovery.ReasonError {
		t.Errorf("restore with Redis down: %v, want reason %q", err, recovery.ReasonError)
	}
}

// ---- interoperability with @socket.io/redis-streams-adapter 0.3.1 ----

// nodeSession runs testdata/recovery/session.js.
func nodeSession(t *testing.T, stdin any, args ...string) map[string]any {
	t.Helper()
	script, _ := filepath.Abs(filepath.Join("..", "testdata", "recovery", "session.js"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	if stdin != nil {
		b, err := json.Marshal(stdin)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = strings.NewReader(string(b))
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node session.js %v: %v\n%s", args, err, stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node session.js %v printed %q: %v", args, out, err)
	}
	return res
}

// interopData is socket.data with every kind of value both sides encode:
// numbers, strings, booleans, null, nested objects and arrays, binary and
// dates.
func interopData() (goData any, jsData any) {
	at := time.UnixMilli(1700000000123).UTC()
	bin := []byte{0, 1, 2, 250}
	goData = map[string]any{
		"user": "u1", "n": 42.0, "neg": -7.5, "ok": true, "none": nil,
		"list": []any{1.0, "two", map[string]any{"three": 3.0}},
		"bin":  bin, "at": at,
	}
	jsData = map[string]any{
		"user": "u1", "n": 42.0, "neg": -7.5, "ok": true, "none": nil,
		"list": []any{1.0, "two", map[string]any{"three": 3.0}},
		"bin":  map[string]any{"$bin": base64.StdEncoding.EncodeToString(bin)},
		"at":   map[string]any{"$date": float64(at.UnixMilli())},
	}
	return goData, jsData
}

func TestNodePersistsGoRestores(t *testing.T) {
	srv, c := redisClient(t)
	goData, jsData := interopData()
	res := nodeSession(t, map[string]any{"sid": "nodeSid", "pid": testPID, "rooms": []string{"nodeSid", "r1"}, "data": jsData},
		"persist", srv.URL())
	if res["ok"] != true {
		t.Fatalf("node persist: %v", res)
	}
	got, err := NewSessionStore(c, SessionStoreOptions{}).Take(context.Background(), testPID)
	if err != nil {
		t.Fatal(err)
	}
	want := recovery.Session{SID: "nodeSid", PID: testPID, Rooms: []string{"nodeSid", "r1"}, Data: goData}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Go restored %#v\nwant %#v", *got, want)
	}
}

func TestGoPersistsNodeRestores(t *testing.T) {
	srv, c := redisClient(t)
	goData, jsData := interopData()
	in := recovery.Session{SID: "goSid", PID: testPID, Rooms: []string{"goSid", "r1"}, Data: goData, Nsp: "/"}
	if err := NewSessionStore(c, SessionStoreOptions{}).Persist(context.Background(), in, time.Minute); err != nil {
		t.Fatal(err)
	}
	res := nodeSession(t, nil, "restore", srv.URL(), testPID)
	sess, ok := res["session"].(map[string]any)
	if !ok {
		t.Fatalf("node restore: %v", res)
	}
	if sess["sid"] != "goSid" || sess["pid"] != testPID || !reflect.DeepEqual(sess["rooms"], []any{"goSid", "r1"}) {
		t.Errorf("node restored sid=%v pid ok=%v rooms=%v", sess["sid"], sess["pid"] == testPID, sess["rooms"])
	}
	if !reflect.DeepEqual(sess["data"], jsData) {
		t.Errorf("node restored data %#v\nwant %#v", sess["data"], jsData)
	}
	if n, _ := srv.Do("EXISTS", DefaultSessionKeyPrefix+testPID); n.(int64) != 0 {
		t.Error("Node's restore left the session in Redis")
	}
}

func TestNodeEncodingDecodes(t *testing.T) {
	goData, jsData := interopData()
	res := nodeSession(t, map[string]any{"sid": "s", "pid": testPID, "rooms": []string{"s"}, "data": jsData}, "encode")
	v, _ := res["value"].(string)
	got, err := decodeSession(v, testPID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Data, goData) {
		t.Errorf("decoded %#v\nwant %#v", got.Data, goData)
	}
}

// TestGoEncodingMatchesNode: for a session as Node persists it, the value
// a Go node stores is byte for byte the one Node's persistSession stores
// (@msgpack/msgpack): key order, number forms, binary and timestamps.
func TestGoEncodingMatchesNode(t *testing.T) {
	goData, jsData := interopData()
	type nodeShaped struct {
		SID   string   `json:"sid"`
		PID   string   `json:"pid"`
		Rooms []string `json:"rooms"`
		Data  any      `json:"data"`
	}
	res := nodeSession(t, nodeShaped{SID: "s", PID: testPID, Rooms: []string{"s", "r1"}, Data: jsData}, "encode")
	want, _ := res["value"].(string)
	got, err := encodeSession(recovery.Session{SID: "s", PID: testPID, Rooms: []string{"s", "r1"}, Data: goData})
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		g, _ := base64.StdEncoding.DecodeString(got)
		w, _ := base64.StdEncoding.DecodeString(want)
		t.Errorf("Go encoding differs from Node's:\n got % x\nwant % x", g, w)
	}
}
