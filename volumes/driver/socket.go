package driver

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/safefile"
)

// Listener is the plugin's unix socket. Its Close removes the socket file,
// but only while it is still the socket Listen made: a file put in its
// place since is left alone.
type Listener struct {
	*net.UnixListener
	dir, name string
	dev, ino  uint64
}

// Listen makes the plugin's unix socket: mode 0660, group gid. Whatever is
// at path is never written through, renamed over or removed, except a
// stale socket of this plugin's user (a plugin that died): a socket someone
// answers on is another plugin's; a regular file, a directory, a device, a
// FIFO, a symlink or a socket of another user are refused, all with an
// error wrapping api.ErrAlreadyExists.
func Listen(path string, gid int) (*Listener, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("socket %q: not an absolute path: %w", path, api.ErrInvalid)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket dir: %w", err)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("socket dir: %w", err)
	}
	name := filepath.Base(path)
	full := filepath.Join(dir, name)
	if err := clearStale(dir, name); err != nil {
		return nil, err
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: full, Net: "unix"})
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%s appeared while the plugin started: %w", path, api.ErrAlreadyExists)
	}
	if err != nil {
		return nil, err
	}
	// Removed by Close, and only if still ours.
	ul.SetUnlinkOnClose(false)
	l := &Listener{UnixListener: ul, dir: dir, name: name}
	if err := l.setPerm(gid); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("socket permissions: %w", err)
	}
	return l, nil
}

// Close stops listening and removes the socket file, unless something else
// has taken its place.
func (l *Listener) Close() error {
	err := l.UnixListener.Close()
	if l.ino != 0 {
		if rerr := removeSocket(l.dir, l.name, func(st *syscall.Stat_t) bool {
			return uint64(st.Dev) == l.dev && uint64(st.Ino) == l.ino
		}); rerr != nil && err == nil && !errors.Is(rerr, os.ErrNotExist) {
			err = rerr
		}
		l.ino = 0
	}
	return err
}

// clearStale makes way for the socket dir/name: nothing there, or a socket
// of ours that nobody answers on, which is removed.
func clearStale(dir, name string) error {
	path := filepath.Join(dir, name)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if err := ourSocket(path, fi); err != nil {
		return err
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("another plugin is serving %s: %w", path, api.ErrAlreadyExists)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("socket %s: cannot tell whether it is stale: %w: %w", path, err, api.ErrAlreadyExists)
	}
	first := fi.Sys().(*syscall.Stat_t)
	err = removeSocket(dir, name, func(now *syscall.Stat_t) bool { return now.Dev == first.Dev && now.Ino == first.Ino })
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// ourSocket refuses anything at path (fi, not followed) but a socket of this
// process's user.
func ourSocket(path string, fi os.FileInfo) error {
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket (%s): it is left alone: %w", path, safefile.Kind(fi.Mode()), api.ErrAlreadyExists)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Geteuid() {
		return fmt.Errorf("%s is a socket of uid %d, not this plugin's: it is left alone: %w", path, uid, api.ErrAlreadyExists)
	}
	return nil
}
