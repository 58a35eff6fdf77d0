package userfile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
)

// TestCreateThroughSwapped changes a path written through (a device, a
// FIFO, an open file under /proc) between its checks and its open: what is
// opened then is not what was checked, and nothing is written to it, least
// of all a regular file it would write over without truncating.
func TestCreateThroughSwapped(t *testing.T) {
	const precious = "precious content, longer than what is written"
	for _, tc := range []struct {
		name string
		// setup makes the path to write and returns the change to make
		// before its open, and the regular file that must stay as it is.
		setup func(t *testing.T, dir string) (path string, swap func(), victim string)
	}{
		{"link to /dev/null becomes a link to a file", func(t *testing.T, dir string) (string, func(), string) {
			victim := filepath.Join(dir, "victim")
			writeFile(t, victim, precious)
			p := symlink(t, "/dev/null", filepath.Join(dir, "out"))
			return p, func() { replaceLink(t, victim, p) }, victim
		}},
		{"link to /dev/null becomes a link to /dev/zero", func(t *testing.T, dir string) (string, func(), string) {
			p := symlink(t, "/dev/null", filepath.Join(dir, "out"))
			return p, func() { replaceLink(t, "/dev/zero", p) }, ""
		}},
		{"FIFO becomes a file", func(t *testing.T, dir string) (string, func(), string) {
			p := filepath.Join(dir, "out")
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			victim := filepath.Join(dir, "victim")
			writeFile(t, victim, precious)
			return p, func() {
				if err := os.Rename(victim, p); err != nil {
					t.Fatal(err)
				}
			}, p
		}},
		{"FIFO becomes a link to a file", func(t *testing.T, dir string) (string, func(), string) {
			p := filepath.Join(dir, "out")
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			victim := filepath.Join(dir, "victim")
			writeFile(t, victim, precious)
			return p, func() { replaceLink(t, victim, p) }, victim
		}},
		{"open file under /proc becomes another", func(t *testing.T, dir string) (string, func(), string) {
			log := openFile(t, filepath.Join(dir, "log"))
			victim := filepath.Join(dir, "victim")
			writeFile(t, victim, precious)
			other := openFile(t, victim)
			p := "/proc/self/fd/" + strconv.Itoa(int(log.Fd()))
			return p, func() {
				if err := unix.Dup3(int(other.Fd()), int(log.Fd()), unix.O_CLOEXEC); err != nil {
					t.Fatal(err)
				}
			}, victim
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, swap, victim := tc.setup(t, t.TempDir())
			beforeOpen = func(string) { swap() }
			t.Cleanup(func() { beforeOpen = nil })
			f, err := Create(path, 0o644)
			if err == nil {
				_, _ = f.Write([]byte("plot"))
				_ = f.Commit()
			}
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("Create: %v, want an error wrapping api.ErrInvalid", err)
			}
			if victim == "" {
				return
			}
			b, err := os.ReadFile(victim)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(precious, string(b)); diff != "" {
				t.Errorf("%s changed (-want +got):\n%s", victim, diff)
			}
		})
	}
}

func replaceLink(t *testing.T, target, path string) {
	t.Helper()
	tmp := path + ".new"
	symlink(t, target, tmp)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func openFile(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}
