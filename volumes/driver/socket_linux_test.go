package driver

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
)

// entry is what a test compares of a directory entry before and after.
type entry struct {
	Mode    uint32
	Ino     uint64
	Content string
	Link    string
}

func lstatEntry(t *testing.T, path string) entry {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	e := entry{Mode: st.Mode, Ino: uint64(st.Ino)}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		b, _ := os.ReadFile(path)
		e.Content = string(b)
	case unix.S_IFLNK:
		e.Link, _ = os.Readlink(path)
	}
	return e
}

// staleSocket leaves a socket at path that nobody listens on, owned by uid.
func staleSocket(t *testing.T, path string, uid int) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	_ = l.Close()
	if err := os.Lchown(path, uid, -1); err != nil {
		t.Fatal(err)
	}
}

// TestListenLeavesOthersAlone: whatever is at the socket's path and is not a
// stale socket of the plugin's user is refused and left as it was: a
// regular file, a directory, a symlink (to a file, to a stale socket,
// dangling), a FIFO, a device, a socket of another user, a live socket.
func TestListenLeavesOthersAlone(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := shortTemp(t)
	live, err := net.Listen("unix", filepath.Join(dir, "live"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Close() })
	staleSocket(t, filepath.Join(dir, "mine-stale"), os.Geteuid())
	for _, tc := range []struct {
		name string
		make func(path string) error
	}{
		{"file", func(p string) error { return os.WriteFile(p, []byte("precious"), 0o600) }},
		{"directory", func(p string) error { return os.Mkdir(p, 0o700) }},
		{"symlink to a file", func(p string) error { return os.Symlink("/etc/hostname", p) }},
		{"symlink to a stale socket", func(p string) error { return os.Symlink(filepath.Join(dir, "mine-stale"), p) }},
		{"dangling symlink", func(p string) error { return os.Symlink(filepath.Join(dir, "nothing"), p) }},
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o600) }},
		{"character device", func(p string) error { return unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))) }},
		{"socket of another user", func(p string) error { staleSocket(t, p, 4321); return nil }},
		{"live socket", func(p string) error { return os.Rename(filepath.Join(dir, "live"), p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "p.sock")
			if err := tc.make(path); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Remove(path) })
			before := lstatEntry(t, path)
			if l, err := Listen(path, os.Getegid()); !errors.Is(err, api.ErrAlreadyExists) {
				if err == nil {
					_ = l.Close()
				}
				t.Fatalf("Listen over a %s = %v, want api.ErrAlreadyExists", tc.name, err)
			} else {
				t.Logf("Listen: %v", err)
			}
			if diff := cmp.Diff(before, lstatEntry(t, path)); diff != "" {
				t.Errorf("the %s changed (-before +after):\n%s", tc.name, diff)
			}
			checkNoAside(t, dir)
		})
	}
}

// TestListenClose: a stale socket of the plugin's user is replaced; Close
// removes the socket, but not a file that took its place.
func TestListenClose(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := shortTemp(t)
	path := filepath.Join(dir, "p.sock")
	staleSocket(t, path, os.Geteuid())
	l, err := Listen(path, os.Getegid())
	if err != nil {
		t.Fatalf("Listen over a stale socket of ours: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Close: %v", err)
	}
	l, err = Listen(path, os.Getegid())
	if err != nil {
		t.Fatal(err)
	}
	for _, replace := range []func() error{
		func() error { return os.WriteFile(path+".new", []byte("precious"), 0o600) },
		func() error { return os.Rename(path+".new", path) },
	} {
		if err := replace(); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); !errors.Is(err, api.ErrAlreadyExists) {
		t.Errorf("Close with a file in the socket's place = %v, want api.ErrAlreadyExists", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "precious" {
		t.Errorf("the file in the socket's place after Close: %q, %v", b, err)
	}
	checkNoAside(t, dir)
}

// checkNoAside fails if a file moved aside to be checked was left there.
func checkNoAside(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left in the socket dir: %s", e.Name())
		}
	}
}

// shortTemp is a temporary directory with a path short enough for sockets.
func shortTemp(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cvs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// TestRootLeavesOthersAlone: a plugin root others may write to, or whose
// layout holds what the plugin did not make (a symlink, a FIFO, a device, a
// huge state file, refused as api.ErrTooLarge), is refused at start,
// quickly, and nothing is written through it.
func TestRootLeavesOthersAlone(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, tc := range []struct {
		name string
		// prepare lays out root; outside is a directory beside it.
		prepare func(t *testing.T, root, outside string)
	}{
		{"world-writable root", func(t *testing.T, root, _ string) { must0(t, os.Chmod(root, 0o777)) }},
		{"group-writable root", func(t *testing.T, root, _ string) { must0(t, os.Chmod(root, 0o770)) }},
		{"root of another user", func(t *testing.T, root, _ string) { must0(t, os.Chown(root, 4321, 0)) }},
		{"state.json a symlink", func(t *testing.T, root, outside string) {
			must0(t, os.WriteFile(filepath.Join(outside, "f"), []byte(`{"version":1}`), 0o600))
			must0(t, os.Symlink(filepath.Join(outside, "f"), filepath.Join(root, "state.json")))
		}},
		{"state.json a FIFO", func(t *testing.T, root, _ string) { must0(t, unix.Mkfifo(filepath.Join(root, "state.json"), 0o600)) }},
		{"state.json a device", func(t *testing.T, root, _ string) {
			must0(t, unix.Mknod(filepath.Join(root, "state.json"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 5))))
		}},
		{"state.json huge", func(t *testing.T, root, _ string) {
			must0(t, os.WriteFile(filepath.Join(root, "state.json"), nil, 0o600))
			must0(t, os.Truncate(filepath.Join(root, "state.json"), maxStateFile+1))
		}},
		{"lock a symlink", func(t *testing.T, root, outside string) {
			must0(t, os.Symlink(filepath.Join(outside, "created"), filepath.Join(root, "lock")))
		}},
		{"volumes a symlink", func(t *testing.T, root, outside string) {
			must0(t, os.Remove(filepath.Join(root, "volumes")))
			must0(t, os.Symlink(outside, filepath.Join(root, "volumes")))
		}},
		{"volumes a dangling symlink", func(t *testing.T, root, outside string) {
			must0(t, os.Remove(filepath.Join(root, "volumes")))
			must0(t, os.Symlink(filepath.Join(outside, "made"), filepath.Join(root, "volumes")))
		}},
		{"trash a symlink", func(t *testing.T, root, outside string) {
			must0(t, os.Symlink(outside, filepath.Join(root, "trash")))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			outside := t.TempDir()
			must0(t, os.MkdirAll(filepath.Join(root, "volumes"), 0o700))
			tc.prepare(t, root, outside)
			before, _ := os.ReadDir(outside)
			d, err := New(Config{Root: root, Logger: testutil.Logger(t)})
			if err == nil {
				_ = d.Close()
				t.Fatalf("New accepted a root with a %s", tc.name)
			}
			want := api.ErrInvalid
			if tc.name == "state.json huge" {
				want = api.ErrTooLarge
			}
			if !errors.Is(err, want) {
				t.Errorf("New = %v, want %v", err, want)
			}
			t.Logf("New: %v", err)
			after, _ := os.ReadDir(outside)
			if len(after) != len(before) {
				t.Errorf("outside the root: %v, then %v", before, after)
			}
		})
	}
}

func must0(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
