package recovery

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultSweepInterval is how often a MemoryStore drops expired sessions by
// default. Expiry itself is exact (Take checks the deadline); the sweep only
// gives the memory back.
const DefaultSweepInterval = 30 * time.Second

// MemoryStoreOptions configure a MemoryStore. The zero value is valid.
type MemoryStoreOptions struct {
	// MaxEntries bounds the number of sessions held; when a new session
	// would exceed it, the one closest to expiry is evicted (its client
	// will get a fresh session). 0 means no bound but the ttl.
	MaxEntries int
	// SweepInterval is the period of the janitor that drops expired
	// sessions. Default DefaultSweepInterval.
	SweepInterval time.Duration
	// Logger receives the evictions (debug). Default slog.Default().
	Logger *slog.Logger
}

// MemoryStore is the Store of a single node without Redis. Sessions expire
// after their ttl; a janitor goroutine, stopped by Close, drops the expired
// ones so that memory follows the number of live sessions, not the churn.
//
// It keeps Data as given, without copying or encoding it: the socket it
// belonged to is gone, so nothing else holds it.
type MemoryStore struct {
	opts MemoryStoreOptions
	now  func() time.Time

	mu       sync.Mutex
	byPID    map[string]*memEntry
	deadline memHeap // every entry of byPID, soonest deadline first
	closed   bool

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type memEntry struct {
	sess     Session
	deadline time.Time
	index    int // in the heap
}

// NewMemoryStore returns a MemoryStore and starts its janitor; call Close
// to stop it.
func NewMemoryStore(opts MemoryStoreOptions) *MemoryStore {
	return newMemoryStore(opts, time.Now)
}

// newMemoryStore takes the clock so tests can move time without sleeping.
func newMemoryStore(opts MemoryStoreOptions, now func() time.Time) *MemoryStore {
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	if opts.MaxEntries < 0 {
		opts.MaxEntries = 0
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &MemoryStore{
		opts:  opts,
		now:   now,
		byPID: make(map[string]*memEntry),
		stop:  make(chan struct{}),
	}
	s.wg.Add(1)
	go s.janitor()
	return s
}

func (s *MemoryStore) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			s.dropExpiredLocked(s.now())
			s.mu.Unlock()
		}
	}
}

// dropExpiredLocked pops the heap while its head has expired: the cost is
// proportional to what is dropped, not to what is held.
func (s *MemoryStore) dropExpiredLocked(now time.Time) {
	for len(s.deadline) > 0 && !s.deadline[0].deadline.After(now) {
		e := heap.Pop(&s.deadline).(*memEntry)
		delete(s.byPID, e.sess.PID)
	}
}

// Persist stores a copy of sess (its Rooms are copied, Data is not) until
// now+ttl.
func (s *MemoryStore) Persist(ctx context.Context, sess Session, ttl time.Duration) error {
	if !ValidPID(sess.PID) {
		return ErrInvalidPID
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("%w: %v", ErrInvalidTTL, ttl)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if e, ok := s.byPID[sess.PID]; ok {
		e.sess, e.deadline = cloneSession(sess), now.Add(ttl)
		heap.Fix(&s.deadline, e.index)
		return nil
	}
	if s.opts.MaxEntries > 0 && len(s.byPID) >= s.opts.MaxEntries {
		s.dropExpiredLocked(now)
		for len(s.byPID) >= s.opts.MaxEntries {
			e := heap.Pop(&s.deadline).(*memEntry)
			delete(s.byPID, e.sess.PID)
			s.opts.Logger.Debug("recovery: session evicted, the store is full",
				"pid_hash", PIDHash(e.sess.PID), "max_entries", s.opts.MaxEntries)
		}
	}
	e := &memEntry{sess: cloneSession(sess), deadline: now.Add(ttl)}
	s.byPID[sess.PID] = e
	heap.Push(&s.deadline, e)
	return nil
}

// Take returns the session and forgets it. A session past its deadline is
// ErrExpired even if the janitor has not dropped it yet; once dropped it is
// ErrNotFound.
func (s *MemoryStore) Take(ctx context.Context, pid string) (*Session, error) {
	if !ValidPID(pid) {
		return nil, ErrInvalidPID
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	e, ok := s.byPID[pid]
	if !ok {
		return nil, ErrNotFound
	}
	delete(s.byPID, pid)
	heap.Remove(&s.deadline, e.index)
	if !e.deadline.After(now) {
		return nil, ErrExpired
	}
	sess := e.sess
	return &sess, nil
}

// Len returns the number of sessions held, expired ones not yet dropped
// included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byPID)
}

// Close stops the janitor, waits for it and drops every session. Later
// calls to Persist and Take return ErrClosed. Close is idempotent.
func (s *MemoryStore) Close() error {
	s.once.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.mu.Lock()
		s.closed = true
		s.byPID, s.deadline = nil, nil
		s.mu.Unlock()
	})
	return nil
}

// memHeap is a min-heap of entries by deadline (container/heap).
type memHeap []*memEntry

func (h memHeap) Len() int           { return len(h) }
func (h memHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h memHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *memHeap) Push(x any) {
	e := x.(*memEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *memHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil // let the entry be collected
	*h = old[:len(old)-1]
	return e
}
