package testutil

import (
	"io"
	"log/slog"
	"sync"
	"testing"
)

// Logger returns a logger for the code under test that writes to t's output,
// at debug level: shown beside the test's own messages when it fails, or
// with -v (Nomad's helper/testlog). A goroutine that outlives the test may
// still log: once t's cleanups have run, what it logs is dropped, where
// writing to t would panic.
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	w := &logWriter{out: t.Output()}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// logWriter passes writes to out until stop.
type logWriter struct {
	mu      sync.Mutex
	out     io.Writer
	stopped bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return len(p), nil
	}
	return w.out.Write(p)
}

func (w *logWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}
