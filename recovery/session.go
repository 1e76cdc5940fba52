package recovery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/sockstream/sockstream/adapter"
)

// Session is the state of a disconnected socket that connection state
// recovery gives back to it when the client reconnects in time.
//
// On the wire (the Redis value) it is the object Node's socket.io persists,
// {sid, pid, rooms, data}, plus an optional nsp that Node ignores.
type Session struct {
	// SID is the socket id the client gets back.
	SID string
	// PID is the private session id: the secret the client presents to
	// recover. It is the store's key and is never logged.
	PID string
	// Rooms are the rooms the socket was in, its own id included, as Node
	// stores them: the restore joins them all again and filters the missed
	// packets with them.
	Rooms []string
	// Data is the socket's data (socket.data). A session read back from
	// Redis holds the generic values of a MessagePack decode, as JavaScript
	// sees them: nil, bool, float64 (every number), string, []byte, []any,
	// map[string]any and time.Time. MemoryStore keeps the value as given.
	Data any
	// Nsp is the namespace the socket belonged to. Node's sessions do not
	// record it, so it is "" in a session a Node node persisted; when it is
	// set, Restore refuses the session in another namespace, which Node
	// cannot do (a pid from namespace A would restore into namespace B,
	// carrying A's data past B's middlewares).
	Nsp string
	// Origin is the uid of the namespace adapter the socket was on, and
	// Marks what that node had delivered when it sent each of the last
	// packets to the socket (adapter.DeliveryMark). With them a restore
	// knows exactly which packets the client had been sent before its
	// offset; without them (a session Node persisted, or a client offset
	// older than the marks) it relies on the offset alone, as Node does.
	// Node ignores both.
	Origin string
	Marks  []adapter.DeliveryMark
}

// Store keeps sessions between a socket's disconnection and its recovery.
// Implementations must be safe for concurrent use.
type Store interface {
	// Persist stores s under s.PID for ttl (the maximum disconnection
	// duration), replacing any session stored under that pid. It fails with
	// ErrInvalidPID or ErrInvalidTTL before touching the backend.
	Persist(ctx context.Context, s Session, ttl time.Duration) error

	// Take returns the session stored under pid and deletes it in the same
	// atomic step, so a session is restored at most once even when two
	// reconnections race. It returns ErrNotFound when there is no session
	// (never stored, already taken, or expired and forgotten), ErrExpired
	// when the store still held it but its ttl had passed, ErrInvalidPID
	// when pid cannot be a private session id (the backend is then not
	// touched) and ErrCorrupt when the stored value cannot be decoded; the
	// value is consumed in that case too.
	Take(ctx context.Context, pid string) (*Session, error)
}

// Errors of the stores. They are returned wrapped: test with errors.Is.
var (
	// ErrNotFound: no session is stored under the pid.
	ErrNotFound = errors.New("recovery: session not found")
	// ErrExpired: the session was found but its ttl had passed. Redis
	// forgets expired keys, so cluster.SessionStore reports them as ErrNotFound.
	ErrExpired = errors.New("recovery: session expired")
	// ErrInvalidPID: the pid does not have the shape of a private session id.
	ErrInvalidPID = errors.New("recovery: invalid private session id")
	// ErrInvalidTTL: Persist was given a ttl shorter than a millisecond
	// (Redis' PX resolution).
	ErrInvalidTTL = errors.New("recovery: invalid session ttl")
	// ErrCorrupt: the stored value is not base64 of MessagePack of a
	// session, or is a session for another pid.
	ErrCorrupt = errors.New("recovery: corrupt stored session")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("recovery: store closed")
)

// ValidPID reports whether pid has the shape of a private session id as the
// servers generate them: 20 characters of URL-safe base64 (Node's base64id,
// 15 bytes, and sockstream's) or 24 (18 bytes: the zishang520-based
// releases of sockstream). Checking it before using the pid
// in a key keeps client-chosen bytes (key patterns, huge strings) away from
// the backend.
func ValidPID(pid string) bool {
	if len(pid) != 20 && len(pid) != 24 {
		return false
	}
	for i := 0; i < len(pid); i++ {
		c := pid[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// PIDHash is what logs show instead of a pid: the pid is a bearer secret
// (whoever presents it takes over the session), but operators still need to
// correlate the lines of one session. 8 hex digits of SHA-256 are enough for
// that and reveal nothing usable.
func PIDHash(pid string) string {
	sum := sha256.Sum256([]byte(pid))
	return hex.EncodeToString(sum[:4])
}

// cloneSession copies the slices a caller could mutate afterwards; Data is
// shared (see MemoryStore).
func cloneSession(s Session) Session {
	if s.Rooms != nil {
		s.Rooms = append([]string(nil), s.Rooms...)
	}
	if s.Marks != nil {
		s.Marks = append([]adapter.DeliveryMark(nil), s.Marks...)
	}
	return s
}
