package adapter

import "sync"

// The namespaces' queued work (outbound publications, inbound messages,
// server-side events, subscribing) runs on node-level workers, not on
// goroutines of each namespace: a namespace with work is put on a run
// queue and served by one of at most Config.Workers goroutines, which exit
// when the run queue is empty. An idle namespace costs no goroutine.
//
// Order is kept per queue: a task (one queue of one namespace) is never
// run by two workers at once, and each run handles one take of its queue,
// in order. A task with more work after its run goes to the back of the
// run queue, so one busy namespace does not starve the others.

// scheduler is the run queue and the bounded set of workers of a Builder.
type scheduler struct {
	max int

	mu      sync.Mutex
	runq    []*task
	head    int
	workers int
	idle    *sync.Cond // signalled when workers drops to 0
}

func newScheduler(max int) *scheduler {
	s := &scheduler{max: max}
	s.idle = sync.NewCond(&s.mu)
	return s
}

// enqueue puts t on the run queue and starts a worker if fewer than max
// are running.
func (s *scheduler) enqueue(t *task) {
	s.mu.Lock()
	s.runq = append(s.runq, t)
	start := s.workers < s.max
	if start {
		s.workers++
	}
	s.mu.Unlock()
	if start {
		go s.work()
	}
}

// work runs queued tasks until the run queue is empty.
func (s *scheduler) work() {
	for {
		s.mu.Lock()
		if s.head == len(s.runq) {
			s.runq, s.head = s.runq[:0], 0
			s.workers--
			if s.workers == 0 {
				s.idle.Broadcast()
			}
			s.mu.Unlock()
			return
		}
		t := s.runq[s.head]
		s.runq[s.head] = nil
		s.head++
		s.mu.Unlock()
		t.run()
	}
}

// running returns the number of workers.
func (s *scheduler) running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workers
}

// waitIdle waits until no worker runs. The caller makes sure no task is
// woken meanwhile (every task is stopped).
func (s *scheduler) waitIdle() {
	s.mu.Lock()
	for s.workers > 0 {
		s.idle.Wait()
	}
	s.mu.Unlock()
}

// task is one serial queue of work of a namespace: step handles one take
// of it and reports whether work is left.
type task struct {
	s    *scheduler
	step func() (more bool)

	mu      sync.Mutex
	queued  bool // on the run queue
	running bool // a worker runs step
	again   bool // woken while running: run again
	stopped bool // wake is ignored
	done    *sync.Cond
}

func newTask(s *scheduler, step func() bool) *task {
	t := &task{s: s, step: step}
	t.done = sync.NewCond(&t.mu)
	return t
}

// wake schedules a run of the task, unless one is already scheduled or it
// was stopped. It never blocks.
func (t *task) wake() {
	t.mu.Lock()
	switch {
	case t.stopped || t.queued:
	case t.running:
		t.again = true
	default:
		t.queued = true
		t.mu.Unlock()
		t.s.enqueue(t)
		return
	}
	t.mu.Unlock()
}

func (t *task) run() {
	t.mu.Lock()
	t.queued, t.running, t.again = false, true, false
	t.mu.Unlock()
	more := t.step()
	t.mu.Lock()
	t.running = false
	requeue := (more || t.again) && !t.stopped
	t.again = false
	if requeue {
		t.queued = true
	} else {
		t.done.Broadcast()
	}
	t.mu.Unlock()
	if requeue {
		t.s.enqueue(t)
	}
}

// quiesce waits until the task is neither queued nor running.
func (t *task) quiesce() {
	t.mu.Lock()
	for t.queued || t.running {
		t.done.Wait()
	}
	t.mu.Unlock()
}

// stop makes wake a no-op from now on and waits for a run in progress (or
// scheduled) to end.
func (t *task) stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	t.quiesce()
}
