package cluster

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
)

// testdataDir is where the Node side of the tests lives.
const testdataDir = "../testdata"

type goldenCase struct {
	Name        string          `json:"name"`
	Kind        string          `json:"kind"`
	Constructed bool            `json:"constructed"`
	Stream      string          `json:"stream"`
	MaxLen      int             `json:"maxLen"`
	Fields      [][2]string     `json:"fields"`
	Channel     string          `json:"channel"`
	Payload     string          `json:"payload"`
	Decoded     json.RawMessage `json:"decoded"`
}

type goldenFile struct {
	Cases  []goldenCase `json:"cases"`
	Hashes []struct {
		Nsp    string `json:"nsp"`
		Hash   int32  `json:"hash"`
		Index3 int    `json:"index3"`
	} `json:"hashes"`
}

func loadGolden(t testing.TB) goldenFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir, "cluster", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func fieldMap(pairs [][2]string) map[string]string {
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		m[p[0]] = p[1]
	}
	return m
}

func ptr[T any](v T) *T { return &v }

const (
	uidRoot   = "1112131415161718"
	uidOrders = "2223242526272829"
	uidRemote = "fedcba9876543210"
)

func noOpts() adapter.Options { return adapter.Options{Rooms: []string{}, Except: []string{}} }

// goldenWant lists, per golden case, the message Go must decode (want) and,
// when the key order of a map matters for byte equality, the message to
// encode (in), which uses ordered objects where want has maps.
var goldenWant = map[string]struct{ in, want *adapter.Message }{
	"broadcast_plain": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.Broadcast, Data: &adapter.BroadcastData{
		Packet: adapter.Packet{Type: 2, Data: []any{"plain", "hello", map[string]any{"n": 1.0}}},
		Opts:   noOpts(),
	}}},
	"broadcast_rooms_flags": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.Broadcast, Data: &adapter.BroadcastData{
		Packet: adapter.Packet{Type: 2, Data: []any{"ev", 1.0, 2.5, -3.0, nil, true, []any{1.0, "a"}, "é\u2028<>&\"\\\n"}},
		Opts: adapter.Options{Rooms: []string{"room1", "room2"}, Except: []string{"room3"},
			Flags: adapter.Flags{Volatile: true, Compress: ptr(false)}},
	}}},
	"broadcast_binary": {
		in: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.Broadcast, Data: &adapter.BroadcastData{
			Packet: adapter.Packet{Type: 2, Data: []any{"bin", []byte{1, 2, 3}, object{
				{"nested", []byte("hi")}, {"n", 300}, {"neg", -200}, {"big", int64(4294967296)}, {"f", 0.5}}}},
			Opts: noOpts(),
		}},
		want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.Broadcast, Data: &adapter.BroadcastData{
			Packet: adapter.Packet{Type: 2, Data: []any{"bin", []byte{1, 2, 3}, map[string]any{
				"nested": []byte("hi"), "n": 300.0, "neg": -200.0, "big": 4294967296.0, "f": 0.5}}},
			Opts: noOpts(),
		}},
	},
	"broadcast_other_namespace": {want: &adapter.Message{UID: uidOrders, Nsp: "/orders-namespace", Type: adapter.Broadcast, Data: &adapter.BroadcastData{
		Packet: adapter.Packet{Type: 2, Data: []any{"order", map[string]any{"id": 7.0}}},
		Opts:   noOpts(),
	}}},
	"sockets_join": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.SocketsJoin, Data: &adapter.SocketsJoinLeaveData{
		Opts: adapter.Options{Rooms: []string{"room1"}, Except: []string{}}, Rooms: []string{"a", "b"},
	}}},
	"sockets_leave": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.SocketsLeave, Data: &adapter.SocketsJoinLeaveData{
		Opts: adapter.Options{Rooms: []string{}, Except: []string{"x"}}, Rooms: []string{"a"},
	}}},
	"disconnect_sockets": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.DisconnectSockets, Data: &adapter.DisconnectSocketsData{
		Opts: adapter.Options{Rooms: []string{"room1"}, Except: []string{}}, Close: true,
	}}},
	"disconnect_sockets_noclose": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.DisconnectSockets, Data: &adapter.DisconnectSocketsData{
		Opts: noOpts(),
	}}},
	"broadcast_with_ack": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.Broadcast, Data: &adapter.BroadcastData{
		Packet:    adapter.Packet{Type: 2, Data: []any{"ask", "q"}},
		Opts:      adapter.Options{Rooms: []string{"room1"}, Except: []string{}, Flags: adapter.Flags{TimeoutMs: ptr(int64(1000))}},
		RequestID: "333435363738393a",
	}}},
	"fetch_sockets": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.FetchSockets, Data: &adapter.FetchSocketsData{
		Opts: adapter.Options{Rooms: []string{"room1"}, Except: []string{}}, RequestID: "4445464748494a4b",
	}}},
	"server_side_emit": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.ServerSideEmit, Data: &adapter.ServerSideEmitData{
		Packet: []any{"hello", "world", 1.0},
	}}},
	"server_side_emit_with_ack": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.ServerSideEmit, Data: &adapter.ServerSideEmitData{
		RequestID: "55565758595a5b5c", Packet: []any{"ping", "x"},
	}}},
	"server_side_emit_binary": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.ServerSideEmit, Data: &adapter.ServerSideEmitData{
		Packet: []any{"blob", []byte{0, 255}},
	}}},
	"fetch_sockets_response": {
		in:   fetchSocketsResponse(object{{"user", "bob"}, {"n", 42}}),
		want: fetchSocketsResponse(map[string]any{"user": "bob", "n": 42.0}),
	},
	"server_side_emit_response": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.ServerSideEmitResponse, Data: &adapter.ResponsePacketData{
		RequestID: "bbbbbbbbbbbbbbbb", Packet: "pong",
	}}},
	"server_side_emit_response_binary": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.ServerSideEmitResponse, Data: &adapter.ResponsePacketData{
		RequestID: "cccccccccccccccc", Packet: []byte{9, 8, 7},
	}}},
	"broadcast_client_count": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.BroadcastClientCount, Data: &adapter.BroadcastClientCountData{
		RequestID: "dddddddddddddddd", ClientCount: 1,
	}}},
	"broadcast_ack": {want: &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.BroadcastAck, Data: &adapter.ResponsePacketData{
		RequestID: "dddddddddddddddd", Packet: map[string]any{"ok": true},
	}}},
	"initial_heartbeat": {want: &adapter.Message{UID: uidRemote, Nsp: "/", Type: adapter.InitialHeartbeat}},
	"heartbeat":         {want: &adapter.Message{UID: uidRemote, Nsp: "/", Type: adapter.Heartbeat}},
	"adapter_close":     {want: &adapter.Message{UID: uidRemote, Nsp: "/", Type: adapter.AdapterClose}},
}

func fetchSocketsResponse(data any) *adapter.Message {
	return &adapter.Message{UID: uidRoot, Nsp: "/", Type: adapter.FetchSocketsResponse, Data: &adapter.FetchSocketsResponseData{
		RequestID: "aaaaaaaaaaaaaaaa",
		Sockets: []adapter.SocketInfo{{
			ID: "sid-1",
			Handshake: adapter.Handshake{
				Headers: map[string]any{"host": "localhost:3000", "user-agent": "node"},
				Time:    "Tue Nov 14 2023 22:13:20 GMT+0000 (Coordinated Universal Time)",
				Address: "::1",
				Issued:  1700000000000,
				URL:     "/socket.io/?EIO=4&transport=websocket",
				Query:   map[string]any{"EIO": "4", "transport": "websocket"},
				Auth:    map[string]any{"token": "abc"},
			},
			Rooms: []string{"sid-1", "room1"},
			Data:  data,
		}},
	}}
}

func (c goldenCase) decode(t *testing.T) (*adapter.Message, error) {
	t.Helper()
	var codec Codec
	if c.Kind == "entry" {
		return codec.DecodeEntry("1-0", fieldMap(c.Fields))
	}
	p, err := base64.StdEncoding.DecodeString(c.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return codec.DecodePubSub(p)
}

// TestGoldenNodeToGo decodes what the Node package wrote and checks that Go
// writes the very same bytes for the same message.
func TestGoldenNodeToGo(t *testing.T) {
	t.Parallel()
	g := loadGolden(t)
	if len(g.Cases) != len(goldenWant) {
		t.Errorf("golden.json has %d cases, the test knows %d", len(g.Cases), len(goldenWant))
	}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			w, ok := goldenWant[c.Name]
			if !ok {
				t.Fatalf("no expectation for %s", c.Name)
			}
			got, err := c.decode(t)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := *w.want
			if c.Kind == "entry" {
				want.Offset = "1-0"
			}
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("decoded\n got %s\nwant %s", dump(got), dump(&want))
			}
			in := w.in
			if in == nil {
				in = w.want
			}
			var codec Codec
			switch c.Kind {
			case "entry":
				e, err := codec.EncodeEntry(in)
				if err != nil {
					t.Fatal(err)
				}
				if gotKey := StreamKey("socket.io", 1, in.Nsp); gotKey != c.Stream {
					t.Errorf("stream %q, want %q", gotKey, c.Stream)
				}
				fv := e.FieldValues()
				var wantFV []string
				for _, p := range c.Fields {
					wantFV = append(wantFV, p[0], p[1])
				}
				if !reflect.DeepEqual(fv, wantFV) {
					t.Errorf("entry fields differ from Node's\n got %q\nwant %q", fv, wantFV)
				}
			case "pubsub":
				p, err := codec.EncodePubSub(in)
				if err != nil {
					t.Fatal(err)
				}
				if got := base64.StdEncoding.EncodeToString(p); got != c.Payload {
					t.Errorf("payload differs from Node's\n got %s\nwant %s", got, c.Payload)
				}
			}
		})
	}
}

func dump(m *adapter.Message) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// TestGoldenGoToNode has the Node package decode what Go encodes and compares
// the result with what it decodes from its own encoding.
func TestGoldenGoToNode(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	g := loadGolden(t)
	type nodeCase struct {
		Name    string      `json:"name"`
		Kind    string      `json:"kind"`
		Fields  [][2]string `json:"fields,omitempty"`
		Payload string      `json:"payload,omitempty"`
	}
	var in []nodeCase
	var codec Codec
	for _, c := range g.Cases {
		msg := goldenWant[c.Name].want // maps, not ordered objects: order must not matter to Node
		nc := nodeCase{Name: c.Name, Kind: c.Kind}
		if c.Kind == "entry" {
			e, err := codec.EncodeEntry(msg)
			if err != nil {
				t.Fatal(err)
			}
			fv := e.FieldValues()
			for i := 0; i < len(fv); i += 2 {
				nc.Fields = append(nc.Fields, [2]string{fv[i], fv[i+1]})
			}
		} else {
			p, err := codec.EncodePubSub(msg)
			if err != nil {
				t.Fatal(err)
			}
			nc.Payload = base64.StdEncoding.EncodeToString(p)
		}
		in = append(in, nc)
	}
	out := runNode(t, node, "cluster/decode.js", in)
	var results []struct {
		Name    string          `json:"name"`
		Decoded json.RawMessage `json:"decoded"`
		Error   string          `json:"error"`
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for i, r := range results {
		c := g.Cases[i]
		if r.Error != "" {
			t.Errorf("%s: Node cannot decode Go's encoding: %s", c.Name, r.Error)
			continue
		}
		var got, want any
		if err := json.Unmarshal(r.Decoded, &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(c.Decoded, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Node decodes Go's encoding as\n%s\nand its own as\n%s", c.Name, r.Decoded, c.Decoded)
		}
	}
}

func requireNode(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(testdataDir, "node_modules", "@socket.io", "redis-streams-adapter")); err != nil {
		t.Skip("the Node packages are not installed: run npm ci in testdata")
	}
	return node
}

// runNode runs a script of testdata with input as JSON on its stdin and
// returns its stdout.
func runNode(t testing.TB, node, script string, input any) []byte {
	t.Helper()
	b, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script)
	cmd.Dir = testdataDir
	cmd.Stdin = bytes.NewReader(b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	return out
}

func TestStreamKeyMatchesNode(t *testing.T) {
	t.Parallel()
	g := loadGolden(t)
	if len(g.Hashes) == 0 {
		t.Fatal("no hashes in golden.json")
	}
	for _, h := range g.Hashes {
		if got := HashCode(h.Nsp); got != h.Hash {
			t.Errorf("HashCode(%q) = %d, Node says %d", h.Nsp, got, h.Hash)
		}
		want := "socket.io-" + itoa(h.Index3)
		if got := StreamKey("socket.io", 3, h.Nsp); got != want {
			t.Errorf("StreamKey(%q) = %q, want %q", h.Nsp, got, want)
		}
	}
	if got := StreamKey("socket.io", 3, "/orders-namespace"); got != "socket.io--2" {
		t.Errorf("/orders-namespace goes to %q, want socket.io--2", got)
	}
	if got := StreamKey("s", 1, "/orders-namespace"); got != "s" {
		t.Errorf("with one stream: %q", got)
	}
	keys := streamKeys("s", 3)
	if want := []string{"s-0", "s-1", "s-2", "s--1", "s--2"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("streamKeys = %q, want %q", keys, want)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestDecodeEntryRejects(t *testing.T) {
	t.Parallel()
	okData := `{"packet":{"type":2,"data":["a"]},"opts":{"rooms":[],"except":[],"flags":{}}}`
	mp := func(v any) string {
		var n normalizer
		v, _ = n.value(v, 0)
		e := mpEncoder{}
		if err := e.encode(v, 0); err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(e.buf)
	}
	tests := []struct {
		name   string
		fields map[string]string
		reason error
	}{
		{"no nsp", map[string]string{"uid": "u", "type": "3", "data": okData}, ErrMissingNsp},
		{"empty nsp", map[string]string{"nsp": "", "type": "3", "data": okData}, ErrMissingNsp},
		{"foreign entry", map[string]string{"foo": "bar"}, ErrMissingNsp},
		{"no type", map[string]string{"nsp": "/", "data": okData}, ErrBadType},
		{"bad type", map[string]string{"nsp": "/", "type": "three", "data": okData}, ErrBadType},
		{"unknown type", map[string]string{"nsp": "/", "type": "42"}, ErrUnknownType},
		{"zero type", map[string]string{"nsp": "/", "type": "0"}, ErrUnknownType},
		{"bad json", map[string]string{"nsp": "/", "type": "3", "data": `{"packet":`}, ErrBadJSON},
		{"bad base64", map[string]string{"nsp": "/", "type": "3", "data": "!!!not base64!!!"}, ErrBadBase64},
		{"bad msgpack", map[string]string{"nsp": "/", "type": "3", "data": base64.StdEncoding.EncodeToString([]byte{0xc1})}, ErrBadMsgpack},
		{"truncated msgpack", map[string]string{"nsp": "/", "type": "3", "data": base64.StdEncoding.EncodeToString([]byte{0x82, 0xa1})}, ErrBadMsgpack},
		{"msgpack trailing bytes", map[string]string{"nsp": "/", "type": "3", "data": base64.StdEncoding.EncodeToString([]byte{0x80, 0x80})}, ErrBadMsgpack},
		{"msgpack huge array header", map[string]string{"nsp": "/", "type": "3", "data": base64.StdEncoding.EncodeToString([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})}, ErrBadMsgpack},
		{"too large", map[string]string{"nsp": "/", "type": "3", "data": "{" + strings.Repeat(" ", 2048) + "}"}, ErrTooLarge},
		{"missing data", map[string]string{"nsp": "/", "type": "3"}, ErrBadPayload},
		{"data not an object", map[string]string{"nsp": "/", "type": "3", "data": mp([]any{1.0})}, ErrBadPayload},
		{"missing opts", map[string]string{"nsp": "/", "type": "3", "data": `{"packet":{"type":2,"data":["a"]}}`}, ErrBadPayload},
		{"rooms not strings", map[string]string{"nsp": "/", "type": "4", "data": `{"opts":{"rooms":[1],"except":[]},"rooms":[]}`}, ErrBadPayload},
		{"packet type not int", map[string]string{"nsp": "/", "type": "3", "data": `{"packet":{"type":2.5},"opts":{}}`}, ErrBadPayload},
		{"volatile not bool", map[string]string{"nsp": "/", "type": "3", "data": `{"packet":{"type":2},"opts":{"flags":{"volatile":"yes"}}}`}, ErrBadPayload},
		{"missing requestId", map[string]string{"nsp": "/", "type": "7", "data": `{"opts":{}}`}, ErrBadPayload},
		{"client count fraction", map[string]string{"nsp": "/", "type": "11", "data": `{"requestId":"r","clientCount":1.5}`}, ErrBadPayload},
		{"server side emit without packet", map[string]string{"nsp": "/", "type": "9", "data": `{}`}, ErrBadPayload},
		{"unknown msgpack extension", map[string]string{"nsp": "/", "type": "3", "data": base64.StdEncoding.EncodeToString([]byte{0xd4, 0x05, 0x00})}, ErrBadMsgpack},
	}
	codec := Codec{MaxDataSize: 1024}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := codec.DecodeEntry("1-0", tt.fields)
			if err == nil {
				t.Fatalf("decoded %s", dump(msg))
			}
			if !errors.Is(err, tt.reason) {
				t.Errorf("error %v is not %v", err, tt.reason)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Errorf("error %T is not a *DecodeError", err)
			}
			if reasonLabel(err) == "other" {
				t.Errorf("no label for %v", err)
			}
		})
	}
}

func TestDecodeEntryTolerates(t *testing.T) {
	t.Parallel()
	var codec Codec
	// Foreign extra fields, no uid, members we do not know, flags as null.
	msg, err := codec.DecodeEntry("5-1", map[string]string{
		"nsp": "/", "type": "3", "extra": "x",
		"data": `{"packet":{"type":2,"data":["a"],"other":1},"opts":{"rooms":["r"],"flags":null,"zzz":[1]},"unknown":{}}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &adapter.Message{Nsp: "/", Type: adapter.Broadcast, Offset: "5-1", Data: &adapter.BroadcastData{
		Packet: adapter.Packet{Type: 2, Data: []any{"a"}},
		Opts:   adapter.Options{Rooms: []string{"r"}, Except: []string{}},
	}}
	if !reflect.DeepEqual(msg, want) {
		t.Errorf("got %s\nwant %s", dump(msg), dump(want))
	}
	// A heartbeat in the stream (as a 0.2 node writes it) decodes; its data,
	// if any, is ignored.
	msg, err = codec.DecodeEntry("5-2", map[string]string{"uid": "u", "nsp": "/", "type": "2", "data": `{"x":1}`})
	if err != nil || msg.Type != adapter.Heartbeat || msg.Data != nil {
		t.Errorf("heartbeat: %v %v", msg, err)
	}
	// Unpadded base64, as Buffer.from(s, "base64") also accepts.
	e, err := codec.EncodeEntry(&adapter.Message{UID: "u", Nsp: "/", Type: adapter.ServerSideEmit, Data: &adapter.ServerSideEmitData{Packet: []any{"x", []byte{1}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := codec.DecodeEntry("1-1", map[string]string{"nsp": "/", "type": "9", "data": strings.TrimRight(e.Data, "=")}); err != nil {
		t.Errorf("unpadded base64: %v", err)
	}
}

type customArg struct {
	Name  string `json:"name"`
	Count int    `json:"count,omitempty"`
	Blob  []byte `json:"blob"`
}

// TestEncodeGoValues checks how the Go values a user may pass as arguments
// travel, in both encodings.
func TestEncodeGoValues(t *testing.T) {
	t.Parallel()
	ts := time.Date(2024, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	args := []any{
		"ev", 1, int8(-5), uint16(7), int64(math.MaxInt64), uint64(math.MaxUint64), float32(1.5), math.NaN(),
		[]int{1, 2}, map[string]int{"b": 2, "a": 1}, customArg{Name: "n", Blob: []byte{1}},
		&customArg{Name: "p"}, (*customArg)(nil), json.Number("12.5"), json.RawMessage(`{"raw":true}`),
		[]string{"x"}, ts,
	}
	wantJSON := `["ev",1,-5,7,9223372036854775807,18446744073709551615,1.5,null,[1,2],{"a":1,"b":2},` +
		`{"name":"n","blob":"AQ=="},{"name":"p","blob":null},null,12.5,{"raw":true},["x"],"2024-01-02T03:04:05.006Z"]`
	var codec Codec
	msg := &adapter.Message{UID: "u", Nsp: "/", Type: adapter.Broadcast, Data: &adapter.BroadcastData{
		Packet: adapter.Packet{Type: 2, Data: args}, Opts: adapter.Options{},
	}}
	e, err := codec.EncodeEntry(msg)
	if err != nil {
		t.Fatal(err)
	}
	wantData := `{"packet":{"type":2,"data":` + wantJSON + `},"opts":{"rooms":[],"except":[],"flags":{}}}`
	if e.Data != wantData {
		t.Errorf("data\n got %s\nwant %s", e.Data, wantData)
	}

	// With binary in the arguments, the entry is MessagePack; []byte inside
	// slices and maps counts, []byte inside a struct goes through
	// encoding/json (base64 text), as JSON.stringify would treat toJSON.
	bin := []any{"ev", map[string]any{"k": [][]byte{{1, 2}}}, ts}
	msg.Data = &adapter.BroadcastData{Packet: adapter.Packet{Type: 2, Data: bin}}
	e, err = codec.EncodeEntry(msg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(e.Data, "{") {
		t.Fatalf("binary broadcast written as JSON: %s", e.Data)
	}
	got, err := codec.DecodeEntry("1-0", fieldMap([][2]string{{"nsp", "/"}, {"type", "3"}, {"data", e.Data}}))
	if err != nil {
		t.Fatal(err)
	}
	wantArgs := []any{"ev", map[string]any{"k": []any{[]byte{1, 2}}}, Date{ts}}
	if d := got.Data.(*adapter.BroadcastData); !reflect.DeepEqual(d.Packet.Data, wantArgs) {
		t.Errorf("args %#v, want %#v", d.Packet.Data, wantArgs)
	}

	// OnlyPlaintext writes binary as JSON.stringify writes a Buffer.
	e, err = Codec{OnlyPlaintext: true}.EncodeEntry(msg)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"packet":{"type":2,"data":["ev",{"k":[{"type":"Buffer","data":[1,2]}]},"2024-01-02T03:04:05.006Z"]},"opts":{"rooms":[],"except":[],"flags":{}}}`; e.Data != want {
		t.Errorf("plaintext\n got %s\nwant %s", e.Data, want)
	}

	// Types that cannot carry binary are JSON even with binary.
	e, err = codec.EncodeEntry(&adapter.Message{UID: "u", Nsp: "/", Type: adapter.SocketsJoin, Data: &adapter.SocketsJoinLeaveData{Rooms: []string{"r"}}})
	if err != nil || e.Data != `{"opts":{"rooms":[],"except":[],"flags":{}},"rooms":["r"]}` {
		t.Errorf("join: %q %v", e.Data, err)
	}
}

func TestEncodeRejects(t *testing.T) {
	t.Parallel()
	cyclic := []any{nil}
	cyclic[0] = cyclic
	tests := []struct {
		name string
		msg  *adapter.Message
	}{
		{"nil", nil},
		{"no nsp", &adapter.Message{Type: adapter.Heartbeat}},
		{"unknown type", &adapter.Message{Nsp: "/", Type: 99}},
		{"wrong data type", &adapter.Message{Nsp: "/", Type: adapter.Broadcast, Data: &adapter.FetchSocketsData{}}},
		{"nil data", &adapter.Message{Nsp: "/", Type: adapter.Broadcast}},
		{"nil pointer", &adapter.Message{Nsp: "/", Type: adapter.Broadcast, Data: (*adapter.BroadcastData)(nil)}},
		{"data on heartbeat", &adapter.Message{Nsp: "/", Type: adapter.Heartbeat, Data: 1}},
		{"func argument", &adapter.Message{Nsp: "/", Type: adapter.ServerSideEmit, Data: &adapter.ServerSideEmitData{Packet: []any{func() {}}}}},
		{"cyclic", &adapter.Message{Nsp: "/", Type: adapter.ServerSideEmit, Data: &adapter.ServerSideEmitData{Packet: cyclic}}},
	}
	var codec Codec
	for _, tt := range tests {
		if _, err := codec.EncodeEntry(tt.msg); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: EncodeEntry error %v", tt.name, err)
		}
		if _, err := codec.EncodePubSub(tt.msg); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: EncodePubSub error %v", tt.name, err)
		}
	}
	// Value data is accepted as well as pointers.
	if _, err := codec.EncodeEntry(&adapter.Message{Nsp: "/", Type: adapter.Broadcast, Data: adapter.BroadcastData{}}); err != nil {
		t.Errorf("value data: %v", err)
	}
}

func TestDecodePubSubRejects(t *testing.T) {
	t.Parallel()
	enc := func(v any) []byte {
		var n normalizer
		v, _ = n.value(v, 0)
		e := mpEncoder{}
		if err := e.encode(v, 0); err != nil {
			t.Fatal(err)
		}
		return e.buf
	}
	tests := []struct {
		name    string
		payload []byte
		reason  error
	}{
		{"empty", nil, ErrBadMsgpack},
		{"not a map", enc([]any{1.0}), ErrBadPayload},
		{"no nsp", enc(object{{"type", 3}, {"uid", "u"}}), ErrMissingNsp},
		{"nsp not a string", enc(object{{"type", 3}, {"nsp", 1}}), ErrMissingNsp},
		{"no type", enc(object{{"nsp", "/"}}), ErrBadType},
		{"type string", enc(object{{"nsp", "/"}, {"type", "3"}}), ErrBadType},
		{"unknown type", enc(object{{"nsp", "/"}, {"type", 77}}), ErrUnknownType},
		{"huge type", enc(object{{"nsp", "/"}, {"type", int64(1) << 40}}), ErrUnknownType},
		{"uid not a string", enc(object{{"nsp", "/"}, {"type", 2}, {"uid", 5}}), ErrBadPayload},
		{"broadcast without data", enc(object{{"nsp", "/"}, {"type", 3}}), ErrBadPayload},
		{"too large", make([]byte, 2048), ErrTooLarge},
	}
	codec := Codec{MaxDataSize: 1024}
	for _, tt := range tests {
		if msg, err := codec.DecodePubSub(tt.payload); !errors.Is(err, tt.reason) {
			t.Errorf("%s: got %v, %v; want %v", tt.name, msg, err, tt.reason)
		}
	}
}

// TestMsgpackNumbers checks the integer and float forms against what
// @msgpack/msgpack writes for the same JavaScript numbers.
func TestMsgpackNumbers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v    any
		want []byte
	}{
		{int64(0), []byte{0x00}},
		{int64(127), []byte{0x7f}},
		{int64(128), []byte{0xcc, 0x80}},
		{int64(-1), []byte{0xff}},
		{int64(-32), []byte{0xe0}},
		{int64(-33), []byte{0xd0, 0xdf}},
		{int64(65536), []byte{0xce, 0, 1, 0, 0}},
		{float64(1), []byte{0x01}},
		{math.Copysign(0, -1), []byte{0x00}},
		{float64(-129), []byte{0xd1, 0xff, 0x7f}},
		{0.5, []byte{0xcb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0}},
		{float64(1 << 53), []byte{0xcb, 0x43, 0x40, 0, 0, 0, 0, 0, 0}},
		{uint64(math.MaxUint64), []byte{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{time.Unix(1, 0), []byte{0xd6, 0xff, 0, 0, 0, 1}},
		{strings.Repeat("a", 40), append([]byte{0xd9, 40}, strings.Repeat("a", 40)...)},
	}
	for _, tt := range tests {
		e := mpEncoder{}
		if err := e.encode(tt.v, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.buf, tt.want) {
			t.Errorf("%v: % x, want % x", tt.v, e.buf, tt.want)
		}
	}
	// Timestamps of every size decode.
	for _, ts := range []time.Time{time.Unix(1, 0), time.Unix(1, 5), time.Unix(-1, 0), time.Unix(1<<35, 0)} {
		e := mpEncoder{}
		_ = e.encode(ts, 0)
		got, err := decodeMsgpack(e.buf)
		if d, ok := got.(Date); err != nil || !ok || !d.Equal(ts) {
			t.Errorf("%v: decoded %v, %v", ts, got, err)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	g := loadGolden(f)
	for _, c := range g.Cases {
		if c.Kind != "entry" {
			continue
		}
		m := fieldMap(c.Fields)
		f.Add(m["uid"], m["nsp"], m["type"], m["data"])
	}
	f.Add("u", "/", "3", "gqZwYWNrZXSC")
	f.Add("u", "/", "8", `{"requestId":"r","sockets":[{"id":"s","handshake":{"issued":1e300}}]}`)
	f.Add("", "", "", "")
	f.Add("u", "/", "10", base64.StdEncoding.EncodeToString([]byte{0x81, 0xa6, 'p', 'a', 'c', 'k', 'e', 't', 0xc7, 12, 0xff}))
	codec := Codec{MaxDataSize: 1 << 16}
	f.Fuzz(func(t *testing.T, uid, nsp, typ, data string) {
		fields := map[string]string{"uid": uid, "nsp": nsp, "type": typ, "data": data}
		msg, err := codec.DecodeEntry("1-0", fields)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DecodeError: %v", err, err)
			}
			return
		}
		// Whatever decodes must encode again, and decode to the same message
		// once it has been through our encoding.
		e, err := codec.EncodeEntry(msg)
		if err != nil {
			t.Fatalf("re-encoding %s: %v", dump(msg), err)
		}
		again, err := codec.DecodeEntry("1-0", fieldMap([][2]string{{"uid", e.UID}, {"nsp", e.Nsp}, {"type", itoa(int(e.Type))}, {"data", e.Data}}))
		if err != nil {
			t.Fatalf("decoding our own encoding %v: %v", e, err)
		}
		e2, err := codec.EncodeEntry(again)
		if err != nil || e2 != e {
			t.Fatalf("encoding is not stable:\n%v\n%v (%v)", e, e2, err)
		}
	})
}

func FuzzDecodePubSub(f *testing.F) {
	g := loadGolden(f)
	for _, c := range g.Cases {
		if c.Kind == "pubsub" {
			p, _ := base64.StdEncoding.DecodeString(c.Payload)
			f.Add(p)
		}
	}
	codec := Codec{MaxDataSize: 1 << 16}
	f.Fuzz(func(t *testing.T, payload []byte) {
		msg, err := codec.DecodePubSub(payload)
		if err != nil {
			return
		}
		p, err := codec.EncodePubSub(msg)
		if err != nil {
			t.Fatalf("re-encoding %s: %v", dump(msg), err)
		}
		if _, err := codec.DecodePubSub(p); err != nil {
			t.Fatalf("decoding our own encoding: %v", err)
		}
	})
}

// TestDateJSON checks that a Date from another node reaches JSON as
// JavaScript writes a Date, and travels on as a timestamp.
func TestDateJSON(t *testing.T) {
	t.Parallel()
	d := Date{time.Date(2023, 11, 14, 22, 13, 20, 500_000_000, time.UTC)}
	b, err := json.Marshal([]any{d})
	if err != nil || string(b) != `["2023-11-14T22:13:20.500Z"]` {
		t.Errorf("json %s %v", b, err)
	}
	e := mpEncoder{}
	tree, err := (&normalizer{}).value(d, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.encode(tree, 0); err != nil {
		t.Fatal(err)
	}
	back, err := decodeMsgpack(e.buf)
	if got, ok := back.(Date); err != nil || !ok || !got.Equal(d.Time) {
		t.Errorf("round trip %#v %v", back, err)
	}
}
