package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
)

// setPerm sets the socket's group and mode through a descriptor of the file
// itself (O_PATH, not following a symlink), and notes which file it is.
func (l *Listener) setPerm(gid int) error {
	fd, err := unix.Open(filepath.Join(l.dir, l.name), unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s was replaced by something that is not a socket: %w", l.name, api.ErrAlreadyExists)
	}
	l.dev, l.ino = uint64(st.Dev), uint64(st.Ino)
	if err := unix.Fchownat(fd, "", -1, gid, unix.AT_EMPTY_PATH); err != nil {
		return err
	}
	return os.Chmod(fdPath(fd), 0o660)
}

// removeSocket removes dir/name if it is a socket of ours that same accepts.
// It is first renamed aside (never over anything), checked there, and put
// back if it is not what was expected: whatever replaced the socket in the
// meantime is never removed.
func removeSocket(dir, name string, same func(*syscall.Stat_t) bool) error {
	d, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	aside := "." + name + ".stale-" + strconv.Itoa(os.Getpid())
	if err := unix.Renameat2(d, name, d, aside, unix.RENAME_NOREPLACE); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return os.ErrNotExist
		}
		return err
	}
	fi, err := os.Lstat(filepath.Join(fdPath(d), aside))
	if err != nil {
		return err
	}
	if ourSocket(filepath.Join(dir, name), fi) != nil || !same(fi.Sys().(*syscall.Stat_t)) {
		if err := unix.Renameat2(d, aside, d, name, unix.RENAME_NOREPLACE); err != nil {
			return fmt.Errorf("%s was replaced while the plugin removed its socket; it is now at %s: %w", filepath.Join(dir, name), aside, err)
		}
		return fmt.Errorf("%s was replaced: it is left alone: %w", filepath.Join(dir, name), api.ErrAlreadyExists)
	}
	return unix.Unlinkat(d, aside, 0)
}
