//go:build linux

package safefile

import (
	"fmt"
	"os"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// readFlags open a checked regular file: O_NONBLOCK and O_NOCTTY cost
// nothing there and guard against a file swapped under the handle's name.
const readFlags = unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC

func openInRoot(root, name string) (*os.File, error) {
	h, err := pathrs.OpenInRoot(root, name)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return reopen(h)
}

func open(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	h := os.NewFile(uintptr(fd), path)
	defer h.Close()
	return reopen(h)
}

// reopen checks that the O_PATH handle h is a regular file, and only then
// opens it for reading through /proc (pathrs-lite checks that /proc is a
// real one). The reopened file is the same inode: it cannot be swapped.
func reopen(h *os.File) (*os.File, error) {
	fi, err := h.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkRegular(fi.Mode()); err != nil {
		return nil, err
	}
	f, err := pathrs.Reopen(h, readFlags)
	if err != nil {
		return nil, err
	}
	got, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !os.SameFile(fi, got) || !got.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", h.Name(), errNotSame)
	}
	return f, nil
}
