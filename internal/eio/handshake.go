package eio

import (
	"encoding/binary"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Handshake is what the handshake request was. The *http.Request itself is
// not kept: Session.Handshake builds a Handshake, on each call, from the
// compact record the session keeps, so changing it changes nothing kept.
type Handshake struct {
	Header     http.Header // the request's header fields (a copy)
	Query      url.Values  // the request's query (parsed from RawQuery)
	Host       string
	RemoteAddr string
	Secure     bool   // TLS
	URL        string // request URI
	Time       time.Time
	Transport  string // transport of the handshake
}

// handshakeRecord is what a session keeps of its handshake request: one
// string holding every field, in place of the request's header map, its
// parsed query and the strings they point to (about 1 KiB of live heap
// for a WebSocket client's five headers, more with a browser's; an idle
// session never reads them).
//
// The layout, with lengths and counts as unsigned varints:
//
//	flags byte (flagSecure, flagWebSocket)
//	8 bytes: the handshake's time, Unix nanoseconds, little-endian
//	query tail: n+1 when the raw query is the last n bytes of the URL,
//	  else 0 and the raw query follows the URL
//	len(URL) URL [len(raw query) raw query]
//	len(host) host
//	len(remote address) remote address
//	then each header name: name, number of values, each value; a name
//	  or a value is either len<<1 then its bytes, or i<<1|1 for
//	  commonStrings[i]
type handshakeRecord string

// commonStrings are header names and values most clients send, stored as
// their index: a WebSocket client's five headers take 60 bytes less.
var commonStrings = [...]string{
	// Names, as net/http canonicalizes them.
	"Accept", "Accept-Encoding", "Accept-Language", "Authorization",
	"Cache-Control", "Connection", "Cookie", "Dnt", "Origin", "Pragma",
	"Referer", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site",
	"Sec-Websocket-Extensions", "Sec-Websocket-Key", "Sec-Websocket-Protocol",
	"Sec-Websocket-Version", "Upgrade", "User-Agent", "X-Forwarded-For",
	"X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip",
	// Values.
	"*/*", "13", "Upgrade", "websocket", "keep-alive, Upgrade", "no-cache",
	"gzip, deflate", "gzip, deflate, br", "gzip, deflate, br, zstd",
	"permessage-deflate; client_max_window_bits", "cors",
	"same-origin", "cross-site", "empty", "https", "http",
}

// commonIndex is the index of each of commonStrings.
var commonIndex = func() map[string]int {
	m := make(map[string]int, len(commonStrings))
	for i, v := range commonStrings {
		m[v] = i
	}
	return m
}()

const (
	flagSecure    = 1 << 0
	flagWebSocket = 1 << 1
)

// recordHandshake makes the record of the handshake request r, made at now
// over transport.
func recordHandshake(r *http.Request, transport string, now time.Time) handshakeRecord {
	uri, query := r.RequestURI, r.URL.RawQuery
	// The raw query is nearly always the URL's tail, after its "?": it is
	// then not stored twice.
	tail := 0
	if n := len(query); n < len(uri) && uri[len(uri)-n-1] == '?' && uri[len(uri)-n:] == query {
		tail = n + 1
	}
	size := 1 + 8 + uvarintLen(tail) + strLen(uri) + strLen(r.Host) + strLen(r.RemoteAddr)
	if tail == 0 {
		size += strLen(query)
	}
	for name, values := range r.Header {
		size += commonLen(name) + uvarintLen(len(values))
		for _, v := range values {
			size += commonLen(v)
		}
	}

	var b strings.Builder
	b.Grow(size) // one allocation, which the record keeps
	var flags byte
	if r.TLS != nil {
		flags |= flagSecure
	}
	if transport == WebSocket {
		flags |= flagWebSocket
	}
	b.WriteByte(flags)
	var t [8]byte
	binary.LittleEndian.PutUint64(t[:], uint64(now.UnixNano()))
	b.Write(t[:])
	writeUvarint(&b, tail)
	writeStr(&b, uri)
	if tail == 0 {
		writeStr(&b, query)
	}
	writeStr(&b, r.Host)
	writeStr(&b, r.RemoteAddr)
	for name, values := range r.Header {
		writeCommon(&b, name)
		writeUvarint(&b, len(values))
		for _, v := range values {
			writeCommon(&b, v)
		}
	}
	return handshakeRecord(b.String())
}

// handshake builds the Handshake the record describes.
func (rec handshakeRecord) handshake() *Handshake {
	if len(rec) < 9 {
		return &Handshake{Header: http.Header{}, Query: url.Values{}}
	}
	flags := rec[0]
	var nanos int64
	for i := 8; i >= 1; i-- {
		nanos = nanos<<8 | int64(rec[i])
	}
	rd := recordReader{s: string(rec[9:])}
	tail := rd.uvarint()
	uri := rd.str()
	var query string
	if tail > 0 && tail-1 <= len(uri) {
		query = uri[len(uri)-(tail-1):]
	} else {
		query = rd.str()
	}
	h := &Handshake{
		Host:       rd.str(),
		RemoteAddr: rd.str(),
		Secure:     flags&flagSecure != 0,
		URL:        uri,
		Time:       time.Unix(0, nanos),
		Transport:  Polling,
	}
	if flags&flagWebSocket != 0 {
		h.Transport = WebSocket
	}
	h.Query, _ = url.ParseQuery(query) // as r.URL.Query: errors ignored
	h.Header = rd.header()
	return h
}

// header rebuilds the header map from the rest of the record: the names
// as they were (net/http's canonical ones), the values of all names in
// one backing array, as net/textproto does.
func (rd recordReader) header() http.Header {
	names, values := 0, 0
	for c := rd; c.more(); names++ {
		c.common()
		n := min(c.uvarint(), len(c.s)) // each value takes a byte at least
		for range n {
			c.common()
		}
		values += n
	}
	h := make(http.Header, names)
	backing := make([]string, values)
	for rd.more() {
		name := rd.common()
		n := min(rd.uvarint(), len(rd.s), len(backing))
		vs := backing[:n:n]
		backing = backing[n:]
		for i := range vs {
			vs[i] = rd.common()
		}
		if n == 0 {
			vs = nil
		}
		h[name] = vs
	}
	return h
}

// recordReader reads a handshakeRecord. The record is the server's own:
// a malformed one cannot happen, and reads past its end give zeros.
type recordReader struct{ s string }

func (rd *recordReader) more() bool { return rd.s != "" }

func (rd *recordReader) uvarint() int {
	var v uint64
	for shift := 0; rd.s != "" && shift < 64; shift += 7 {
		c := rd.s[0]
		rd.s = rd.s[1:]
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			break
		}
	}
	return int(min(v, 1<<31)) // callers bound it by what follows
}

func (rd *recordReader) str() string {
	n := min(rd.uvarint(), len(rd.s))
	v := rd.s[:n]
	rd.s = rd.s[n:]
	return v
}

// common reads a string written by writeCommon.
func (rd *recordReader) common() string {
	n := rd.uvarint()
	if n&1 != 0 {
		if i := n >> 1; i < len(commonStrings) {
			return commonStrings[i]
		}
		return ""
	}
	n = min(n>>1, len(rd.s))
	v := rd.s[:n]
	rd.s = rd.s[n:]
	return v
}

func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

func strLen(s string) int { return uvarintLen(len(s)) + len(s) }

func writeUvarint(b *strings.Builder, n int) {
	var tmp [binary.MaxVarintLen64]byte
	b.Write(tmp[:binary.PutUvarint(tmp[:], uint64(n))])
}

func commonLen(s string) int {
	if i, ok := commonIndex[s]; ok {
		return uvarintLen(i<<1 | 1)
	}
	return uvarintLen(len(s)<<1) + len(s)
}

// writeCommon writes s as its index in commonStrings, or as its length
// and bytes.
func writeCommon(b *strings.Builder, s string) {
	if i, ok := commonIndex[s]; ok {
		writeUvarint(b, i<<1|1)
		return
	}
	writeUvarint(b, len(s)<<1)
	b.WriteString(s)
}

func writeStr(b *strings.Builder, s string) {
	writeUvarint(b, len(s))
	b.WriteString(s)
}
