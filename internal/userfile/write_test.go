package userfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
)

// node is what a path is after a write: its type, the content of the file
// it names (through links), and where a link points.
type node struct {
	Type    fs.FileMode
	Content string
	Link    string
	Rdev    uint64
}

func inspect(t *testing.T, path string) node {
	t.Helper()
	lfi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	n := node{Type: lfi.Mode().Type()}
	switch {
	case lfi.Mode()&fs.ModeSymlink != 0:
		if n.Link, err = os.Readlink(path); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			n.Content = string(b)
		}
	case lfi.Mode().IsRegular():
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		n.Content = string(b)
	case lfi.Mode()&fs.ModeDevice != 0:
		n.Rdev = uint64(lfi.Sys().(*syscall.Stat_t).Rdev)
	}
	return n
}

func mknod(t *testing.T, path string, mode uint32, major, minor uint32) {
	t.Helper()
	if err := unix.Mknod(path, mode|0o666, int(unix.Mkdev(major, minor))); err != nil {
		t.Fatal(err)
	}
}

// TestCreate writes over each kind of node a user may name and checks
// what is there afterwards: regular files are replaced, links written
// through and kept, devices and FIFOs written through and kept, the rest
// refused and left alone.
func TestCreate(t *testing.T) {
	const data = "<svg/>\n"
	nullDev := unix.Mkdev(1, 3)
	for _, tc := range []struct {
		name string
		root bool // needs mknod or chown
		// setup makes the node at path; it returns the path to write and,
		// for a FIFO, a function that returns what its reader got.
		setup   func(t *testing.T, dir string) (string, func() string)
		refuse  bool // wraps api.ErrInvalid, nothing changed
		want    node // at the written path afterwards
		other   string
		wantOth node // at dir/other afterwards
	}{
		{name: "missing file", setup: func(t *testing.T, dir string) (string, func() string) {
			return filepath.Join(dir, "out"), nil
		}, want: node{Content: data}},
		{name: "regular file", setup: func(t *testing.T, dir string) (string, func() string) {
			p := filepath.Join(dir, "out")
			writeFile(t, p, "old content, longer than the new")
			return p, nil
		}, want: node{Content: data}},
		{name: "symlink to file", setup: func(t *testing.T, dir string) (string, func() string) {
			writeFile(t, filepath.Join(dir, "target"), "old")
			return symlink(t, "target", filepath.Join(dir, "out")), nil
		}, want: node{Type: fs.ModeSymlink, Link: "target", Content: data}, other: "target", wantOth: node{Content: data}},
		{name: "chain of relative symlinks across dirs", setup: func(t *testing.T, dir string) (string, func() string) {
			if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "target"), "old")
			symlink(t, "../../target", filepath.Join(dir, "a", "b", "hop"))
			return symlink(t, "a/b/hop", filepath.Join(dir, "out")), nil
		}, want: node{Type: fs.ModeSymlink, Link: "a/b/hop", Content: data}, other: "target", wantOth: node{Content: data}},
		{name: "dangling symlink", setup: func(t *testing.T, dir string) (string, func() string) {
			return symlink(t, "created", filepath.Join(dir, "out")), nil
		}, want: node{Type: fs.ModeSymlink, Link: "created", Content: data}, other: "created", wantOth: node{Content: data}},
		{name: "FIFO with a reader", setup: func(t *testing.T, dir string) (string, func() string) {
			p := filepath.Join(dir, "out")
			if err := unix.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			return p, fifoReader(t, p)
		}, want: node{Type: fs.ModeNamedPipe}},
		{name: "symlink to a FIFO", setup: func(t *testing.T, dir string) (string, func() string) {
			p := filepath.Join(dir, "fifo")
			if err := unix.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			return symlink(t, "fifo", filepath.Join(dir, "out")), fifoReader(t, p)
		}, want: node{Type: fs.ModeSymlink, Link: "fifo"}, other: "fifo", wantOth: node{Type: fs.ModeNamedPipe}},
		{name: "directory", setup: func(t *testing.T, dir string) (string, func() string) {
			p := filepath.Join(dir, "out")
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			return p, nil
		}, refuse: true, want: node{Type: fs.ModeDir}},
		{name: "symlink to a directory", setup: func(t *testing.T, dir string) (string, func() string) {
			if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			return symlink(t, "d", filepath.Join(dir, "out")), nil
		}, refuse: true, want: node{Type: fs.ModeSymlink, Link: "d"}, other: "d", wantOth: node{Type: fs.ModeDir}},
		{name: "socket", setup: func(t *testing.T, dir string) (string, func() string) {
			return testutil.Socket(t, filepath.Join(dir, "out")), nil
		}, refuse: true, want: node{Type: fs.ModeSocket}},
		{name: "character device like /dev/null", root: true, setup: func(t *testing.T, dir string) (string, func() string) {
			p := filepath.Join(dir, "out")
			mknod(t, p, unix.S_IFCHR, 1, 3)
			return p, nil
		}, want: node{Type: fs.ModeDevice | fs.ModeCharDevice, Rdev: nullDev}},
		{name: "symlink to a character device", root: true, setup: func(t *testing.T, dir string) (string, func() string) {
			mknod(t, filepath.Join(dir, "null"), unix.S_IFCHR, 1, 3)
			return symlink(t, "null", filepath.Join(dir, "out")), nil
		}, want: node{Type: fs.ModeSymlink, Link: "null"}, other: "null", wantOth: node{Type: fs.ModeDevice | fs.ModeCharDevice, Rdev: nullDev}},
		{name: "block device", root: true, setup: func(t *testing.T, dir string) (string, func() string) {
			p := filepath.Join(dir, "out")
			mknod(t, p, unix.S_IFBLK, 7, 250)
			return p, nil
		}, refuse: true, want: node{Type: fs.ModeDevice, Rdev: unix.Mkdev(7, 250)}},
		{name: "someone else's symlink in a sticky dir", root: true, setup: func(t *testing.T, dir string) (string, func() string) {
			writeFile(t, filepath.Join(dir, "target"), "old")
			sticky := filepath.Join(dir, "tmp")
			if err := os.Mkdir(sticky, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(sticky, 0o777|fs.ModeSticky); err != nil {
				t.Fatal(err)
			}
			p := symlink(t, "../target", filepath.Join(sticky, "out"))
			if err := os.Lchown(p, 4242, 4242); err != nil {
				t.Fatal(err)
			}
			return p, nil
		}, refuse: true, want: node{Type: fs.ModeSymlink, Link: "../target", Content: "old"}, other: "target", wantOth: node{Content: "old"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				testutil.RequiresRoot(t)
			}
			dir := t.TempDir()
			path, got := tc.setup(t, dir)
			err := Write(path, []byte(data), 0o644)
			if tc.refuse {
				if !errors.Is(err, api.ErrInvalid) {
					t.Fatalf("Write: %v, want an error wrapping api.ErrInvalid", err)
				}
			} else if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if got != nil {
				if diff := cmp.Diff(data, got()); diff != "" {
					t.Errorf("the FIFO's reader got (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tc.want, inspect(t, path)); diff != "" {
				t.Errorf("%s afterwards (-want +got):\n%s", path, diff)
			}
			if tc.other != "" {
				if diff := cmp.Diff(tc.wantOth, inspect(t, filepath.Join(dir, tc.other))); diff != "" {
					t.Errorf("%s afterwards (-want +got):\n%s", tc.other, diff)
				}
			}
			noTemporaries(t, dir)
		})
	}
}

// TestCreateKeepsMode checks that a replaced file keeps its mode, also
// through a link, and that a new one gets perm less the umask.
func TestCreateKeepsMode(t *testing.T) {
	dir := t.TempDir()
	kept := filepath.Join(dir, "kept")
	writeFile(t, kept, "old")
	if err := os.Chmod(kept, 0o640); err != nil {
		t.Fatal(err)
	}
	link := symlink(t, "kept", filepath.Join(dir, "link"))
	fresh := filepath.Join(dir, "fresh")
	for _, p := range []string{kept, link, fresh} {
		if err := Write(p, []byte("new"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	umask := unix.Umask(0)
	unix.Umask(umask)
	got := map[string]fs.FileMode{}
	for _, p := range []string{kept, fresh} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		got[filepath.Base(p)] = fi.Mode()
	}
	want := map[string]fs.FileMode{"kept": 0o640, "fresh": 0o666 &^ fs.FileMode(umask)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("modes (-want +got):\n%s", diff)
	}
}

// TestCreateProcFD writes through /proc/self/fd/N, as /dev/stdout is when
// redirected to a file: the open file is written at its end, not
// replaced, so that what the process printed to it stays.
func TestCreateProcFD(t *testing.T) {
	testutil.RequiresLinux(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "stdout")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("report\n"); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"/proc/self/fd/", "/dev/fd/"} {
		if err := Write(name+strconv.Itoa(int(f.Fd())), []byte("plot\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	after, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Errorf("%s was replaced", p)
	}
	b, _ := os.ReadFile(p)
	if diff := cmp.Diff("report\nplot\nplot\n", string(b)); diff != "" {
		t.Errorf("content (-want +got):\n%s", diff)
	}
}

// TestCreateErrors checks paths that cannot be written: nothing is left
// behind.
func TestCreateErrors(t *testing.T) {
	dir := t.TempDir()
	loop := filepath.Join(dir, "loop")
	symlink(t, "loop", loop)
	file := filepath.Join(dir, "file")
	writeFile(t, file, "x")
	for name, tc := range map[string]struct {
		path string
		want error
	}{
		"empty":            {"", api.ErrInvalid},
		"symlink loop":     {loop, syscall.ELOOP},
		"missing dir":      {filepath.Join(dir, "nope", "out"), fs.ErrNotExist},
		"under a file":     {filepath.Join(file, "out"), syscall.ENOTDIR},
		"proc fd to none":  {"/proc/self/fd/999999", fs.ErrNotExist},
		"nothing under it": {filepath.Join(dir, "loop", "x"), syscall.ELOOP},
	} {
		t.Run(name, func(t *testing.T) {
			if err := Write(tc.path, []byte("x"), 0o644); !errors.Is(err, tc.want) {
				t.Errorf("Write(%q): %v, want %v", tc.path, err, tc.want)
			}
		})
	}
	noTemporaries(t, dir)
}

// TestDiscard checks that a discarded write leaves the old file, and that
// a target replaced by a directory meanwhile is not renamed over.
func TestDiscard(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	writeFile(t, p, "old")
	f, err := Create(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("new")); err != nil {
		t.Fatal(err)
	}
	f.Discard()
	f.Discard()
	if diff := cmp.Diff(node{Content: "old"}, inspect(t, p)); diff != "" {
		t.Errorf("after Discard (-want +got):\n%s", diff)
	}
	if err := f.Commit(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Commit after Discard: %v, want fs.ErrClosed", err)
	}

	f, err = Create(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Commit over a directory: %v, want api.ErrInvalid", err)
	}
	if diff := cmp.Diff(node{Type: fs.ModeDir}, inspect(t, p)); diff != "" {
		t.Errorf("after Commit (-want +got):\n%s", diff)
	}
	noTemporaries(t, dir)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, path string) string {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// fifoReader reads the FIFO at path until its writer closes it, in the
// background; the function it returns waits for what it read.
func fifoReader(t *testing.T, path string) func() string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		f, err := os.Open(path)
		if err != nil {
			got <- "open: " + err.Error()
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		got <- string(b)
	}()
	return func() string { return <-got }
}

// noTemporaries fails when a temporary file is left in dir.
func noTemporaries(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// TestCheck checks each kind of path as Create would, and makes nothing.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	writeFile(t, file, "x")
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		path string
		want error // nil: accepted
	}{
		"nothing there":         {filepath.Join(dir, "new"), nil},
		"regular file":          {file, nil},
		"symlink to a file":     {symlink(t, "file", filepath.Join(dir, "link")), nil},
		"dangling symlink":      {symlink(t, "made-later", filepath.Join(dir, "dangling")), nil},
		"/dev/null":             {"/dev/null", nil},
		"empty":                 {"", api.ErrInvalid},
		"directory":             {sub, api.ErrInvalid},
		"socket":                {testutil.Socket(t, filepath.Join(dir, "sock")), api.ErrInvalid},
		"missing dir":           {filepath.Join(dir, "nope", "out"), fs.ErrNotExist},
		"under a file":          {filepath.Join(file, "out"), syscall.ENOTDIR},
		"link into missing dir": {symlink(t, "nope/out", filepath.Join(dir, "far")), fs.ErrNotExist},
		"symlink loop":          {symlink(t, "loop", filepath.Join(dir, "loop")), syscall.ELOOP},
	} {
		t.Run(name, func(t *testing.T) {
			err := Check(tc.path)
			if tc.want == nil && err != nil || !errors.Is(err, tc.want) {
				t.Errorf("Check(%q): %v, want %v", tc.path, err, tc.want)
			}
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"dangling", "far", "file", "link", "loop", "sock", "sub"}, names); diff != "" {
		t.Errorf("what Check left (-want +got):\n%s", diff)
	}
}
