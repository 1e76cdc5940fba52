package server

import (
	"github.com/sockstream/sockstream/adapter"
)

// The sockets as the Admin UI gets them: instrument()'s SerializedSocket.
//
// Node keeps what only the socket's own node knows (its Engine.IO client
// id, its transport) in socket.data._admin, so that fetchSockets carries
// it to the other nodes; sockstream does not write into the application's
// data, so a socket of another Go node comes without them (its id stands
// for the client id) until that node announces it with socket_connected.

// adminClientIDLen is how much of the Engine.IO id the UI gets, as
// instrument() does ("this information is quite sensitive").
const adminClientIDLen = 12

// serializeSocket describes a socket of this node.
func serializeSocket(s *Socket) map[string]any {
	clientID := s.client.sess.ID()
	if len(clientID) > adminClientIDLen {
		clientID = clientID[:adminClientIDLen]
	}
	return map[string]any{
		"id":        s.id,
		"clientId":  clientID,
		"transport": string(s.Transport()),
		"nsp":       s.nsp.name,
		"data":      adminData(s.Data()),
		"handshake": adminHandshake(s.nodeHandshake()),
		"rooms":     nonNil(s.Rooms()),
	}
}

// serializeRemote describes a socket FetchSockets returned from another
// node: a Node node's carries its client id and transport in data._admin.
func serializeRemote(r *RemoteSocket) map[string]any {
	out := map[string]any{
		"id":        r.ID(),
		"clientId":  r.ID(),
		"nsp":       r.nsp.name,
		"data":      adminData(r.Data()),
		"handshake": adminHandshake(r.info.Handshake),
		"rooms":     nonNil(r.Rooms()),
	}
	if d, ok := r.Data().(map[string]any); ok {
		if meta, ok := d["_admin"].(map[string]any); ok {
			if id, ok := meta["clientId"].(string); ok {
				out["clientId"] = id
			}
			if t, ok := meta["transport"].(string); ok {
				out["transport"] = t
			}
		}
	}
	return out
}

// adminData is the socket's data without Node's _admin entry; data that
// is not an object is shown as it is.
func adminData(d any) any {
	m, ok := d.(map[string]any)
	if !ok {
		if d == nil {
			return map[string]any{}
		}
		return d
	}
	if _, ok := m["_admin"]; !ok {
		return m
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != "_admin" {
			out[k] = v
		}
	}
	return out
}

// adminHandshake is the handshake instrument() shows: the client's
// address as a proxy reports it, and never its auth payload (the admin
// password travels there).
func adminHandshake(h adapter.Handshake) map[string]any {
	addr := h.Address
	for _, k := range []string{"cf-connecting-ip", "x-forwarded-for"} {
		if v, ok := h.Headers[k].(string); ok && v != "" {
			addr = v
			break
		}
	}
	headers := h.Headers
	if headers == nil {
		headers = map[string]any{}
	}
	query := h.Query
	if query == nil {
		query = map[string]any{}
	}
	return map[string]any{
		"address": addr,
		"headers": headers,
		"query":   query,
		"issued":  h.Issued,
		"secure":  h.Secure,
		"time":    h.Time,
		"url":     h.URL,
		"xdomain": h.Xdomain,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
