//go:build linux

package testutil

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// NeverOpened runs fn and fails the test if fn opens for reading any FIFO
// under root. A FIFO opened for reading blocks until a writer comes, so a
// reader stuck on one is detected, and freed, by opening it for writing
// without blocking, which only succeeds while a reader has it open: the
// test ends either way, and fails when code under test opened a FIFO. A
// FIFO that fn replaces by something else is no longer watched.
func NeverOpened(t testing.TB, root string, fn func()) {
	t.Helper()
	var fifos []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeNamedPipe != 0 {
			fifos = append(fifos, p)
		}
		return nil
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		for i, p := range fifos {
			if p == "" {
				continue
			}
			fd, err := unix.Open(p, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			var st unix.Stat_t
			if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFIFO {
				fifos[i] = "" // fn replaced it by something else: no longer watched
			} else {
				t.Errorf("%s was opened for reading", p)
			}
			unix.Close(fd) // the reader sees the end of the file
		}
	}
}
