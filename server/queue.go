package server

import (
	"runtime/debug"
	"sync"
)

// handlerQueue runs one socket's handlers (or a namespace's server-side
// handlers) one at a time, in order, on a goroutine that exists only while
// there is work: an idle socket costs no goroutine. The client's packets
// are read and acknowledgements resolved on the connection's reading
// goroutine, not here, so a handler that waits for an acknowledgement from
// its own client (Socket.EmitWithAck in an On or OnConnection handler) is
// released by the packet it waits for (TestEmitWithAckInHandler).
type handlerQueue struct {
	srv     *Server
	mu      sync.Mutex
	tasks   []func()
	running bool
}

func (q *handlerQueue) push(task func()) {
	q.mu.Lock()
	if q.running {
		q.tasks = append(q.tasks, task)
		q.mu.Unlock()
		return
	}
	q.running = true
	q.mu.Unlock()
	q.srv.busy.Add()
	go q.loop(task)
}

func (q *handlerQueue) loop(task func()) {
	defer q.srv.busy.Done()
	for {
		q.run(task)
		q.mu.Lock()
		if len(q.tasks) == 0 {
			q.tasks = nil
			q.running = false
			q.mu.Unlock()
			return
		}
		task = q.tasks[0]
		q.tasks[0] = nil
		q.tasks = q.tasks[1:]
		q.mu.Unlock()
	}
}

// run runs a handler; a panic is logged, as net/http does, and does not stop
// the socket's other handlers.
func (q *handlerQueue) run(task func()) {
	defer func() {
		if r := recover(); r != nil {
			q.srv.log.Error("sockstream: handler panic", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	task()
}
