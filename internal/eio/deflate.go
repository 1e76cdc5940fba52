package eio

import (
	"compress/flate"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// Per-message deflate (RFC 7692), negotiated without context takeover in
// either direction: every compressed message is a deflate stream of its
// own. So a message is compressed once, whatever the number of
// connections it goes to (its compressed frame is shared as its plain
// frame is), and no connection keeps a 32 KiB sliding window between
// messages: the compressors and decompressors are pooled. Node's engine.io
// (ws) keeps each connection's context instead, which compresses a stream
// of similar messages better and costs each compressing connection its
// own zlib state.

// deflateResponse is the answer to an accepted offer: the Sec-WebSocket-
// Extensions header line of the 101 response, as gorilla/websocket writes
// it (browsers and Node's ws accept it whatever they offered).
const deflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// deflateLevel is the compression level of outgoing messages: the fastest,
// since a message is compressed on the goroutine that delivers it (a
// broadcast's deliverer) and compressing a large one at zlib's default
// level costs several times as much. Node's ws uses zlib's default (6).
const deflateLevel = flate.BestSpeed

// negotiateDeflate returns the Sec-WebSocket-Extensions value that accepts
// the first permessage-deflate offer of the request headers h that the
// server can honor, "" if there is none (the connection then goes without
// compression). An offer with an unknown or repeated parameter, an invalid
// value, or a server_max_window_bits below 15 (compress/flate always uses
// a 32 KiB window) is declined, as RFC 7692 section 5 says, and the next
// one is tried. A header that does not parse is ignored.
func negotiateDeflate(h http.Header) string {
	for _, v := range h.Values("Sec-WebSocket-Extensions") {
		offers, ok := parseExtensions(v)
		if !ok {
			continue
		}
		for _, o := range offers {
			if !strings.EqualFold(o.name, "permessage-deflate") {
				continue
			}
			if resp, ok := acceptDeflate(o.params); ok {
				return resp
			}
		}
	}
	return ""
}

// extension is one offer of a Sec-WebSocket-Extensions header.
type extension struct {
	name   string
	params []extParam
}

type extParam struct {
	name, value string
	hasValue    bool
}

// acceptDeflate decides on one permessage-deflate offer (RFC 7692,
// section 7.1): it returns the response that accepts it, or false.
func acceptDeflate(params []extParam) (string, bool) {
	var seen [4]bool
	serverBits := ""
	for _, p := range params {
		i := -1
		switch strings.ToLower(p.name) {
		case "server_no_context_takeover":
			i = 0
		case "client_no_context_takeover":
			i = 1
		case "server_max_window_bits":
			i = 2
		case "client_max_window_bits":
			i = 3
		}
		if i < 0 || seen[i] {
			return "", false // unknown or repeated parameter
		}
		seen[i] = true
		switch i {
		case 0, 1:
			if p.hasValue {
				return "", false
			}
		case 2:
			// The client asks that our window be at most 2^bits: only 15
			// (32 KiB, compress/flate's) can be honored, and accepting it
			// means echoing it.
			if !p.hasValue || !validWindowBits(p.value) || p.value != "15" {
				return "", false
			}
			serverBits = p.value
		case 3:
			// The client could limit its own window if we asked: we need
			// not (the decompressor takes any window); without a value or
			// with a valid one, the parameter is just a hint.
			if p.hasValue && !validWindowBits(p.value) {
				return "", false
			}
		}
	}
	if serverBits != "" {
		return deflateResponse + "; server_max_window_bits=" + serverBits, true
	}
	return deflateResponse, true
}

// validWindowBits reports whether v is a window size RFC 7692 allows: a
// decimal integer from 8 to 15 without leading zeros.
func validWindowBits(v string) bool {
	switch len(v) {
	case 1:
		return v[0] >= '8' && v[0] <= '9'
	case 2:
		return v[0] == '1' && v[1] >= '0' && v[1] <= '5'
	}
	return false
}

// parseExtensions parses one Sec-WebSocket-Extensions header value (RFC
// 6455, section 9.1): offers separated by commas, each a token followed by
// ";"-separated parameters, each a token with an optional "=" and a token
// or quoted string. false: the value does not parse.
func parseExtensions(s string) ([]extension, bool) {
	var out []extension
	for {
		s = skipWS(s)
		if s == "" {
			return out, len(out) > 0
		}
		var ext extension
		ext.name, s = cutToken(s)
		if ext.name == "" {
			return nil, false
		}
		for {
			s = skipWS(s)
			if s == "" || s[0] == ',' {
				break
			}
			if s[0] != ';' {
				return nil, false
			}
			var p extParam
			p.name, s = cutToken(skipWS(s[1:]))
			if p.name == "" {
				return nil, false
			}
			s = skipWS(s)
			if s != "" && s[0] == '=' {
				var ok bool
				p.value, s, ok = cutValue(skipWS(s[1:]))
				if !ok {
					return nil, false
				}
				p.hasValue = true
			}
			ext.params = append(ext.params, p)
		}
		out = append(out, ext)
		if s != "" {
			s = s[1:] // the comma
		}
	}
}

func skipWS(s string) string {
	return strings.TrimLeft(s, " \t")
}

// cutToken splits s after its leading token (RFC 7230's tchar).
func cutToken(s string) (string, string) {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// cutValue splits s after its leading token or quoted string, unquoted.
func cutValue(s string) (string, string, bool) {
	if s == "" || s[0] != '"' {
		v, rest := cutToken(s)
		return v, rest, v != ""
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 == len(s) {
				return "", "", false
			}
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

func isTokenChar(c byte) bool {
	if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// Writing.

// deflater is a pooled compressor with the buffer it writes to.
type deflater struct {
	fw  *flate.Writer
	out []byte
}

func (d *deflater) Write(p []byte) (int, error) {
	d.out = append(d.out, p...)
	return len(p), nil
}

// deflaters pools the compressors: a flate.Writer takes about 1.2 MB.
var deflaters = sync.Pool{New: func() any {
	d := &deflater{}
	d.fw, _ = flate.NewWriter(d, deflateLevel) // the level is valid
	return d
}}

// deflateLocks serialise the compression of one message (chosen by its
// address): the flushers of a broadcast's recipients may ask for its
// compressed frame at once, and it is built once, not once each.
var deflateLocks [64]sync.Mutex

// maxHeader is the longest header of an unmasked frame.
const maxHeader = 10

// frameOf returns the frame m goes out as on c: compressed when c
// negotiated permessage-deflate and m is a message of at least threshold
// bytes that was not sent with compression off; WebSocket control frames
// never are.
func (c *wsConn) frameOf(m *Message, threshold int) []byte {
	if c.deflate && m.typ != 0 && !m.noCompress && m.size() >= threshold {
		return m.wsDeflateFrame()
	}
	return m.wsFrame()
}

// wsDeflateFrame returns m's compressed frame (RSV1 set), built once; the
// plain frame when compression would not make it smaller.
func (m *Message) wsDeflateFrame() []byte {
	if p := m.wsz.Load(); p != nil {
		return *p
	}
	mu := &deflateLocks[uintptr(unsafe.Pointer(m))/64%uintptr(len(deflateLocks))]
	mu.Lock()
	defer mu.Unlock()
	if p := m.wsz.Load(); p != nil {
		return *p
	}
	f := m.deflateFrame()
	if f == nil {
		f = m.wsFrame()
	}
	m.wsz.Store(&f)
	return f
}

// deflateFrame compresses m into a frame: the payload is the deflate
// stream with a sync flush, less its final 00 00 ff ff (RFC 7692, section
// 7.2.1). nil if it is not smaller than the plain payload.
func (m *Message) deflateFrame() []byte {
	n := m.size()
	d := deflaters.Get().(*deflater)
	d.out = make([]byte, maxHeader, maxHeader+n/2+64)
	d.fw.Reset(d)
	if m.typ != 0 && !m.binary {
		_, _ = d.fw.Write([]byte{m.typ})
	}
	_, _ = d.fw.Write(m.data)
	_ = d.fw.Flush() // writes to d cannot fail
	out := d.out
	d.out = nil
	deflaters.Put(d)

	payload := out[maxHeader:]
	if len(payload) < 4 || string(payload[len(payload)-4:]) != "\x00\x00\xff\xff" {
		return nil // not what a sync flush ends with: keep the plain frame
	}
	payload = payload[:len(payload)-4]
	if len(payload) >= n {
		return nil
	}
	var h [maxHeader]byte
	hdr := appendFrameHeader(h[:0], 0x80|0x40|m.op, len(payload))
	start := maxHeader - len(hdr)
	copy(out[start:], hdr)
	f := out[start : maxHeader+len(payload)]
	if cap(f)-len(f) > len(f)/4 {
		// Shared for as long as any recipient's queue holds it: no slack.
		f = slices.Clone(f)
	}
	return f
}

// appendFrameHeader appends an unmasked frame header: the first byte b0,
// then the payload length n.
func appendFrameHeader(f []byte, b0 byte, n int) []byte {
	f = append(f, b0)
	switch {
	case n < 126:
		return append(f, byte(n))
	case n <= 0xFFFF:
		return append(f, 126, byte(n>>8), byte(n))
	default:
		return append(f, 127, 0, 0, 0, byte(uint64(n)>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// Reading.

// Errors of the inflation of a client's message: data that is not a valid
// deflate stream closes the connection with 1007 (as Node's ws does); a
// message that inflates past MaxPayload with 1009, as an uncompressed one.
var errBadDeflate = &wsError{1007, "invalid compressed message"}

// inflateTail ends every compressed message: the 00 00 ff ff the sender
// removed (RFC 7692, section 7.2.2), then an empty final block, so that a
// complete message ends in io.EOF and a truncated one in an error.
const inflateTail = "\x00\x00\xff\xff\x01\x00\x00\xff\xff"

// inflater is a pooled decompressor with its source.
type inflater struct {
	fr  io.ReadCloser
	src inflateSource
}

// inflateSource reads a compressed payload then inflateTail. It is an
// io.ByteReader, so flate reads it directly (no bufio.Reader per message).
type inflateSource struct {
	p    []byte
	tail int // bytes of inflateTail read
}

func (s *inflateSource) Read(b []byte) (int, error) {
	if len(s.p) > 0 {
		n := copy(b, s.p)
		s.p = s.p[n:]
		return n, nil
	}
	if s.tail == len(inflateTail) {
		return 0, io.EOF
	}
	n := copy(b, inflateTail[s.tail:])
	s.tail += n
	return n, nil
}

func (s *inflateSource) ReadByte() (byte, error) {
	if len(s.p) > 0 {
		c := s.p[0]
		s.p = s.p[1:]
		return c, nil
	}
	if s.tail == len(inflateTail) {
		return 0, io.EOF
	}
	c := inflateTail[s.tail]
	s.tail++
	return c, nil
}

// inflaters pools the decompressors (about 44 KB each, their window
// included): a connection has none between messages.
var inflaters sync.Pool

// maxCompressed bounds the compressed payload of a message whose inflated
// size is bounded by limit: deflate's stored blocks add 5 bytes per 64 KiB
// to data that does not compress, this allows for more.
func maxCompressed(limit int64) int64 { return limit + limit/1024 + 64 }

// inflateMessage returns the message that the compressed payload p
// inflates to, at most limit bytes. It is not inlined into the reader: its
// frame is on the reader's stack only while it runs.
//
//go:noinline
func inflateMessage(p []byte, limit int64) ([]byte, error) {
	inf, _ := inflaters.Get().(*inflater)
	if inf == nil {
		inf = &inflater{}
		inf.src = inflateSource{p: p}
		inf.fr = flate.NewReader(&inf.src)
	} else {
		inf.src = inflateSource{p: p}
		if err := inf.fr.(flate.Resetter).Reset(&inf.src, nil); err != nil {
			return nil, errBadDeflate
		}
	}
	defer func() {
		inf.src = inflateSource{}
		inflaters.Put(inf)
	}()
	// Grown as the data inflates (a small message claiming to inflate to
	// MaxPayload gets memory only as it does), never past limit+1.
	out := make([]byte, 0, min(max(2*int64(len(p)), 512), limit+1))
	for {
		if len(out) == cap(out) {
			if int64(len(out)) > limit {
				return nil, errTooBig
			}
			out = slices.Grow(out, int(min(int64(cap(out)), limit+1-int64(len(out)))))
		}
		n, err := inf.fr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if int64(len(out)) > limit {
			return nil, errTooBig
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, errBadDeflate
		}
	}
}
