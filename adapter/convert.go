package adapter

// Copies between what the Socket.IO layer hands the adapter and what is
// queued, published and delivered: nothing queued shares memory with the
// caller.

import (
	"io"
	"slices"
	"strings"
)

// packetEvent is the Socket.IO EVENT packet type. The Socket.IO layer
// passes an event with binary arguments as an EVENT too (its encoder makes
// it a BINARY_EVENT), as Node's adapter sees it.
const packetEvent = 2

// cloneOptions copies opts so that a queued operation does not see later
// changes of the caller's slices. Rooms and Except are never nil (Node reads
// opts.rooms.length), sorted and without duplicates (they are sets; a
// deterministic wire output).
func cloneOptions(o Options) Options {
	c := Options{Rooms: roomSlice(o.Rooms), Except: roomSlice(o.Except), Flags: o.Flags}
	if o.Flags.Compress != nil {
		v := *o.Flags.Compress
		c.Flags.Compress = &v
	}
	if o.Flags.TimeoutMs != nil {
		v := *o.Flags.TimeoutMs
		c.Flags.TimeoutMs = &v
	}
	return c
}

func roomSlice(in []string) []string {
	out := slices.Clone(in)
	if out == nil {
		return []string{}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// wirePacket copies p for the wire: the namespace is dropped (it is the
// message's), the data normalized (see normalize); withID keeps the ack id.
func wirePacket(p *Packet, withID bool) Packet {
	w := Packet{Type: p.Type, Data: normalizeArgs(p.Data)}
	if withID && p.ID != nil {
		id := *p.ID
		w.ID = &id
	}
	return w
}

// localPacket makes the packet handed to the Namespace from a wire packet:
// a data slice of its own (an offset may be appended to it), the
// namespace's name in Nsp.
func localPacket(w Packet, nsp string) *Packet {
	p := &Packet{Type: w.Type, Data: slices.Clip(slices.Clone(w.Data)), Nsp: nsp}
	if p.Data == nil {
		p.Data = []any{}
	}
	if w.ID != nil {
		id := *w.ID
		p.ID = &id
	}
	return p
}

// normalizeArgs deep-copies an argument list without touching the caller's
// values: binary ([]byte, anything with a Bytes() []byte method such as
// *bytes.Buffer, any other io.Reader) becomes a []byte of its own (a reader
// would otherwise be consumed by the first encoding), and []any /
// map[string]any are copied so a caller reusing them after the call
// returns cannot change what is still queued.
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
	case interface{ Bytes() []byte }:
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
