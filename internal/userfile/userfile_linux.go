package userfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
)

// onProcfs reports whether dir is in a procfs, whose links (/proc/PID/fd/N)
// only the kernel can follow.
func onProcfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
}

// mayFollow refuses the links the kernel's protected_symlinks refuses to
// follow: in a sticky, world-writable directory, owned by neither the
// caller nor the directory's owner. It applies whatever the sysctl says.
func mayFollow(link string, lfi fs.FileInfo, dir string) error {
	dfi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if dfi.Mode()&fs.ModeSticky == 0 || dfi.Mode().Perm()&0o002 == 0 {
		return nil
	}
	l, lok := lfi.Sys().(*syscall.Stat_t)
	d, dok := dfi.Sys().(*syscall.Stat_t)
	if !lok || !dok || l.Uid == uint32(os.Geteuid()) || l.Uid == d.Uid {
		return nil
	}
	return fmt.Errorf("%s is a symlink in a sticky, world-writable directory that neither this user nor the directory's owner owns: not followed: %w", link, api.ErrInvalid)
}

// keepOwner gives the replacement the owner of the file it replaces, where
// the caller may (root); elsewhere the new file is the caller's.
func keepOwner(f *os.File, existing fs.FileInfo) {
	st, ok := existing.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return
	}
	_ = f.Chown(int(st.Uid), int(st.Gid))
}

// openRead opens path for reading without waiting: O_NONBLOCK, so that a
// FIFO's open does not wait for a writer. The flag stays where the file
// can be polled (a FIFO, a terminal), so that its reads wait in Go's
// poller, where a deadline ends them; elsewhere reads block as usual.
func openRead(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	if f.SetReadDeadline(time.Time{}) != nil {
		_ = f.Fd() // not pollable: Fd makes it blocking again
	}
	return f, nil
}

// waitWriter waits until the FIFO f has something to read or a writer has
// come and gone (read then says the end): a FIFO opened without waiting
// reads as ended until a writer comes. The wait is in Go's poller, so a
// read deadline ends it.
func waitWriter(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		switch {
		case errors.Is(err, unix.EINTR):
			return false
		case err != nil:
			perr = err
			return true
		}
		return n > 0
	})
	if err != nil {
		return err
	}
	return perr
}
