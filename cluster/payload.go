package cluster

import (
	"fmt"
	"math"

	"github.com/sockstream/sockstream/adapter"
)

// payloadTree lays msg.Data out as the Node adapter builds the same object, in
// the same key order (socket.io-adapter's ClusterAdapter), and reports whether
// it holds binary. A nil tree means the message has no data.
func payloadTree(t adapter.MessageType, data any) (tree any, binary bool, err error) {
	var n normalizer
	switch t {
	case adapter.InitialHeartbeat, adapter.Heartbeat, adapter.AdapterClose:
		if data != nil {
			return nil, false, fmt.Errorf("%s carries no data, got %T", t, data)
		}
		return nil, false, nil
	case adapter.Broadcast:
		d, err := dataOf[adapter.BroadcastData](t, data)
		if err != nil {
			return nil, false, err
		}
		pkt, err := packetTree(&n, &d.Packet)
		if err != nil {
			return nil, false, err
		}
		o := object{{"packet", pkt}}
		if d.RequestID != "" {
			o = append(o, field{"requestId", d.RequestID})
		}
		tree = append(o, field{"opts", optionsTree(&d.Opts)})
	case adapter.SocketsJoin, adapter.SocketsLeave:
		d, err := dataOf[adapter.SocketsJoinLeaveData](t, data)
		if err != nil {
			return nil, false, err
		}
		tree = object{{"opts", optionsTree(&d.Opts)}, {"rooms", stringsTree(orEmpty(d.Rooms))}}
	case adapter.DisconnectSockets:
		d, err := dataOf[adapter.DisconnectSocketsData](t, data)
		if err != nil {
			return nil, false, err
		}
		// Node always writes close (the argument defaults to false).
		tree = object{{"opts", optionsTree(&d.Opts)}, {"close", d.Close}}
	case adapter.FetchSockets:
		d, err := dataOf[adapter.FetchSocketsData](t, data)
		if err != nil {
			return nil, false, err
		}
		tree = object{{"opts", optionsTree(&d.Opts)}, {"requestId", d.RequestID}}
	case adapter.FetchSocketsResponse:
		d, err := dataOf[adapter.FetchSocketsResponseData](t, data)
		if err != nil {
			return nil, false, err
		}
		sockets := make([]any, len(d.Sockets))
		for i := range d.Sockets {
			s := &d.Sockets[i]
			hs, err := handshakeTree(&n, &s.Handshake)
			if err != nil {
				return nil, false, fmt.Errorf("sockets[%d].handshake: %w", i, err)
			}
			sd, err := n.value(s.Data, 0)
			if err != nil {
				return nil, false, fmt.Errorf("sockets[%d].data: %w", i, err)
			}
			sockets[i] = object{{"id", s.ID}, {"handshake", hs}, {"rooms", stringsTree(orEmpty(s.Rooms))}, {"data", sd}}
		}
		tree = object{{"requestId", d.RequestID}, {"sockets", sockets}}
	case adapter.ServerSideEmit:
		d, err := dataOf[adapter.ServerSideEmitData](t, data)
		if err != nil {
			return nil, false, err
		}
		pkt, err := n.value(orEmptyArgs(d.Packet), 0)
		if err != nil {
			return nil, false, fmt.Errorf("packet: %w", err)
		}
		if d.RequestID != "" {
			tree = object{{"requestId", d.RequestID}, {"packet", pkt}}
		} else {
			tree = object{{"packet", pkt}}
		}
	case adapter.ServerSideEmitResponse, adapter.BroadcastAck:
		d, err := dataOf[adapter.ResponsePacketData](t, data)
		if err != nil {
			return nil, false, err
		}
		// One value, not an argument list: Node's acknowledgement
		// callbacks send the one argument they got (nil for none).
		pkt, err := n.value(d.Packet, 0)
		if err != nil {
			return nil, false, fmt.Errorf("packet: %w", err)
		}
		tree = object{{"requestId", d.RequestID}, {"packet", pkt}}
	case adapter.BroadcastClientCount:
		d, err := dataOf[adapter.BroadcastClientCountData](t, data)
		if err != nil {
			return nil, false, err
		}
		tree = object{{"requestId", d.RequestID}, {"clientCount", int64(d.ClientCount)}}
	default:
		return nil, false, fmt.Errorf("unknown message type %d", int(t))
	}
	return tree, n.binary, nil
}

func orEmptyArgs(a []any) []any {
	if a == nil {
		return []any{}
	}
	return a
}

// dataOf accepts *T (the documented form) and T.
func dataOf[T any](t adapter.MessageType, data any) (*T, error) {
	switch d := data.(type) {
	case *T:
		if d != nil {
			return d, nil
		}
	case T:
		return &d, nil
	}
	var want *T
	return nil, fmt.Errorf("%s needs data of type %T, got %T", t, want, data)
}

func packetTree(n *normalizer, p *adapter.Packet) (any, error) {
	args, err := n.value(orEmptyArgs(p.Data), 0)
	if err != nil {
		return nil, fmt.Errorf("packet.data: %w", err)
	}
	o := object{{"type", int64(p.Type)}, {"data", args}}
	if p.Nsp != "" {
		o = append(o, field{"nsp", p.Nsp})
	}
	if p.ID != nil {
		o = append(o, field{"id", *p.ID})
	}
	return o, nil
}

func stringsTree(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// optionsTree always writes rooms and except, empty arrays included: Node's
// restore code reads opts.rooms.length.
func optionsTree(o *adapter.Options) any {
	return object{
		{"rooms", stringsTree(orEmpty(o.Rooms))},
		{"except", stringsTree(orEmpty(o.Except))},
		{"flags", flagsTree(&o.Flags)},
	}
}

// flagsTree writes only the flags that are set: Node tests
// flags.volatile === undefined, so a written false would change its
// behaviour. The order is the usual order of the BroadcastOperator calls.
func flagsTree(f *adapter.Flags) object {
	o := object{}
	if f.Volatile {
		o = append(o, field{"volatile", true})
	}
	if f.Compress != nil {
		o = append(o, field{"compress", *f.Compress})
	}
	if f.Local {
		o = append(o, field{"local", true})
	}
	if f.TimeoutMs != nil {
		o = append(o, field{"timeout", *f.TimeoutMs})
	}
	if f.ExpectSingleResponse {
		o = append(o, field{"expectSingleResponse", true})
	}
	if f.Binary {
		o = append(o, field{"binary", true})
	}
	return o
}

func handshakeTree(n *normalizer, h *adapter.Handshake) (any, error) {
	var headers, query, auth any = object{}, object{}, object{}
	var err error
	if h.Headers != nil {
		if headers, err = n.value(h.Headers, 0); err != nil {
			return nil, err
		}
	}
	if h.Query != nil {
		if query, err = n.value(h.Query, 0); err != nil {
			return nil, err
		}
	}
	if h.Auth != nil {
		if auth, err = n.value(h.Auth, 0); err != nil {
			return nil, err
		}
	}
	return object{
		{"headers", headers},
		{"time", h.Time},
		{"address", h.Address},
		{"xdomain", h.Xdomain},
		{"secure", h.Secure},
		{"issued", h.Issued},
		{"url", h.URL},
		{"query", query},
		{"auth", auth},
	}, nil
}

// decodePayload converts the generic data tree of a message of type t into
// its typed payload. present is false when the message had no data at all.
func decodePayload(t adapter.MessageType, v any, present bool) (any, error) {
	switch t {
	case adapter.InitialHeartbeat, adapter.Heartbeat, adapter.AdapterClose:
		// Whatever a foreign sender put there means nothing to us.
		return nil, nil
	}
	if !present {
		return nil, badField("data", "missing")
	}
	m, err := asObject(v, "data")
	if err != nil {
		return nil, err
	}
	const p = "data"
	switch t {
	case adapter.Broadcast:
		d := &adapter.BroadcastData{}
		pm, err := asObject(m["packet"], p+".packet")
		if err != nil {
			return nil, err
		}
		if d.Packet, err = decodePacket(pm, p+".packet"); err != nil {
			return nil, err
		}
		if d.Opts, err = decodeOptions(m, p); err != nil {
			return nil, err
		}
		if d.RequestID, err = optString(m, "requestId", p); err != nil {
			return nil, err
		}
		return d, nil
	case adapter.SocketsJoin, adapter.SocketsLeave:
		d := &adapter.SocketsJoinLeaveData{}
		if d.Opts, err = decodeOptions(m, p); err != nil {
			return nil, err
		}
		if d.Rooms, err = optStrings(m, "rooms", p); err != nil {
			return nil, err
		}
		d.Rooms = orEmpty(d.Rooms)
		return d, nil
	case adapter.DisconnectSockets:
		d := &adapter.DisconnectSocketsData{}
		if d.Opts, err = decodeOptions(m, p); err != nil {
			return nil, err
		}
		if d.Close, err = optBool(m, "close", p); err != nil {
			return nil, err
		}
		return d, nil
	case adapter.FetchSockets:
		d := &adapter.FetchSocketsData{}
		if d.Opts, err = decodeOptions(m, p); err != nil {
			return nil, err
		}
		if d.RequestID, err = reqString(m, "requestId", p); err != nil {
			return nil, err
		}
		return d, nil
	case adapter.FetchSocketsResponse:
		d := &adapter.FetchSocketsResponseData{}
		if d.RequestID, err = reqString(m, "requestId", p); err != nil {
			return nil, err
		}
		socks, err := optArray(m, "sockets", p)
		if err != nil {
			return nil, err
		}
		d.Sockets = make([]adapter.SocketInfo, len(socks))
		for i, s := range socks {
			sp := fmt.Sprintf("%s.sockets[%d]", p, i)
			if d.Sockets[i], err = decodeSocket(s, sp); err != nil {
				return nil, err
			}
		}
		return d, nil
	case adapter.ServerSideEmit:
		d := &adapter.ServerSideEmitData{}
		if d.RequestID, err = optString(m, "requestId", p); err != nil {
			return nil, err
		}
		if d.Packet, err = optArray(m, "packet", p); err != nil {
			return nil, err
		}
		if d.Packet == nil {
			return nil, badField(p+".packet", "missing")
		}
		return d, nil
	case adapter.ServerSideEmitResponse, adapter.BroadcastAck:
		d := &adapter.ResponsePacketData{}
		if d.RequestID, err = reqString(m, "requestId", p); err != nil {
			return nil, err
		}
		d.Packet = m["packet"]
		return d, nil
	case adapter.BroadcastClientCount:
		d := &adapter.BroadcastClientCountData{}
		if d.RequestID, err = reqString(m, "requestId", p); err != nil {
			return nil, err
		}
		c, ok := m["clientCount"]
		if !ok {
			return nil, badField(p+".clientCount", "missing")
		}
		n, err := asInt64(c, p+".clientCount")
		if err != nil {
			return nil, err
		}
		d.ClientCount = int(n)
		return d, nil
	}
	return nil, fmt.Errorf("unknown message type %d", int(t))
}

func decodePacket(m map[string]any, path string) (adapter.Packet, error) {
	var pkt adapter.Packet
	t, ok := m["type"]
	if !ok {
		return pkt, badField(path+".type", "missing")
	}
	n, err := asInt64(t, path+".type")
	if err != nil {
		return pkt, err
	}
	pkt.Type = int(n)
	if pkt.Data, err = optArray(m, "data", path); err != nil {
		return pkt, err
	}
	if pkt.Nsp, err = optString(m, "nsp", path); err != nil {
		return pkt, err
	}
	if id, ok := m["id"]; ok && id != nil {
		n, err := asInt64(id, path+".id")
		if err != nil {
			return pkt, err
		}
		if n < 0 {
			return pkt, badField(path+".id", "negative")
		}
		u := uint64(n)
		pkt.ID = &u
	}
	return pkt, nil
}

// decodeOptions reads parent.opts. Node cannot handle a message without opts
// (it reads opts.rooms), so neither do we; missing rooms and except arrays
// are taken as empty.
func decodeOptions(parent map[string]any, path string) (adapter.Options, error) {
	var o adapter.Options
	path += ".opts"
	m, err := asObject(parent["opts"], path)
	if err != nil {
		return o, err
	}
	if o.Rooms, err = optStrings(m, "rooms", path); err != nil {
		return o, err
	}
	if o.Except, err = optStrings(m, "except", path); err != nil {
		return o, err
	}
	o.Rooms, o.Except = orEmpty(o.Rooms), orEmpty(o.Except)
	f, err := optMap(m, "flags", path)
	if err != nil || f == nil {
		return o, err
	}
	path += ".flags"
	if o.Flags.Volatile, err = optBool(f, "volatile", path); err != nil {
		return o, err
	}
	if c, ok := f["compress"]; ok && c != nil {
		b, ok := c.(bool)
		if !ok {
			return o, badField(path+".compress", "want a boolean, got %s", typeName(c))
		}
		o.Flags.Compress = &b
	}
	if o.Flags.Local, err = optBool(f, "local", path); err != nil {
		return o, err
	}
	if t, ok := f["timeout"]; ok && t != nil {
		ms, ok := t.(float64)
		if !ok {
			return o, badField(path+".timeout", "want a number, got %s", typeName(t))
		}
		// setTimeout accepts fractions of a millisecond; we keep whole ones.
		n, err := asInt64(math.Trunc(ms), path+".timeout")
		if err != nil {
			return o, err
		}
		o.Flags.TimeoutMs = &n
	}
	if o.Flags.ExpectSingleResponse, err = optBool(f, "expectSingleResponse", path); err != nil {
		return o, err
	}
	if o.Flags.Binary, err = optBool(f, "binary", path); err != nil {
		return o, err
	}
	return o, nil
}

func decodeSocket(v any, path string) (adapter.SocketInfo, error) {
	var s adapter.SocketInfo
	m, err := asObject(v, path)
	if err != nil {
		return s, err
	}
	if s.ID, err = reqString(m, "id", path); err != nil {
		return s, err
	}
	if s.Rooms, err = optStrings(m, "rooms", path); err != nil {
		return s, err
	}
	s.Rooms = orEmpty(s.Rooms)
	s.Data = m["data"]
	h, err := optMap(m, "handshake", path)
	if err != nil || h == nil {
		return s, err
	}
	hp := path + ".handshake"
	hs := &s.Handshake
	if hs.Headers, err = optMap(h, "headers", hp); err != nil {
		return s, err
	}
	if hs.Time, err = optString(h, "time", hp); err != nil {
		return s, err
	}
	if hs.Address, err = optString(h, "address", hp); err != nil {
		return s, err
	}
	if hs.Xdomain, err = optBool(h, "xdomain", hp); err != nil {
		return s, err
	}
	if hs.Secure, err = optBool(h, "secure", hp); err != nil {
		return s, err
	}
	if is, ok := h["issued"]; ok && is != nil {
		if hs.Issued, err = asInt64(is, hp+".issued"); err != nil {
			return s, err
		}
	}
	if hs.URL, err = optString(h, "url", hp); err != nil {
		return s, err
	}
	if hs.Query, err = optMap(h, "query", hp); err != nil {
		return s, err
	}
	if hs.Auth, err = optMap(h, "auth", hp); err != nil {
		return s, err
	}
	return s, nil
}
