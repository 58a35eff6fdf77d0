// Package flock takes exclusive advisory locks on files (flock(2)). A lock is
// released by Unlock or when the process dies, so a crash never leaves one
// held.
package flock

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Lock is a held lock.
type Lock struct{ f *os.File }

// Acquire locks path, creating the file if needed. With block false it fails
// at once (with an error wrapping unix.EWOULDBLOCK) when someone else holds
// the lock.
func Acquire(path string, block bool) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
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
