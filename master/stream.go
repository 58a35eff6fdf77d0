package master

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// pingEvery is how often an idle stream says it is alive.
const pingEvery = 10 * time.Second

// streamLimit bounds what waits in a stream's queue: a reader that falls
// this far behind is cut off, and reconnects to a fresh start (an agent
// to its resend, a session to its outstanding offers and updates).
const streamLimit = 1 << 20

// stream is the queue of one NDJSON stream: the loop pushes, the HTTP
// handler that serves it takes and writes.
type stream struct {
	mu     sync.Mutex
	queue  []any
	wake   chan struct{}
	closed chan struct{}
	once   sync.Once
}

func newStream(first []any) *stream {
	return &stream{queue: first, wake: make(chan struct{}, 1), closed: make(chan struct{})}
}

func (s *stream) push(v any) {
	s.mu.Lock()
	if len(s.queue) >= streamLimit {
		s.mu.Unlock()
		s.close()
		return
	}
	s.queue = append(s.queue, v)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *stream) take(buf []any) []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.queue
	s.queue = buf[:0]
	return out
}

func (s *stream) close() { s.once.Do(func() { close(s.closed) }) }

// serve writes the stream as newline-delimited JSON until the client
// goes, the stream is closed (what was queued is written first) or the
// master stops; ping is written when nothing else was for a while.
func (s *stream) serve(w http.ResponseWriter, r *http.Request, done <-chan struct{}, ping any) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	ticker := time.NewTicker(pingEvery)
	defer ticker.Stop()
	var buf []any
	flush := func() bool {
		items := s.take(buf)
		for i, v := range items {
			if err := enc.Encode(v); err != nil {
				return false
			}
			items[i] = nil
		}
		buf = items
		return rc.Flush() == nil
	}
	if !flush() {
		return
	}
	for {
		select {
		case <-s.wake:
			if !flush() {
				return
			}
		case <-ticker.C:
			if enc.Encode(ping) != nil || rc.Flush() != nil {
				return
			}
		case <-s.closed:
			flush()
			return
		case <-done:
			return
		case <-r.Context().Done():
			return
		}
	}
}
