package testutil

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLoggerWriter: records reach the test's output until the test's
// cleanups run, and are dropped after.
func TestLoggerWriter(t *testing.T) {
	var out bytes.Buffer
	w := &logWriter{out: &out}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log.Debug("before", "k", "v")
	w.stop()
	log.Error("after")
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		_, msg, _ := strings.Cut(line, " msg=")
		msgs = append(msgs, msg)
	}
	if diff := cmp.Diff([]string{"before k=v"}, msgs); diff != "" {
		t.Errorf("logged (-want +got):\n%s", diff)
	}
}
