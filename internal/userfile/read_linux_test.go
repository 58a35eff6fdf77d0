package userfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestReadFileContextEnds reads inputs that never end on their own: a
// FIFO that no writer opens, one whose writer never writes, one whose
// writer stops half way. Cancelling the context ends each read, with an
// error wrapping the context's; a command that catches SIGTERM stays
// killable.
func TestReadFileContextEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		// writer opens the FIFO as a writer that stays (nil: none) and
		// writes what it is given.
		written *string
	}{
		{"no writer", nil},
		{"a writer that writes nothing", ptr("")},
		{"a writer that stops half way", ptr("half a sce")},
	} {
		for _, early := range []bool{false, true} {
			name := tc.name
			if early {
				name += ", context done before the read"
			}
			t.Run(name, func(t *testing.T) {
				fifo := filepath.Join(t.TempDir(), "fifo")
				if err := syscall.Mkfifo(fifo, 0o600); err != nil {
					t.Fatal(err)
				}
				if tc.written != nil {
					// Read and write: opens at once, and keeps the FIFO
					// with a writer.
					w, err := os.OpenFile(fifo, os.O_RDWR, 0)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { w.Close() })
					if _, err := w.WriteString(*tc.written); err != nil {
						t.Fatal(err)
					}
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if early {
					cancel()
				}
				type result struct {
					data []byte
					err  error
				}
				done := make(chan result, 1)
				go func() {
					data, err := ReadFileContext(ctx, fifo, 1<<20)
					done <- result{data, err}
				}()
				cancel()
				select {
				case r := <-done:
					if !errors.Is(r.err, context.Canceled) {
						t.Errorf("read %q, %v; want an error wrapping context.Canceled", r.data, r.err)
					}
				case <-time.After(time.Minute):
					// Not ended by its context: free the reader.
					if fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
						unix.Close(fd)
					}
					t.Fatal("the read was not ended by its context")
				}
			})
		}
	}
}

// TestReadFileContextFIFO reads FIFOs whose writers come after the reader
// opened, or came and went: what they wrote is read whole.
func TestReadFileContextFIFO(t *testing.T) {
	for _, tc := range []struct {
		name, data string
	}{
		{"writes and closes", "scenario: 1\n"},
		{"writes nothing", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			wrote := make(chan error, 1)
			go func() {
				// Blocks until the reader has opened.
				w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
				if err != nil {
					wrote <- err
					return
				}
				_, err = w.WriteString(tc.data)
				wrote <- errors.Join(err, w.Close())
			}()
			got, err := ReadFileContext(context.Background(), fifo, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-wrote; err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.data, string(got)); diff != "" {
				t.Errorf("read (-want +got):\n%s", diff)
			}
		})
	}
}

func ptr(s string) *string { return &s }
