package adapter

import "fmt"

// MessageType is the type of a cluster message, numbered as socket.io-adapter
// numbers them (ClusterMessage.type), so that Go and Node nodes understand each
// other.
type MessageType int

// The cluster message types. The numbers are part of the wire format.
const (
	InitialHeartbeat       MessageType = 1
	Heartbeat              MessageType = 2
	Broadcast              MessageType = 3
	SocketsJoin            MessageType = 4
	SocketsLeave           MessageType = 5
	DisconnectSockets      MessageType = 6
	FetchSockets           MessageType = 7
	FetchSocketsResponse   MessageType = 8
	ServerSideEmit         MessageType = 9
	ServerSideEmitResponse MessageType = 10
	BroadcastClientCount   MessageType = 11
	BroadcastAck           MessageType = 12
	AdapterClose           MessageType = 13
)

var typeNames = map[MessageType]string{
	InitialHeartbeat:       "INITIAL_HEARTBEAT",
	Heartbeat:              "HEARTBEAT",
	Broadcast:              "BROADCAST",
	SocketsJoin:            "SOCKETS_JOIN",
	SocketsLeave:           "SOCKETS_LEAVE",
	DisconnectSockets:      "DISCONNECT_SOCKETS",
	FetchSockets:           "FETCH_SOCKETS",
	FetchSocketsResponse:   "FETCH_SOCKETS_RESPONSE",
	ServerSideEmit:         "SERVER_SIDE_EMIT",
	ServerSideEmitResponse: "SERVER_SIDE_EMIT_RESPONSE",
	BroadcastClientCount:   "BROADCAST_CLIENT_COUNT",
	BroadcastAck:           "BROADCAST_ACK",
	AdapterClose:           "ADAPTER_CLOSE",
}

func (t MessageType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("MessageType(%d)", int(t))
}

// Valid reports whether t is one of the known message types.
func (t MessageType) Valid() bool { _, ok := typeNames[t]; return ok }

// MayCarryBinary reports whether a message of this type can hold binary
// arguments. The Node package MessagePack-encodes such messages in the stream
// when they do carry binary, and writes JSON otherwise.
func (t MessageType) MayCarryBinary() bool {
	switch t {
	case Broadcast, FetchSocketsResponse, ServerSideEmit, ServerSideEmitResponse, BroadcastAck:
		return true
	}
	return false
}

// EmitterUID is the uid used by the standalone emitter package.
const EmitterUID = "emitter"

// Message is one cluster message: {uid, nsp, type, data} on the wire.
//
// Data holds the typed payload for the message type:
//
//	Broadcast                          *BroadcastData
//	SocketsJoin, SocketsLeave          *SocketsJoinLeaveData
//	DisconnectSockets                  *DisconnectSocketsData
//	FetchSockets                       *FetchSocketsData
//	FetchSocketsResponse               *FetchSocketsResponseData
//	ServerSideEmit                     *ServerSideEmitData
//	ServerSideEmitResponse, BroadcastAck *ResponsePacketData
//	BroadcastClientCount               *BroadcastClientCountData
//	InitialHeartbeat, Heartbeat, AdapterClose  nil
type Message struct {
	// UID identifies the sending namespace adapter: 16 hex characters, or
	// EmitterUID. A node ignores messages carrying its own uid.
	UID  string
	Nsp  string
	Type MessageType
	Data any

	// Offset is the stream entry id ("1700000000000-0") of a message read from
	// the stream, and "" for one received over pub/sub. It is not encoded.
	Offset string
}

// Packet is a Socket.IO packet as the cluster carries it. Broadcast packets
// carry no Nsp and no ID: the namespace is the message's.
type Packet struct {
	Type int    `json:"type" msgpack:"type"`
	Data []any  `json:"data,omitempty" msgpack:"data,omitempty"`
	Nsp  string `json:"nsp,omitempty" msgpack:"nsp,omitempty"`
	// ID is the ack id, set only on packets that expect one.
	ID *uint64 `json:"id,omitempty" msgpack:"id,omitempty"`
}

// Flags are the broadcast flags. Every field is omitted when false or unset:
// Node decides "not volatile" by flags.volatile === undefined, so a written
// false would change what Node nodes do.
type Flags struct {
	Volatile bool  `json:"volatile,omitempty" msgpack:"volatile,omitempty"`
	Compress *bool `json:"compress,omitempty" msgpack:"compress,omitempty"`
	Local    bool  `json:"local,omitempty" msgpack:"local,omitempty"`
	// TimeoutMs is the ack timeout in milliseconds, as Node writes it.
	TimeoutMs            *int64 `json:"timeout,omitempty" msgpack:"timeout,omitempty"`
	ExpectSingleResponse bool   `json:"expectSingleResponse,omitempty" msgpack:"expectSingleResponse,omitempty"`
	Binary               bool   `json:"binary,omitempty" msgpack:"binary,omitempty"`
}

// Options select the sockets a message applies to. Rooms and Except are always
// written, empty arrays included: Node's restore code reads opts.rooms.length.
type Options struct {
	Rooms  []string `json:"rooms" msgpack:"rooms"`
	Except []string `json:"except" msgpack:"except"`
	Flags  Flags    `json:"flags" msgpack:"flags"`
}

// BroadcastData is the payload of a Broadcast message. RequestID is set for a
// broadcast with acks (which then travels over pub/sub, not the stream).
type BroadcastData struct {
	Packet    Packet  `json:"packet" msgpack:"packet"`
	Opts      Options `json:"opts" msgpack:"opts"`
	RequestID string  `json:"requestId,omitempty" msgpack:"requestId,omitempty"`
}

// SocketsJoinLeaveData is the payload of SocketsJoin and SocketsLeave.
type SocketsJoinLeaveData struct {
	Opts  Options  `json:"opts" msgpack:"opts"`
	Rooms []string `json:"rooms" msgpack:"rooms"`
}

// DisconnectSocketsData is the payload of DisconnectSockets.
type DisconnectSocketsData struct {
	Opts  Options `json:"opts" msgpack:"opts"`
	Close bool    `json:"close,omitempty" msgpack:"close,omitempty"`
}

// FetchSocketsData is the payload of FetchSockets.
type FetchSocketsData struct {
	Opts      Options `json:"opts" msgpack:"opts"`
	RequestID string  `json:"requestId" msgpack:"requestId"`
}

// Handshake is the handshake of a socket as Node serializes it.
type Handshake struct {
	Headers map[string]any `json:"headers" msgpack:"headers"`
	Time    string         `json:"time" msgpack:"time"`
	Address string         `json:"address" msgpack:"address"`
	Xdomain bool           `json:"xdomain" msgpack:"xdomain"`
	Secure  bool           `json:"secure" msgpack:"secure"`
	Issued  int64          `json:"issued" msgpack:"issued"`
	URL     string         `json:"url" msgpack:"url"`
	Query   map[string]any `json:"query" msgpack:"query"`
	Auth    map[string]any `json:"auth" msgpack:"auth"`
}

// SocketInfo describes one socket in a FetchSocketsResponse.
type SocketInfo struct {
	ID        string    `json:"id" msgpack:"id"`
	Handshake Handshake `json:"handshake" msgpack:"handshake"`
	Rooms     []string  `json:"rooms" msgpack:"rooms"`
	Data      any       `json:"data" msgpack:"data"`
}

// FetchSocketsResponseData is the payload of FetchSocketsResponse.
type FetchSocketsResponseData struct {
	RequestID string       `json:"requestId" msgpack:"requestId"`
	Sockets   []SocketInfo `json:"sockets" msgpack:"sockets"`
}

// ServerSideEmitData is the payload of ServerSideEmit: the event name and its
// arguments in Packet. RequestID is set when the sender expects acks.
type ServerSideEmitData struct {
	RequestID string `json:"requestId,omitempty" msgpack:"requestId,omitempty"`
	Packet    []any  `json:"packet" msgpack:"packet"`
}

// ResponsePacketData is the payload of ServerSideEmitResponse and BroadcastAck.
//
// Packet is ONE value, not an argument list: Node's ClusterAdapter publishes
// the first (and only) argument its callback received (`packet: arg`), so a
// server-side-emit listener answering cb("pong") produces "packet":"pong",
// and the requester collects one such value per server (or per client, for a
// broadcast ack). It may be nil, a string, a number, a map, an array or
// binary.
type ResponsePacketData struct {
	RequestID string `json:"requestId" msgpack:"requestId"`
	Packet    any    `json:"packet" msgpack:"packet"`
}

// BroadcastClientCountData is the payload of BroadcastClientCount.
type BroadcastClientCountData struct {
	RequestID   string `json:"requestId" msgpack:"requestId"`
	ClientCount int    `json:"clientCount" msgpack:"clientCount"`
}

// Ephemeral reports whether m travels over pub/sub rather than the stream: a
// broadcast with acks, a server-side emit and a fetchSockets request, as in
// the Node package, and the liveness messages (InitialHeartbeat, Heartbeat,
// AdapterClose), which the Node 0.3 package never sends and ignores as an
// unknown type: in the stream they would only cost maxLen room and restore
// reads. Responses are always sent to one node over pub/sub.
func (m *Message) Ephemeral() bool {
	switch m.Type {
	case ServerSideEmit, FetchSockets, InitialHeartbeat, Heartbeat, AdapterClose:
		return true
	case Broadcast:
		if d, ok := m.Data.(*BroadcastData); ok && d.RequestID != "" {
			return true
		}
	}
	return false
}
