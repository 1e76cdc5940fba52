package server

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// errAdminCredentials refuses an admin connection, with the message the
// UI recognizes (instrument()'s).
var errAdminCredentials = errors.New("invalid credentials")

// Admin sessions: after a login with the password, the UI gets a session
// id it sends instead (on a page reload), as with instrument()'s
// InMemoryStore. They are kept in memory, per node, bounded.
const (
	adminSessionTTL  = 24 * time.Hour // RedisStore's sessionDuration default
	adminMaxSessions = 10_000
)

// adminAuth is the basic authentication of the admin namespace.
type adminAuth struct {
	username string
	hash     []byte
	log      *slog.Logger
	// bcrypt runs at most one comparison per CPU at a time: a flood of
	// logins queues instead of taking every core.
	slots chan struct{}

	mu       sync.Mutex
	sessions map[string]time.Time // session id → expiry
}

func newAdminAuth(username, hash string, log *slog.Logger) *adminAuth {
	return &adminAuth{
		username: username,
		hash:     []byte(hash),
		log:      log,
		slots:    make(chan struct{}, runtime.GOMAXPROCS(0)),
		sessions: map[string]time.Time{},
	}
}

// middleware lets in a socket with a valid session id, or with the
// username and password.
func (a *adminAuth) middleware(s *Socket) error {
	auth := s.Handshake().Auth
	if id, _ := auth["sessionId"].(string); id != "" && a.sessionValid(id) {
		return nil
	}
	if a.passwordValid(s, auth) {
		return nil
	}
	a.log.Info("admin: connection refused: invalid credentials", "address", s.Handshake().Address)
	return errAdminCredentials
}

func (a *adminAuth) passwordValid(s *Socket, auth map[string]any) bool {
	user, _ := auth["username"].(string)
	pass, _ := auth["password"].(string)
	if subtle.ConstantTimeCompare([]byte(user), []byte(a.username)) != 1 {
		return false
	}
	select {
	case a.slots <- struct{}{}:
	case <-s.Context().Done():
		return false
	}
	defer func() { <-a.slots }()
	return bcrypt.CompareHashAndPassword(a.hash, []byte(pass)) == nil
}

// newSession opens a session for a socket that logged in with the
// password (not with a session id), and returns its id.
func (a *adminAuth) newSession(s *Socket) (string, bool) {
	auth := s.Handshake().Auth
	if id, _ := auth["sessionId"].(string); id != "" && a.sessionValid(id) {
		return "", false
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.sessions) >= adminMaxSessions {
		a.evictLocked(now)
	}
	a.sessions[id] = now.Add(adminSessionTTL)
	return id, true
}

func (a *adminAuth) sessionValid(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.sessions[id]
	if ok && time.Now().After(exp) {
		delete(a.sessions, id)
		return false
	}
	return ok
}

// evictLocked makes room for a session: the expired ones go, or else the
// one closest to expiry (the oldest), counted in the log.
func (a *adminAuth) evictLocked(now time.Time) {
	var oldest string
	var oldestExp time.Time
	for id, exp := range a.sessions {
		if now.After(exp) {
			delete(a.sessions, id)
			continue
		}
		if oldest == "" || exp.Before(oldestExp) {
			oldest, oldestExp = id, exp
		}
	}
	if len(a.sessions) >= adminMaxSessions {
		delete(a.sessions, oldest)
		a.log.Warn("admin: too many sessions: the oldest is forgotten (its UI will ask for the password again)", "bound", adminMaxSessions)
	}
}
