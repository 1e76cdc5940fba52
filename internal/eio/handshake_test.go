package eio

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestHandshakeRecord: what a session keeps of its handshake request gives
// back every field as the request had it: headers with several values,
// empty values and none, names net/http did not canonicalize, the common
// names and values the record stores as an index, values longer than a
// one-byte length, a query that is not the URL's tail, TLS.
func TestHandshakeRecord(t *testing.T) {
	long := strings.Repeat("v", 300)
	cases := []struct {
		name      string
		target    string
		header    http.Header
		rawQuery  string // replaces r.URL.RawQuery when set
		tls       bool
		transport string
	}{
		{name: "websocket client", target: "/socket.io/?EIO=4&transport=websocket&room=idle12", transport: WebSocket, header: http.Header{
			"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Version": {"13"},
		}},
		{name: "browser", target: "/socket.io/?EIO=4&transport=polling&t=PabcXyz&a=1&a=2&e=%20x%26", transport: Polling, tls: true, header: http.Header{
			"User-Agent": {"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}, "Accept": {"*/*"},
			"Accept-Language": {"en-US,en;q=0.5"}, "Accept-Encoding": {"gzip, deflate, br, zstd"}, "Origin": {"https://example.com"},
			"Cookie": {"a=1", "b=2"}, "X-Multi": {"one", "two", "three"}, "X-Empty": {""}, "X-Long": {long}, long: {"x"},
			"X-None": {}, "lower-case": {"kept as is"}, "Sec-Websocket-Version": {"13", "websocket", "Upgrade"},
		}},
		{name: "no query", target: "/socket.io/", transport: Polling, header: http.Header{}},
		{name: "empty query", target: "/socket.io/?", transport: Polling, header: http.Header{"A": {"b"}}},
		{name: "query apart", target: "/socket.io/?EIO=4&transport=polling", rawQuery: "rewritten=1&x=%zz", transport: Polling, header: http.Header{"A": {"b"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, c.target, nil)
			r.Header = c.header
			r.Host = "example.com:8080"
			r.RemoteAddr = "203.0.113.7:50123"
			if c.rawQuery != "" {
				r.URL.RawQuery = c.rawQuery
			}
			if c.tls {
				r.TLS = &tls.ConnectionState{}
			} else {
				r.TLS = nil
			}
			now := time.Now()
			rec := recordHandshake(r, c.transport, now)
			h := rec.handshake()

			wantHeader := http.Header{}
			for k, v := range c.header {
				if len(v) == 0 {
					v = nil
				}
				wantHeader[k] = v
			}
			if !reflect.DeepEqual(h.Header, wantHeader) {
				t.Errorf("Header\n got %q\nwant %q", h.Header, wantHeader)
			}
			if want := r.URL.Query(); !reflect.DeepEqual(h.Query, want) {
				t.Errorf("Query %q, want %q", h.Query, want)
			}
			if h.URL != r.RequestURI || h.Host != r.Host || h.RemoteAddr != r.RemoteAddr || h.Secure != c.tls || h.Transport != c.transport {
				t.Errorf("handshake %+v; request URI %q", h, r.RequestURI)
			}
			if !h.Time.Equal(now) {
				t.Errorf("Time %v, want %v", h.Time, now)
			}
			// Each call builds new maps: a caller changing them changes
			// nothing kept.
			h.Header.Set("Upgrade", "changed")
			h.Query.Set("EIO", "changed")
			if again := rec.handshake(); !reflect.DeepEqual(again.Header, wantHeader) || !reflect.DeepEqual(again.Query, r.URL.Query()) {
				t.Errorf("a second handshake saw the first one's changes: %q %q", again.Header, again.Query)
			}
		})
	}
}

// TestHandshakeRecordSize: the record is one allocation, smaller than the
// request's fields, the common header names and values stored as an
// index.
func TestHandshakeRecordSize(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/socket.io/?EIO=4&transport=websocket&room=idle12", nil)
	r.Header = http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Version": {"13"}}
	r.Host = "127.0.0.1:8080"
	r.RemoteAddr = "127.0.0.1:50123"
	now := time.Now()
	var rec handshakeRecord
	allocs := testing.AllocsPerRun(10, func() { rec = recordHandshake(r, WebSocket, now) })
	if allocs != 1 {
		t.Errorf("%v allocations, want 1", allocs)
	}
	// flags, time, tail, URL, host, address, the key's value: the rest is
	// indexes and lengths.
	fixed := 1 + 8 + len(r.RequestURI) + len(r.Host) + len(r.RemoteAddr) + len("dGhlIHNhbXBsZSBub25jZQ==")
	if len(rec) > fixed+16 {
		t.Errorf("record of %d bytes, want at most %d", len(rec), fixed+16)
	}
	t.Logf("record: %d bytes", len(rec))
}

// TestHandshakeRecordTruncated: a record cut short (which the server never
// makes) gives zero values, not a panic.
func TestHandshakeRecordTruncated(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/socket.io/?EIO=4&transport=polling", nil)
	r.Header = http.Header{"X-Multi": {"one", "two"}, "Upgrade": {"websocket"}}
	full := recordHandshake(r, Polling, time.Now())
	for n := range len(full) {
		h := full[:n].handshake()
		if h.Header == nil || h.Query == nil {
			t.Fatalf("record cut at %d: nil maps", n)
		}
	}
}
