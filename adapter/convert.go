package adapter

// The one place where zishang520's types (parser.Packet, socket.BroadcastOptions,
// socket.SocketDetails, socket.Handshake) and the wire types of message.go meet.

import (
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// toWireOptions converts broadcast options. Rooms and Except are always
// non-nil (Node reads opts.rooms.length); false flags stay unset.
func toWireOptions(opts *socket.BroadcastOptions) Options {
	o := Options{Rooms: []string{}, Except: []string{}}
	if opts == nil {
		return o
	}
	o.Rooms = roomsToStrings(opts.Rooms)
	o.Except = roomsToStrings(opts.Except)
	if f := opts.Flags; f != nil {
		o.Flags = Flags{
			Volatile:             f.Volatile,
			Local:                f.Local,
			ExpectSingleResponse: f.ExpectSingleResponse,
			Binary:               f.Binary,
		}
		if f.Compress != nil {
			c := *f.Compress
			o.Flags.Compress = &c
		}
		if f.Timeout != nil {
			ms := f.Timeout.Milliseconds()
			o.Flags.TimeoutMs = &ms
		}
	}
	return o
}

// fromWireOptions converts wire options into fresh zishang520 options.
func fromWireOptions(o Options) *socket.BroadcastOptions {
	flags := &socket.BroadcastFlags{
		Local:                o.Flags.Local,
		Binary:               o.Flags.Binary,
		ExpectSingleResponse: o.Flags.ExpectSingleResponse,
	}
	flags.Volatile = o.Flags.Volatile
	if o.Flags.Compress != nil {
		c := *o.Flags.Compress
		flags.Compress = &c
	}
	if o.Flags.TimeoutMs != nil {
		d := time.Duration(*o.Flags.TimeoutMs) * time.Millisecond
		flags.Timeout = &d
	}
	return &socket.BroadcastOptions{
		Rooms:  stringsToRooms(o.Rooms),
		Except: stringsToRooms(o.Except),
		Flags:  flags,
	}
}

// cloneOptions copies opts so that a queued operation does not see later
// changes of the caller's sets.
func cloneOptions(opts *socket.BroadcastOptions) *socket.BroadcastOptions {
	c := &socket.BroadcastOptions{Rooms: types.NewSet[socket.Room](), Except: types.NewSet[socket.Room](), Flags: &socket.BroadcastFlags{}}
	if opts == nil {
		return c
	}
	if opts.Rooms != nil {
		c.Rooms.Add(opts.Rooms.Keys()...)
	}
	if opts.Except != nil {
		c.Except.Add(opts.Except.Keys()...)
	}
	if opts.Flags != nil {
		f := *opts.Flags
		c.Flags = &f
	}
	return c
}

func isLocal(opts *socket.BroadcastOptions) bool {
	return opts != nil && opts.Flags != nil && opts.Flags.Local
}

func isVolatile(opts *socket.BroadcastOptions) bool {
	return opts != nil && opts.Flags != nil && opts.Flags.Volatile
}

func roomsToStrings(s *types.Set[socket.Room]) []string {
	if s == nil {
		return []string{}
	}
	keys := s.Keys()
	out := make([]string, len(keys))
	for i, r := range keys {
		out[i] = string(r)
	}
	slices.Sort(out) // deterministic wire output
	return out
}

func stringsToRooms(in []string) *types.Set[socket.Room] {
	s := types.NewSet[socket.Room]()
	for _, r := range in {
		s.Add(socket.Room(r))
	}
	return s
}

func toRooms(in []string) []socket.Room {
	out := make([]socket.Room, len(in))
	for i, r := range in {
		out[i] = socket.Room(r)
	}
	return out
}

func fromRooms(in []socket.Room) []string {
	out := make([]string, len(in))
	for i, r := range in {
		out[i] = string(r)
	}
	return out
}

// packetData returns the argument list of a zishang520 packet.
func packetData(p *parser.Packet) []any {
	switch d := p.Data.(type) {
	case []any:
		return d
	case nil:
		return nil
	default:
		return []any{d}
	}
}

// toWirePacket converts a packet for the wire: the namespace is dropped (it is
// the message's), the data is copied (see normalize).
func toWirePacket(p *parser.Packet) Packet {
	w := Packet{Type: int(p.Type), Data: normalizeArgs(packetData(p))}
	if p.Id != nil {
		id := *p.Id
		w.ID = &id
	}
	return w
}

// fromWirePacket converts a packet received from the cluster. The data slice
// is fresh, so an offset can be appended to it.
func fromWirePacket(w Packet) *parser.Packet {
	p := &parser.Packet{Type: parser.PacketType(w.Type), Data: slices.Clip(slices.Clone(w.Data))}
	if p.Data.([]any) == nil {
		p.Data = []any{}
	}
	if w.ID != nil {
		id := *w.ID
		p.Id = &id
	}
	return p
}

// normalizeArgs deep-copies an argument list into the values both the wire
// codecs and zishang520's encoder handle the same way, without touching the
// caller's values: binary (a types.BufferInterface, any io.Reader) becomes
// []byte (a reader would otherwise be consumed by the first encoding), a
// *types.StringBuffer becomes a string, and []any / map[string]any are
// copied so a caller reusing them after Emit returns cannot change what is
// still queued.
func normalizeArgs(args []any) []any {
	if args == nil {
		return nil
	}
	out := make([]any, len(args))
	for i, v := range args {
		out[i] = normalize(v)
	}
	return out
}

func normalize(v any) any {
	switch x := v.(type) {
	case nil, string, bool, float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return v
	case []byte:
		return slices.Clone(x)
	case *types.StringBuffer:
		if x == nil || x.Buffer == nil {
			return ""
		}
		return x.String()
	case types.BufferInterface:
		return slices.Clone(x.Bytes())
	case *strings.Reader:
		b, _ := io.ReadAll(x)
		return string(b)
	case io.Reader:
		b, _ := io.ReadAll(x)
		return b
	case []any:
		return normalizeArgs(x)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = normalize(e)
		}
		return m
	default:
		return v
	}
}

// firstArg is what a Node node puts in a response's packet: the first
// argument given to the callback.
func firstArg(args []any) any {
	if len(args) == 0 {
		return nil
	}
	return normalize(args[0])
}

// socketInfo describes a local socket for a FETCH_SOCKETS_RESPONSE.
func socketInfo(s socket.SocketDetails) SocketInfo {
	info := SocketInfo{ID: string(s.Id()), Rooms: []string{}, Data: s.Data()}
	if r := s.Rooms(); r != nil {
		info.Rooms = roomsToStrings(r)
	}
	if h := s.Handshake(); h != nil {
		info.Handshake = Handshake{
			Headers: nodeHeaders(h.Headers),
			Time:    nodeTime(h.Time),
			Address: nodeAddress(h.Address),
			Xdomain: h.Xdomain,
			Secure:  h.Secure,
			Issued:  h.Issued,
			URL:     h.Url,
			Query:   nodeQuery(h.Query),
			Auth:    maps.Clone(h.Auth),
		}
	}
	if info.Handshake.Headers == nil {
		info.Handshake.Headers = map[string]any{}
	}
	// Go's net/http moves the Host header out of the header map into
	// Request.Host; Node keeps it among the headers, where Node code
	// reading a Go socket's handshake looks for it.
	if _, ok := info.Handshake.Headers["host"]; !ok {
		if local, ok := s.(*socket.Socket); ok {
			if ctx := local.Request(); ctx != nil && ctx.Request() != nil && ctx.Request().Host != "" {
				info.Handshake.Headers["host"] = ctx.Request().Host
			}
		}
	}
	if info.Handshake.Query == nil {
		info.Handshake.Query = map[string]any{}
	}
	return info
}

// remoteSocket is a socket of another node, as a FETCH_SOCKETS_RESPONSE
// described it. socket.BroadcastOperator wraps it into a *socket.RemoteSocket
// whose Emit/Join/Leave/Disconnect go through the cluster.
type remoteSocket struct {
	id        socket.SocketId
	handshake *socket.Handshake
	rooms     *types.Set[socket.Room]
	data      any
}

func (r *remoteSocket) Id() socket.SocketId            { return r.id }
func (r *remoteSocket) Handshake() *socket.Handshake   { return r.handshake }
func (r *remoteSocket) Rooms() *types.Set[socket.Room] { return r.rooms }
func (r *remoteSocket) Data() any                      { return r.data }

func socketDetails(info SocketInfo) socket.SocketDetails {
	h := info.Handshake
	return &remoteSocket{
		id:    socket.SocketId(info.ID),
		rooms: stringsToRooms(info.Rooms),
		handshake: &socket.Handshake{
			Headers: types.IncomingHttpHeaders(h.Headers),
			Time:    h.Time,
			Address: h.Address,
			Xdomain: h.Xdomain,
			Secure:  h.Secure,
			Issued:  h.Issued,
			Url:     h.URL,
			Query:   types.ParsedUrlQuery(h.Query),
			Auth:    h.Auth,
		},
		data: info.Data,
	}
}

// nodeHeaders gives headers the shape Node's http module gives them, which
// Node code reading a fetched socket's handshake expects: lower-case names,
// one string per header (repeated values joined with ", "), set-cookie
// excepted, which stays an array.
func nodeHeaders(h types.IncomingHttpHeaders) map[string]any {
	out := make(map[string]any, len(h))
	for k, v := range h {
		k = strings.ToLower(k)
		if vs, ok := v.([]string); ok && k != "set-cookie" {
			out[k] = strings.Join(vs, ", ")
			continue
		}
		out[k] = v
	}
	return out
}

// nodeQuery gives query parameters the shape Node's querystring gives them:
// a string for a parameter given once, an array for a repeated one.
func nodeQuery(q types.ParsedUrlQuery) map[string]any {
	out := make(map[string]any, len(q))
	for k, v := range q {
		if vs, ok := v.([]string); ok && len(vs) == 1 {
			out[k] = vs[0]
			continue
		}
		out[k] = v
	}
	return out
}

// nodeAddress is the client's IP without the port, as Node's
// handshake.address (the socket's remoteAddress) is.
func nodeAddress(a string) string {
	if host, _, err := net.SplitHostPort(a); err == nil {
		return host
	}
	return a
}

// nodeTime rewrites zishang520's handshake time (RFC 3339) the way Node
// writes it, Date.prototype.toString(), so that Node code reading a Go
// socket's handshake sees its own format. Anything else passes unchanged.
func nodeTime(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	zone, _ := t.Zone()
	switch zone {
	case "UTC":
		zone = "Coordinated Universal Time"
	case "":
		zone = t.Format("-07:00")
	}
	return t.Format("Mon Jan 02 2006 15:04:05 GMT-0700") + " (" + zone + ")"
}
