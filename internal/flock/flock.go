// Package flock takes exclusive advisory locks on files (flock(2)). A lock is
// released by Unlock or when the process dies, so a crash never leaves one
// held.
package flock

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Lock is a held lock.
type Lock struct{ f *os.File }

// Acquire locks path, creating the file if needed. With block false it fails
// at once (with an error wrapping unix.EWOULDBLOCK) when someone else holds
// the lock.
func Acquire(path string, block bool) (*Lock, error) {
	return acquire(path, block, os.O_RDWR|os.O_CREATE)
}

// AcquireExisting locks path only if the file exists, and only while it
// still does once locked: a lock file that its holder unlinked (removing
// what it guards) is not taken over, nor created anew in a directory being
// removed. Either case is an error wrapping fs.ErrNotExist.
func AcquireExisting(path string, block bool) (*Lock, error) {
	l, err := acquire(path, block, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	if !l.linkedAt(path) {
		l.Unlock()
		return nil, &os.PathError{Op: "lock", Path: path, Err: fs.ErrNotExist}
	}
	return l, nil
}

// linkedAt reports whether the locked file is still the one at path.
func (l *Lock) linkedAt(path string) bool {
	var held, linked unix.Stat_t
	if unix.Fstat(int(l.f.Fd()), &held) != nil || unix.Stat(path, &linked) != nil {
		return false
	}
	return held.Ino == linked.Ino && held.Dev == linked.Dev
}

func acquire(path string, block bool, flags int) (*Lock, error) {
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_EX
	if !block {
		how |= unix.LOCK_NB
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &Lock{f: f}, nil
}

// Unlock releases the lock; it is safe on a nil or released lock.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}
