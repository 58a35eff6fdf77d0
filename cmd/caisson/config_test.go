package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/config"
	"github.com/caisson/caisson/internal/testutil"
)

// nobody is the owner the tests give a file or dir of "another user".
const nobody = 65534

// TestMonitorConfigHostile: the monitor's file names programs it runs as
// root, so neither the command that writes it nor the monitor that reads
// it trusts what it finds in the run root. A config dir that is a link,
// another user's or writable by others makes the writer refuse; a file
// there that is a link, another user's, of another mode or other contents
// is replaced. The monitor refuses all of these, and a file whose contents
// are not what its name says.
func TestMonitorConfigHostile(t *testing.T) {
	chown := func(t *testing.T, p string) {
		testutil.RequiresRoot(t)
		if err := os.Lchown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		// tamper changes the run root's config dir, or the file at path
		// (data is what the command writes there).
		tamper func(t *testing.T, path string, data []byte)
		// refused: the writer refuses (else it replaces the file).
		refused bool
	}{
		{name: "dir a link", refused: true, tamper: func(t *testing.T, path string, data []byte) {
			elsewhere := t.TempDir()
			mustWrite(t, filepath.Join(elsewhere, filepath.Base(path)), data, 0o600)
			mustDo(t, os.Symlink(elsewhere, filepath.Dir(path)))
		}},
		{name: "dir another user's", refused: true, tamper: func(t *testing.T, path string, data []byte) {
			mustDo(t, os.Mkdir(filepath.Dir(path), 0o700))
			mustWrite(t, path, data, 0o600)
			chown(t, filepath.Dir(path))
		}},
		{name: "dir writable by its group", refused: true, tamper: func(t *testing.T, path string, data []byte) {
			mustDo(t, os.Mkdir(filepath.Dir(path), 0o700))
			mustWrite(t, path, data, 0o600)
			mustDo(t, os.Chmod(filepath.Dir(path), 0o770))
		}},
		{name: "dir writable by others", refused: true, tamper: func(t *testing.T, path string, data []byte) {
			mustDo(t, os.Mkdir(filepath.Dir(path), 0o700))
			mustWrite(t, path, data, 0o600)
			mustDo(t, os.Chmod(filepath.Dir(path), 0o703))
		}},
		{name: "dir a file", refused: true, tamper: func(t *testing.T, path string, data []byte) {
			mustWrite(t, filepath.Dir(path), data, 0o600)
		}},
		{name: "file a link", tamper: func(t *testing.T, path string, data []byte) {
			target := filepath.Join(t.TempDir(), "target.toml")
			mustWrite(t, target, data, 0o600)
			mustDo(t, os.Mkdir(filepath.Dir(path), 0o700))
			mustDo(t, os.Symlink(target, path))
		}},
		{name: "file another user's", tamper: func(t *testing.T, path string, data []byte) {
			mustDo(t, os.Mkdir(filepath.Dir(path), 0o700))
			mustWrite(t, path, data, 0o600)
			chown(t, path)
		}},
		{name: "file readable by others", tamper: func(t *testing.T, path string, data []byte) {
			mustDo(t, os.Mkdir(filepath.Dir(path), 0o700))
			mustWrite(t, path, data, 0o644)
		}},
		{name: "file a FIFO", tamper: func(t *testing.T, path string, data []byte) {
			mustDo(t, os.Mkdir(filepath.Dir(path), 0o700))
			mustDo(t, syscall.Mkfifo(path, 0o600))
		}},
		{name: "file of other contents", tamper: func(t *testing.T, path string, data []byte) {
			mustDo(t, os.Mkdir(filepath.Dir(path), 0o700))
			other := bytes.Replace(data, []byte(`binary = 'runc'`), []byte(`binary = '/tmp/evil'`), 1)
			if bytes.Equal(other, data) {
				t.Fatal("the test found no runtime binary to change")
			}
			mustWrite(t, path, other, 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Default()
			dir := t.TempDir()
			c.State.Root, c.State.RunRoot = filepath.Join(dir, "lib"), filepath.Join(dir, "run")
			mustDo(t, os.Mkdir(c.State.RunRoot, 0o711))
			cmdline, prepare, err := (&globals{cfg: c}).monitorCommand()
			if err != nil {
				t.Fatal(err)
			}
			path := cmdline[2]
			data, err := config.Encode(c)
			if err != nil {
				t.Fatal(err)
			}
			tc.tamper(t, path, data)

			// The monitor refuses before it resolves anything.
			g := &globals{}
			root := newRoot(g)
			root.SetArgs(append(slices.Clone(cmdline[1:]), "0123456789abcdef"))
			root.SetOut(io.Discard)
			root.SetErr(io.Discard)
			err = root.ExecuteContext(context.Background())
			if !errors.Is(err, api.ErrInvalid) && !errors.Is(err, api.ErrCorrupt) {
				t.Errorf("monitor: %v, want the file refused", err)
			}
			if diff := cmp.Diff(config.Config{}, g.cfg); diff != "" {
				t.Errorf("the monitor resolved a configuration from the file (-none +got):\n%s", diff)
			}

			err = prepare()
			if tc.refused {
				if !errors.Is(err, api.ErrInvalid) {
					t.Errorf("write: %v, want api.ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("write: %v, want the file replaced", err)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != 0o600 || int(fi.Sys().(*syscall.Stat_t).Uid) != os.Geteuid() {
				t.Errorf("replaced: mode %v, uid %d; want a regular file, 0600, of uid %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, os.Geteuid())
			}
			if got, err := readMonitorConfig(path); err != nil || !bytes.Equal(got, data) {
				t.Errorf("replaced: the monitor reads %v; want the command's file", err)
			}
		})
	}
}

func mustWrite(t *testing.T, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	mustDo(t, os.WriteFile(path, data, mode))
	mustDo(t, os.Chmod(path, mode)) // whatever the umask
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
